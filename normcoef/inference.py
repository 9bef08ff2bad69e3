"""A trained network from a checkpoint, ready to map physical fields to physical γ.

Shared by ``normcoef.evaluate`` and ``normcoef.predict``. A checkpoint written by
``normcoef.training.run.run_training`` holds the weights and everything inference needs: the
resolved config (model, activation, loss, data set root), the training split's
standardization statistics and the grid's periodicity, so no data set is read to rebuild it.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from normcoef.cli import one_line
from normcoef.data.torch_dataset import Standardizer
from normcoef.data.transforms import PRESETS, transform_cells, transform_fields
from normcoef.tracking import DEFAULT_TRACKING_URI, download_checkpoint
from normcoef.training.checkpoint import CheckpointError, load_checkpoint
from normcoef.training.factory import build_model, resolve_device, unbuildable

REQUIRED_KEYS = ("model", "config", "standardizer", "periodic")
"""What ``run_training`` stores beside the weights and inference cannot do without."""

_RUN_ID = re.compile(r"[0-9a-f]{32}")

TTA_TRANSFORMS: tuple[str, ...] = ("identity", *PRESETS["flips"])
"""Test-time augmentation: the flips, which keep every grid's shape and periodicity (quarter
turns do not on east-west periodic grids) and are their own inverses on cells."""


@torch.no_grad()
def predict_gamma(
    model: nn.Module,
    standardizer: Standardizer,
    fields: np.ndarray,
    ocean: np.ndarray,
    device: torch.device,
    tta: bool = False,
) -> np.ndarray:
    """Physical γ (H, W) float64 of (3, H, W) fields on an (H, W) ocean mask.

    With ``tta`` the network sees the input under each of ``TTA_TRANSFORMS`` (fields moved by
    ``transform_fields``, so each describes the flipped operator), each output is converted to
    physical γ and flipped back, and the variances γ² are averaged: γ = sqrt(mean γ_t²).
    """
    names = TTA_TRANSFORMS if tta else ("identity",)
    periodic = (standardizer.periodic_x, standardizer.periodic_y)
    variance = np.zeros(np.shape(ocean))
    for name in names:
        moved = transform_fields(name, fields[:3], *periodic) if tta else fields
        moved_ocean = transform_cells(name, ocean) if tta else ocean
        prior = standardizer.prior(moved, moved_ocean)
        x = torch.from_numpy(standardizer.model_inputs(moved, moved_ocean, prior))
        pred = model(x[None].to(device))[0, 0].double().cpu().numpy()
        gamma = standardizer.physical_gamma(pred, prior)
        if not tta:
            return gamma
        variance += transform_cells(name, gamma) ** 2  # each flip is its own inverse
    return np.sqrt(variance / len(names))


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
        for name in names:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"run directory {path} holds none of {', '.join(names)}")
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
    periodic_x: bool
    periodic_y: bool
    step: int
    path: Path
    device: torch.device

    def predict(self, fields: np.ndarray, ocean: np.ndarray, tta: bool = False) -> np.ndarray:
        """Physical γ (H, W) float64 of (3, H, W) fields A_i, A_j, W on an (H, W) ocean mask.

        Inputs get the training's standardization, distance and prior channels
        (``Standardizer.model_inputs``); land cells hold whatever the network outputs there
        (0 with the prior_residual target). ``tta``: see ``predict_gamma``.
        """
        return predict_gamma(self.model, self.standardizer, fields, ocean, self.device, tta)


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the network of a ``run_training`` checkpoint and load its weights.

    A checkpoint from anyone is safe to load: ``load_checkpoint`` unpickles no code, and its
    config may build only the options of conf/ (``factory.unbuildable``).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    state = load_checkpoint(Path(path), map_location=device)
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}: inference needs a checkpoint written by "
            "`python -m normcoef.train` (normcoef.training.run.run_training)"
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
        periodic_x, periodic_y = (bool(flag) for flag in state["periodic"])
        # Checkpoints from before periodic_y was stored with the statistics: the grid's.
        standardizer = Standardizer.from_dict({"periodic_y": periodic_y, **state["standardizer"]})
        model = build_model(config.model, config.activation, standardizer.in_channels, periodic_x)
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
    return TrainedModel(
        model,
        standardizer,
        config,
        periodic_x,
        periodic_y,
        int(state.get("step", 0)),
        Path(path),
        device,
    )


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line arguments ``load_from_arguments`` reads, shared by the entry points."""
    parser.add_argument(
        "checkpoint", help="a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id"
    )
    parser.add_argument(
        "--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")


def load_from_arguments(args: argparse.Namespace) -> TrainedModel:
    return load_trained_model(resolve_checkpoint(args.checkpoint, args.tracking_uri), args.device)
