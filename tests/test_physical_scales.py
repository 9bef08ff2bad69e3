"""Length scales in physical units (``dataset.fields.units=reference``): one seed gives one
ocean on grids of every resolution; the cell-unit draw stays the default, data sets made
before the option still match it, and the generator refuses to mix the two in one data set.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import tiny_spec

from normcoef.data.fields import FieldParameters, length_scales, make_fields, resample
from normcoef.data.generation import generate_dataset
from normcoef.data.grids import make_grid
from normcoef.data.storage import DatasetError

REFERENCE = FieldParameters(units="reference", reference_width=64)


def block_mean(field: np.ndarray, factor: int) -> np.ndarray:
    height, width = field.shape
    return field.reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))


def test_one_seed_gives_one_physical_ocean_at_two_resolutions():
    coarse, fine = make_grid("python", 32, 64), make_grid("python", 64, 128)
    s_coarse, _ = length_scales(coarse, REFERENCE, seed=3, index=5)
    s_fine, _ = length_scales(fine, REFERENCE, seed=3, index=5)
    # Physical width D = s * cell width: the fine grid's cells are half as wide, so it counts
    # twice as many of them across the same ocean; averaged over its 2x2 blocks it is the
    # coarse grid's field, up to the linear interpolation of a smooth field.
    physical_coarse = s_coarse * coarse.cell_widths()[0]
    physical_fine = block_mean(s_fine * fine.cell_widths()[0], 2)
    assert np.abs(physical_fine / physical_coarse - 1).max() < 0.03
    # In the grid's own cells (the default), the same seed draws another ocean.
    cells_coarse, _ = length_scales(coarse, FieldParameters(), seed=3, index=5)
    cells_fine, _ = length_scales(fine, FieldParameters(), seed=3, index=5)
    own = block_mean(cells_fine * fine.cell_widths()[0], 2) / (
        cells_coarse * coarse.cell_widths()[0]
    )
    assert np.abs(own - 1).max() > 0.3


def test_the_reference_grid_itself_draws_what_the_cell_units_draw():
    grid = make_grid("python", 32, 64)
    same = length_scales(grid, REFERENCE, seed=1, index=2)
    cells = length_scales(grid, FieldParameters(), seed=1, index=2)
    np.testing.assert_array_equal(same[0], cells[0])
    np.testing.assert_array_equal(same[1], cells[1])


def test_resampling_is_exact_for_a_linear_field_and_periodic_in_x():
    rows, columns = np.meshgrid(np.arange(8.0), np.zeros(16), indexing="ij")
    fine = resample(rows + columns, (16, 32))
    expected_rows = (np.arange(16) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(fine[1:-1, 0], expected_rows[1:-1])
    wave = np.tile(np.cos(2 * np.pi * np.arange(16) / 16), (4, 1))
    wrapped = resample(wave, (4, 32))
    # The first fine column lies between the last and the first coarse column (the seam).
    np.testing.assert_allclose(wrapped[0, 0], 0.75 * wave[0, 0] + 0.25 * wave[0, -1])


def test_cell_units_keep_the_metadata_of_data_sets_made_before_the_option():
    described = tiny_spec().describe()["fields"]
    assert "units" not in described and "reference_width" not in described
    reference = dataclasses.replace(tiny_spec(), fields=REFERENCE).describe()["fields"]
    assert reference["units"] == "reference" and reference["reference_width"] == 64


def test_fields_in_physical_units_are_valid_operator_inputs():
    grid = make_grid("python", 64, 128)
    fields = make_fields(grid, REFERENCE, seed=0, index=0)
    ocean = grid.mask
    assert np.isfinite(fields).all() and (fields[:2] >= 0).all() and (fields[2][ocean] > 0).all()


@pytest.mark.reliability(
    "generate",
    "dataset.fields.units=reference into a data set drawn in cell units (or the reverse)",
    "error",
    "one line naming the data set's parameters; nothing overwritten",
)
def test_the_generator_refuses_to_mix_units_in_one_data_set(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, tiny_spec(test=0), progress=False)
    before = json.loads((root / "metadata.json").read_text())
    mixed = dataclasses.replace(tiny_spec(test=0), fields=REFERENCE)
    with pytest.raises(DatasetError, match="made with other parameters"):
        generate_dataset(root, mixed, progress=False)
    assert json.loads((root / "metadata.json").read_text()) == before


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"units": "km"}, "units=km: choose one of cells, reference"),
        ({"reference_width": 2}, "reference_width=2: must be >= 4"),
    ],
)
def test_a_bad_unit_is_refused_naming_it(values: dict, message: str):
    with pytest.raises(ValueError, match=message):
        FieldParameters(**values)
