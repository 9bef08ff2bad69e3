"""Specification of the wall-aware prior (normcoef/physics/geometry_prior.py) and of where its
tables live (normcoef/data/priors.py): exact Γ of reference fields on the grid itself."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import count_table_builds

from normcoef.data import priors
from normcoef.data.distance import signed_distance
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import python_grid
from normcoef.data.info import DatasetInfo
from normcoef.data.priors import GeometryPrior, make_prior, prior_from_dict
from normcoef.data.storage import DatasetError
from normcoef.data.torch_dataset import Standardizer
from normcoef.data.transforms import transform_cells
from normcoef.physics import DiffusionOperator, brute_force_normalization, exact_normalization
from normcoef.physics.diffusion import open_faces
from normcoef.physics.geometry_prior import (
    GeometryTable,
    TableMismatchError,
    log_nodes,
    reference_fields,
    sample_reference_ratios,
)
from normcoef.physics.prior import uniform_lattice_prior
from tests.test_target import tiny_split

STEPS = 10
# The generator's ratios a/w on the python grid span ~0.14 to ~1.0 (length scales of 1.5 to 4
# cells, M = 10): the nodes of these tests.
NODES = (tuple(np.linspace(np.log(0.14), np.log(1.0), 4)),) * 2


def relative_error(prior: np.ndarray, gamma: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """ε = γ_prior²/γ² - 1 on ocean cells (the report's relative variance error)."""
    return prior[ocean] ** 2 / gamma[ocean] ** 2 - 1


def mercator_area(grid) -> np.ndarray:
    e1t, e2t = grid.cell_widths()
    return e1t * e2t


@pytest.fixture(scope="module", params=["uniform W", "Mercator W"])
def coast(request):
    """A 20x32 python grid (coasts north and south, east-west periodic), its areas (uniform,
    or the grid's own: 4x from the equator to the coasts) and its table."""
    grid = python_grid(20, 32)
    area = np.full(grid.shape, 3.7) if request.param == "uniform W" else mercator_area(grid)
    return grid, area, GeometryTable.build(grid.mask, area, STEPS, (True, False), NODES)


def reference_gamma(grid, area, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference fields at (α, β) and their exact Γ."""
    fields = reference_fields(grid.mask, area, alpha, beta, (True, False))
    return fields, exact_normalization(DiffusionOperator(fields, grid.mask, STEPS))


def test_with_uniform_areas_the_reference_fields_are_uniform_fields():
    mask = python_grid(20, 32).mask
    fields = reference_fields(mask, np.full(mask.shape, 2.0), 0.3, 0.5, (True, False))
    north, east = open_faces(mask, True, False)
    np.testing.assert_array_equal(fields[0], np.where(north, 0.6, 0.0))
    np.testing.assert_array_equal(fields[1], np.where(east, 1.0, 0.0))


@pytest.mark.parametrize("node", [(0, 0), (1, 3), (3, 2)])
def test_at_a_node_the_prior_is_exact_gamma_of_the_reference_fields(coast, node):
    grid, area, table = coast
    alpha, beta = np.exp(table.log_alpha[node[0]]), np.exp(table.log_beta[node[1]])
    fields, exact = reference_gamma(grid, area, alpha, beta)

    prior = table.prior(fields, grid.mask)

    np.testing.assert_allclose(prior[grid.mask], exact[grid.mask], rtol=2e-6)
    assert np.all(prior[~grid.mask] == 0)


def test_between_nodes_the_prior_is_within_one_percent_of_exact_gamma_of_reference_fields(
    coast,
):
    """Measured at the midpoints of the outer cells of the 4x4 nodes, where a natural cubic
    spline errs most: max |ε| 0.9 % on the 64x128 python grid (docs/results.md)."""
    grid, area, table = coast
    worst = 0.0
    for i, j in [(0, 0), (0, 2), (2, 1)]:
        alpha = np.exp((table.log_alpha[i] + table.log_alpha[i + 1]) / 2)
        beta = np.exp((table.log_beta[j] + table.log_beta[j + 1]) / 2)
        fields, exact = reference_gamma(grid, area, alpha, beta)
        worst = max(
            worst, np.abs(relative_error(table.prior(fields, grid.mask), exact, grid.mask)).max()
        )
    assert 1e-5 < worst < 0.015  # not exact (so the check checks), within the tolerance


@pytest.mark.parametrize("name", ["hflip", "vflip", "rot180"])
def test_the_table_of_a_flipped_grid_is_the_flipped_table(coast, name):
    grid, area, table = coast
    moved_mask = transform_cells(name, grid.mask)

    moved = GeometryTable.build(
        moved_mask, transform_cells(name, area), STEPS, (True, False), NODES
    )

    for i in range(len(NODES[0])):
        for j in range(len(NODES[1])):
            original = np.zeros(grid.shape)
            original[grid.mask] = table.log_factor[i, j]
            expected = transform_cells(name, original)[moved_mask]
            np.testing.assert_allclose(moved.log_factor[i, j], expected, atol=1e-7)


@pytest.mark.reliability(
    "predict",
    "a geometry table used for another grid (mask, W, M)",
    "error",
    "says what differs; a table for the grid is made on first use",
)
def test_a_table_made_for_another_grid_is_refused(coast):
    grid, area, table = coast
    other = grid.mask.copy()
    other[5, 7] = not other[5, 7]
    fields = reference_fields(grid.mask, area, 0.3, 0.3, (True, False))

    with pytest.raises(TableMismatchError, match="another ocean mask .* 1 cells that differ"):
        table.prior(fields, other)
    with pytest.raises(TableMismatchError, match="other cell areas W"):
        table.prior(fields * np.array([1, 1, 1.01])[:, None, None], grid.mask)
    with pytest.raises(TableMismatchError, match="M = 10"):
        table.check_matches(grid.mask, area, 6, (True, False))


@pytest.mark.slow
def test_it_is_never_worse_than_the_uniform_prior_in_the_open_ocean_and_far_better_at_the_coast():
    """A generated 48x96 python-grid sample (varying coefficients, M = 10): measured mean |ε|
    0.0131 (uniform) and 0.0050 (geometry) at >= 8 cells from the coast, 0.112 and 0.0094
    over all ocean; max |ε| 2.79 and 0.077."""
    grid = python_grid(48, 96)
    fields = make_fields(grid, FieldParameters(), seed=0, index=3)
    ocean = grid.mask
    gamma = exact_normalization(DiffusionOperator(fields, ocean, STEPS))
    x, y = sample_reference_ratios(fields, ocean, (True, False))
    table = GeometryTable.build(
        ocean, fields[2], STEPS, (True, False), (log_nodes(x), log_nodes(y))
    )

    geometry = np.abs(relative_error(table.prior(fields, ocean), gamma, ocean))
    uniform = np.abs(relative_error(uniform_lattice_prior(fields, ocean, STEPS), gamma, ocean))

    far = (signed_distance(ocean, "manhattan", True) >= 8)[ocean]
    assert geometry[far].mean() <= uniform[far].mean()
    assert geometry.mean() < uniform.mean() / 5
    assert geometry.max() < uniform.max() / 10


def test_on_a_closed_uniform_basin_it_is_exact_where_the_lattice_prior_is_off_by_double():
    """A 10x16 basin closed on all sides: the corners see two walls."""
    mask = np.ones((10, 16), bool)
    table = GeometryTable.build(mask, np.full(mask.shape, 2.0), STEPS, (False, False), NODES)
    alpha, beta = np.exp(table.log_alpha[2]), np.exp(table.log_beta[1])
    fields = reference_fields(mask, np.full(mask.shape, 2.0), alpha, beta, (False, False))
    brute = brute_force_normalization(DiffusionOperator(fields, mask, STEPS, False, False))

    np.testing.assert_allclose(table.prior(fields, mask), brute, rtol=2e-6)
    uniform = uniform_lattice_prior(fields, mask, STEPS, False, False)
    assert np.abs(relative_error(uniform, brute, mask)).max() > 1.0


def geometry_prior(tmp_path, split) -> GeometryPrior:
    prior = make_prior("geometry", DatasetInfo(steps=STEPS), split.fields, split.ocean)
    assert isinstance(prior, GeometryPrior)
    return prior.stored_in(tmp_path)


def test_a_grid_table_is_made_once_then_read_from_its_folder(tmp_path, monkeypatch):
    split = tiny_split()  # each sample on its own areas W (scaled), i.e. its own grid
    built = count_table_builds(monkeypatch)

    first = geometry_prior(tmp_path, split)(split.fields[0], split.ocean[0])
    again = geometry_prior(tmp_path, split)(split.fields[0], split.ocean[0])
    assert len(built) == 1
    np.testing.assert_array_equal(first, again)

    geometry_prior(tmp_path, split)(split.fields[1], split.ocean[1])
    prior = geometry_prior(tmp_path, split)
    names = {f"prior-geometry-{prior.key(split.ocean[k], split.fields[k][2])}.npz" for k in (0, 1)}
    assert len(built) == 2 and {p.name for p in tmp_path.iterdir()} == names


@pytest.mark.reliability(
    "train",
    "a damaged geometry table beside the data set",
    "error",
    "names the file; removing it makes it again",
)
def test_a_damaged_table_file_is_refused_in_one_line_naming_the_fix(tmp_path):
    split = tiny_split()
    prior = geometry_prior(tmp_path, split)
    prior(split.fields[0], split.ocean[0])
    path = next(tmp_path.iterdir())
    path.write_bytes(path.read_bytes()[:40])

    with pytest.raises(DatasetError, match=r"is truncated or damaged .*; remove it: the geo") as e:
        geometry_prior(tmp_path, split)(split.fields[0], split.ocean[0])
    assert str(e.value).startswith(f"{path} ") and "\n" not in str(e.value)


def test_a_checkpoint_records_its_prior_and_older_ones_keep_the_uniform_one(tmp_path):
    split = tiny_split()
    info = DatasetInfo(steps=STEPS)
    prior = geometry_prior(tmp_path, split)
    standardizer = Standardizer.fit(split, "partial", None, info, "prior_residual", prior)

    saved = standardizer.to_dict()
    restored = Standardizer.from_dict(saved, info)
    old = {key: value for key, value in saved.items() if key != "prior"}

    assert saved["prior"]["name"] == "geometry" and restored.prior_name == "geometry"
    assert Standardizer.from_dict(old, info).prior_name == "uniform"
    restored.read_tables_from(tmp_path)
    np.testing.assert_array_equal(
        restored.prior(split.fields[0], split.ocean[0]), prior(split.fields[0], split.ocean[0])
    )


def test_an_unknown_prior_is_refused():
    with pytest.raises(ValueError, match="unknown prior 'walls'; choose one of geometry, uniform"):
        prior_from_dict({"name": "walls"}, DatasetInfo(steps=STEPS))
    assert priors.PRIORS == ("geometry", "uniform")


def test_a_cell_without_faces_on_an_axis_reads_the_table_at_its_neighbours_ratio():
    """A one-cell strait: land east and west of cell (6, 10), so it has no ratio of its own
    along x, while its variance depends on its neighbours' east-west diffusion (the table's
    log F there spans ~1 over the nodes): read at the lowest node it was 14 % off here, up to
    155 % at straits of the global grid."""
    mask = np.ones((12, 20), bool)
    mask[0, :] = mask[-1, :] = False
    mask[6, 9] = mask[6, 11] = False
    table = GeometryTable.build(mask, np.full(mask.shape, 1.5), STEPS, (True, False), NODES)
    for i, j in [(3, 3), (1, 2)]:
        alpha, beta = np.exp(table.log_alpha[i]), np.exp(table.log_beta[j])
        fields = reference_fields(mask, np.full(mask.shape, 1.5), alpha, beta, (True, False))
        exact = exact_normalization(DiffusionOperator(fields, mask, STEPS))

        prior = table.prior(fields, mask)

        assert fields[1][6, 10] == fields[1][6, 9] == 0  # no open east or west face
        np.testing.assert_allclose(prior[6, 10], exact[6, 10], rtol=2e-6)


def test_nodes_that_differ_only_by_the_sign_of_zero_name_one_table():
    """Ten and forty samples of the global grid gave the nodes 0.0 and -0.0, two keys and two
    identical tables of 2.4 MB (and a second 4-minute build)."""
    assert str(log_nodes(np.array([0.14, 0.999]))[-1]) == "0.0"
    split = tiny_split()
    signed = GeometryPrior(STEPS, True, False, (-1.0, -0.0), (-1.0, -0.0))
    unsigned = GeometryPrior(STEPS, True, False, (-1.0, 0.0), (-1.0, 0.0))
    area = split.fields[0][2]
    assert signed.key(split.ocean[0], area) == unsigned.key(split.ocean[0], area)


def coarse_and_fine_prior(tmp_path) -> tuple[GeometryPrior, np.ndarray, np.ndarray]:
    """A geometry prior with nodes around ratio 0.3 (a 1.5-4 cell length scale) and the
    reference fields of the 20x32 python grid at ratio 4x that: the same ocean on a grid 2x
    finer, whose kernel widths in cells are twice the training's."""
    grid = python_grid(20, 32)
    area = mercator_area(grid)
    prior = GeometryPrior(STEPS, True, False, *NODES, directories=(tmp_path,))
    fine = reference_fields(grid.mask, area, 4 * np.exp(NODES[0][-1]), 4.0, (True, False))
    return prior, fine, grid.mask


def test_on_inputs_of_another_resolution_the_nodes_are_placed_over_them_and_the_prior_is_exact(
    tmp_path,
):
    prior, fields, ocean = coarse_and_fine_prior(tmp_path)
    exact = exact_normalization(DiffusionOperator(fields, ocean, STEPS))

    assert prior.nodes_outside([fields], [ocean]) == 1.0  # every cell past the top node
    clamped = np.abs(relative_error(prior(fields, ocean), exact, ocean)).max()
    covering, share = prior.covering([fields], [ocean])
    covered = np.abs(relative_error(covering(fields, ocean), exact, ocean)).max()

    assert share == 1.0 and covering.log_alpha[0] > prior.log_alpha[-1]
    assert covered < 0.015  # the between-node tolerance above
    assert clamped > 5 * covered  # read at the training's nodes: clamped at the coast


def test_inputs_within_the_nodes_keep_the_training_table(tmp_path):
    prior, _, ocean = coarse_and_fine_prior(tmp_path)
    grid_area = mercator_area(python_grid(20, 32))
    inside = reference_fields(ocean, grid_area, 0.5, 0.3, (True, False))
    covering, share = prior.covering([inside], [ocean])
    assert share == 0.0 and covering is prior


def test_evaluate_places_the_nodes_over_a_data_set_of_another_resolution(tmp_path):
    split = tiny_split()
    info = DatasetInfo(steps=STEPS)
    prior = make_prior("geometry", info, split.fields, split.ocean, directories=(tmp_path,))
    standardizer = Standardizer.fit(split, "full", None, info, "prior_residual", prior)
    before = standardizer.cell_prior.to_dict()
    finer = [f * np.array([16.0, 16.0, 1.0])[:, None, None] for f in split.fields]

    assert standardizer.cover_inputs(list(split.fields), list(split.ocean)) == ""
    note = standardizer.cover_inputs(finer, list(split.ocean))
    assert "another resolution" in note and int(note.split("%")[0]) > 90
    after = standardizer.cell_prior.to_dict()
    assert after["log_alpha"][0] > before["log_alpha"][0] + 1.0
