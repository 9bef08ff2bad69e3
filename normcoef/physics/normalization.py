"""Normalization coefficients Γ = diag(V)^{-1/2} of the diffusion operator V.

Three ways, as compared by Weaver et al. (2021, QJRMS 147:289):

- ``brute_force_normalization``: one column per ocean cell, sigma_k^2 = ||W^{-1/2} L^{T/2}
  e_k||^2 (M/2 solves each). Exact, slow; the reference for tests and the benchmark.
- ``exact_normalization``: probing. Cells of one colour are at least ``spacing`` cells apart,
  further than the kernel's numerical support, so V z_c = sum_{k in c} V e_k gives
  diag(V)_k on colour c up to a truncation error bounded by ``tol`` (relative, on the
  variance). Cost: M/2 solves per colour instead of M/2 per cell.
- ``randomized_normalization``: sigma^2 ~ mean over N samples of (L^{1/2} W^{-1/2} xi)^2,
  xi ~ N(0, I); the relative error of the variance is sqrt(2/N).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from scipy.special import gammaln, kve
from threadpoolctl import threadpool_limits

from normcoef.physics.diffusion import DiffusionOperator, FieldError, open_faces

DEFAULT_TOLERANCE = 1e-8

_F = TypeVar("_F", bound=Callable)


def single_threaded_blas(function: _F) -> _F:
    """Run ``function`` with one BLAS thread.

    SuperLU's multi-right-hand-side solves call BLAS; on a few shared cores threaded OpenBLAS
    was 2-8x slower than one thread (oversubscription). Data generation parallelizes over
    samples instead.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _matern_correlation(rho: np.ndarray, nu: float) -> np.ndarray:
    """2-D correlation of M implicit steps: rho^nu K_nu(rho) / (2^{nu-1} Γ(nu)), nu = M - 1."""
    rho = np.maximum(np.asarray(rho, dtype=np.float64), 1e-300)
    log_c = nu * np.log(rho) + np.log(kve(nu, rho)) - rho - (nu - 1) * np.log(2) - gammaln(nu)
    return np.exp(log_c)


def decay_rates(op: DiffusionOperator) -> tuple[float, float]:
    """Slowest exponential decay rates (per cell) of the kernel along y and x.

    A 1-D implicit step with ratio r = a/w has symbol 1 + 2r(1 - cos θ), whose zero at
    θ = i q gives decay exp(-q |d|) with cosh q = 1 + 1/(2r). The largest r on either side
    of a face decays slowest. (For large r, q -> 1/sqrt(r), the continuous rate.)
    """
    a_i, a_j, w = op.fields
    # Open faces only: values on land cells and closed faces are unchecked (NaN, W = 0, ...).
    north, east = open_faces(op.mask, op.periodic_x, op.periodic_y)
    smaller_w_north = np.minimum(w, np.roll(w, -1, axis=0))[north]
    smaller_w_east = np.minimum(w, np.roll(w, -1, axis=1))[east]
    r_y = max(float(np.max(a_i[north] / smaller_w_north, initial=0.0)), 1e-12)
    r_x = max(float(np.max(a_j[east] / smaller_w_east, initial=0.0)), 1e-12)
    return float(np.arccosh(1 + 0.5 / r_y)), float(np.arccosh(1 + 0.5 / r_x))


def _leakage(spacing_y: int, spacing_x: int, rates: tuple[float, float], nu: float) -> float:
    """Sum of the kernel over the nodes of a (spacing_y, spacing_x) lattice, origin excluded."""
    n = np.arange(-20, 21)  # farther nodes add nothing once the sum is near tol
    py, px = np.meshgrid(n * spacing_y * rates[0], n * spacing_x * rates[1], indexing="ij")
    rho = np.hypot(py, px)
    return float(np.sum(_matern_correlation(rho[rho > 0], nu)))


def probing_lattice(op: DiffusionOperator, tol: float = DEFAULT_TOLERANCE) -> tuple[int, int]:
    """(spacing_y, spacing_x) of the cheapest colouring whose leakage stays below ``tol``.

    Periodic axes use a divisor of their length, so colours stay apart across the seam.
    """
    height, width = op.mask.shape
    rates = decay_rates(op)
    nu = op.steps - 1

    def candidates(length: int, periodic: bool) -> list[int]:
        if periodic:
            return [d for d in range(1, length + 1) if length % d == 0]
        return list(range(1, length + 1))

    ys, xs = candidates(height, op.periodic_y), candidates(width, op.periodic_x)
    best = (ys[-1], xs[-1])
    for sx in xs:
        for sy in ys:
            if sy * sx >= best[0] * best[1]:
                break
            if _leakage(sy, sx, rates, nu) <= tol:
                best = (sy, sx)
                break
    return best


