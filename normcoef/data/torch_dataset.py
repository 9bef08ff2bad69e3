"""Standardized torch tensors for the network, from a data set on disk.

Inputs are (C, H, W) float32 with channels A_i, A_j, W[, signed distance]; targets (1, H, W)
standardized γ; the ocean mask (H, W) bool travels with each sample so that land is left out
of losses and metrics. Statistics come from the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from normcoef.data.distance import standardized_distance
from normcoef.data.standardization import (
    ChannelStatistics,
    check_mode,
    compute_statistics,
    standardize,
)
from normcoef.data.storage import Split, load_split
from normcoef.data.transforms import (
    SUFFIX,
    check_augmentation_supported,
    expand_offline,
    parse_augmentation,
    random_transform,
    transform_sample,
)


@dataclass
class Standardizer:
    """Everything needed to turn physical fields into network inputs and back.

    Saved with every checkpoint, so inference needs no data set.
    """

    inputs: ChannelStatistics
    target: ChannelStatistics
    mode: str
    distance_metric: str | None = None
    periodic_x: bool = True
    # Standardized distance map per ocean mask: samples of a grid share one mask (flips give a
    # handful), and the transform costs 6-20 ms on the global grid, every item of every step.
    _distance_maps: dict[bytes, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_mode(self.mode)

    @property
    def target_scale(self) -> tuple[float, float]:
        """(mean, std) of γ over ocean cells of the training split."""
        return float(self.target.mean[0]), float(self.target.std[0])

    @property
    def in_channels(self) -> int:
        return 3 + (self.distance_metric is not None)

    @classmethod
    def fit(
        cls, train: Split, mode: str, distance_metric: str | None, periodic_x: bool = True
    ) -> Standardizer:
        if len(train) == 0:
            raise ValueError("the training split is empty: cannot compute statistics")
        inputs = compute_statistics(list(train.fields), list(train.ocean), mode)
        target = compute_statistics([g[None] for g in train.gamma], list(train.ocean), "partial")
        return cls(inputs, target, mode, distance_metric, periodic_x)

    def to_dict(self) -> dict:
        return {
            "inputs": self.inputs.to_dict(),
            "target": self.target.to_dict(),
            "mode": self.mode,
            "distance_metric": self.distance_metric,
            "periodic_x": bool(self.periodic_x),  # not np.bool_: checkpoints hold plain values
        }

    @classmethod
    def from_dict(cls, data: dict) -> Standardizer:
        return cls(
            ChannelStatistics.from_dict(data["inputs"]),
            ChannelStatistics.from_dict(data["target"]),
            data["mode"],
            data.get("distance_metric"),
            data.get("periodic_x", True),
        )

    def model_inputs(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        """(3, H, W) physical fields -> (C, H, W) float32 network input."""
        channels = [standardize(fields[:3], self.inputs, self.mode, ocean)]
        if self.distance_metric is not None:
            channels.append(self._distance_map(ocean)[None])
        return np.concatenate(channels).astype(np.float32)

    def _distance_map(self, ocean: np.ndarray) -> np.ndarray:
        key = np.packbits(ocean).tobytes() + np.asarray(ocean.shape).tobytes()
        if key not in self._distance_maps:
            self._distance_maps[key] = standardized_distance(
                ocean, self.distance_metric, self.periodic_x
            )
        return self._distance_maps[key]

    def model_target(self, gamma: np.ndarray) -> np.ndarray:
        """γ (H, W) -> standardized (1, H, W) float32 (land stays a don't-care value)."""
        mean, std = self.target_scale
        return ((gamma - mean) / std)[None].astype(np.float32)

    def physical_gamma(self, standardized: np.ndarray) -> np.ndarray:
        mean, std = self.target_scale
        return standardized * std + mean


class NormalizationDataset(Dataset):
    """(input, standardized target, ocean) triples; optional on-the-fly augmentation."""

    def __init__(
        self,
        split: Split,
        standardizer: Standardizer,
        online_transforms: list[str] | None = None,
        seed: int = 0,
        periodic_y: bool = False,
    ) -> None:
        self.split = split
        self.standardizer = standardizer
        self.online = list(online_transforms or [])
        self.periodic_y = periodic_y
        self.seed = seed
        # Without online augmentation every item is fixed: build the tensors once.
        self._cache = (
            None if self.online else [self._build(i, "identity") for i in range(len(split))]
        )

    def __len__(self) -> int:
        return len(self.split)

    def item(self, i: int, draw: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample i; with online augmentation ``draw`` (e.g. the step) picks the transform,
        so a resumed run sees the same transforms as an uninterrupted one."""
        if self._cache is not None:
            return self._cache[i]
        rng = np.random.default_rng([self.seed, draw, i])
        return self._build(i, random_transform(rng, self.online))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.item(i)

    def head(self, count: int) -> NormalizationDataset:
        """The first ``count`` samples, transformed the same way."""
        return NormalizationDataset(
            self.split.head(count), self.standardizer, self.online, self.seed, self.periodic_y
        )

    def _build(self, i: int, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fields, gamma, ocean = self.split.fields[i], self.split.gamma[i], self.split.ocean[i]
        if name != "identity":
            fields, ocean, gamma = transform_sample(
                name, fields, ocean, gamma, self.standardizer.periodic_x, self.periodic_y
            )
        return (
            torch.from_numpy(self.standardizer.model_inputs(fields, ocean)),
            torch.from_numpy(self.standardizer.model_target(gamma)),
            torch.from_numpy(np.ascontiguousarray(ocean)),
        )


def augment_offline(split: Split, transforms: list[str], periodic_x: bool) -> Split:
    """The training split followed by transformed copies (report: "20/1" for hflip)."""
    if not transforms:
        return split
    samples = expand_offline(
        list(zip(split.fields, split.ocean, split.gamma, strict=True)), transforms, periodic_x
    )
    ids = [f"{i}{SUFFIX[t]}" for i in split.ids for t in ("identity", *transforms)]
    return Split(
        ids,
        np.stack([s.fields for s in samples]),
        np.stack([s.gamma for s in samples]),
        np.stack([s.mask for s in samples]),
    )


@dataclass
class PreparedData:
    train: NormalizationDataset
    valid: NormalizationDataset
    test: NormalizationDataset
    standardizer: Standardizer


def prepare_data(
    root: str | Path,
    mode: str,
    distance_metric: str | None,
    augmentation: list[str] | str | None = None,
    augmentation_mode: str = "offline",
    seed: int = 0,
    periodic_x: bool = True,
    periodic_y: bool = False,
    limits: dict[str, int] | None = None,
) -> PreparedData:
    """Load the splits (at most ``limits[split]`` samples each), fit statistics on the
    un-augmented training split, augment."""
    limits = limits or {}
    splits = {
        name: load_split(Path(root), name, limits.get(name)) for name in ("train", "valid", "test")
    }
    if len(splits["train"]) == 0:
        raise ValueError(
            f"{root} has no training sample under train/X and train/Y; generate it with "
            "`python -m normcoef.generate` or point dataset.root at a data set"
        )
    standardizer = Standardizer.fit(splits["train"], mode, distance_metric, periodic_x)
    transforms = parse_augmentation(augmentation)
    shape = splits["train"].gamma.shape[1:]
    check_augmentation_supported(transforms, periodic_x, periodic_y, shape)
    online = None
    if augmentation_mode == "offline":
        splits["train"] = augment_offline(splits["train"], transforms, periodic_x)
    elif augmentation_mode == "online":
        online = transforms
    else:
        raise ValueError(f"augmentation mode must be offline or online; got {augmentation_mode!r}")
    return PreparedData(
        NormalizationDataset(splits["train"], standardizer, online, seed, periodic_y),
        NormalizationDataset(splits["valid"], standardizer),
        NormalizationDataset(splits["test"], standardizer),
        standardizer,
    )
