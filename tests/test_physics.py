"""Diffusion operator and normalization coefficients Γ (Weaver et al. 2021, section 2).

References used here: the closed form on a uniform doubly periodic grid (circulant operators),
the plain definition Γ = diag(V)^{-1/2} (brute force, one column per cell), dense linear
algebra on tiny grids, and invariances (flips, scaling, closed faces).
"""

from __future__ import annotations

import numpy as np
import pytest

from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import python_grid
from normcoef.physics.diffusion import (
    DiffusionOperator,
    FieldError,
    check_fields,
    diffusivity_from_length_scale,
    open_faces,
)
from normcoef.physics.normalization import (
    brute_force_normalization,
    exact_normalization,
    probing_lattice,
    randomized_normalization,
    uniform_periodic_normalization,
)

EXACT_RTOL = 1e-6  # probing truncates the variance at ~1e-8 (DEFAULT_TOLERANCE); Γ is its -1/2


def basin_mask(height: int = 30, width: int = 36) -> np.ndarray:
    """Continents south and north, a peninsula, a bay, a round island and a one-cell island."""
    y, x = np.mgrid[:height, :width] / np.array([height, width])[:, None, None]
    mask = np.ones((height, width), dtype=bool)
    mask[:2] = mask[-2:] = False
    mask[(y < 0.4) & (0.22 <= x) & (x < 0.3)] = False
    mask[(y >= 0.8) & (0.42 <= x) & (x < 0.6)] = False
    mask[
        ((y - 0.57) * height) ** 2 + ((x - 0.7) * width) ** 2 <= (min(height, width) / 10) ** 2
    ] = False
    mask[int(0.3 * height), int(0.86 * width)] = False
    return mask


def smooth_fields(mask: np.ndarray, ratio: float = 0.25) -> np.ndarray:
    """(3, H, W) fields varying smoothly and asymmetrically; A/W in [0.4, 1.6] x ``ratio``.

    Closed faces keep their (non-zero) values: the operator must ignore them.
    """
    height, width = mask.shape
    y, x = np.mgrid[:height, :width]
    lam = 2 * np.pi * x / width
    area = 1 + 0.4 * np.sin(lam + 0.3) * np.cos(np.pi * y / height)
    r_x = ratio * (1 + 0.6 * np.cos(2 * lam + 0.5 * np.pi * y / height))
    r_y = ratio * (1 + 0.4 * np.sin(lam + np.pi * y / height))
    return np.stack([r_y * area, r_x * area, area])


def uniform_fields(a_i: float, a_j: float, w: float, shape: tuple[int, int]) -> np.ndarray:
    return np.stack([np.full(shape, a_i), np.full(shape, a_j), np.full(shape, w)])


def dense(op: DiffusionOperator, apply) -> np.ndarray:
    return apply(np.eye(op.n_ocean))


def hflip(fields: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror west-east; east faces move one column (the face east of j is west of j + 1)."""
    a_i, a_j, w = fields
    flipped = np.stack([np.fliplr(a_i), np.roll(np.fliplr(a_j), -1, axis=1), np.fliplr(w)])
    return flipped, np.fliplr(mask)


def vflip(fields: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror south-north; north faces move one row."""
    a_i, a_j, w = fields
    flipped = np.stack([np.roll(np.flipud(a_i), -1, axis=0), np.flipud(a_j), np.flipud(w)])
    return flipped, np.flipud(mask)


# --- exact references --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_i", "a_j", "w", "shape", "steps"),
    [
        pytest.param(0.5, 0.5, 1.0, (8, 10), 4, id="isotropic"),
        pytest.param(0.3, 1.2, 2.0, (12, 16), 10, id="anisotropic-x"),
        pytest.param(0.4, 0.1, 1.5, (30, 36), 6, id="anisotropic-y-probing"),
    ],
)
def test_exact_gamma_on_uniform_doubly_periodic_grid_equals_closed_form(a_i, a_j, w, shape, steps):
    op = DiffusionOperator(
        uniform_fields(a_i, a_j, w, shape), np.ones(shape, bool), steps, True, True
    )
    expected = uniform_periodic_normalization(a_i, a_j, w, shape, steps)

    np.testing.assert_allclose(exact_normalization(op), expected, rtol=1e-8)
    np.testing.assert_allclose(brute_force_normalization(op), expected, rtol=1e-8)