@single_threaded_blas
def exact_normalization(
    op: DiffusionOperator, tol: float = DEFAULT_TOLERANCE, batch: int = 64
) -> np.ndarray:
    """Γ on the (H, W) grid (0 on land), exact up to a relative variance error ~``tol``.

    Probing in square-root form: with z_c the sum of unit vectors of the cells of colour c,
    u = W^{-1/2} L^{T/2} z_c = sum_k u_k where u_k = W^{-1/2} L^{T/2} e_k decays
    exponentially away from k. Same-colour cells are far enough apart that u_k is negligible
    outside the cells nearer to k than to any other probe, so
    sigma_k^2 = ||u_k||^2 = sum of u^2 over the cells k owns. M/2 solves per colour.
    """
    height, width = op.mask.shape
    sy, sx = probing_lattice(op, tol)
    if sy * sx >= op.n_ocean:  # small grids: one probe per cell is cheaper, and exact
        return brute_force_normalization(op)
    index = np.full(op.mask.shape, -1, dtype=np.int64)
    index[op.mask] = np.arange(op.n_ocean)
    rows, cols = np.nonzero(op.mask)
    colours = (rows % sy) * sx + (cols % sx)
    used = np.unique(colours)
    variance = np.zeros(op.n_ocean)
    for start in range(0, used.size, batch):
        chunk = used[start : start + batch]
        probes = (colours[:, None] == chunk[None, :]).astype(np.float64)
        response = op.apply_sqrt_transpose(probes) ** 2 / op.area[:, None]
        oy, ox = np.divmod(chunk, sx)
        node_y = oy + sy * np.round((rows[:, None] - oy) / sy).astype(np.int64)
        node_x = ox + sx * np.round((cols[:, None] - ox) / sx).astype(np.int64)
        if op.periodic_y:
            node_y %= height
        if op.periodic_x:
            node_x %= width
        valid = (node_y >= 0) & (node_y < height) & (node_x >= 0) & (node_x < width)
        owner = np.full(node_y.shape, -1, dtype=np.int64)
        owner[valid] = index[node_y[valid], node_x[valid]]
        owned = owner >= 0
        variance += np.bincount(owner[owned], weights=response[owned], minlength=op.n_ocean)
    return _gamma(op, variance)


@single_threaded_blas
def brute_force_variance(
    op: DiffusionOperator, cells: np.ndarray | None = None, batch: int = 128
) -> np.ndarray:
    """diag(V) at ocean-vector indices ``cells`` (all by default), one column per cell."""
    cells = np.arange(op.n_ocean) if cells is None else np.asarray(cells)
    variance = np.empty(cells.size)
    for start in range(0, cells.size, batch):
        chunk = cells[start : start + batch]
        unit = np.zeros((op.n_ocean, chunk.size))
        unit[chunk, np.arange(chunk.size)] = 1.0
        columns = op.apply_sqrt_transpose(unit)
        variance[start : start + chunk.size] = np.sum(columns**2 / op.area[:, None], axis=0)
    return variance


def brute_force_normalization(op: DiffusionOperator, batch: int = 128) -> np.ndarray:
    """Γ on the (H, W) grid by the plain definition (one column per ocean cell)."""
    return _gamma(op, brute_force_variance(op, batch=batch))


@single_threaded_blas
def randomized_normalization(
    op: DiffusionOperator, n_samples: int = 10_000, seed: int = 0, batch: int = 256
) -> np.ndarray:
    """Γ estimated from ``n_samples`` Gaussian samples of L^{1/2} W^{-1/2} xi (seeded)."""
    if n_samples < 1:
        raise FieldError(f"n_samples must be >= 1; got {n_samples}")
    rng = np.random.default_rng(seed)
    total = np.zeros(op.n_ocean)
    inv_sqrt_area = 1.0 / np.sqrt(op.area)[:, None]
    for start in range(0, n_samples, batch):
        size = min(batch, n_samples - start)
        xi = rng.standard_normal((op.n_ocean, size))
        total += np.sum(op.apply_sqrt(xi * inv_sqrt_area) ** 2, axis=1)
    return _gamma(op, total / n_samples)


def uniform_periodic_normalization(
    a_i: float, a_j: float, w: float, shape: tuple[int, int], steps: int
) -> float:
    """Closed-form Γ for uniform fields on a doubly periodic, all-ocean grid.

    All operators are circulant, so diag(V) is the mean of V's symbol over the discrete
    frequencies: V^(p, q) = (w / t)^M / w with t = w + 2 a_j (1 - cos θ_p) + 2 a_i (1 - cos θ_q).
    """
    height, width = shape
    theta_y = 2 * np.pi * np.fft.fftfreq(height)[:, None]
    theta_x = 2 * np.pi * np.fft.fftfreq(width)[None, :]
    symbol = w + 2 * a_j * (1 - np.cos(theta_x)) + 2 * a_i * (1 - np.cos(theta_y))
    variance = np.mean((w / symbol) ** steps) / w
    return float(variance**-0.5)


def _gamma(op: DiffusionOperator, variance: np.ndarray) -> np.ndarray:
    if not np.all(variance > 0):
        raise FieldError("non-positive variance: the operator is not positive definite")
    return op.to_grid(variance**-0.5)
