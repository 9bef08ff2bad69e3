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
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy.special import gammaln, kve
from threadpoolctl import threadpool_limits

from normcoef.physics.diffusion import DiffusionOperator, FieldError, open_faces
from normcoef.physics.solvers import (
    CUDA_MAX_COLUMNS,
    Backend,
    backend,
    factorize,
    resolve_device,
)

DEFAULT_TOLERANCE = 1e-8
# Right-hand sides per CPU solve: CHOLMOD's cost per column on the global grid was lowest
# near 8 (1.2 ms, against 2.4 ms for one column and 1.6 ms for 64, whose blocks fall out of
# cache).
CPU_BATCH = 8
# Randomization draws its samples in blocks of this many columns (its batch before CHOLMOD),
# so that a seed keeps giving the numbers it gave.
DRAW_BLOCK = 256

_F = TypeVar("_F", bound=Callable)


def single_threaded_blas(function: _F) -> _F:
    """Run ``function`` with one BLAS thread.

    SuperLU's multi-right-hand-side solves call BLAS; on a few shared cores threaded OpenBLAS
    was 2-8x slower than one thread (oversubscription). Data generation parallelizes over
    samples instead. (CHOLMOD's solves, through cholespy, are single-threaded already.)
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

    Periodic axes use a divisor of their length, so colours stay apart across the seam. The
    leakage falls as either spacing grows, so for each spacing_x the smallest admissible
    spacing_y is found by bisection (a few dozen kernel sums instead of thousands).
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
        if _leakage(ys[-1], sx, rates, nu) > tol:
            continue
        low, high = 0, len(ys) - 1  # ys[high] is admissible
        while low < high:
            middle = (low + high) // 2
            if _leakage(ys[middle], sx, rates, nu) <= tol:
                high = middle
            else:
                low = middle + 1
        if ys[high] * sx < best[0] * best[1]:
            best = (ys[high], sx)
    return best


@dataclass(frozen=True)
class ProbingColouring:
    """The colours of a (spacing_y, spacing_x) lattice and who owns each cell per colour.

    Cell (r, c) has colour (r mod sy, c mod sx). For colour (oy, ox) the probes are its ocean
    cells, and each cell belongs to the nearest node of the colour's lattice along each axis
    (wrapped across a periodic seam; a tie goes to the even multiple of the spacing): the
    cells nearer to a probe than to any other probe of its colour. A node on land owns its
    cells' response for nobody. Owners are looked up from two small tables, ``node_rows``
    (sy, H) and ``node_cols`` (sx, W), so a chunk of colours costs a few passes over
    (n_ocean, colours) integers.
    """

    spacing: tuple[int, int]
    colours: np.ndarray
    """(n_ocean,) colour of each ocean cell, oy * sx + ox."""
    used: np.ndarray
    """Colours that hold an ocean cell, ascending."""
    rows: np.ndarray
    cols: np.ndarray
    node_rows: np.ndarray
    """(sy, H): row of the owning probe, times (W + 1), or H * (W + 1) when off the grid."""
    node_cols: np.ndarray
    """(sx, W): column of the owning probe, or W when off the grid."""
    owner_of_node: np.ndarray
    """((H + 1) * (W + 1),) ocean index of each grid cell, n_ocean on land and off the grid."""

    @classmethod
    def build(cls, op: DiffusionOperator, spacing: tuple[int, int]) -> ProbingColouring:
        height, width = op.mask.shape
        sy, sx = spacing
        rows, cols = np.nonzero(op.mask)
        colours = (rows % sy) * sx + (cols % sx)
        n = op.n_ocean
        owner = np.full((height + 1, width + 1), n, dtype=np.int64)
        owner[:height, :width][op.mask] = np.arange(n)

        def nodes(step: int, length: int, periodic: bool) -> np.ndarray:
            origin = np.arange(step)[:, None]
            # The nearest node, ties to the even multiple of the step (numpy's rounding).
            node = origin + step * np.round((np.arange(length) - origin) / step).astype(np.int64)
            if periodic:
                return node % length
            return np.where((node >= 0) & (node < length), node, length)

        return cls(
            spacing=(sy, sx),
            colours=colours,
            used=np.unique(colours),
            rows=rows,
            cols=cols,
            node_rows=nodes(sy, height, op.periodic_y) * (width + 1),
            node_cols=nodes(sx, width, op.periodic_x),
            owner_of_node=owner.ravel(),
        )

    def owners(self, chunk: np.ndarray) -> np.ndarray:
        """(n_ocean, len(chunk)) ocean index owning each cell per colour (n_ocean: none)."""
        origin_y, origin_x = np.divmod(chunk, self.spacing[1])
        flat = self.node_rows[origin_y, self.rows[:, None]]
        flat += self.node_cols[origin_x, self.cols[:, None]]
        return self.owner_of_node[flat]


@dataclass(frozen=True)
class DeviceSolves:
    """Products with L^{1/2} and L^{T/2} of one operator on one device (numpy or torch).

    On the CPU they use the operator's own factor; on CUDA a factor of the same T analysed on
    the device. ``batch`` is the number of right-hand sides worth solving at once there.
    """

    ops: Backend
    solve: Callable[[Any], Any]
    area: Any
    half_steps: int
    batch: int

    @classmethod
    def on(cls, op: DiffusionOperator, device: str = "cpu") -> DeviceSolves:
        device = resolve_device(device)
        ops = backend(device)
        if device == "cpu":
            return cls(ops, op.solve, op.area, op.half_steps, CPU_BATCH)
        factor = factorize(op.tangent, "cholmod", device)
        return cls(ops, factor.solve, ops.put(op.area), op.half_steps, CUDA_MAX_COLUMNS)

    def squared_sqrt_transpose(self, x: Any) -> Any:
        """(W^{-1/2} L^{T/2} x)^2 = ((W T^{-1})^{M/2} x)^2 / W, column by column."""
        for _ in range(self.half_steps):
            x = self.solve(x)
            x *= self.area[:, None]
        x *= x
        x /= self.area[:, None]
        return x

    def sqrt(self, x: Any) -> Any:
        """L^{1/2} x = (T^{-1} W)^{M/2} x."""
        for _ in range(self.half_steps):
            x = self.solve(self.area[:, None] * x)
        return x


@single_threaded_blas
def exact_normalization(
    op: DiffusionOperator,
    tol: float = DEFAULT_TOLERANCE,
    batch: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Γ on the (H, W) grid (0 on land), exact up to a relative variance error ~``tol``.

    Probing in square-root form: with z_c the sum of unit vectors of the cells of colour c,
    u = W^{-1/2} L^{T/2} z_c = sum_k u_k where u_k = W^{-1/2} L^{T/2} e_k decays
    exponentially away from k. Same-colour cells are far enough apart that u_k is negligible
    outside the cells nearer to k than to any other probe, so
    sigma_k^2 = ||u_k||^2 = sum of u^2 over the cells k owns. M/2 solves per colour.

    ``device`` is ``cpu``, ``cuda`` or ``auto`` (CUDA when there is one); the two agree to
    rounding. ``batch`` colours are solved at once (default: the fastest measured, 8 on the
    CPU, where larger blocks fall out of cache, 128 on CUDA).
    """
    sy, sx = probing_lattice(op, tol)
    if sy * sx >= op.n_ocean:  # small grids: one probe per cell is cheaper, and exact
        return brute_force_normalization(op)
    colouring = ProbingColouring.build(op, (sy, sx))
    return _gamma(op, probed_variance(op, colouring, DeviceSolves.on(op, device), batch))


