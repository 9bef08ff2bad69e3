"""Specification of the uniform-lattice prior for Γ (normcoef/physics/prior.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import dblquad

from normcoef.data.distance import signed_distance
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import python_grid
from normcoef.data.transforms import (
    TRANSFORMS,
    transform_cells,
    transform_fields,
    transformed_periodicity,
)
from normcoef.physics import DiffusionOperator, exact_normalization
from normcoef.physics.diffusion import open_faces
from normcoef.physics.normalization import uniform_periodic_normalization
from normcoef.physics.prior import (
    cell_face_coefficients,
    lattice_integral,
    tabulated_lattice_integral,
    uniform_lattice_prior,
)


@pytest.mark.parametrize(
    "a_i, a_j, w, steps", [(2.0, 3.0, 1.5, 10), (5.0, 0.5, 2.0, 4), (0.3, 0.3, 0.7, 6)]
)
def test_prior_equals_the_closed_form_on_a_uniform_doubly_periodic_grid(a_i, a_j, w, steps):
    # 96x128 cells: the kernel (a few cells wide) does not feel the periodic images, so the
    # discrete frequency mean equals the unbounded-lattice integral.
    shape = (96, 128)
    fields = np.stack([np.full(shape, a_i), np.full(shape, a_j), np.full(shape, w)])

    prior = uniform_lattice_prior(fields, np.ones(shape, bool), steps, True, True)

    expected = uniform_periodic_normalization(a_i, a_j, w, shape, steps)
    np.testing.assert_allclose(prior, expected, rtol=1e-6)


def test_a_cell_sees_the_mean_of_its_open_faces_on_each_axis():
    ocean = np.ones((3, 4), bool)
    ocean[0, 1] = False  # land south of cell (1, 1)
    fields = np.stack([np.arange(12.0).reshape(3, 4) + 1, 10 * np.arange(12.0).reshape(3, 4) + 10])
    fields = np.concatenate([fields, np.ones((1, 3, 4))])

    a_i, a_j = cell_face_coefficients(fields, ocean, periodic_x=True, periodic_y=False)

    # Cell (1, 2): north face A_i[1, 2] = 7, south face A_i[0, 2] = 3; east A_j[1, 2] = 70,
    # west A_j[1, 1] = 60.
    assert (a_i[1, 2], a_j[1, 2]) == (5.0, 65.0)
    # Cell (1, 1): its south face touches land, so only the north face A_i[1, 1] = 6 counts.
    assert a_i[1, 1] == 6.0
    # Cell (2, 0), top row of a closed-north grid: only its south face A_i[1, 0] = 5; its west
    # face wraps east-west to A_j[2, 3] = 120.
    assert (a_i[2, 0], a_j[2, 0]) == (5.0, (90.0 + 120.0) / 2)


@pytest.mark.parametrize("alpha, beta", [(0.0, 0.0), (1e-3, 5.0), (2.0, 3.0), (40.0, 0.1)])
def test_quadrature_agrees_with_scipy_dblquad(alpha, beta):
    steps = 10

    def integrand(theta_y, theta_x):
        symbol = 1 + 2 * beta * (1 - np.cos(theta_x)) + 2 * alpha * (1 - np.cos(theta_y))
        return symbol**-steps

    reference = dblquad(integrand, 0, np.pi, 0, np.pi, epsabs=0, epsrel=1e-12)[0] / np.pi**2
    assert lattice_integral(alpha, beta, steps) == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("steps", [4, 10])
def test_the_table_agrees_with_direct_quadrature(steps):
    rng = np.random.default_rng(0)
    alpha, beta = np.exp(rng.uniform(np.log(1e-5), np.log(1e5), (2, 300)))

    tabulated = tabulated_lattice_integral(alpha, beta, steps)

    np.testing.assert_allclose(tabulated, lattice_integral(alpha, beta, steps), rtol=5e-6)


def random_sample(periodic_x: bool, periodic_y: bool, shape=(10, 10)):
    """Coastline and islands; NaN fields on land and closed faces 0, as the generator's."""
    rng = np.random.default_rng(1)
    mask = rng.random(shape) > 0.2
    mask[0, : shape[1] // 2] = False
    north, east = open_faces(mask, periodic_x, periodic_y)
    area = np.where(mask, rng.uniform(0.5, 2.0, shape), np.nan)
    a_i = np.where(north, rng.uniform(0.2, 5.0, shape), 0.0)
    a_j = np.where(east, rng.uniform(0.2, 5.0, shape), 0.0)
    return np.stack([a_i, a_j, area]), mask


@pytest.mark.parametrize("periodic", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_the_prior_of_transformed_fields_is_the_transformed_prior(name, periodic):
    fields, mask = random_sample(*periodic)
    prior = uniform_lattice_prior(fields, mask, 10, *periodic)

    moved = transform_fields(name, fields, *periodic)
    moved_prior = uniform_lattice_prior(
        moved, transform_cells(name, mask), 10, *transformed_periodicity(name, *periodic)
    )

    # Exact up to the table's α <-> β asymmetry (rounding) under quarter turns.
    np.testing.assert_allclose(moved_prior, transform_cells(name, prior), rtol=1e-9)
    assert np.all(prior[~mask] == 0) and np.all(prior[mask] > 0)


@pytest.mark.slow
def test_the_prior_is_close_to_exact_gamma_away_from_the_coast():
    """Physics check on a generated 64x128 python-grid sample (M = 10): measured mean |ε| =
    0.010 (max 0.14) at >= 6 cells from the coast, and 0.093 (max 2.3) over all ocean."""
    grid = python_grid(64, 128)
    params = FieldParameters()
    fields = make_fields(grid, params, seed=0, index=1)
    op = DiffusionOperator(fields, grid.mask, params.steps, grid.periodic_x, grid.periodic_y)
    gamma = exact_normalization(op)

    prior = uniform_lattice_prior(fields, grid.mask, params.steps, grid.periodic_x)

    ocean = grid.mask
    eps = np.abs(prior[ocean] ** 2 / gamma[ocean] ** 2 - 1)
    far = (signed_distance(ocean, "manhattan", grid.periodic_x) >= 6)[ocean]
    assert eps[far].mean() < 0.02
    assert eps.mean() > 3 * eps[far].mean()  # the coast is what a network must correct
