"""Standardized torch tensors for the network, from a data set on disk.

Inputs are (C, H, W) float32 with channels A_i, A_j, W[, signed distance][, log γ_prior];
targets (1, H, W) standardized γ, or with the ``prior_residual`` target standardized
log(γ²/γ_prior²) (``normcoef.physics.prior``: the network learns the correction of a
closed-form prior, mostly at the coast); the ocean mask (H, W) bool travels with each sample
so that land is left out of losses and metrics. Statistics come from the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from normcoef.data.distance import Metric, standardized_distance
from normcoef.data.info import DatasetInfo
from normcoef.data.standardization import (
    ChannelStatistics,
    Mode,
    check_mode,
    compute_statistics,
    standardize,
)
from normcoef.data.storage import Split, load_split
from normcoef.data.targets import check_target
from normcoef.data.transforms import (
    SUFFIX,
    check_augmentation_supported,
    expand_offline,
    parse_augmentation,
    random_transform,
    transform_sample,
)
from normcoef.physics.prior import uniform_lattice_prior


def _log_on_ocean(values: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """log of values > 0 on ocean cells; 0 on land (where γ and γ_prior are 0)."""
    return np.log(np.where(ocean, values, 1.0))


@dataclass
class Standardizer:
    """Everything needed to turn physical fields into network inputs and back.

    Saved with every checkpoint, so inference needs no data set.
    """

    inputs: ChannelStatistics
    target: ChannelStatistics
    mode: Mode
    distance_metric: Metric | None = None
    # The grid's periodicity moves faces in test-time augmentation and, with M, defines the
    # prior (prior_residual only), whose channel, log γ_prior, prior_stats standardize.
    info: DatasetInfo = field(default_factory=DatasetInfo)
    target_mode: str = "gamma"
    prior_stats: ChannelStatistics | None = None
    # Standardized distance map per ocean mask: samples of a grid share one mask (flips give a
    # handful), and the transform costs 6-20 ms on the global grid, every item of every step.
    _distance_maps: dict[bytes, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_mode(self.mode)
        check_target(self.target_mode)
        if self.uses_prior and (self.steps is None or self.prior_stats is None):
            raise ValueError("the prior_residual target needs steps and prior statistics")

    @property
    def uses_prior(self) -> bool:
        return self.target_mode == "prior_residual"

    @property
    def periodic_x(self) -> bool:
        return self.info.periodic_x

    @property
    def periodic_y(self) -> bool:
        return self.info.periodic_y

    @property
    def steps(self) -> int | None:
        return self.info.steps

    @property
    def target_scale(self) -> tuple[float, float]:
        """(mean, std) over ocean cells of the training split of the target: γ, or
        log(γ²/γ_prior²) with the prior_residual target."""
        return float(self.target.mean[0]), float(self.target.std[0])

    @property
    def in_channels(self) -> int:
        return 3 + (self.distance_metric is not None) + self.uses_prior

    @classmethod
    def fit(
        cls,
        train: Split,
        mode: Mode,
        distance_metric: Metric | None,
        info: DatasetInfo | None = None,
        target_mode: str = "gamma",
    ) -> Standardizer:
        """Statistics of the training split; ``info`` gives the grid's periodicity and M (the
        prior_residual target needs M)."""
        info = info or DatasetInfo()
        if len(train) == 0:
            raise ValueError("the training split is empty: cannot compute statistics")
        check_target(target_mode)
        inputs = compute_statistics(list(train.fields), list(train.ocean), mode)
        oceans = list(train.ocean)
        if target_mode == "gamma":
            target = compute_statistics([g[None] for g in train.gamma], oceans, "partial")
            return cls(inputs, target, mode, distance_metric, info)
        steps = info.steps
        if steps is None:
            raise ValueError("the prior_residual target needs the number of diffusion steps M")
        priors = [
            uniform_lattice_prior(f, o, steps, info.periodic_x, info.periodic_y)
            for f, o in zip(train.fields, oceans, strict=True)
        ]
        log_priors = [_log_on_ocean(p, o)[None] for p, o in zip(priors, oceans, strict=True)]
        ratios = [
            2 * (_log_on_ocean(g, o) - lp[0])[None]
            for g, o, lp in zip(train.gamma, oceans, log_priors, strict=True)
        ]
        return cls(
            inputs,
            compute_statistics(ratios, oceans, "partial"),
            mode,
            distance_metric,
            info,
            target_mode,
            compute_statistics(log_priors, oceans, "partial"),
        )

    def to_dict(self) -> dict:
        data: dict[str, Any] = {
            "inputs": self.inputs.to_dict(),
            "target": self.target.to_dict(),
            "mode": self.mode,
            "distance_metric": self.distance_metric,
            "periodic_x": self.periodic_x,  # plain bools (DatasetInfo): checkpoints hold no numpy
            "periodic_y": self.periodic_y,
            "target_mode": self.target_mode,
        }
        if self.uses_prior:
            data["steps"] = self.steps
            data["prior_stats"] = self._prior_parts()[1].to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, info: DatasetInfo | None = None) -> Standardizer:
        """Read ``to_dict``'s output back; ``info`` (a checkpoint's data set) replaces the
        grid facts the statistics carry, which are all that older checkpoints have."""
        prior_stats = data.get("prior_stats")
        steps = data.get("steps")  # recorded with prior statistics only: the M they belong to
        if info is None:
            info = DatasetInfo(
                periodic_x=data.get("periodic_x", True),
                periodic_y=data.get("periodic_y", False),
                steps=steps,
            )
        elif prior_stats is not None and steps != info.steps:
            raise ValueError(
                "the prior_residual target needs steps and prior statistics"
                if steps is None
                else f"the prior statistics were computed with M = {steps}, the data set has "
                f"M = {info.steps}; the checkpoint is inconsistent, retrain it"
            )
        return cls(
            ChannelStatistics.from_dict(data["inputs"]),
            ChannelStatistics.from_dict(data["target"]),
            data["mode"],
            data.get("distance_metric"),
            info,
            data.get("target_mode", "gamma"),  # checkpoints from before the option
            None if prior_stats is None else ChannelStatistics.from_dict(prior_stats),
        )

    def prior(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray | None:
        """γ_prior (H, W) of physical fields with the prior_residual target; None otherwise."""
        if not self.uses_prior:
            return None
        steps = self._prior_parts()[0]
        return uniform_lattice_prior(fields[:3], ocean, steps, self.periodic_x, self.periodic_y)

    def _prior_parts(self) -> tuple[int, ChannelStatistics]:
        """(M, prior statistics), both set with the prior_residual target (``__post_init__``)."""
        assert self.steps is not None and self.prior_stats is not None
        return self.steps, self.prior_stats

    def model_inputs(
        self, fields: np.ndarray, ocean: np.ndarray, prior: np.ndarray | None = None
    ) -> np.ndarray:
        """(3, H, W) physical fields -> (C, H, W) float32 network input.

        With the prior_residual target the last channel is log γ_prior, standardized over
        ocean cells (land 0); ``prior`` saves computing it again.
        """
        channels = [standardize(fields[:3], self.inputs, self.mode, ocean)]
        if self.distance_metric is not None:
            channels.append(self._distance_map(ocean)[None])
        if self.uses_prior:
            prior = self.prior(fields, ocean) if prior is None else prior
            log_prior = _log_on_ocean(cast(np.ndarray, prior), ocean)[None]
            channels.append(standardize(log_prior, self._prior_parts()[1], "partial", ocean))
        return np.concatenate(channels).astype(np.float32)

    def _distance_map(self, ocean: np.ndarray) -> np.ndarray:
        key = np.packbits(ocean).tobytes() + np.asarray(ocean.shape).tobytes()
        if key not in self._distance_maps:
            self._distance_maps[key] = standardized_distance(
                ocean, cast(Metric, self.distance_metric), self.periodic_x
            )
        return self._distance_maps[key]

    def model_target(self, gamma: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """γ (H, W) -> standardized (1, H, W) float32 (land stays a don't-care value).

        With the prior_residual target: standardized log(γ²/γ_prior²), land 0; ``prior`` is
        the sample's γ_prior.
        """
        mean, std = self.target_scale
        if not self.uses_prior:
            return ((gamma - mean) / std)[None].astype(np.float32)
        if prior is None:
            raise ValueError("the prior_residual target needs the sample's prior")
        ocean = prior > 0
        ratio = 2 * (_log_on_ocean(gamma, ocean) - _log_on_ocean(prior, ocean))
        return np.where(ocean, (ratio - mean) / std, 0.0)[None].astype(np.float32)

    def physical_gamma(
        self, standardized: np.ndarray, prior: np.ndarray | None = None
    ) -> np.ndarray:
        """Network output (H, W) -> physical γ (H, W); the one inverse of ``model_target``.

        With the prior_residual target ``prior`` is required: γ = γ_prior exp(r / 2), r the
        destandardized log(γ²/γ_prior²) (0 on land, where γ_prior is 0).
        """
        mean, std = self.target_scale
        if not self.uses_prior:
            return standardized * std + mean
        if prior is None:
            raise ValueError("the prior_residual target needs the sample's prior")
        return prior * np.exp(0.5 * (standardized * std + mean))


class NormalizationDataset(Dataset):
    """(input, standardized target, ocean) triples; optional on-the-fly augmentation."""

    def __init__(
        self,
        split: Split,
        standardizer: Standardizer,
        online_transforms: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.split = split
        self.standardizer = standardizer
        self.online = list(online_transforms or [])
        self.seed = seed
        # γ_prior per (sample, transform), computed once (prior_residual target only).
        self._priors: dict[tuple[int, str], np.ndarray | None] = {}
        # Without online augmentation every item is fixed: build the tensors once.
        self._cache: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = (
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
            self.split.head(count), self.standardizer, self.online, self.seed
        )

    def prior(self, i: int, name: str = "identity") -> np.ndarray | None:
        """γ_prior of sample i after transform ``name`` (None with the gamma target)."""
        if (i, name) not in self._priors:
            fields, ocean = self._sample(i, name)[:2]
            self._priors[i, name] = self.standardizer.prior(fields, ocean)
        return self._priors[i, name]

    def physical_gamma(self, i: int, standardized: np.ndarray) -> np.ndarray:
        """Physical γ of the network's output for (untransformed) sample i."""
        return self.standardizer.physical_gamma(standardized, self.prior(i))

    def _sample(self, i: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fields, gamma, ocean = self.split.fields[i], self.split.gamma[i], self.split.ocean[i]
        if name != "identity":
            fields, ocean, gamma = transform_sample(
                name, fields, ocean, gamma, *self.standardizer.info.periodicity
            )
        return fields, ocean, gamma

    def _build(self, i: int, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fields, ocean, gamma = self._sample(i, name)
        # The prior of the transformed fields, not the transformed prior: right by construction
        # (tests/test_prior.py also checks that the two agree).
        prior = self.prior(i, name)
        return (
            torch.from_numpy(self.standardizer.model_inputs(fields, ocean, prior)),
            torch.from_numpy(self.standardizer.model_target(gamma, prior)),
            torch.from_numpy(np.ascontiguousarray(ocean)),
        )


def augment_offline(split: Split, transforms: list[str], info: DatasetInfo) -> Split:
    """The training split followed by transformed copies (report: "20/1" for hflip), moved
    with the grid's periodicity on both axes, as online augmentation moves them."""
    if not transforms:
        return split
    samples = expand_offline(
        list(zip(split.fields, split.ocean, split.gamma, strict=True)),
        transforms,
        *info.periodicity,
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


def prepare_data(  # noqa: PLR0913 (to group: the dataset and augmentation settings)
    root: str | Path,
    mode: Mode,
    distance_metric: Metric | None,
    augmentation: list[str] | str | None = None,
    augmentation_mode: str = "offline",
    seed: int = 0,
    info: DatasetInfo | None = None,
    limits: dict[str, int] | None = None,
    target: str = "gamma",
) -> PreparedData:
    """Load the splits (at most ``limits[split]`` samples each), fit statistics on the
    un-augmented training split, augment. ``info``: the data set's description (read from
    ``root`` when None); ``target``: see ``TARGETS``; ``prior_residual`` needs its M."""
    info = info or DatasetInfo.load(root)
    limits = limits or {}
    splits = {
        name: load_split(Path(root), name, limits.get(name)) for name in ("train", "valid", "test")
    }
    if len(splits["train"]) == 0:
        raise ValueError(
            f"{root} has no training sample under train/X and train/Y; generate it with "
            "`python -m normcoef.generate` or point dataset.root at a data set"
        )
    standardizer = Standardizer.fit(splits["train"], mode, distance_metric, info, target)
    transforms = parse_augmentation(augmentation)
    height, width = splits["train"].gamma.shape[1:]
    check_augmentation_supported(transforms, *info.periodicity, (height, width))
    online = None
    if augmentation_mode == "offline":
        splits["train"] = augment_offline(splits["train"], transforms, info)
    elif augmentation_mode == "online":
        online = transforms
    else:
        raise ValueError(f"augmentation mode must be offline or online; got {augmentation_mode!r}")
    return PreparedData(
        NormalizationDataset(splits["train"], standardizer, online, seed),
        NormalizationDataset(splits["valid"], standardizer),
        NormalizationDataset(splits["test"], standardizer),
        standardizer,
    )
