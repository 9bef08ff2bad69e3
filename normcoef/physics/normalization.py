"""Normalization coefficients Γ = diag(V)^{-1/2} of the diffusion operator V.

Three ways, as compared by Weaver et al. (2021, QJRMS 147:289):

- ``brute_force_normalization``: one column per ocean cell, sigma_k^2 = ||W^{-1/2} L^{T/2}
  e_k||^2 (M/2 solves each). Exact, slow; the reference for tests and the benchmark.
- ``exact_normalization``: probing. Cells of one colour are at least ``spacing`` cells apart,
  further than the kernel's numerical support, so V z_c = sum_{k in c} V e_k gives
  diag(V)_k on colour c up to a truncation error bounded by ``tol`` (relative, on the
  variance). Cost: M solves per colour instead of M/2 per cell.
- ``randomized_normalization``: sigma^2 ~ mean over N samples of (L^{1/2} W^{-1/2} xi)^2,
  xi ~ N(0, I); the relative error of the variance is sqrt(2/N).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, kve

from normcoef.physics.diffusion import DiffusionOperator, FieldError

DEFAULT_TOLERANCE = 1e-8


def _matern_correlation(rho: np.ndarray, nu: float) -> np.ndarray:
    """2-D continuous correlation of M implicit steps: rho^nu K_nu(rho) / (2^{nu-1} Γ(nu))."""
    rho = np.maximum(np.asarray(rho, dtype=np.float64), 1e-300)
    log_c = nu * np.log(rho) + np.log(kve(nu, rho)) - rho - (nu - 1) * np.log(2) - gammaln(nu)
    return np.exp(log_c)


def probing_spacing(op: DiffusionOperator, tol: float = DEFAULT_TOLERANCE) -> int:
    """Smallest spacing (grid cells) at which same-colour leakage stays below ``tol``.

    The kernel's decay length in grid cells is sqrt(a/w) (kappa over the squared cell width),
    so the largest ratio over ocean cells bounds it. The continuous Matérn kernel with
    nu = M - 1 decays more slowly than the discrete one, and the sum runs over the 8n cells
    of ring n of the colour lattice, so the bound is conservative.
    """
    a_i, a_j, w = op.fields
    mask = op.mask
    ratio = np.maximum(a_i[mask], a_j[mask]) / w[mask]
    # Neighbouring cells may have much smaller areas than the face they share: use the
    # area on both sides of the face to stay conservative.
    ratio_n = a_i[mask] / np.roll(w, -1, axis=0)[mask]
    ratio_e = a_j[mask] / np.roll(w, -1, axis=1)[mask]
    decay = math.sqrt(max(ratio.max(), ratio_n.max(), ratio_e.max(), 1e-12))
    nu = op.steps - 1
    rings = np.arange(1, 200)
    for spacing in range(1, 4 * max(mask.shape) + 1):
        leakage = np.sum(8 * rings * _matern_correlation(rings * spacing / decay, nu))
        if leakage <= tol:
            return spacing
    return 4 * max(mask.shape)


def _periodic_spacing(spacing: int, length: int) -> int:
    """Smallest divisor of ``length`` that is >= spacing, so colours stay apart across the
    periodic seam."""
    for candidate in range(spacing, length + 1):
        if length % candidate == 0:
            return candidate
    return length


def colouring(op: DiffusionOperator, spacing: int) -> np.ndarray:
    """(H, W) colour index: cells of one colour are >= spacing apart along each axis."""
    height, width = op.mask.shape
    sy = _periodic_spacing(spacing, height) if op.periodic_y else min(spacing, height)
    sx = _periodic_spacing(spacing, width) if op.periodic_x else min(spacing, width)
    rows = np.arange(height)[:, None] % sy
    cols = np.arange(width)[None, :] % sx
    return rows * sx + cols


def exact_normalization(
    op: DiffusionOperator, tol: float = DEFAULT_TOLERANCE, batch: int = 64
) -> np.ndarray:
    """Γ on the (H, W) grid (0 on land), exact up to a relative variance error ``tol``."""
    colours = colouring(op, probing_spacing(op, tol))[op.mask]
    used = np.unique(colours)
    variance = np.empty(op.n_ocean)
    for start in range(0, used.size, batch):
        chunk = used[start : start + batch]
        probes = (colours[:, None] == chunk[None, :]).astype(np.float64)
        response = op.apply_covariance(probes)
        rows = np.flatnonzero(np.isin(colours, chunk))
        variance[rows] = response[rows, np.searchsorted(chunk, colours[rows])]
    return _gamma(op, variance)


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
