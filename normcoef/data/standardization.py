"""Per-channel standardization of input fields and targets (report section 2).

- ``full``: mean and std of each channel over every cell of the training images (Full_std).
- ``partial``: mean and std over ocean cells only, land set to 0 afterwards (Partial_std).
Targets γ are always standardized with ocean statistics: land γ is 0 by convention and
carries no information. Statistics come from the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["full", "partial"]
MODES: tuple[str, ...] = ("full", "partial")


@dataclass(frozen=True)
class ChannelStatistics:
    """Per-channel mean and std, each of shape (C,)."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.atleast_1d(np.asarray(self.mean, dtype=np.float64))
        std = np.atleast_1d(np.asarray(self.std, dtype=np.float64))
        if mean.shape != std.shape:
            raise ValueError(f"mean {mean.shape} and std {std.shape} shapes differ")
        # A constant channel (e.g. uniform areas) would divide by zero: leave it centred only.
        std = np.where(std > 0, std, 1.0)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> ChannelStatistics:
        return cls(np.asarray(data["mean"]), np.asarray(data["std"]))


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown standardization {mode!r}; choose one of {MODES}")


def compute_statistics(
    images: list[np.ndarray], masks: list[np.ndarray], mode: Mode
) -> ChannelStatistics:
    """Statistics of (C, H, W) images; ``partial`` uses the cells where the mask is True."""
    check_mode(mode)
    if not images:
        raise ValueError("no training image to compute standardization statistics from")
    if mode == "full":
        values = np.concatenate([img.reshape(img.shape[0], -1) for img in images], axis=1)
    else:
        values = np.concatenate(
            [img[:, mask] for img, mask in zip(images, masks, strict=True)], axis=1
        )
    return ChannelStatistics(values.mean(axis=1), values.std(axis=1))


def standardize(
    image: np.ndarray, stats: ChannelStatistics, mode: Mode, mask: np.ndarray
) -> np.ndarray:
    """(C, H, W) physical image -> standardized; ``partial`` zeroes land cells."""
    check_mode(mode)
    out = (image - stats.mean[:, None, None]) / stats.std[:, None, None]
    if mode == "partial":
        out = np.where(mask[None], out, 0.0)
    return out
