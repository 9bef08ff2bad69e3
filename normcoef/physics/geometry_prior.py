"""A wall-aware prior for Γ: exact Γ of smooth reference fields on the grid itself, tabulated.

The unbounded-lattice prior (``normcoef.physics.prior``) ignores walls and the grid's metric:
a coast or a closed edge reflects the diffusion (near it the variance of V is up to ~2x the
lattice's), and on a Mercator grid the cell areas W change by ~10 % a row at high latitudes,
where most coasts are. Both are facts of the grid (its mask and W), not of a sample, so they
are computed once, exactly, on reference fields with a uniform ratio of diffusivity to area,

    a_i = α (w + w_north) / 2,   a_j = β (w + w_east) / 2,   W = the grid's areas,

(what the generator makes from a uniform length scale in cells), by the probing solver. The
ratio of their variance to the lattice prior's,

    F(c; α, β) = diag V_ref(c) / (I(α_c, β_c) / w_c)     (1 in the open ocean, ~2 at a wall),

carries coasts, islands, straits, closed edges and the metric. The table holds log F at a few
(log α, log β) nodes; the prior of real, varying fields reads log F at each cell's own ratios
(``cell_face_coefficients``, over the reference's own, ``axis_scales``), with a cubic spline
between the nodes, and returns

    γ_prior = sqrt(w_c / (I(α_c, β_c) F(c; α, β))).

For reference fields at a node it is exact Γ on any coastline; what remains for a network is
the effect of coefficients that vary from cell to cell.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from normcoef.physics.diffusion import DiffusionOperator, FieldError, check_fields, open_faces
from normcoef.physics.normalization import DEFAULT_TOLERANCE, exact_normalization
from normcoef.physics.prior import LOG_RATIO_RANGE, cell_ratios, lattice_variance

DEFAULT_NODES = 4
"""Nodes per axis. On the python grid, between-node error of log F (cubic) against exact Γ:
see ``tests/test_geometry_prior.py`` and docs/results.md (benchmarks/prior_nodes.py)."""


NODE_ROUNDING = 0.25
"""The nodes' range in log(a/w) is rounded outward to multiples of this."""


class TableMismatchError(FieldError):
    """A geometry table used for a grid, M or periodicity it was not made for."""


def log_nodes(ratios: np.ndarray, count: int = DEFAULT_NODES) -> tuple[float, ...]:
    """``count`` nodes evenly spaced in log over the positive ``ratios`` (range rounded
    outward, clipped to the lattice table's): the table covers what it will be read at."""
    if count < 2:
        raise ValueError(f"a geometry table needs at least 2 nodes per axis; got {count}")
    positive = np.asarray(ratios)[np.asarray(ratios) > 0]
    if positive.size == 0:
        raise ValueError("no positive diffusivity ratio to place the table's nodes on")
    low, high = np.log([positive.min(), positive.max()])
    # Outward to multiples of NODE_ROUNDING: samples of one grid drawn alike (10 or 40 of
    # them) give the same nodes, hence one table; a single value still gets an interval.
    low = np.floor(low / NODE_ROUNDING) * NODE_ROUNDING
    high = max(np.ceil(high / NODE_ROUNDING) * NODE_ROUNDING, low + NODE_ROUNDING)
    low, high = np.clip([low, high], *LOG_RATIO_RANGE)
    return tuple(float(x) + 0.0 for x in np.linspace(low, high, count))  # + 0.0: no -0.0


def spline_weights(nodes: Sequence[float], x: np.ndarray) -> np.ndarray:
    """(len(x), len(nodes)) weights of the natural cubic spline through the nodes, at ``x``
    clipped to the nodes' range: value(x) = weights @ values_at_nodes (linear with 2 nodes)."""
    at = np.asarray(nodes, dtype=np.float64)
    x = np.clip(x, at[0], at[-1])
    if at.size == 2:
        t = (x - at[0]) / (at[1] - at[0])
        return np.stack([1 - t, t], axis=-1)
    return CubicSpline(at, np.eye(at.size), bc_type="natural")(x)


