"""A wall-aware prior for Γ: exact Γ of uniform coefficients on the grid's own mask, tabulated.

The unbounded-lattice prior (``normcoef.physics.prior``) ignores walls: a coast or a closed
edge reflects the diffusion, and near it the variance of V is up to ~2x the lattice's. For
uniform coefficients, a_i = α w, a_j = β w, the variance of V on a given mask is a function of
the cell and of (α, β) only (V scales as 1/w), and it is computed exactly by the probing
solver. Its ratio to the lattice integral,

    F(c; α, β) = diag V_uniform(c) / I(α, β)      (1 in the open ocean, ~2 at a wall),

carries the whole geometry: coasts, islands, straits, closed edges. The table holds log F at a
few (log α, log β) nodes (one exact solve each, once per grid); the prior of real, varying
fields takes each cell's own (α, β) (``cell_face_coefficients``), reads log F there with a
cubic spline between the nodes, and returns

    γ_prior = sqrt(w / (I(α, β) F(c; α, β))).

At a node and for uniform fields it is exact Γ on any coastline; what remains for a network
is the effect of coefficients that vary from cell to cell.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from normcoef.physics.diffusion import DiffusionOperator, FieldError, check_fields
from normcoef.physics.normalization import DEFAULT_TOLERANCE, exact_normalization
from normcoef.physics.prior import (
    LOG_RATIO_RANGE,
    cell_face_coefficients,
    tabulated_lattice_integral,
)

DEFAULT_NODES = 4
"""Nodes per axis. On the python grid, between-node error of log F (cubic) against exact Γ:
see ``tests/test_geometry_prior.py`` and docs/results.md (benchmarks/prior_nodes.py)."""


class TableMismatchError(FieldError):
    """A geometry table used for a grid, M or periodicity it was not made for."""


def cell_ratios(
    fields: np.ndarray, ocean: np.ndarray, periodic_x: bool = True, periodic_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(α, β) on ocean cells, (n_ocean,) each: the cell's mean open-face a_i, a_j over its w."""
    a_i, a_j = cell_face_coefficients(fields, ocean, periodic_x, periodic_y)
    w = fields[2][ocean]
    return a_i[ocean] / w, a_j[ocean] / w


def log_nodes(ratios: np.ndarray, count: int = DEFAULT_NODES) -> tuple[float, ...]:
    """``count`` nodes evenly spaced in log over the positive ``ratios`` (clipped to the
    lattice table's range): the table then covers the coefficients it will be read at."""
    if count < 2:
        raise ValueError(f"a geometry table needs at least 2 nodes per axis; got {count}")
    positive = np.asarray(ratios)[np.asarray(ratios) > 0]
    if positive.size == 0:
        raise ValueError("no positive diffusivity ratio to place the table's nodes on")
    low, high = np.clip(np.log([positive.min(), positive.max()]), *LOG_RATIO_RANGE)
    if high - low < 1e-6:  # one value: a small interval around it keeps the spline defined
        low, high = low - 0.05, high + 0.05
    return tuple(float(x) for x in np.linspace(low, high, count))


