"""A trained network from a checkpoint, ready to map physical fields to physical γ.

Shared by the evaluate and predict commands (``normcoef.cli``) and by the models logged to
MLflow (``tracking.network_model`` imports this module by name: keep it). A checkpoint written by
``normcoef.pipeline.run_training`` holds the weights and everything inference needs: the
resolved config (model, activation, loss, data set root), the training split's
standardization statistics and the data set's description (``DatasetInfo``: grid shape,
periodicity, M), so no data set is read to rebuild it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from normcoef.console import one_line
from normcoef.data.info import DatasetInfo
from normcoef.data.input_range import InputRange
from normcoef.data.storage import (
    GRID,
)
from normcoef.data.torch_dataset import Standardizer
from normcoef.tracking import download_checkpoint
from normcoef.training.checkpoint import CheckpointError, load_checkpoint
from normcoef.training.factory import build_model, resolve_device, unbuildable
from normcoef.training.forward import predict_gamma, resampled_gamma

RESOLUTIONS = ("auto", "native")
"""How a network meets a grid finer or coarser than its own: resampled to it (auto) or as it
is (native)."""


WHOLE_RATIO_TOLERANCE = 1.25
"""How far a measured ratio of kernel widths may lie from a whole number k and still be taken
as a grid k times finer or coarser (measured: 2.02 for ½° over 1°, 1.88 for the python grid
at 128x256 over 64x128, 0.50 for 2°)."""


def whole_ratio(measured: float) -> float:
    """k (or 1/k) when ``measured`` lies within ``WHOLE_RATIO_TOLERANCE`` of a whole k >= 2
    (or of 1/k), else 1."""
    finer = measured >= 1
    factor = max(round(measured if finer else 1 / measured), 1)
    if factor < 2 or abs(np.log(measured if finer else 1 / measured) - np.log(factor)) > np.log(
        WHOLE_RATIO_TOLERANCE
    ):
        return 1.0
    return float(factor) if finer else 1.0 / factor


def check_resolution(resolution: str) -> None:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution={resolution!r}: choose one of {', '.join(RESOLUTIONS)}")


REQUIRED_KEYS = ("model", "config", "standardizer", "periodic")
"""What ``run_training`` stores beside the weights and inference cannot do without; a
checkpoint's ``dataset`` (``DatasetInfo.to_dict``) stands for ``periodic``, which only
checkpoints from before it hold."""

_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ResumePoint:
    """What ``trainer.resume`` resolved to: a local checkpoint file, and the MLflow run it was
    downloaded from when the setting was a run id (None for a file or a run directory)."""

    checkpoint: Path
    run_id: str | None = None


def resume_point(source: str | None, tracking_uri: str | None) -> ResumePoint | None:
    """``trainer.resume`` (a .pt file, a run directory or an MLflow run id; None: a fresh
    run) as the ``last.pt`` to go on from, saying which it was."""
    if not source:
        return None
    checkpoint = resolve_checkpoint(source, tracking_uri, names=("last.pt",))
    from_run = not Path(source).exists() and _RUN_ID.fullmatch(str(source)) is not None
    return ResumePoint(checkpoint, str(source) if from_run else None)


def resolve_checkpoint(
    source: str | Path,
    tracking_uri: str | None = None,
    names: tuple[str, ...] = ("best.pt", "last.pt"),
) -> Path:
    """A checkpoint file, a run directory or an MLflow run id -> a local checkpoint file.

    In a run directory, and among an MLflow run's ``checkpoints/`` artifacts, the first of
    ``names`` that exists wins (evaluation and prediction want the best checkpoint).
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        # A checkpoint folder, or the Hydra run folder above it (trainer.output_dir's default).
        for folder in (path, path / "checkpoints"):
            for name in names:
                if (folder / name).is_file():
                    return folder / name
        raise FileNotFoundError(
            f"run directory {path} holds none of {', '.join(names)}, nor does its checkpoints/"
        )
    if not _RUN_ID.fullmatch(str(source)):
        raise FileNotFoundError(
            f"no checkpoint at {source}; give a .pt file, a run directory holding "
            f"{' or '.join(names)}, or a 32-character MLflow run id"
        )
    errors = []
    for name in names:
        try:
            return download_checkpoint(str(source), tracking_uri, name)
        except FileNotFoundError as error:
            errors.append(str(error))
    raise FileNotFoundError("; ".join(errors))