def grid_digest(mask: np.ndarray, area: np.ndarray) -> str:
    """A short fingerprint of a grid: its mask's shape and cells, and W on its ocean cells."""
    mask = np.asarray(mask, dtype=bool)
    payload = (
        np.asarray(mask.shape, dtype=np.int64).tobytes()
        + np.packbits(mask).tobytes()
        + np.ascontiguousarray(np.asarray(area, dtype=np.float64)[mask]).tobytes()
    )
    return hashlib.sha256(payload).hexdigest()[:16]


def reference_fields(
    mask: np.ndarray, area: np.ndarray, alpha: float, beta: float, periodicity: tuple[bool, bool]
) -> np.ndarray:
    """(3, H, W) fields of uniform ratio α, β on the grid's areas: a_i = α (w + w_north)/2 on
    open north faces, a_j = β (w + w_east)/2 on open east faces, 0 on closed ones."""
    north, east = open_faces(mask, *periodicity)
    area = np.where(mask, area, 1.0)  # land values are a convention (NaN, 0): unused
    a_i = np.where(north, alpha * 0.5 * (area + np.roll(area, -1, axis=0)), 0.0)
    a_j = np.where(east, beta * 0.5 * (area + np.roll(area, -1, axis=1)), 0.0)
    return np.stack([a_i, a_j, area])


def axis_scales(
    mask: np.ndarray, area: np.ndarray, periodicity: tuple[bool, bool]
) -> tuple[np.ndarray, np.ndarray]:
    """(r_i, r_j) (n_ocean,): a cell's ratios (``cell_ratios``) on the reference fields of
    α = β = 1; a cell of the reference fields at (α, β) has ratios (α r_i, β r_j). 0 on an
    axis without an open face."""
    return cell_ratios(reference_fields(mask, area, 1.0, 1.0, periodicity), mask, *periodicity)