def test_closed_form_distinguishes_the_two_axes():
    """Not symmetric in (a_i, a_j) on a non-square grid: the anisotropic cases above would
    catch an operator that puts A_i on east faces."""
    forward = uniform_periodic_normalization(0.3, 1.2, 2.0, (12, 16), 10)
    swapped = uniform_periodic_normalization(1.2, 0.3, 2.0, (12, 16), 10)
    assert abs(forward / swapped - 1) > 1e-3


def test_probing_is_used_on_the_largest_uniform_case():
    op = DiffusionOperator(
        uniform_fields(0.4, 0.1, 1.5, (30, 36)), np.ones((30, 36), bool), 6, True, True
    )
    sy, sx = probing_lattice(op)
    assert sy * sx < op.n_ocean
    assert 30 % sy == 0 and 36 % sx == 0, "periodic axes need a lattice that divides them"


def test_without_diffusion_gamma_is_the_square_root_of_the_area():
    """A = 0: L = I, V = W^{-1}, so Γ = sqrt(W)."""
    mask = basin_mask(10, 12)
    fields = smooth_fields(mask)
    fields[:2] = 0.0
    gamma = exact_normalization(DiffusionOperator(fields, mask, steps=4))
    np.testing.assert_allclose(gamma[mask], np.sqrt(fields[2][mask]), rtol=1e-12)


def test_normalized_operator_has_unit_diagonal_and_correlations_at_most_one():
    mask = basin_mask(10, 12)
    op = DiffusionOperator(smooth_fields(mask, ratio=1.0), mask, steps=6)
    gamma = brute_force_normalization(op)[mask]
    correlation = gamma[:, None] * dense(op, op.apply_covariance) * gamma[None, :]

    np.testing.assert_allclose(np.diag(correlation), 1.0, rtol=1e-12)
    assert np.abs(correlation).max() <= 1 + 1e-12


@pytest.mark.parametrize("periodic_x", [True, False], ids=["periodic-x", "closed-x"])
def test_exact_normalization_equals_brute_force_on_masked_grid(periodic_x):
    mask = basin_mask()
    op = DiffusionOperator(smooth_fields(mask, ratio=0.1), mask, steps=6, periodic_x=periodic_x)
    sy, sx = probing_lattice(op)
    # About 4 cells per colour: probing, not its brute-force fallback, is what is tested.
    assert sy * sx < op.n_ocean / 3

    exact, reference = exact_normalization(op), brute_force_normalization(op)

    np.testing.assert_allclose(exact[mask], reference[mask], rtol=EXACT_RTOL)


def test_exact_normalization_equals_brute_force_on_generated_python_fields():
    grid = python_grid(24, 36)
    params = FieldParameters(min_cells=1.0, max_cells=2.0)
    op = DiffusionOperator(make_fields(grid, params, seed=3, index=1), grid.mask, params.steps)
    sy, sx = probing_lattice(op)
    assert sy * sx < op.n_ocean, "the test must exercise probing, not its brute-force fallback"

    exact, reference = exact_normalization(op), brute_force_normalization(op)

    np.testing.assert_allclose(exact[grid.mask], reference[grid.mask], rtol=EXACT_RTOL)


# --- randomization -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def basin_operator() -> DiffusionOperator:
    mask = basin_mask()
    return DiffusionOperator(smooth_fields(mask), mask, steps=4)


def variance_error(op: DiffusionOperator, n_samples: int, seed: int = 0) -> float:
    """rms over ocean cells of sigma_hat^2 / sigma^2 - 1 (= (Γ / Γ_hat)^2 - 1)."""
    gamma = brute_force_normalization(op)[op.mask]
    gamma_hat = randomized_normalization(op, n_samples, seed=seed)[op.mask]
    return float(np.sqrt(np.mean(((gamma / gamma_hat) ** 2 - 1) ** 2)))


def test_randomized_variance_error_shrinks_like_sqrt_two_over_n(basin_operator):
    sizes = (100, 400, 1600)
    errors = [variance_error(basin_operator, n) for n in sizes]

    for n, error in zip(sizes, errors, strict=True):
        assert np.sqrt(2 / n) / 1.25 < error < 1.25 * np.sqrt(2 / n), (n, error)
    assert errors[0] > errors[1] > errors[2]


