"""The range of inputs a network was trained on, and how far new inputs lie outside it.

What a network learns depends on the kernel width in cells: on a face, A / W = κ e / (e' e1 e2)
≈ κ / e², so sqrt(A / W) ≈ s / sqrt(2M - 4), the width of one diffusion step in cells (report
section 2; ``data.fields``). A finer grid of the same ocean puts more cells across the same
kernel; a network trained on 1° sees it as a wider kernel than any it learned. A checkpoint
records the narrowest and widest over its training split, so ``evaluate`` and ``predict`` can
say plainly when an input lies outside, and by how much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MARGIN = 1.25
"""How far past the recorded range a width may lie before it is called outside: another sample
of the training's distribution reaches past the extremes a small split drew (1.12x on the
3-sample test set), while a grid twice as fine lies 2x outside."""


def kernel_widths(fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """sqrt(A / W) of every open face (A > 0) of the ocean cells of (3, H, W) fields A_i, A_j,
    W, both axes together: the kernel width in cells of one diffusion step."""
    area = fields[2]
    widths = [
        np.sqrt(fields[channel][open_face] / area[open_face])
        for channel in (0, 1)
        if (open_face := ocean & (fields[channel] > 0) & (area > 0)).any()
    ]
    return np.concatenate(widths) if widths else np.empty(0)


def cell_sizes(fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """sqrt(W) of the ocean cells of (3, H, W) fields: the grid spacing, in W's length unit."""
    area = fields[2][ocean]
    return np.sqrt(area[np.isfinite(area) & (area > 0)])


@dataclass(frozen=True)
class InputRange:
    """The kernel widths (cells) a network was trained on: the narrowest, the widest and the
    median; and the grid spacing sqrt(W) of its cells, the smallest and the largest."""

    kernel_cells: tuple[float, float]
    kernel_median: float | None = None
    """None for checkpoints that record only the extremes (their geometric mean stands in)."""
    cell_size: tuple[float, float] | None = None
    """None for checkpoints from before it was recorded."""

    @classmethod
    def of(cls, fields: Sequence[np.ndarray], oceans: Sequence[np.ndarray]) -> InputRange:
        pairs = list(zip(fields, oceans, strict=True))
        widths = np.concatenate([kernel_widths(f, o) for f, o in pairs])
        sizes = np.concatenate([cell_sizes(f, o) for f, o in pairs])
        return cls(
            (float(widths.min()), float(widths.max())),
            float(np.median(widths)),
            (float(sizes.min()), float(sizes.max())) if sizes.size else None,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kernel_cells": list(self.kernel_cells)}
        if self.kernel_median is not None:
            data["kernel_median"] = self.kernel_median
        if self.cell_size is not None:
            data["cell_size"] = list(self.cell_size)
        return data

    @classmethod
    def from_dict(cls, data: dict | None) -> InputRange | None:
        """None for checkpoints from before the range was recorded."""
        if not data or "kernel_cells" not in data:
            return None
        low, high = data["kernel_cells"]
        median = data.get("kernel_median")
        size = data.get("cell_size")
        return cls(
            (float(low), float(high)),
            None if median is None else float(median),
            None if size is None else (float(size[0]), float(size[1])),
        )

    @property
    def kernel_centre(self) -> float:
        """The typical training kernel width: the median, else the extremes' geometric mean."""
        if self.kernel_median is not None:
            return self.kernel_median
        return float(np.sqrt(self.kernel_cells[0] * self.kernel_cells[1]))

    def width_ratio(self, fields: np.ndarray, ocean: np.ndarray) -> float | None:
        """The inputs' median kernel width over the training's: 2 on a grid of the same ocean
        2x finer (its length scales span twice the cells), 1 on one of the training's kind
        whatever its size; None without an open face."""
        widths = kernel_widths(fields, ocean)
        return float(np.median(widths)) / self.kernel_centre if widths.size else None

    def outside(self, fields: np.ndarray, ocean: np.ndarray, what: str = "") -> str | None:
        """One line saying how much of ``what`` (named first when given) lies outside the
        range, and how far; None when all of it lies within the margin."""
        widths = kernel_widths(fields, ocean)
        low, high = self.kernel_cells
        out = (widths < low / MARGIN) | (widths > high * MARGIN)
        spacing = self._spacing_outside(fields, ocean)
        if not out.any():
            if spacing is None:
                return None
            named = f"{what}: " if what else ""
            return f"{named}{spacing}; its kernel widths in cells are the training's"
        far = []
        if widths.max() > high * MARGIN:
            far.append(f"up to {widths.max():.2f}, {widths.max() / high:.1f}x the widest")
        if widths.min() < low / MARGIN:
            far.append(f"down to {widths.min():.2f}, {low / widths.min():.1f}x below the narrowest")
        return (
            f"{what + ': ' if what else ''}the kernel width sqrt(A/W) of {out.mean():.0%} of its "
            "open faces lies "
            f"outside the {low:.2f}-{high:.2f} cells the network was trained on "
            f"({'; '.join(far)}); it extrapolates there (another resolution?)"
            + (f"; {spacing}" if spacing else "")
        )

    def _spacing_outside(self, fields: np.ndarray, ocean: np.ndarray) -> str | None:
        """How far the cells' spacing sqrt(W) lies past the training's (None: within
        ``MARGIN``, or no spacing recorded): a finer grid says so here even where its kernel
        widths, drawn in its own cells, are the training's."""
        if self.cell_size is None or not (sizes := cell_sizes(fields, ocean)).size:
            return None
        low, high = self.cell_size
        far = []
        if sizes.min() < low / MARGIN:
            far.append(f"down to {sizes.min():.3g}, {low / sizes.min():.1f}x below the smallest")
        if sizes.max() > high * MARGIN:
            far.append(f"up to {sizes.max():.3g}, {sizes.max() / high:.1f}x the largest")
        if not far:
            return None
        return (
            f"its grid spacing sqrt(W) lies outside the {low:.3g}-{high:.3g} the network was "
            f"trained on ({'; '.join(far)})"
        )
