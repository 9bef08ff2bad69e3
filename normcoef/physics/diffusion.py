"""Implicit diffusion operator on a masked C-grid.

Source: Weaver, Chrust, Ménétrier & Piacentini (2021), QJRMS 147:289-320, section 2.

Fields live on an (H, W) grid, row 0 southernmost, channel order (A_i, A_j, W):

- ``a_i[i, j]``: scaled diffusivity on the north face of cell (i, j), between rows i and i+1
  (kappa_y * face length / distance between centres);
- ``a_j[i, j]``: scaled diffusivity on the east face, between columns j and j+1;
- ``w[i, j]``: cell area (volume in 2-D).

The face-weighted Laplacian is ``(K x)_c = sum_f a_f (x_c - x_nb(f))`` over the four faces of
cell c. No flux crosses a face that touches land, nor the northern edge of the top row or the
southern edge of the bottom row unless that axis is periodic (the grids are east-west
periodic by default). One implicit diffusion step solves ``T x_{n+1} = W x_n`` with
``T = W + K``, so for M steps (M even)

    L^{1/2} = (T^{-1} W)^{M/2},   C = Γ L^{1/2} W^{-1} L^{T/2} Γ,

and the normalization coefficients Γ make diag(C) = 1 on ocean cells:
``Γ = diag(V)^{-1/2}`` with ``V = (T^{-1} W)^{M/2} W^{-1} (W T^{-1})^{M/2}``.
Land cells are decoupled from the ocean, so the operator is assembled on ocean cells only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from normcoef.physics.solvers import check_solver, factorize


class FieldError(ValueError):
    """Raised when input fields cannot define a diffusion operator."""


def diffusivity_from_length_scale(length_scale: np.ndarray, steps: int) -> np.ndarray:
    """Diffusivity kappa giving Daley length scale D after M implicit steps.

    kappa = D^2 / (2M - 4) (Weaver & Mirouze 2013, QJRMS 139:242, eq. 14), valid for M > 2.
    """
    if steps <= 2:
        raise FieldError(f"steps must be > 2 for kappa = D^2/(2M-4); got {steps}")
    return np.asarray(length_scale, dtype=np.float64) ** 2 / (2 * steps - 4)


CHANNELS: tuple[str, ...] = ("A_i", "A_j", "W")
NOT_FINITE = "NaN or infinite values"


@dataclass(frozen=True)
class FieldViolation:
    """Ocean cells of one channel that no diffusion operator can have: what, how many, where."""

    channel: str
    problem: str
    cells: int
    first: tuple[int, int]
    """(row, column) of the first bad cell."""

    @property
    def rule(self) -> str:
        return "> 0 (cell areas)" if self.channel == "W" else ">= 0 (0 closes a face)"

    def describe(self) -> str:
        """The one wording of a violation, whichever command met it."""
        row, column = self.first
        return (
            f"inputs hold {self.problem} on ocean cells in channel {self.channel} "
            f"({self.cells} cell(s), first at row {row}, column {column}); "
            f"{self.channel} must be finite and {self.rule} on ocean cells"
        )


def field_violations(fields: np.ndarray, mask: np.ndarray) -> list[FieldViolation]:
    """Each rule that (3, H, W) fields break on ocean cells, channel by channel: finite
    values, A_i and A_j >= 0 (0 closes a face), W > 0. Empty when the fields are valid."""
    found = []
    for name, channel in zip(CHANNELS, fields, strict=True):
        below = channel <= 0 if name == "W" else channel < 0
        sign = "values <= 0" if name == "W" else "negative values"
        for problem, bad in ((NOT_FINITE, ~np.isfinite(channel)), (sign, below)):
            bad = bad & mask
            if bad.any():
                row, column = np.argwhere(bad)[0]
                found.append(FieldViolation(name, problem, int(bad.sum()), (int(row), int(column))))
    return found


def check_fields(fields: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate (3, H, W) fields and an (H, W) ocean mask; return float64 fields, bool mask."""
    fields = np.asarray(fields)
    mask = np.asarray(mask)
    if fields.ndim != 3 or fields.shape[0] != 3:
        raise FieldError(
            f"fields must have shape (3, H, W) with channels A_i, A_j, W; got {fields.shape}"
        )
    if mask.shape != fields.shape[1:]:
        raise FieldError(
            f"mask shape {mask.shape} does not match the fields' grid {fields.shape[1:]}"
        )
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise FieldError("mask must be boolean (True = ocean) or 0/1")
        mask = mask.astype(bool)
    if not mask.any():
        raise FieldError("mask has no ocean cell: there is nothing to normalize")
    fields = fields.astype(np.float64, copy=False)
    violations = field_violations(fields, mask)
    for violation in violations:
        if violation.problem == NOT_FINITE:
            raise FieldError(f"{violation.channel} has {NOT_FINITE} on ocean cells")
    if any(violation.channel != "W" for violation in violations):
        raise FieldError("diffusivities A_i/A_j must be non-negative on ocean cells")
    if violations:
        raise FieldError("cell areas W must be positive on ocean cells")
    return fields, mask