def test_randomized_normalization_is_reproducible_from_its_seed(basin_operator):
    first = randomized_normalization(basin_operator, 64, seed=7)
    again = randomized_normalization(basin_operator, 64, seed=7)
    other = randomized_normalization(basin_operator, 64, seed=8)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.all(first[~basin_operator.mask] == 0)


def test_randomized_normalization_needs_at_least_one_sample(basin_operator):
    with pytest.raises(FieldError, match="n_samples must be >= 1"):
        randomized_normalization(basin_operator, 0)


# --- physics sanity ----------------------------------------------------------------------


def test_diffusion_operator_is_symmetric_positive_definite():
    mask = basin_mask(10, 12)
    op = DiffusionOperator(smooth_fields(mask, ratio=1.0), mask, steps=4)
    tangent = op.tangent.toarray()
    laplacian = op.laplacian().toarray()

    np.testing.assert_array_equal(tangent, tangent.T)
    assert np.linalg.eigvalsh(tangent).min() > 0
    assert np.linalg.eigvalsh(laplacian).min() > -1e-12
    # No flux leaves the domain: K conserves the mean, so constants are in its null space.
    np.testing.assert_allclose(laplacian @ np.ones(op.n_ocean), 0.0, atol=1e-12)


def test_covariance_is_symmetric():
    mask = basin_mask(10, 12)
    op = DiffusionOperator(smooth_fields(mask, ratio=1.0), mask, steps=6)
    covariance = dense(op, op.apply_covariance)
    np.testing.assert_allclose(covariance, covariance.T, rtol=1e-12, atol=1e-15)


def test_land_cells_get_zero_gamma_and_ocean_cells_positive_gamma(basin_operator):
    gamma = exact_normalization(basin_operator)
    assert np.all(gamma[~basin_operator.mask] == 0)
    assert np.all(gamma[basin_operator.mask] > 0)


@pytest.mark.parametrize("flip", [hflip, vflip], ids=["hflip", "vflip"])
def test_flipped_input_gives_flipped_exact_gamma(flip):
    mask = basin_mask(16, 18)
    fields = smooth_fields(mask, ratio=0.6)
    gamma = exact_normalization(DiffusionOperator(fields, mask, steps=4))
    flipped_fields, flipped_mask = flip(fields, mask)
    flipped_gamma = exact_normalization(DiffusionOperator(flipped_fields, flipped_mask, steps=4))

    expected = np.fliplr(gamma) if flip is hflip else np.flipud(gamma)
    assert not np.allclose(expected, gamma), "a symmetric input would make the test vacuous"
    np.testing.assert_allclose(flipped_gamma, expected, rtol=1e-10)


def test_scaling_areas_and_diffusivities_scales_gamma_by_its_square_root():
    """T -> cT leaves T^{-1}W unchanged and V -> V / c, so Γ -> sqrt(c) Γ."""
    mask = basin_mask(10, 12)
    fields = smooth_fields(mask)
    gamma = exact_normalization(DiffusionOperator(fields, mask, steps=4))
    scaled = exact_normalization(DiffusionOperator(9.0 * fields, mask, steps=4))
    np.testing.assert_allclose(scaled, 3.0 * gamma, rtol=1e-12)


def test_face_touching_land_carries_no_flux():
    mask = basin_mask(10, 12)
    fields = smooth_fields(mask)
    north, east = open_faces(mask)
    closed_north = mask & ~north  # ocean cells whose north face touches land
    closed_east = mask & ~east
    assert closed_north.any() and closed_east.any()
    changed = fields.copy()
    changed[0][closed_north] = 100.0
    changed[1][closed_east] = 100.0

    op, changed_op = (DiffusionOperator(f, mask, steps=4) for f in (fields, changed))

    assert (op.laplacian() != changed_op.laplacian()).nnz == 0
    np.testing.assert_array_equal(exact_normalization(op), exact_normalization(changed_op))


