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


@dataclass(frozen=True)
class InputRange:
    """The kernel widths (cells) a network was trained on: the narrowest and the widest."""

    kernel_cells: tuple[float, float]

    @classmethod
    def of(cls, fields: Sequence[np.ndarray], oceans: Sequence[np.ndarray]) -> InputRange:
        widths = np.concatenate([kernel_widths(f, o) for f, o in zip(fields, oceans, strict=True)])
        return cls((float(widths.min()), float(widths.max())))

    def to_dict(self) -> dict[str, list[float]]:
        return {"kernel_cells": list(self.kernel_cells)}

    @classmethod
    def from_dict(cls, data: dict | None) -> InputRange | None:
        """None for checkpoints from before the range was recorded."""
        if not data or "kernel_cells" not in data:
            return None
        low, high = data["kernel_cells"]
        return cls((float(low), float(high)))

    def outside(self, fields: np.ndarray, ocean: np.ndarray, what: str = "") -> str | None:
        """One line saying how much of ``what`` (named first when given) lies outside the
        range, and how far; None when all of it lies within the margin."""
        widths = kernel_widths(fields, ocean)
        low, high = self.kernel_cells
        out = (widths < low / MARGIN) | (widths > high * MARGIN)
        if not out.any():
            return None
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
        )
