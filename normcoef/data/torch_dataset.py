"""Standardized torch tensors for the network, from a data set on disk.

Inputs are (C, H, W) float32 with channels A_i, A_j, W[, signed distance][, log γ_prior];
targets (1, H, W) standardized γ, or with the ``prior_residual`` target standardized
log(γ²/γ_prior²) (``normcoef.physics.prior``: the network learns the correction of a
closed-form prior, mostly at the coast); the ocean mask (H, W) bool travels with each sample
so that land is left out of losses and metrics. Statistics come from the training split only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from normcoef.data.distance import Metric, standardized_distance
from normcoef.data.info import DatasetInfo
from normcoef.data.priors import (
    DEFAULT_NODES,
    CellPrior,
    GeometryPrior,
    UniformPrior,
    make_prior,
    prior_from_dict,
)
from normcoef.data.standardization import (
    ChannelStatistics,
    Mode,
    check_mode,
    compute_statistics,
    standardize,
)
from normcoef.data.storage import Split, load_split
from normcoef.data.targets import check_target, needs_prior
from normcoef.data.transforms import (
    SUFFIX,
    Sample,
    check_augmentation_supported,
    expand_offline,
    parse_augmentation,
    random_transform,
    transform_sample,
)


def _log_on_ocean(values: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """log of values > 0 on ocean cells; 0 on land (where γ and γ_prior are 0)."""
    return np.log(np.where(ocean, values, 1.0))


def with_priors(split: Split, compute: CellPrior) -> Split:
    """``split`` carrying each sample's γ_prior, computed once: the statistics, the network's
    inputs and targets and the prior's own metrics all read these (a global grid's prior
    costs an interpolation per cell). A split that already carries them comes back as is."""
    if split.prior is not None:
        return split
    prior = np.zeros(split.gamma.shape)
    for k, (fields, ocean) in enumerate(zip(split.fields, split.ocean, strict=True)):
        prior[k] = compute(fields, ocean)
    return replace(split, prior=prior)


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
    # prior (prior_residual only), whose channel, log γ_prior, prior_stats standardize;
    # prior_model computes it (``normcoef.data.priors``: uniform or geometry, recorded).
    info: DatasetInfo = field(default_factory=DatasetInfo)
    target_mode: str = "gamma"
    prior_stats: ChannelStatistics | None = None
    prior_model: CellPrior | None = None
    # The distance channel counts the grid's closed edges as coast (conf/distance_map walls).
    distance_walls: bool = False
    # The prior as trained, kept when ``cover_inputs`` places its nodes over other inputs:
    # inputs coarsened to the training's resolution are read at the training's nodes.
    training_prior: CellPrior | None = field(default=None, repr=False, compare=False)
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
        if self.uses_prior and self.prior_model is None:
            assert self.steps is not None
            self.prior_model = UniformPrior(self.steps, *self.info.periodicity)

    @property
    def uses_prior(self) -> bool:
        return needs_prior(self.target_mode)

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
        prior: CellPrior | None = None,
        distance_walls: bool = False,
    ) -> Standardizer:
        """Statistics of the training split; ``info`` gives the grid's periodicity and M (the
        prior_residual target needs M, and reads the priors ``train`` carries, if any);
        ``prior``: the prior_residual target's γ_prior (None: the uniform one);
        ``distance_walls``: closed edges count as coast in the distance channel."""
        info = info or DatasetInfo()
        if len(train) == 0:
            raise ValueError("the training split is empty: cannot compute statistics")
        check_target(target_mode)
        inputs = compute_statistics(list(train.fields), list(train.ocean), mode)
        oceans = list(train.ocean)
        if not needs_prior(target_mode):
            target = compute_statistics([g[None] for g in train.gamma], oceans, "partial")
            return cls(inputs, target, mode, distance_metric, info, distance_walls=distance_walls)
        prior = prior or make_prior("uniform", info)
        priors = cast(np.ndarray, with_priors(train, prior).prior)
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
            prior,
            distance_walls,
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
        if self.distance_walls:  # recorded when set: older checkpoints read back without it
            data["distance_walls"] = True
        if self.uses_prior:
            data["steps"] = self.steps
            data["prior_stats"] = self._prior_stats().to_dict()
            data["prior"] = self.cell_prior.to_dict()
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
            # The prior it was trained on; checkpoints from before the choice: uniform.
            None if prior_stats is None else prior_from_dict(data.get("prior"), info),
            bool(data.get("distance_walls", False)),
        )

    def prior(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray | None:
        """γ_prior (H, W) of physical fields with the prior_residual target; None otherwise."""
        return self.cell_prior(fields, ocean) if self.uses_prior else None

    @property
    def cell_prior(self) -> CellPrior:
        """The prior_residual target's prior (``__post_init__`` sets it)."""
        assert self.prior_model is not None
        return self.prior_model

    def read_tables_from(self, *directories: Path, write: bool = True) -> None:
        """Have a geometry prior look for its grid tables in ``directories`` first, and save
        those it makes there unless ``write`` is False: the data set evaluated (write), the
        folder of a shipped network (read only)."""
        if isinstance(self.prior_model, GeometryPrior):
            self.prior_model = self.prior_model.stored_in(*directories, write=write)

    def cover_inputs(self, fields: Sequence[np.ndarray], oceans: Sequence[np.ndarray]) -> str:
        """Place a geometry prior's nodes over these inputs' ratios when they lie outside the
        training's (``GeometryPrior.covering``: another resolution); what was done, in a line
        ("" when nothing changed)."""
        if not isinstance(self.prior_model, GeometryPrior):
            return ""
        before = self.prior_model
        covering, share = before.covering(fields, oceans)
        if covering is before:
            return ""
        self.training_prior = self.training_prior or before
        self.prior_model = covering
        return (
            f"{share:.0%} of the inputs' cells have kernel widths outside the geometry prior's "
            "table of the training (another resolution?): its table is made for theirs"
        )

    def at_training_nodes(self) -> Standardizer:
        """This standardizer with the prior as trained (before any ``cover_inputs``): for
        inputs at the training's resolution."""
        if self.training_prior is None:
            return self
        return replace(self, prior_model=self.training_prior, training_prior=None)

    @property
    def prior_name(self) -> str | None:
        """``geometry`` or ``uniform`` with the prior_residual target; None otherwise."""
        return self.cell_prior.to_dict()["name"] if self.uses_prior else None

    def _prior_stats(self) -> ChannelStatistics:
        """The prior channel's statistics, set with the prior_residual target
        (``__post_init__``)."""
        assert self.prior_stats is not None
        return self.prior_stats

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
            channels.append(standardize(log_prior, self._prior_stats(), "partial", ocean))
        return np.concatenate(channels).astype(np.float32)

    def _distance_map(self, ocean: np.ndarray) -> np.ndarray:
        key = np.packbits(ocean).tobytes() + np.asarray(ocean.shape).tobytes()
        if key not in self._distance_maps:
            self._distance_maps[key] = standardized_distance(
                ocean, cast(Metric, self.distance_metric), self.periodic_x, self.distance_walls
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
        # Each sample's γ_prior, unless the split carries it (prior_residual target only).
        uses_prior = standardizer.uses_prior
        self.split = with_priors(split, standardizer.cell_prior) if uses_prior else split
        self.standardizer = standardizer
        self.online = list(online_transforms or [])
        self.seed = seed
        # γ_prior per (sample, online transform), computed when first drawn.
        self._moved_priors: dict[tuple[int, str], np.ndarray] = {}
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
        """γ_prior of sample i after transform ``name`` (None with the gamma target): the
        split's, or that of the transformed fields, computed once per sample and transform."""
        if not self.standardizer.uses_prior:
            return None
        if name == "identity":
            return cast(np.ndarray, self.split.prior)[i]
        if (i, name) not in self._moved_priors:
            fields, ocean = self._sample(i, name)[:2]
            self._moved_priors[i, name] = cast(np.ndarray, self.standardizer.prior(fields, ocean))
        return self._moved_priors[i, name]

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


def augment_offline(
    split: Split, transforms: list[str], info: DatasetInfo, prior: CellPrior | None = None
) -> Split:
    """The training split followed by transformed copies (report: "20/1" for hflip), moved
    with the grid's periodicity on both axes, as online augmentation moves them. A split
    carrying priors gives its copies theirs, from ``prior`` (``_priors_of_copies``)."""
    if not transforms:
        return split
    samples = expand_offline(
        list(zip(split.fields, split.ocean, split.gamma, strict=True)),
        transforms,
        *info.periodicity,
    )
    ids = [f"{i}{SUFFIX[t]}" for i in split.ids for t in ("identity", *transforms)]
    priors = None
    if split.prior is not None:
        if prior is None:
            raise ValueError("a split carrying priors needs its prior to give its copies theirs")
        priors = _priors_of_copies(split.prior, samples, 1 + len(transforms), prior)
    return Split(
        ids,
        np.stack([s.fields for s in samples]),
        np.stack([s.gamma for s in samples]),
        np.stack([s.mask for s in samples]),
        priors,
    )


def _priors_of_copies(
    prior: np.ndarray, copies: list[Sample], per_sample: int, compute: CellPrior
) -> np.ndarray:
    """γ_prior of each of ``expand_offline``'s copies, ``per_sample`` per original (itself
    first): the original's prior, or the prior of the transformed fields. Not the transformed
    prior: the two agree only up to rounding under quarter turns (tests/test_prior.py)."""
    priors = np.repeat(prior, per_sample, axis=0)
    for k, copy in enumerate(copies):
        if k % per_sample:
            priors[k] = compute(copy.fields, copy.mask)
    return priors


@dataclass
class PreparedData:
    train: NormalizationDataset
    valid: NormalizationDataset
    test: NormalizationDataset
    standardizer: Standardizer


@dataclass(frozen=True)
class DataSettings:
    """What ``prepare_data`` reads and how: the data set at ``root`` (at most ``limits[split]``
    samples per split), its standardization (``Mode``), the distance channel, the augmentation
    (``parse_augmentation``'s spec, ``offline`` or ``online``, drawn with ``seed``) and the
    target (``TARGETS``) and, with the prior_residual target, its prior (``PRIORS``: a
    geometry table is read from, or made into, ``root``); ``distance_walls``: the distance
    channel counts closed edges as coast."""

    root: str | Path
    standardization: Mode
    distance_metric: Metric | None
    augmentation: Sequence[str] | str | None = None
    augmentation_mode: str = "offline"
    seed: int = 0
    limits: Mapping[str, int] | None = None
    target: str = "gamma"
    prior: str = "geometry"
    prior_nodes: int = DEFAULT_NODES
    distance_walls: bool = False


def training_prior(settings: DataSettings, info: DatasetInfo, train: Split) -> CellPrior | None:
    """The prior of ``settings`` (None without the prior_residual target), its geometry
    nodes placed on ``train``, its grid tables kept in the data set's root."""
    if not needs_prior(settings.target):
        return None
    return make_prior(
        settings.prior,
        info,
        train.fields,
        train.ocean,
        nodes=settings.prior_nodes,
        directories=(Path(settings.root),),
    )


def prepare_data(settings: DataSettings, info: DatasetInfo | None = None) -> PreparedData:
    """Load the splits, fit statistics on the un-augmented training split, augment.

    ``info``: the data set's description (read from ``settings.root`` when None); the
    prior_residual target needs its M. Each sample's γ_prior is computed once: the training
    split carries its priors into the statistics, the augmented copies and the data set.
    """
    info = info or DatasetInfo.load(settings.root)
    limits = settings.limits or {}
    splits = {
        name: load_split(Path(settings.root), name, limits.get(name))
        for name in ("train", "valid", "test")
    }
    if len(splits["train"]) == 0:
        raise ValueError(
            f"{settings.root} has no training sample under train/X and train/Y; generate it "
            "with `python -m normcoef.generate` or point dataset.root at a data set"
        )
    prior = training_prior(settings, info, splits["train"])
    if prior is not None:
        splits["train"] = with_priors(splits["train"], prior)
    standardizer = Standardizer.fit(
        splits["train"],
        settings.standardization,
        settings.distance_metric,
        info,
        settings.target,
        prior,
        settings.distance_walls,
    )
    transforms = parse_augmentation(settings.augmentation)
    height, width = splits["train"].gamma.shape[1:]
    check_augmentation_supported(transforms, *info.periodicity, (height, width))
    online = None
    if settings.augmentation_mode == "offline":
        splits["train"] = augment_offline(splits["train"], transforms, info, prior)
    elif settings.augmentation_mode == "online":
        online = transforms
    else:
        raise ValueError(
            f"augmentation mode must be offline or online; got {settings.augmentation_mode!r}"
        )
    return PreparedData(
        NormalizationDataset(splits["train"], standardizer, online, settings.seed),
        NormalizationDataset(splits["valid"], standardizer),
        NormalizationDataset(splits["test"], standardizer),
        standardizer,
    )