@pytest.mark.parametrize("periodic_y", [False, True])
def test_top_row_north_face_carries_flux_only_on_a_periodic_axis(periodic_y):
    shape = (6, 8)
    mask = np.ones(shape, dtype=bool)
    fields = uniform_fields(0.5, 0.5, 1.0, shape)
    changed = fields.copy()
    changed[0][-1, :] = 3.0

    gamma, changed_gamma = (
        exact_normalization(DiffusionOperator(f, mask, 4, periodic_y=periodic_y))
        for f in (fields, changed)
    )

    if periodic_y:
        assert np.abs(changed_gamma / gamma - 1).max() > 1e-3
    else:
        np.testing.assert_array_equal(changed_gamma, gamma)


@pytest.mark.parametrize("land_value", [np.nan, 0.0], ids=["nan", "zero"])
def test_values_on_land_cells_are_ignored(land_value):
    """Masked model output often holds W = 0 or NaN on land; Γ must not depend on it."""
    mask = basin_mask()
    fields = smooth_fields(mask, ratio=0.1)
    masked = fields.copy()
    masked[:, ~mask] = land_value
    op, masked_op = (DiffusionOperator(f, mask, steps=6) for f in (fields, masked))

    sy, sx = probing_lattice(op)
    assert sy * sx < op.n_ocean
    assert probing_lattice(masked_op) == (sy, sx)
    np.testing.assert_array_equal(exact_normalization(masked_op), exact_normalization(op))


# --- bad input ---------------------------------------------------------------------------


def bad_input(change: str) -> tuple[np.ndarray, np.ndarray, int]:
    mask = basin_mask(6, 8)
    fields = smooth_fields(mask)
    steps = 4
    ocean = np.argwhere(mask)[0]
    if change == "mask shape":
        mask = mask[:, :-1]
    elif change == "channels":
        fields = np.concatenate([fields, fields[:1]])
    elif change == "2-D fields":
        fields = fields[0]
    elif change == "NaN":
        fields[2][tuple(ocean)] = np.nan
    elif change == "negative A":
        fields[1][tuple(ocean)] = -0.1
    elif change == "zero W":
        fields[2][tuple(ocean)] = 0.0
    elif change == "no ocean":
        mask = np.zeros_like(mask)
    elif change == "mask values":
        mask = mask.astype(int) * 2
    elif change == "odd steps":
        steps = 5
    elif change == "zero steps":
        steps = 0
    return fields, mask, steps


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("mask shape", r"mask shape \(6, 7\) does not match the fields' grid \(6, 8\)"),
        ("channels", r"shape \(3, H, W\) with channels A_i, A_j, W; got \(4, 6, 8\)"),
        ("2-D fields", r"shape \(3, H, W\)"),
        ("NaN", "W has NaN or infinite values on ocean cells"),
        ("negative A", "diffusivities A_i/A_j must be non-negative"),
        ("zero W", "cell areas W must be positive"),
        ("no ocean", "mask has no ocean cell"),
        ("mask values", "mask must be boolean"),
        ("odd steps", "steps M must be even and >= 2; got 5"),
        ("zero steps", "steps M must be even and >= 2; got 0"),
    ],
)
def test_bad_input_raises_field_error_naming_the_problem(change, message):
    fields, mask, steps = bad_input(change)
    with pytest.raises(FieldError, match=message):
        DiffusionOperator(fields, mask, steps)


def test_check_fields_accepts_a_zero_one_mask_and_returns_float_fields_and_bool_mask():
    mask = basin_mask(6, 8)
    fields, checked = check_fields(smooth_fields(mask).astype(np.float32), mask.astype(np.uint8))
    assert fields.dtype == np.float64 and checked.dtype == bool
    np.testing.assert_array_equal(checked, mask)


def test_diffusivity_from_length_scale_follows_daley_relation():
    """kappa = D^2 / (2M - 4): D = 4 cells, M = 10 gives kappa = 1."""
    np.testing.assert_allclose(diffusivity_from_length_scale(np.array([4.0, 8.0]), 10), [1, 4])


@pytest.mark.parametrize("steps", [2, 1, 0])
def test_diffusivity_from_length_scale_needs_more_than_two_steps(steps):
    with pytest.raises(FieldError, match=f"steps must be > 2 .*got {steps}"):
        diffusivity_from_length_scale(1.0, steps)