@dataclass
class TrainedModel:
    """A network in eval mode on ``device``, with the transforms it was trained with."""

    model: nn.Module
    standardizer: Standardizer
    config: DictConfig
    dataset: DatasetInfo
    """The data set it was trained on: its grid's shape and periodicity, M."""
    step: int
    path: Path
    device: torch.device
    grid: Path | None = None
    """The grid.npz it was trained on; None: its data set's (``training_grid``)."""
    input_range: InputRange | None = None
    """The kernel widths it was trained on; None for checkpoints from before they were kept."""
    resolution: str = "auto"
    """``auto``: a grid k times finer or coarser than the training's is shown to the network
    at the training's resolution (``resolution_ratio``, ``resampled_gamma``); ``native``: as
    it is."""

    def resolution_ratio(self, fields: np.ndarray, ocean: np.ndarray) -> float:
        """k when the inputs' kernels span k times the cells of the training's (k >= 2, whole:
        a grid k times finer of the same ocean), 1/k when 1/k of them, and ``resolution`` is
        ``auto``; else 1. Measured on the kernel widths, not the shape: a larger grid drawn in
        its own cells is the training's kind of input and is shown as it is. 1 also when the
        network cannot be resampled (a target other than prior_residual), when a finer grid's
        sides do not divide by k, and for checkpoints that record no kernel widths."""
        check_resolution(self.resolution)
        if (
            self.resolution == "native"
            or self.input_range is None
            or not self.standardizer.uses_prior
            or (measured := self.input_range.width_ratio(fields, ocean)) is None
        ):
            return 1.0
        ratio = whole_ratio(measured)
        height, width = np.shape(ocean)[-2:]
        if ratio > 1 and (height % round(ratio) or width % round(ratio)):
            return 1.0
        return ratio

    def resampling_note(self, fields: np.ndarray, ocean: np.ndarray) -> str:
        """What inputs get when they are not at the network's resolution
        (``resolution_ratio``), in a line; "" when they are shown as they are."""
        if (ratio := self.resolution_ratio(fields, ocean)) == 1:
            return ""
        finer = ratio > 1
        factor = round(ratio if finer else 1 / ratio)
        seen, back = ("coarsened", "refined") if finer else ("refined", "averaged")
        range_ = cast(InputRange, self.input_range)
        measured = cast(float, range_.width_ratio(fields, ocean))
        return (
            f"kernels {measured:.2f}x as many cells wide as the network's (a grid {factor}x "
            f"{'finer' if finer else 'coarser'}): it is shown the inputs {seen} {factor}x and its "
            f"correction is {back} onto this grid's prior (--resolution native: as they are)"
        )

    @property
    def training_grid(self) -> Path:
        """The training grid's grid.npz: a shipped network's own, else its data set's."""
        return self.grid or Path(self.config.dataset.root) / GRID

    def predict(self, fields: np.ndarray, ocean: np.ndarray, tta: bool = False) -> np.ndarray:
        """Physical γ (H, W) float64 of (3, H, W) fields A_i, A_j, W on an (H, W) ocean mask.

        Inputs get the training's standardization, distance and prior channels
        (``Standardizer.model_inputs``); land cells hold whatever the network outputs there
        (0 with the prior_residual target). ``tta``: see ``predict_gamma``. A geometry prior
        places its nodes over inputs outside the training's (``Standardizer.cover_inputs``);
        a grid k times finer or coarser is seen at the training's resolution (``resolution``).
        """
        self.standardizer.cover_inputs([fields], [ocean])
        if (ratio := self.resolution_ratio(fields, ocean)) != 1:
            return resampled_gamma(
                self.model, self.standardizer, fields, ocean, self.device, ratio, tta
            )
        return predict_gamma(self.model, self.standardizer, fields, ocean, self.device, tta)


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the network of a ``run_training`` checkpoint and load its weights.

    A checkpoint from anyone is safe to load: ``load_checkpoint`` unpickles no code, and its
    config may build only the options of conf/ (``factory.unbuildable``).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    state = load_checkpoint(Path(path), map_location=device)
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if "dataset" in state and "periodic" in missing:
        missing.remove("periodic")
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}: inference needs a checkpoint written by "
            "`python -m normcoef.train` (normcoef.pipeline.run_training)"
        )
    # The stored config says what to build: only what conf/ offers, checked before building.
    foreign = unbuildable(state["config"]) if isinstance(state["config"], dict) else "config"
    if foreign is not None:
        raise CheckpointError(
            f"checkpoint {path}: refusing to build {foreign}; a checkpoint's config may build "
            "only the options of conf/model, conf/activation and conf/loss"
        )
    try:
        config = OmegaConf.create(state["config"])
        OmegaConf.to_container(config, resolve=True, throw_on_missing=True)  # fail here, not later
        info = stored_dataset(state, config)
        standardizer = Standardizer.from_dict(state["standardizer"], info)
        model = build_model(config.model, config.activation, standardizer.in_channels, info)
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model config builds a {type(model).__name__}, not a network")
    except (
        InstantiationException,
        OmegaConfBaseException,
        TypeError,
        ValueError,
        LookupError,
    ) as error:
        raise CheckpointError(
            f"checkpoint {path}: cannot build the network and statistics it describes: "
            f"{one_line(error)}"
        ) from error
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {path}: the weights do not fit the network its config describes: "
            f"{one_line(error)}"
        ) from error
    model.to(device).eval()
    # A geometry prior's tables: one shipped beside the checkpoint, or in its training data
    # set; read only (a user's own grid's table goes to the cache).
    data_root = OmegaConf.select(config, "dataset.root")
    beside = [Path(path).parent] + ([Path(data_root)] if data_root else [])
    standardizer.read_tables_from(*beside, write=False)
    return TrainedModel(
        model,
        standardizer,
        config,
        info,
        int(state.get("step", 0)),
        Path(path),
        device,
        input_range=InputRange.from_dict(state.get("input_range")),
    )


def stored_dataset(state: dict, config: DictConfig) -> DatasetInfo:
    """The ``DatasetInfo`` a checkpoint stores; for checkpoints from before it was stored, the
    one their ``periodic`` flags and config describe (M: the statistics', else the config's)."""
    if "dataset" in state:
        return DatasetInfo.from_dict(state["dataset"])
    periodic_x, periodic_y = state["periodic"]
    steps = state["standardizer"].get("steps", OmegaConf.select(config, "dataset.fields.steps"))
    return DatasetInfo(periodic_x=periodic_x, periodic_y=periodic_y, steps=steps)
