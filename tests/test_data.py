"""Grids, input fields, standardization, distance maps and data sets on disk.

Expected numbers are worked out by hand in the tests (standardization, distance maps); the
generated data set is compared with a fresh exact normalization of the same sample.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TinyDataset
from helpers import destandardize, select_channels, tiny_spec

from normcoef.data.distance import coast, signed_distance, standardized_distance
from normcoef.data.fields import FieldParameters, length_scales, make_fields
from normcoef.data.generation import (
    SPLIT_INDEX_BASE,
    GenerationSpec,
    generate_dataset,
    generate_sample,
    summary,
)
from normcoef.data.grids import global_grid, make_grid, python_grid
from normcoef.data.info import DatasetInfo
from normcoef.data.standardization import (
    ChannelStatistics,
    compute_statistics,
    standardize,
)
from normcoef.data.storage import (
    METADATA,
    DatasetError,
    list_ids,
    load_split,
    read_json,
    read_sample,
    sample_paths,
)
from normcoef.data.torch_dataset import Standardizer
from normcoef.physics.diffusion import open_faces
from tests.test_target import tiny_split

REPO = Path(__file__).resolve().parents[1]

# --- grids -------------------------------------------------------------------------------


def test_python_grid_has_continents_on_its_first_and_last_rows_and_ocean_between():
    grid = python_grid(24, 36)
    assert grid.shape == (24, 36)
    assert not grid.mask[0].any() and not grid.mask[-1].any()
    assert grid.mask[12].all()
    assert grid.periodic_x and not grid.periodic_y


@pytest.mark.parametrize("grid", [python_grid(64, 128), python_grid(16, 24)], ids=["64", "16"])
def test_mercator_cells_are_nearly_isotropic_with_positive_widths(grid):
    e1t, e2t = grid.cell_widths()
    assert (e1t > 0).all() and (e2t > 0).all()
    # Isotropy holds up to O(dlon^2): 15-degree cells are within 7 %, 2.8-degree within 2 %.
    limit = 0.02 if grid.shape[1] >= 128 else 0.07
    assert np.abs(e1t / e2t - 1).max() < limit


def test_python_grid_rows_are_symmetric_about_the_equator():
    grid = python_grid(16, 24)
    np.testing.assert_allclose(grid.lat, -grid.lat[::-1], atol=1e-12)


def test_unknown_or_tiny_grids_are_refused():
    with pytest.raises(ValueError, match="unknown grid 'orca'"):
        make_grid("orca")
    with pytest.raises(ValueError, match="at least 4x4"):
        python_grid(3, 24)


def test_make_grid_overrides_the_default_size():
    assert make_grid("python", 16, 24).shape == (16, 24)


@pytest.fixture(scope="module")
def earth():
    return global_grid()  # about 5 s: the 1 km land mask is read once


def land_at(grid, lat: float, lon: float) -> bool:
    row = np.argmin(np.abs(grid.lat - lat))
    col = np.argmin(np.abs(grid.lon - lon % 360))
    return not grid.mask[row, col]


def test_global_grid_is_orca1_sized_with_about_two_thirds_ocean(earth):
    assert earth.shape == (292, 360)
    assert 0.6 < earth.mask.mean() < 0.75
    e1t, e2t = earth.cell_widths()
    assert np.abs(e1t / e2t - 1).max() < 0.01
    assert earth.lat[0] == pytest.approx(-78, abs=0.5)


@pytest.mark.parametrize(
    ("place", "lat", "lon", "land"),
    [
        ("central Africa", 5, 20, True),
        ("central Asia", 45, 90, True),
        ("Australia", -25, 135, True),
        ("North America", 40, -100, True),
        ("Amazon", -10, -60, True),
        ("Antarctica", -75, 0, True),
        ("mid-Pacific", 0, 180, False),
        ("North Atlantic", 30, -40, False),
        ("Indian Ocean", -20, 75, False),
    ],
)
def test_global_grid_has_land_and_ocean_in_the_right_places(earth, place, lat, lon, land):
    assert land_at(earth, lat, lon) is land, place


# --- fields ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_grid():
    return python_grid(24, 36)


def test_fields_are_reproducible_from_grid_seed_and_index(small_grid):
    params = FieldParameters()
    first = make_fields(small_grid, params, seed=4, index=2)
    np.testing.assert_array_equal(first, make_fields(small_grid, params, seed=4, index=2))
    assert not np.array_equal(first, make_fields(small_grid, params, seed=4, index=3))
    assert not np.array_equal(first, make_fields(small_grid, params, seed=5, index=2))


def test_fields_close_faces_touching_land_and_are_physical(small_grid):
    a_i, a_j, w = make_fields(small_grid, FieldParameters(), seed=0, index=0)
    north, east = open_faces(small_grid.mask, small_grid.periodic_x, small_grid.periodic_y)
    assert np.all(a_i[~north] == 0) and np.all(a_j[~east] == 0)
    assert np.all(a_i[north] > 0) and np.all(a_j[east] > 0)
    assert np.all(w > 0)


def test_length_scales_stay_in_the_requested_range_and_isotropy_is_honoured(small_grid):
    params = FieldParameters(min_cells=2.0, max_cells=3.0, anisotropic=False)
    s_x, s_y = length_scales(small_grid, params, seed=0, index=0)
    assert 2.0 <= s_x.min() and s_x.max() <= 3.0
    np.testing.assert_array_equal(s_x, s_y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_cells": 3.0, "max_cells": 2.0}, "min_cells <= max_cells"),
        ({"min_cells": 0.0}, "0 < min_cells"),
        ({"correlation_cells": 0.0}, "correlation_cells must be > 0"),
    ],
)
def test_field_parameters_refuse_impossible_ranges(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FieldParameters(**kwargs)


# --- standardization ---------------------------------------------------------------------

# One 2 x 2 image, land at the bottom-right cell. Channel 0 varies; channel 1 is constant
# over the ocean, so its partial std is 0 and must become 1.
IMAGE = np.array([[[1.0, 2.0], [3.0, 10.0]], [[4.0, 4.0], [4.0, -8.0]]])
OCEAN = np.array([[True, True], [True, False]])


def test_full_statistics_use_every_cell():
    stats = compute_statistics([IMAGE], [OCEAN], "full")
    # channel 0: mean 16/4 = 4, deviations -3 -2 -1 6, variance 50/4.
    # channel 1: mean 4/4 = 1, deviations 3 3 3 -9, variance 108/4.
    np.testing.assert_allclose(stats.mean, [4.0, 1.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(12.5), np.sqrt(27.0)])


def test_partial_statistics_use_ocean_cells_and_a_constant_channel_gets_std_one():
    stats = compute_statistics([IMAGE], [OCEAN], "partial")
    # channel 0 over 1, 2, 3: mean 2, variance 2/3; channel 1 over 4, 4, 4: mean 4, std 0 -> 1.
    np.testing.assert_allclose(stats.mean, [2.0, 4.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(2 / 3), 1.0])


def test_statistics_pool_all_training_images():
    images = [np.zeros((1, 2, 2)), np.full((1, 2, 2), 2.0)]
    stats = compute_statistics(images, [np.ones((2, 2), bool)] * 2, "full")
    np.testing.assert_allclose([stats.mean[0], stats.std[0]], [1.0, 1.0])


def test_partial_standardization_zeroes_land_and_centres_the_ocean():
    stats = compute_statistics([IMAGE], [OCEAN], "partial")
    out = standardize(IMAGE, stats, "partial", OCEAN)
    s = np.sqrt(2 / 3)
    expected = np.array([[[-1 / s, 0.0], [1 / s, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize("mode", ["full", "partial"])
def test_destandardize_inverts_standardize(mode):
    stats = compute_statistics([IMAGE], [OCEAN], mode)
    back = destandardize(standardize(IMAGE, stats, mode, OCEAN), stats)
    cells = np.ones_like(OCEAN) if mode == "full" else OCEAN
    np.testing.assert_allclose(back[:, cells], IMAGE[:, cells])


def test_channel_statistics_round_trip_through_json_and_select_channels():
    stats = compute_statistics([IMAGE], [OCEAN], "full")
    again = ChannelStatistics.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)
    np.testing.assert_array_equal(select_channels(stats, [1]).mean, [1.0])


def test_unknown_standardization_is_refused():
    with pytest.raises(ValueError, match="unknown standardization 'ocean'"):
        compute_statistics([IMAGE], [OCEAN], "ocean")


# --- distance maps -----------------------------------------------------------------------

# Row 0 is printed first. Land (#) above, ocean (~) below, with a step in the coastline:
#   # # # # # #
#   # # # # # #      coast: row 2 columns 0-2 and row 1 columns 3-5
#   # # # ~ ~ ~
#   ~ ~ ~ ~ ~ ~
#   ~ ~ ~ ~ ~ ~
#   ~ ~ ~ ~ ~ ~
STEP = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ],
    dtype=bool,
)
R2, R5, R8, R10, R13 = np.sqrt([2.0, 5.0, 8.0, 10.0, 13.0])


def test_coast_is_land_next_to_ocean():
    expected = np.zeros_like(STEP)
    expected[2, :3] = expected[1, 3:] = True
    np.testing.assert_array_equal(coast(STEP, periodic_x=False), expected)


def test_manhattan_signed_distance_on_a_stepped_coast():
    expected = np.array(
        [
            [-2, -2, -2, -1, -1, -1],
            [-1, -1, -1, 0, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [1, 1, 1, 2, 2, 2],
            [2, 2, 2, 3, 3, 3],
            [3, 3, 3, 4, 4, 4],
        ],
        dtype=float,
    )
    np.testing.assert_array_equal(signed_distance(STEP, "manhattan", periodic_x=False), expected)
    # Wrapping east-west adds no shorter taxicab path here.
    np.testing.assert_array_equal(signed_distance(STEP, "manhattan", periodic_x=True), expected)


def test_euclidean_signed_distance_on_a_stepped_coast():
    expected = np.array(
        [
            [-2, -2, -R2, -1, -1, -1],
            [-1, -1, -1, 0, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [1, 1, 1, R2, 2, 2],
            [2, 2, 2, R5, R8, 3],
            [3, 3, 3, R10, R13, 4],
        ]
    )
    np.testing.assert_allclose(signed_distance(STEP, "euclidean", periodic_x=False), expected)
    # Across the seam, (0, 0) is diagonal to the coast cell (1, 5) and column 5 is next to
    # the coast cell (2, 0).
    expected[0, 0] = -R2
    expected[3:, 5] = [R2, R5, R10]
    np.testing.assert_allclose(signed_distance(STEP, "euclidean", periodic_x=True), expected)


@pytest.mark.parametrize("metric", ["manhattan", "euclidean"])
def test_signed_distance_is_positive_in_the_ocean_negative_inland_and_zero_on_the_coast(metric):
    distance = signed_distance(STEP, metric)
    shore = coast(STEP)
    assert np.all(distance[STEP] > 0)
    assert np.all(distance[shore] == 0)
    assert np.all(distance[~STEP & ~shore] < 0)


@pytest.mark.parametrize("metric", ["manhattan", "euclidean"])
def test_distance_wraps_east_west(metric):
    mask = np.ones((3, 6), dtype=bool)
    mask[:, 0] = False  # a land column at the western edge
    np.testing.assert_array_equal(signed_distance(mask, metric)[1], [0, 1, 2, 3, 2, 1])
    np.testing.assert_array_equal(
        signed_distance(mask, metric, periodic_x=False)[1], [0, 1, 2, 3, 4, 5]
    )


def test_all_ocean_mask_gets_the_largest_distance_and_a_zero_standardized_map():
    mask = np.ones((4, 5), dtype=bool)
    np.testing.assert_array_equal(signed_distance(mask), np.full((4, 5), 9.0))
    np.testing.assert_array_equal(standardized_distance(mask, "euclidean"), np.zeros((4, 5)))


def test_standardized_distance_has_zero_mean_and_unit_std():
    distance = standardized_distance(STEP, "manhattan")
    assert distance.mean() == pytest.approx(0, abs=1e-12)
    assert distance.std() == pytest.approx(1)


def test_unknown_distance_metric_is_refused():
    with pytest.raises(ValueError, match="unknown distance metric 'chebyshev'"):
        signed_distance(STEP, "chebyshev")


# --- data sets on disk -------------------------------------------------------------------

SPEC = tiny_spec(test=1)


def sample_files(root: Path) -> dict[Path, int]:
    """Every X/Y file under ``root`` with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in sorted(root.glob("*/[XY]/*.npz"))}