def probed_variance(
    op: DiffusionOperator,
    colouring: ProbingColouring,
    solves: DeviceSolves,
    batch: int | None = None,
) -> np.ndarray:
    """diag(V) on ocean cells by probing ``colouring``'s colours, ``batch`` at a time, with
    ``solves`` (any device: the loop only uses its ``Backend``'s operations)."""
    ops, batch = solves.ops, batch or solves.batch
    colours = ops.put(colouring.colours)
    n = op.n_ocean
    variance = np.zeros(n + 1)  # the last bin collects cells whose owner is not a probe
    for start in range(0, colouring.used.size, batch):
        chunk = colouring.used[start : start + batch]
        probes = ops.as_float(colours[:, None] == ops.put(chunk)[None, :])
        response = solves.squared_sqrt_transpose(probes)
        owners = ops.put(colouring.owners(chunk))
        sums = ops.bincount(owners.ravel(), weights=response.ravel(), minlength=n + 1)
        variance += ops.get(sums)
    return variance[:n]


@single_threaded_blas
def brute_force_variance(
    op: DiffusionOperator, cells: np.ndarray | None = None, batch: int = CPU_BATCH
) -> np.ndarray:
    """diag(V) at ocean-vector indices ``cells`` (all by default), one column per cell."""
    cells = np.arange(op.n_ocean) if cells is None else np.asarray(cells)
    solves = DeviceSolves.on(op)
    variance = np.empty(cells.size)
    for start in range(0, cells.size, batch):
        chunk = cells[start : start + batch]
        unit = np.zeros((op.n_ocean, chunk.size))
        unit[chunk, np.arange(chunk.size)] = 1.0
        variance[start : start + chunk.size] = solves.squared_sqrt_transpose(unit).sum(axis=0)
    return variance


def brute_force_normalization(op: DiffusionOperator, batch: int = CPU_BATCH) -> np.ndarray:
    """Γ on the (H, W) grid by the plain definition (one column per ocean cell)."""
    return _gamma(op, brute_force_variance(op, batch=batch))


@single_threaded_blas
def randomized_normalization(
    op: DiffusionOperator,
    n_samples: int = 10_000,
    seed: int = 0,
    batch: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Γ estimated from ``n_samples`` Gaussian samples of L^{1/2} W^{-1/2} xi (seeded).

    The draws come from numpy on the host in blocks of ``DRAW_BLOCK`` whatever the ``device``
    and ``batch`` (draws solved at once), so a seed gives the same estimate everywhere (to
    rounding).
    """
    if n_samples < 1:
        raise FieldError(f"n_samples must be >= 1; got {n_samples}")
    solves = DeviceSolves.on(op, device)
    batch = batch or solves.batch
    rng = np.random.default_rng(seed)
    total = np.zeros(op.n_ocean)
    inv_sqrt_area = 1.0 / np.sqrt(op.area)[:, None]
    for start in range(0, n_samples, DRAW_BLOCK):
        draws = rng.standard_normal((op.n_ocean, min(DRAW_BLOCK, n_samples - start)))
        for part in range(0, draws.shape[1], batch):
            xi = solves.ops.put(draws[:, part : part + batch] * inv_sqrt_area)
            total += solves.ops.get((solves.sqrt(xi) ** 2).sum(1))
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
