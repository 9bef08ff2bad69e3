"""Halo padding for "valid" convolutions and the center crop that aligns skip connections.

With valid padding the network pads its input once, by one cell per 3x3 convolution, with
the grid's real neighbours: wrapped along a periodic axis (the east-west seam of a global
grid), the edge value repeated along a closed one. Every convolution then shrinks the image
by one cell per side, so the output covers exactly the input grid (report §3, Appendix C).
"""

from __future__ import annotations

import torch


def halo_index(
    n: int, halo: int, periodic: bool, device: torch.device | None = None, extra: int = 0
) -> torch.Tensor:
    """Source index of each of the n + 2 halo (+ ``extra``) cells along one axis: wrapped
    along a periodic axis, the edge repeated along a closed one. ``extra`` cells after the
    axis let a window start anywhere on a periodic axis (training crops)."""
    index = torch.arange(-halo, n + extra + halo, device=device)
    # Indexing, not F.pad: circular F.pad refuses a halo wider than the axis.
    return index.remainder(n) if periodic else index.clamp(0, n - 1)


def halo_pad(x: torch.Tensor, halo: int, *, periodic_y: bool, periodic_x: bool) -> torch.Tensor:
    """(..., H, W) -> (..., H + 2 halo, W + 2 halo); y is axis -2 (rows), x is axis -1."""
    rows = halo_index(x.shape[-2], halo, periodic_y, x.device)
    cols = halo_index(x.shape[-1], halo, periodic_x, x.device)
    return x[..., rows[:, None], cols]


def center_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The centre of x (..., H, W) with the spatial size of ``like``; x unchanged if equal."""
    height, width = like.shape[-2:]
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]
