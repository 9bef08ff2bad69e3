"""A closed-form prior for Γ: the uniform, unbounded lattice with each cell's own coefficients.

On a uniform, all-ocean grid the operators are circulant and diag(V) is the mean of V's symbol
(w/t)^M / w, t = w + 2 a_j (1 - cos θx) + 2 a_i (1 - cos θy), over the frequencies
(``uniform_periodic_normalization``). On an unbounded lattice the mean becomes the integral

    I(α, β) = (1/4π²) ∬ (1 + 2β(1 - cos θx) + 2α(1 - cos θy))^(-M) dθx dθy,
    α = a_i / w,  β = a_j / w,  Γ = (I / w)^(-1/2),

and evaluating it with each cell's own coefficients gives a prior that is close to exact Γ in
the open ocean and wrong near coasts, where walls reflect the diffusion: a network then only
has to learn the (coastal) correction log(γ²/γ_prior²).

I is tabulated once per M on a grid of log α, log β and read with a bicubic spline, so a
global grid costs an interpolation per cell, not a quadrature.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.special import eval_legendre

from normcoef.physics.diffusion import check_fields, open_faces

LOG_RATIO_RANGE = (np.log(1e-6), np.log(1e6))
"""Range of log(a/w) tabulated. Below it I is flat (a/w = 1e-6 changes I by ~2M·1e-6); above
it the Daley length exceeds ~4000 cells, far beyond any grid here: ratios are clipped to it."""
TABLE_SIZE = 161  # bicubic in log I: ~1e-6 relative error (tests/test_prior.py)


def lattice_integral(alpha: np.ndarray, beta: np.ndarray, steps: int) -> np.ndarray:
    """I(α, β) by quadrature, elementwise over broadcast arrays (the reference for the table).

    The θx integral is closed-form (Laplace's integral for Legendre functions,
    (1/π)∫_0^π (z + sqrt(z²-1) cos φ)^(-n-1) dφ = P_n(z)):
    (1/π)∫_0^π (A - B cos θ)^(-M) dθ = R^(-M) P_{M-1}(A/R), R = sqrt(A² - B²).
    The θy integral substitutes θ = 2 arctan(e^s), which spreads the peak at θ ~ α^(-1/2)
    over O(1) in s for every α; the integrand is then smooth and decays exponentially at both
    ends, so the trapezoidal rule on s ∈ [-30, 30] converges geometrically (step 0.2
    agrees with step 0.05 to ~1e-9 over the table).
    """
    alpha, beta = np.broadcast_arrays(
        np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    )
    s = np.linspace(-30.0, 30.0, 301)
    t2 = np.exp(2 * s)
    one_minus_cos = 2 * t2 / (1 + t2)
    jacobian = 2 * np.exp(s) / (1 + t2)  # dθ/ds
    p = 1 + 2 * alpha[..., None] * one_minus_cos  # the θy part of the symbol
    a = p + 2 * beta[..., None]
    r = np.sqrt(p * (p + 4 * beta[..., None]))  # sqrt(A² - B²), B = 2β
    inner = r ** (-steps) * eval_legendre(steps - 1, a / r)
    return np.trapezoid(inner * jacobian, s, axis=-1) / np.pi


@functools.cache
def _log_integral_table(steps: int) -> RectBivariateSpline:
    """Bicubic spline of log I over (log α, log β), computed once per M."""
    nodes = np.linspace(*LOG_RATIO_RANGE, TABLE_SIZE)
    alpha, beta = np.meshgrid(np.exp(nodes), np.exp(nodes), indexing="ij")
    return RectBivariateSpline(nodes, nodes, np.log(lattice_integral(alpha, beta, steps)))


def tabulated_lattice_integral(alpha: np.ndarray, beta: np.ndarray, steps: int) -> np.ndarray:
    """I(α, β) from the table; ratios outside ``LOG_RATIO_RANGE`` are clipped to it."""
    low, high = LOG_RATIO_RANGE
    log_alpha = np.clip(np.log(np.maximum(alpha, 1e-300)), low, high)
    log_beta = np.clip(np.log(np.maximum(beta, 1e-300)), low, high)
    return np.exp(_log_integral_table(steps).ev(log_alpha, log_beta))


def cell_face_coefficients(
    fields: np.ndarray, ocean: np.ndarray, periodic_x: bool = True, periodic_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(a_i, a_j) per cell: the mean over the cell's open faces on each axis, 0 if none.

    A cell sees diffusion through its north and south (east and west) faces; their mean is
    the uniform coefficient that matches the cell's own Laplacian diagonal per open face, is
    the same whichever neighbour stores the face (so a flip of the grid flips the prior), and
    ignores closed faces, whose stored value is a convention (0), not a diffusivity.
    """
    north, east = open_faces(ocean, periodic_x, periodic_y)
    south, west = np.roll(north, 1, axis=0), np.roll(east, 1, axis=1)
    a_i = np.where(north, fields[0], 0.0)
    a_j = np.where(east, fields[1], 0.0)
    sum_i = a_i + np.roll(a_i, 1, axis=0)
    sum_j = a_j + np.roll(a_j, 1, axis=1)
    count_i = north.astype(np.int64) + south
    count_j = east.astype(np.int64) + west
    return (
        np.where(count_i > 0, sum_i / np.maximum(count_i, 1), 0.0),
        np.where(count_j > 0, sum_j / np.maximum(count_j, 1), 0.0),
    )


def cell_ratios(
    fields: np.ndarray, ocean: np.ndarray, periodic_x: bool = True, periodic_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(α, β) on ocean cells, (n_ocean,) each: the cell's mean open-face a_i, a_j over its w."""
    a_i, a_j = cell_face_coefficients(fields, ocean, periodic_x, periodic_y)
    w = fields[2][ocean]
    return a_i[ocean] / w, a_j[ocean] / w


def lattice_variance(alpha: np.ndarray, beta: np.ndarray, w: np.ndarray, steps: int) -> np.ndarray:
    """diag V of the unbounded lattice at ratios (α, β) and area w, elementwise: I(α, β) / w."""
    return tabulated_lattice_integral(alpha, beta, steps) / w


def uniform_lattice_prior(
    fields: np.ndarray,
    ocean: np.ndarray,
    steps: int,
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> np.ndarray:
    """γ_prior (H, W) of (3, H, W) fields A_i, A_j, W on an ocean mask; 0 on land.

    Per ocean cell, Γ of the uniform unbounded lattice with the cell's area and face
    coefficients (``cell_face_coefficients``): γ = (I(α, β) / w)^(-1/2).
    """
    fields, ocean = check_fields(fields, ocean)
    alpha, beta = cell_ratios(fields, ocean, periodic_x, periodic_y)
    w = fields[2][ocean]
    prior = np.zeros(ocean.shape)
    prior[ocean] = np.sqrt(w / tabulated_lattice_integral(alpha, beta, steps))
    return prior