def open_faces(
    mask: np.ndarray, periodic_x: bool = True, periodic_y: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (H, W) maps of north and east faces that carry flux (both cells ocean)."""
    north = mask & np.roll(mask, -1, axis=0)
    east = mask & np.roll(mask, -1, axis=1)
    if not periodic_y:
        north[-1, :] = False
    if not periodic_x:
        east[:, -1] = False
    return north, east


@dataclass
class DiffusionOperator:
    """The operator T = W + K restricted to ocean cells, factorized once on the CPU, at the
    first CPU solve (a run on CUDA factorizes on the device only).

    ``steps`` is M (even). Vectors handled by the methods are ocean-cell vectors of shape
    (n_ocean,) or (n_ocean, k) in row-major order of ``mask``. ``solver`` is ``cholmod``
    (sparse Cholesky, the fast default) or ``superlu`` (the former solver, for comparison);
    both give the same solves to rounding.
    """

    fields: np.ndarray
    mask: np.ndarray
    steps: int = 10
    periodic_x: bool = True
    periodic_y: bool = False
    solver: str = "cholmod"

    def __post_init__(self) -> None:
        self.fields, self.mask = check_fields(self.fields, self.mask)
        if self.steps < 2 or self.steps % 2:
            raise FieldError(f"steps M must be even and >= 2; got {self.steps}")
        self.half_steps = self.steps // 2
        self.area = self.fields[2][self.mask]
        self.tangent = (sp.diags(self.area) + self.laplacian()).tocsc()
        check_solver(self.solver)

    @property
    def n_ocean(self) -> int:
        return int(self.mask.sum())

    def laplacian(self) -> sp.csr_matrix:
        """Symmetric positive semi-definite K on ocean cells (5-point, face-weighted)."""
        height, width = self.mask.shape
        index = np.full(self.mask.shape, -1, dtype=np.int64)
        index[self.mask] = np.arange(self.n_ocean)
        north, east = open_faces(self.mask, self.periodic_x, self.periodic_y)
        rows, cols, weights = [], [], []
        for faces, coeff, shift in (
            (north, self.fields[0], (-1, 0)),
            (east, self.fields[1], (0, -1)),
        ):
            here = index[faces]
            there = np.roll(index, shift, axis=(0, 1))[faces]
            a = coeff[faces]
            rows += [here, there, here, there]
            cols += [here, there, there, here]
            weights += [a, a, -a, -a]
        n = self.n_ocean
        return sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """T^{-1} rhs."""
        return self._factor.solve(rhs)

    @functools.cached_property
    def _factor(self) -> Any:
        return factorize(self.tangent, self.solver)

    def _area(self, x: np.ndarray) -> np.ndarray:
        return self.area if x.ndim == 1 else self.area[:, None]

    def apply_sqrt(self, x: np.ndarray) -> np.ndarray:
        """L^{1/2} x = (T^{-1} W)^{M/2} x."""
        for _ in range(self.half_steps):
            x = self.solve(self._area(x) * x)
        return x

    def apply_sqrt_transpose(self, x: np.ndarray) -> np.ndarray:
        """L^{T/2} x = (W T^{-1})^{M/2} x."""
        for _ in range(self.half_steps):
            x = self._area(x) * self.solve(x)
        return x

    def apply_covariance(self, x: np.ndarray) -> np.ndarray:
        """V x with V = L^{1/2} W^{-1} L^{T/2}, the un-normalized operator."""
        return self.apply_sqrt(self.apply_sqrt_transpose(x) / self._area(x))

    def to_grid(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter an ocean vector back onto the (H, W) grid."""
        out = np.full(self.mask.shape, fill, dtype=np.float64)
        out[self.mask] = values
        return out
