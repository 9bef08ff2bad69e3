"""Helpers only tests use: reference paths the package itself no longer takes.

``from helpers import ...`` works because pytest puts tests/ on ``sys.path`` (rootdir
conftest, the default ``prepend`` import mode).
"""

from __future__ import annotations

import numpy as np
import torch

from normcoef.data.standardization import ChannelStatistics, Mode, destandardize, standardize
from normcoef.data.transforms import transform_cells, transform_fields


def select_channels(stats: ChannelStatistics, channels: list[int]) -> ChannelStatistics:
    """The statistics of some channels only, in the order given."""
    return ChannelStatistics(stats.mean[channels], stats.std[channels])


def transform_standardized(
    name: str,
    image: np.ndarray,
    mask: np.ndarray,
    stats: ChannelStatistics,
    mode: Mode,
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Transform a standardized input (C, H, W); return it and the transformed mask.

    The reference for augmenting standardized images the long way: each channel is
    standardized with its own statistics, and quarter turns move A_j's values into the A_i
    channel: so destandardize, transform the physical fields, standardize again (report
    section 6.1). Partial standardization erased land, but a flip moves the face south (west)
    of an ocean cell onto its north (east) face, and that face may belong to a land cell:
    faces touching land are 0 by convention, so land A_i, A_j are restored as 0.
    """
    raw = destandardize(np.asarray(image, dtype=np.float64), stats)
    mask = np.asarray(mask, dtype=bool)
    if mode == "partial":
        raw[:2, ~mask] = 0.0
    moved = transform_fields(name, raw, periodic_x, periodic_y)
    moved_mask = transform_cells(name, mask)
    return standardize(moved, stats, mode, moved_mask), moved_mask


def transform_standardized_tensor(
    name: str,
    image: torch.Tensor,
    mask: torch.Tensor,
    stats: ChannelStatistics,
    mode: Mode,
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``transform_standardized`` for torch tensors (same dtype and device back)."""
    moved, moved_mask = transform_standardized(
        name,
        image.detach().cpu().numpy(),
        mask.detach().cpu().numpy(),
        stats,
        mode,
        periodic_x,
        periodic_y,
    )
    return torch.from_numpy(moved).to(image), torch.from_numpy(moved_mask).to(mask)