def reference_ratios(
    alpha: np.ndarray, beta: np.ndarray, r_i: np.ndarray, r_j: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The reference ratios (α_c / r_i, β_c / r_j) of cells whose own ratios are (α_c, β_c):
    the table's coordinates (a tiny positive value on an axis without an open face)."""
    tiny = np.exp(LOG_RATIO_RANGE[0])
    return (
        np.maximum(alpha, tiny) / np.maximum(r_i, tiny),
        np.maximum(beta, tiny) / np.maximum(r_j, tiny),
    )


def sample_reference_ratios(
    fields: np.ndarray, ocean: np.ndarray, periodicity: tuple[bool, bool]
) -> tuple[np.ndarray, np.ndarray]:
    """The reference ratios of one sample's cells with an open face on each axis (those of x,
    then those of y): where a table's nodes must lie to cover the sample."""
    fields, ocean = check_fields(fields, ocean)
    r_i, r_j = axis_scales(ocean, fields[2], periodicity)
    x, y = reference_ratios(*cell_ratios(fields, ocean, *periodicity), r_i, r_j)
    return x[r_i > 0], y[r_j > 0]


@dataclass(frozen=True)
class GeometryTable:
    """log F (n_α, n_β, n_ocean) of one grid (ocean mask, areas W on its ocean cells), M and
    periodicity, at the nodes (``log_alpha``, ``log_beta``) of the reference ratio."""

    mask: np.ndarray
    area: np.ndarray
    """(n_ocean,) W on the ocean cells."""
    steps: int
    periodic_x: bool
    periodic_y: bool
    log_alpha: tuple[float, ...]
    log_beta: tuple[float, ...]
    log_factor: np.ndarray
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def build(
        cls,
        mask: np.ndarray,
        area: np.ndarray,
        steps: int,
        periodicity: tuple[bool, bool],
        nodes: tuple[Sequence[float], Sequence[float]],
        tolerance: float = DEFAULT_TOLERANCE,
        on_node: Callable[[], None] | None = None,
    ) -> GeometryTable:
        """One exact Γ of the reference fields on the grid (``mask``, (H, W) ``area``) per
        node; ``on_node`` is called after each (a progress bar's update)."""
        mask = np.asarray(mask, dtype=bool)
        area = np.asarray(area, dtype=np.float64)
        log_alpha, log_beta = (tuple(float(x) for x in axis) for axis in nodes)
        log_factor = np.empty((len(log_alpha), len(log_beta), int(mask.sum())))
        for i, la in enumerate(log_alpha):
            for j, lb in enumerate(log_beta):
                fields = reference_fields(mask, area, np.exp(la), np.exp(lb), periodicity)
                op = DiffusionOperator(fields, mask, steps, *periodicity)
                variance = exact_normalization(op, tolerance)[mask] ** -2.0
                ratios = cell_ratios(fields, mask, *periodicity)
                lattice = lattice_variance(*ratios, area[mask], steps)
                log_factor[i, j] = np.log(variance / lattice)
                if on_node is not None:
                    on_node()
        # Rounded as a file stores it: a table made now and one read later give the same prior.
        log_factor = log_factor.astype(np.float32).astype(np.float64)
        return cls(
            mask, area[mask], steps, *periodicity, log_alpha, log_beta, log_factor, tolerance
        )

    @property
    def periodicity(self) -> tuple[bool, bool]:
        return self.periodic_x, self.periodic_y

    def check_matches(
        self, ocean: np.ndarray, area: np.ndarray, steps: int, periodicity: tuple[bool, bool]
    ) -> None:
        """Refuse a grid (mask, areas), M or periodicity other than the table's, in one line."""
        if (steps, periodicity) != (self.steps, self.periodicity):
            raise TableMismatchError(
                f"the geometry table was made for M = {self.steps}, (periodic_x, periodic_y) = "
                f"{self.periodicity}, not M = {steps}, {periodicity}; make a table for this "
                "grid (it is made on first use)"
            )
        self._check_grid(ocean, area)

    def _check_grid(self, ocean: np.ndarray, area: np.ndarray) -> None:
        """Refuse another mask or other areas W than the table's, in one line."""
        if ocean.shape != self.mask.shape or not np.array_equal(ocean, self.mask):
            differ = (
                "another shape"
                if ocean.shape != self.mask.shape
                else f"{int((ocean != self.mask).sum())} cells that differ"
            )
            raise TableMismatchError(
                f"the geometry table was made for another ocean mask ({self.mask.shape[0]}x"
                f"{self.mask.shape[1]}; this one has {differ}); make a table for this grid "
                "(it is made on first use)"
            )
        if not np.array_equal(area[ocean], self.area):
            worst = float(np.max(np.abs(area[ocean] / self.area - 1)))
            raise TableMismatchError(
                f"the geometry table was made for other cell areas W (up to {worst:.2g} "
                "relative apart); make a table for this grid (it is made on first use)"
            )

    def log_factor_at(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """log F (n_ocean,) of each ocean cell at its own ratios (α_c, β_c): cubic in the
        reference ratio (α_c / r_i, β_c / r_j) between the nodes, clamped outside them."""
        r_i, r_j = self.scales
        x, y = reference_ratios(alpha, beta, r_i, r_j)
        log_x = self._from_neighbours(np.log(x), r_i > 0)
        log_y = self._from_neighbours(np.log(y), r_j > 0)
        weights_a = spline_weights(self.log_alpha, log_x)
        weights_b = spline_weights(self.log_beta, log_y)
        return np.einsum("ca,cb,abc->c", weights_a, weights_b, self.log_factor)

    def _from_neighbours(self, values: np.ndarray, known: np.ndarray) -> np.ndarray:
        """``values`` (n_ocean,) where ``known``; elsewhere the mean of the known values of the
        cell's 3x3 neighbourhood (twice widened if need be), else the mean of all known.

        A cell without an open face on an axis has no ratio of its own there, but its
        variance still depends on that axis' diffusion in its neighbours (of the order of
        the table's whole range for a cell in a one-cell-wide strait): their ratio it is."""
        if known.all() or not known.any():
            return values
        grid_values, grid_known = np.zeros(self.mask.shape), np.zeros(self.mask.shape)
        grid_values[self.mask] = np.where(known, values, 0.0)
        grid_known[self.mask] = known
        filled = values.copy()
        missing = ~known
        for radius in (1, 2, 3):
            if not missing.any():
                break
            sums = neighbourhood_sum(grid_values, radius, self.periodicity)[self.mask]
            counts = neighbourhood_sum(grid_known, radius, self.periodicity)[self.mask]
            found = missing & (counts > 0)
            filled[found] = sums[found] / counts[found]
            missing &= ~found
        filled[missing] = values[known].mean()
        return filled

    @functools.cached_property
    def scales(self) -> tuple[np.ndarray, np.ndarray]:
        """``axis_scales`` of the table's grid, computed once."""
        return axis_scales(self.mask, self.grid_area(), self.periodicity)

    def grid_area(self) -> np.ndarray:
        """W (H, W) of the table's grid, 1 on land."""
        area = np.ones(self.mask.shape)
        area[self.mask] = self.area
        return area

    def prior(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        """γ_prior (H, W) of (3, H, W) fields A_i, A_j, W on the table's grid; 0 on land."""
        fields, ocean = check_fields(fields, ocean)
        self._check_grid(ocean, fields[2])
        alpha, beta = cell_ratios(fields, ocean, *self.periodicity)
        variance = lattice_variance(alpha, beta, fields[2][ocean], self.steps)
        prior = np.zeros(ocean.shape)
        prior[ocean] = (variance * np.exp(self.log_factor_at(alpha, beta))) ** -0.5
        return prior

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an npz file (``from_arrays`` reads them back); log F as float32,
        ~1e-7 relative, far below the prior's own error."""
        return {
            "mask": self.mask,
            "area": self.area,
            "steps": np.asarray(self.steps),
            "periodicity": np.asarray(self.periodicity),
            "log_alpha": np.asarray(self.log_alpha),
            "log_beta": np.asarray(self.log_beta),
            "log_factor": self.log_factor.astype(np.float32),
            "tolerance": np.asarray(self.tolerance),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GeometryTable:
        mask = np.asarray(arrays["mask"], dtype=bool)
        area = np.asarray(arrays["area"], dtype=np.float64)
        log_alpha = tuple(float(x) for x in arrays["log_alpha"])
        log_beta = tuple(float(x) for x in arrays["log_beta"])
        log_factor = np.asarray(arrays["log_factor"], dtype=np.float64)
        n_ocean = int(mask.sum())
        expected = (len(log_alpha), len(log_beta), n_ocean)
        if log_factor.shape != expected or area.shape != (n_ocean,):
            raise ValueError(
                f"log_factor {log_factor.shape} and area {area.shape} do not fit the mask's "
                f"{n_ocean} ocean cells and the nodes, {expected}"
            )
        periodic_x, periodic_y = (bool(p) for p in arrays["periodicity"])
        return cls(
            mask,
            area,
            int(arrays["steps"]),
            periodic_x,
            periodic_y,
            log_alpha,
            log_beta,
            log_factor,
            float(arrays["tolerance"]),
        )


def neighbourhood_sum(
    values: np.ndarray, radius: int, periodicity: tuple[bool, bool]
) -> np.ndarray:
    """Sum of (H, W) ``values`` over each cell's (2 radius + 1)² neighbourhood, wrapped across
    periodic axes, zero beyond closed edges."""
    modes = ["wrap" if periodic else "constant" for periodic in reversed(periodicity)]
    padded = np.pad(values, ((radius, radius), (0, 0)), mode=modes[0])  # type: ignore[call-overload]
    padded = np.pad(padded, ((0, 0), (radius, radius)), mode=modes[1])  # type: ignore[call-overload]
    height, width = values.shape
    return sum(
        padded[dy : dy + height, dx : dx + width]
        for dy in range(2 * radius + 1)
        for dx in range(2 * radius + 1)
    )
