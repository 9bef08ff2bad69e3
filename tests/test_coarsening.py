"""Specification of normcoef/data/coarsening.py: the same ocean on a grid k times coarser."""

from __future__ import annotations

import numpy as np
import pytest

from normcoef.data.coarsening import coarsen_fields, coarsen_mask, refine, refine_fields
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import global_grid
from normcoef.physics.diffusion import open_faces

PERIODIC = (True, False)


def uniform_fields(ocean: np.ndarray, kappa: float, cell: float) -> np.ndarray:
    """A uniform diffusivity on square cells of side ``cell``: a = κ on every open face."""
    north, east = open_faces(ocean, *PERIODIC)
    return np.stack(
        [np.where(north, kappa, 0.0), np.where(east, kappa, 0.0), np.full(ocean.shape, cell**2)]
    )


def test_a_coarse_cell_is_ocean_when_at_least_half_of_its_cells_are():
    ocean = np.zeros((4, 4), bool)
    ocean[0, 0] = True  # 1 of 4: land
    ocean[0, 2:] = True  # 2 of 4: ocean
    ocean[2:, :2] = True  # 4 of 4: ocean
    np.testing.assert_array_equal(coarsen_mask(ocean, 2), [[False, True], [True, False]])


def test_a_grid_whose_sides_do_not_divide_by_the_factor_is_refused():
    with pytest.raises(ValueError, match="5x8 grid does not coarsen by 2"):
        coarsen_mask(np.ones((5, 8), bool), 2)


def test_uniform_diffusivity_coarsens_to_itself_on_cells_k_times_wider():
    ocean = global_grid(40, 48).mask
    fine = uniform_fields(ocean, 3.0, 1.0)
    fields, coarse = coarsen_fields(fine, ocean, 2, PERIODIC)

    np.testing.assert_allclose(fields, uniform_fields(coarse, 3.0, 2.0))


def test_one_ocean_at_two_resolutions_coarsens_to_within_a_few_percent_of_the_coarse_one():
    """units=reference draws the same physical ocean at 80x96 and 40x48: the finer one
    coarsened matches the coarser one's coefficients and areas on the faces both open."""
    params = FieldParameters(units="reference", reference_width=48)
    fine_grid, coarse_grid = global_grid(80, 96), global_grid(40, 48)
    fields, coarse = coarsen_fields(
        make_fields(fine_grid, params, 0, 3), fine_grid.mask, 2, PERIODIC
    )
    direct = make_fields(coarse_grid, params, 0, 3)
    both = coarse & coarse_grid.mask
    np.testing.assert_allclose(fields[2][both], direct[2][both], rtol=0.03)  # Mercator rows
    for axis in (0, 1):
        shared = (fields[axis] > 0) & (direct[axis] > 0)
        ratio = fields[axis][shared] / direct[axis][shared]
        assert np.percentile(np.abs(ratio - 1), 95) < 0.01  # mean of the fine faces on it


def test_a_coarse_field_refines_exactly_where_it_is_linear_and_constant_everywhere():
    ocean = np.ones((16, 24), bool)
    coarse = coarsen_mask(ocean, 2)
    rows = np.arange(8)[:, None] * np.ones((1, 12))
    fine = refine(2.0 * rows + 1.0, coarse, ocean, 2, PERIODIC[0])
    fine_rows = (np.arange(16)[:, None] + 0.5) / 2 - 0.5
    inner = slice(1, 15)
    np.testing.assert_allclose(fine[inner], (2.0 * fine_rows + 1.0)[inner] * np.ones((1, 24)))
    np.testing.assert_allclose(refine(np.full((8, 12), 5.0), coarse, ocean, 2, True), 5.0)


def test_land_coarse_cells_do_not_pull_their_values_into_the_ocean():
    ocean = np.ones((8, 8), bool)
    ocean[:, 4:] = False
    coarse = coarsen_mask(ocean, 2)
    values = np.where(coarse, 1.0, 1000.0)
    fine = refine(values, coarse, ocean, 2, False)
    np.testing.assert_allclose(fine[ocean], 1.0)
    assert (fine[~ocean] == 0).all()


def test_refined_fields_keep_each_cell_kind_and_coarsen_back_to_themselves_when_uniform():
    ocean = global_grid(20, 24).mask
    fields = uniform_fields(ocean, 3.0, 2.0)
    fine_fields, fine = refine_fields(fields, ocean, 2, PERIODIC)

    np.testing.assert_array_equal(fine, np.repeat(np.repeat(ocean, 2, axis=0), 2, axis=1))
    np.testing.assert_allclose(fine_fields, uniform_fields(fine, 3.0, 1.0))
    back, coarse = coarsen_fields(fine_fields, fine, 2, PERIODIC)
    np.testing.assert_array_equal(coarse, ocean)
    np.testing.assert_allclose(back, fields)


def test_one_ocean_refined_matches_the_finer_one_away_from_the_coast():
    """The 40x48 draw refined 2x against the 80x96 draw of the same physical ocean
    (units=reference): the coefficients agree within the interpolation of smooth fields."""
    params = FieldParameters(units="reference", reference_width=48)
    coarse_grid, fine_grid = global_grid(40, 48), global_grid(80, 96)
    fields, fine = refine_fields(
        make_fields(coarse_grid, params, 0, 3), coarse_grid.mask, 2, PERIODIC
    )
    direct = make_fields(fine_grid, params, 0, 3)
    for axis in (0, 1):
        shared = (fields[axis] > 0) & (direct[axis] > 0)
        ratio = fields[axis][shared] / direct[axis][shared]
        assert np.median(np.abs(ratio - 1)) < 0.01