def tree(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tiny_dataset: TinyDataset) -> Path:
    """SPEC's data set, shared with other modules: tests change copies only."""
    return tiny_dataset(test=1)


@pytest.fixture
def dataset_copy(generated, tmp_path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(generated, root)
    return root


def test_generated_dataset_holds_every_split_with_exact_coefficients(generated):
    assert {s: len(list_ids(generated, s)) for s in ("train", "valid", "test")} == SPEC.splits
    grid = make_grid("python", 16, 24)
    fields, gamma = read_sample(generated, "valid", "00000")
    expected_fields, expected_gamma = generate_sample(grid, SPEC, SPLIT_INDEX_BASE["valid"])
    np.testing.assert_array_equal(fields, expected_fields)
    np.testing.assert_array_equal(gamma, expected_gamma)
    np.testing.assert_array_equal(load_split(generated, "train").ocean[0], grid.mask)
    metadata = read_json(generated / METADATA)
    assert metadata["shape"] == [16, 24] and metadata["splits"] == SPEC.splits


def test_rerunning_generation_skips_existing_samples(dataset_copy):
    before = sample_files(dataset_copy)
    generate_dataset(dataset_copy, SPEC, progress=False)
    assert sample_files(dataset_copy) == before


def test_generation_resumes_after_a_sample_file_is_deleted(dataset_copy):
    before = sample_files(dataset_copy)
    _, lost = sample_paths(dataset_copy, "train", "00001")
    expected = read_sample(dataset_copy, "train", "00001")
    lost.unlink()

    generate_dataset(dataset_copy, SPEC, progress=False)

    after = sample_files(dataset_copy)
    assert lost in after
    assert {p: t for p, t in after.items() if not p.name.startswith("00001")} == {
        p: t for p, t in before.items() if not p.name.startswith("00001")
    }
    for got, want in zip(read_sample(dataset_copy, "train", "00001"), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_growing_a_split_keeps_existing_samples(dataset_copy):
    before = sample_files(dataset_copy)
    bigger = GenerationSpec(grid="python", height=16, width=24, splits={"train": 4, "valid": 1})
    generate_dataset(dataset_copy, bigger, progress=False)
    after = sample_files(dataset_copy)
    assert {p: after[p] for p in before} == before
    assert len(list_ids(dataset_copy, "train")) == 4


def test_parallel_generation_writes_the_same_samples(generated, tmp_path):
    root = tmp_path / "parallel"
    generate_dataset(root, SPEC, progress=False, workers=2)
    for split, count in SPEC.splits.items():
        for index in range(count):
            sample_id = f"{index:05d}"
            for got, want in zip(
                read_sample(root, split, sample_id),
                read_sample(generated, split, sample_id),
                strict=True,
            ):
                np.testing.assert_array_equal(got, want)


def test_generation_refuses_a_non_empty_foreign_directory(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="not a normcoef data set.*nothing was written"):
        generate_dataset(tmp_path, SPEC, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_generation_refuses_a_directory_made_with_other_parameters(dataset_copy):
    before = tree(dataset_copy)
    other = GenerationSpec(grid="python", height=16, width=24, seed=1, splits=SPEC.splits)
    with pytest.raises(DatasetError, match="other parameters.*Nothing was overwritten"):
        generate_dataset(dataset_copy, other, progress=False)
    assert tree(dataset_copy) == before


def test_summary_mentions_grid_and_every_split(generated):
    text = summary(generated)
    assert "grid python 16x24" in text
    for split, count in SPEC.splits.items():
        assert f"{split:5s}: {count:4d} samples" in text


def write_foreign(root: Path, sample_id: str, inputs: np.ndarray, gamma: np.ndarray) -> None:
    """Save the way the report's code does: np.savez with a positional array (arr_0)."""
    x_path, y_path = sample_paths(root, "train", sample_id)
    x_path.parent.mkdir(parents=True, exist_ok=True)
    y_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(x_path, inputs)
    np.savez(y_path, gamma)


def foreign_sample(shape: tuple[int, int] = (4, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0.5, 2.0, (3, *shape))
    gamma = rng.uniform(1.0, 2.0, shape)
    gamma[0] = 0.0  # land row
    return inputs, gamma


def test_foreign_npz_files_load_and_land_is_where_gamma_is_zero(tmp_path):
    inputs, gamma = foreign_sample()
    write_foreign(tmp_path, "a", inputs, gamma)
    split = load_split(tmp_path, "train")
    assert split.ids == ["a"]
    np.testing.assert_array_equal(split.fields[0], inputs)
    np.testing.assert_array_equal(split.gamma[0], gamma)
    np.testing.assert_array_equal(split.ocean[0], gamma != 0)


def test_foreign_inputs_with_a_halo_are_centre_cropped_to_gamma(tmp_path):
    inputs, gamma = foreign_sample()
    padded = np.pad(inputs, ((0, 0), (1, 1), (2, 2)), constant_values=-99.0)
    write_foreign(tmp_path, "a", padded, gamma)
    fields, _ = read_sample(tmp_path, "train", "a")
    np.testing.assert_array_equal(fields, inputs)


def test_loading_a_missing_directory_says_how_to_generate_it(tmp_path):
    with pytest.raises(DatasetError, match="does not exist; generate it with"):
        load_split(tmp_path / "nowhere", "train")


def test_reading_a_sample_without_its_target_names_the_missing_file(tmp_path):
    inputs, gamma = foreign_sample()
    write_foreign(tmp_path, "a", inputs, gamma)
    sample_paths(tmp_path, "train", "a")[1].unlink()
    with pytest.raises(DatasetError, match="missing file .*a_norm_coeffs.npz"):
        read_sample(tmp_path, "train", "a")


def test_loading_a_split_with_an_input_lacking_its_target_names_the_missing_file(tmp_path):
    inputs, gamma = foreign_sample()
    write_foreign(tmp_path, "a", inputs, gamma)
    write_foreign(tmp_path, "b", inputs, gamma)
    sample_paths(tmp_path, "train", "b")[1].unlink()
    with pytest.raises(DatasetError, match="1 input file.*b_norm_coeffs.npz is missing"):
        load_split(tmp_path, "train")


def corrupt(change: str) -> tuple[np.ndarray, np.ndarray]:
    inputs, gamma = foreign_sample()
    if change == "two channels":
        inputs = inputs[:2]
    elif change == "3-D gamma":
        gamma = gamma[None]
    elif change == "inputs smaller":
        inputs = inputs[:, :, :-1]
    elif change == "NaN inputs":
        inputs[1, 2, 3] = np.nan
    elif change == "all-zero gamma":
        gamma = np.zeros_like(gamma)
    elif change == "negative gamma":
        gamma[2, 2] = -1.0
    return inputs, gamma


@pytest.mark.parametrize(
    ("change", "culprit", "message"),
    [
        (
            "two channels",
            "X/a.npz",
            r"must be \(3, H, W\) with channels A_i, A_j, W; got \(2, 4, 5\)",
        ),
        ("3-D gamma", "Y/a_norm_coeffs.npz", r"γ must be 2-D \(H, W\); got shape \(1, 4, 5\)"),
        ("inputs smaller", "X/a.npz", r"inputs \(4, 4\) are smaller than γ \(4, 5\)"),
        ("NaN inputs", "X/a.npz", "inputs contain NaN or infinite values"),
        ("all-zero gamma", "Y/a_norm_coeffs.npz", "γ is 0 everywhere, so there is no ocean cell"),
        ("negative gamma", "Y/a_norm_coeffs.npz", r"γ must be >= 0"),
    ],
)
def test_malformed_samples_raise_a_dataset_error_naming_the_file(
    tmp_path, change, culprit, message
):
    write_foreign(tmp_path, "a", *corrupt(change))
    with pytest.raises(DatasetError, match=message) as error:
        load_split(tmp_path, "train")
    assert str(error.value).startswith(f"{tmp_path}/train/{culprit}: ")


def test_samples_of_different_shapes_in_one_split_are_refused(tmp_path):
    write_foreign(tmp_path, "a", *foreign_sample((4, 5)))
    write_foreign(tmp_path, "b", *foreign_sample((4, 6)))
    with pytest.raises(DatasetError, match="different grid shapes"):
        load_split(tmp_path, "train")


# --- the Hydra entry point ---------------------------------------------------------------


def generate_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m normcoef.generate`` from ``cwd`` (Hydra writes outputs/ there)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "normcoef.generate", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_entry_point_writes_a_data_set_and_prints_its_summary(tmp_path):
    root = tmp_path / "data"
    result = generate_cli(
        "dataset=python",
        "dataset.height=16",
        "dataset.width=24",
        "dataset.splits.train=2",
        "dataset.splits.valid=1",
        "dataset.splits.test=1",
        f"dataset.root={root}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"data set {root}" in result.stdout
    assert "grid python 16x24" in result.stdout
    assert "train:    2 samples" in result.stdout and "test :    1 samples" in result.stdout
    assert len(list_ids(root, "train")) == 2


def test_generate_entry_point_rejects_a_misspelt_key(tmp_path):
    result = generate_cli("dataset=python", "dataset.heigth=3", cwd=tmp_path)
    assert result.returncode != 0
    assert "heigth" in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.reliability(
    "train",
    "training inputs with 5 channels (or 4: the original's distance map)",
    "error",
    "names the file and the shape; says to convert",
)
@pytest.mark.parametrize("channels", [4, 5])
def test_inputs_with_other_than_three_channels_are_refused_not_cut(
    tiny_dataset: TinyDataset, tmp_path: Path, channels: int
):
    from normcoef.data.storage import DatasetError, load_split

    root = tiny_dataset(test=2, into=tmp_path / "data")
    x_path = root / "train" / "X" / "00001.npz"
    with np.load(x_path) as stored:
        fields = stored["arr_0"]
    extra = np.ones((channels - 3, *fields.shape[1:]))
    np.savez(x_path, arr_0=np.concatenate([fields, extra]))

    with pytest.raises(DatasetError) as error:
        load_split(root, "train")
    message = str(error.value)
    assert message.startswith(f"{x_path}: inputs must be (3, H, W) with channels A_i, A_j, W")
    assert f"got ({channels}, 16, 24)" in message and "normcoef.convert" in message


def test_with_walls_a_closed_edge_is_coast_in_the_distance_channel():
    ocean = np.ones((5, 4), bool)
    ocean[2, 1] = False  # one island cell

    plain = signed_distance(ocean, "manhattan", periodic_x=True)
    walls = signed_distance(ocean, "manhattan", periodic_x=True, walls=True)

    # The island's 4 ocean neighbours are at 1 either way; row 0 is 3 cells from the island
    # (2 rows, 1 column) but 1 from the closed southern edge, row 4 likewise from the north.
    assert plain[0, 0] == 3 and walls[0, 0] == 1 and walls[4, 0] == 1
    assert walls[2, 1] == plain[2, 1] == 0 and walls[1, 1] == 1
    np.testing.assert_array_equal(np.minimum(plain, walls), walls)
    # A doubly periodic grid has no closed edge: walls change nothing.
    np.testing.assert_array_equal(
        signed_distance(ocean, "manhattan", True, walls=True, periodic_y=True), plain
    )


def test_a_checkpoint_records_the_walls_flag_and_older_ones_read_without_it():
    split = tiny_split()
    info = DatasetInfo(steps=10)
    walls = Standardizer.fit(split, "partial", "manhattan", info, distance_walls=True)
    plain = Standardizer.fit(split, "partial", "manhattan", info)

    assert Standardizer.from_dict(walls.to_dict(), info).distance_walls
    assert "distance_walls" not in plain.to_dict()
    assert not Standardizer.from_dict(plain.to_dict(), info).distance_walls
    inputs = walls.model_inputs(split.fields[0], split.ocean[0])
    assert not np.array_equal(inputs[3], plain.model_inputs(split.fields[0], split.ocean[0])[3])