def spline_weights(nodes: Sequence[float], x: np.ndarray) -> np.ndarray:
    """(len(x), len(nodes)) weights of the natural cubic spline through the nodes, at ``x``
    clipped to the nodes' range: value(x) = weights @ values_at_nodes (linear with 2 nodes)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    x = np.clip(x, nodes[0], nodes[-1])
    if nodes.size == 2:
        t = (x - nodes[0]) / (nodes[1] - nodes[0])
        return np.stack([1 - t, t], axis=-1)
    return CubicSpline(nodes, np.eye(nodes.size), bc_type="natural")(x)


def mask_digest(mask: np.ndarray) -> str:
    """A short fingerprint of an ocean mask (shape and cells)."""
    mask = np.asarray(mask, dtype=bool)
    payload = np.asarray(mask.shape, dtype=np.int64).tobytes() + np.packbits(mask).tobytes()
    return hashlib.sha256(payload).hexdigest()[:16]


@dataclass(frozen=True)
class GeometryTable:
    """log F (n_α, n_β, n_ocean) of one ocean mask, M and periodicity, at the nodes
    (``log_alpha``, ``log_beta``) in log(a/w)."""

    mask: np.ndarray
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
        steps: int,
        periodicity: tuple[bool, bool],
        nodes: tuple[Sequence[float], Sequence[float]],
        tolerance: float = DEFAULT_TOLERANCE,
        on_node: Callable[[], None] | None = None,
    ) -> GeometryTable:
        """One exact Γ of uniform fields (a_i = α, a_j = β, w = 1) on ``mask`` per node;
        ``on_node`` is called after each (a progress bar's update)."""
        mask = np.asarray(mask, dtype=bool)
        log_alpha, log_beta = (tuple(float(x) for x in axis) for axis in nodes)
        log_factor = np.empty((len(log_alpha), len(log_beta), int(mask.sum())))
        ones = np.ones(mask.shape)
        for i, la in enumerate(log_alpha):
            for j, lb in enumerate(log_beta):
                alpha, beta = np.exp(la), np.exp(lb)
                fields = np.stack([alpha * ones, beta * ones, ones])
                op = DiffusionOperator(fields, mask, steps, *periodicity)
                variance = exact_normalization(op, tolerance)[mask] ** -2.0
                # The table's own I, so that the prior is exact Γ at the nodes to rounding.
                lattice = tabulated_lattice_integral(np.array(alpha), np.array(beta), steps)
                log_factor[i, j] = np.log(variance / lattice)
                if on_node is not None:
                    on_node()
        # Rounded as a file stores it: a table made now and one read later give the same prior.
        log_factor = log_factor.astype(np.float32).astype(np.float64)
        return cls(mask, steps, *periodicity, log_alpha, log_beta, log_factor, tolerance)

    @property
    def digest(self) -> str:
        return mask_digest(self.mask)

    def check_matches(self, ocean: np.ndarray, steps: int, periodicity: tuple[bool, bool]) -> None:
        """Refuse a grid, M or periodicity other than the table's, in one line."""
        if (steps, periodicity) != (self.steps, (self.periodic_x, self.periodic_y)):
            raise TableMismatchError(
                f"the geometry table was made for M = {self.steps}, (periodic_x, periodic_y) = "
                f"{(self.periodic_x, self.periodic_y)}, not M = {steps}, {periodicity}; "
                "make a table for this grid (it is made on first use)"
            )
        if ocean.shape != self.mask.shape or not np.array_equal(ocean, self.mask):
            differ = (
                "another shape"
                if ocean.shape != self.mask.shape
                else f"{int((ocean != self.mask).sum())} cells that differ"
            )
            raise TableMismatchError(
                f"the geometry table was made for another ocean mask ({self.mask.shape[0]}x"
                f"{self.mask.shape[1]}, digest {self.digest}; this one has {differ}); "
                "make a table for this grid (it is made on first use)"
            )

    def log_factor_at(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """log F (n_ocean,) of each ocean cell at its own (α, β), cubic in log α and log β
        between the nodes, clamped to the nodes' range outside it."""
        low, high = LOG_RATIO_RANGE
        weights_a = spline_weights(self.log_alpha, np.log(np.clip(alpha, np.exp(low), None)))
        weights_b = spline_weights(self.log_beta, np.log(np.clip(beta, np.exp(low), None)))
        return np.einsum("ca,cb,abc->c", weights_a, weights_b, self.log_factor)

    def prior(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        """γ_prior (H, W) of (3, H, W) fields A_i, A_j, W on the table's mask; 0 on land."""
        fields, ocean = check_fields(fields, ocean)
        self.check_matches(ocean, self.steps, (self.periodic_x, self.periodic_y))
        alpha, beta = cell_ratios(fields, ocean, self.periodic_x, self.periodic_y)
        w = fields[2][ocean]
        variance = tabulated_lattice_integral(alpha, beta, self.steps) / w
        prior = np.zeros(ocean.shape)
        prior[ocean] = (variance * np.exp(self.log_factor_at(alpha, beta))) ** -0.5
        return prior

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an npz file (``from_arrays`` reads them back); log F as float32,
        ~1e-7 relative, far below the prior's own error."""
        return {
            "mask": self.mask,
            "steps": np.asarray(self.steps),
            "periodicity": np.asarray([self.periodic_x, self.periodic_y]),
            "log_alpha": np.asarray(self.log_alpha),
            "log_beta": np.asarray(self.log_beta),
            "log_factor": self.log_factor.astype(np.float32),
            "tolerance": np.asarray(self.tolerance),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GeometryTable:
        mask = np.asarray(arrays["mask"], dtype=bool)
        log_alpha = tuple(float(x) for x in arrays["log_alpha"])
        log_beta = tuple(float(x) for x in arrays["log_beta"])
        log_factor = np.asarray(arrays["log_factor"], dtype=np.float64)
        expected = (len(log_alpha), len(log_beta), int(mask.sum()))
        if log_factor.shape != expected:
            raise ValueError(f"log_factor has shape {log_factor.shape}, expected {expected}")
        periodic_x, periodic_y = (bool(p) for p in arrays["periodicity"])
        return cls(
            mask,
            int(arrays["steps"]),
            periodic_x,
            periodic_y,
            log_alpha,
            log_beta,
            log_factor,
            float(arrays["tolerance"]),
        )
