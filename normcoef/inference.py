"""A trained network from a checkpoint, ready to map physical fields to physical γ.

Shared by ``normcoef.evaluate`` and ``normcoef.predict``. A checkpoint written by
``normcoef.pipeline.run_training`` holds the weights and everything inference needs: the
resolved config (model, activation, loss, data set root), the training split's
standardization statistics and the data set's description (``DatasetInfo``: grid shape,
periodicity, M), so no data set is read to rebuild it.
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

from normcoef.cli import one_line, warn
from normcoef.data.info import DatasetInfo
from normcoef.data.original_inputs import OriginalInputs
from normcoef.data.storage import (
    GRID,
    METADATA,
    DatasetError,
    check_input_channels,
    check_outputs,
    crop_halo,
    load_array,
    load_mask,
    output_path,
    write_npz_atomically,
)
from normcoef.data.torch_dataset import Standardizer
from normcoef.physics.diffusion import CHANNELS, field_violations, open_faces
from normcoef.pretrained import available, checkpoint_path, describe, grid_path
from normcoef.tracking import DEFAULT_TRACKING_URI, download_checkpoint
from normcoef.training.checkpoint import CheckpointError, load_checkpoint
from normcoef.training.factory import build_model, resolve_device, unbuildable
from normcoef.training.forward import predict_gamma

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

    @property
    def training_grid(self) -> Path:
        """The training grid's grid.npz: a shipped network's own, else its data set's."""
        return self.grid or Path(self.config.dataset.root) / GRID

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
    return TrainedModel(
        model,
        standardizer,
        config,
        info,
        int(state.get("step", 0)),
        Path(path),
        device,
    )


def stored_dataset(state: dict, config: DictConfig) -> DatasetInfo:
    """The ``DatasetInfo`` a checkpoint stores; for checkpoints from before it was stored, the
    one their ``periodic`` flags and config describe (M: the statistics', else the config's)."""
    if "dataset" in state:
        return DatasetInfo.from_dict(state["dataset"])
    periodic_x, periodic_y = state["periodic"]
    steps = state["standardizer"].get("steps", OmegaConf.select(config, "dataset.fields.steps"))
    return DatasetInfo(periodic_x=periodic_x, periodic_y=periodic_y, steps=steps)


FAR_FROM_TRAINING = 10.0
"""Standard deviations from the training mean beyond which an input is an extrapolation
(other units or another resolution, typically)."""


def grid_differences(ocean: np.ndarray, mask_path: Path, trained: TrainedModel) -> str | None:
    """How the grid of ``mask_path`` differs from the training grid (None: it does not).

    Periodicity is known only for a data set's grid.npz (its metadata.json beside it).
    """
    train_path = trained.training_grid
    if not train_path.is_file():
        return f"the training grid {train_path} is missing, so {mask_path} cannot be compared"
    train_ocean = load_mask(train_path)
    (h, w), (th, tw) = ocean.shape, train_ocean.shape
    found = []
    if ocean.shape != train_ocean.shape:
        found.append(f"shape {h}x{w} vs {th}x{tw}")
    elif (changed := int((ocean != train_ocean).sum())) > 0:
        found.append(f"{changed} of {ocean.size} mask cells differ")
    trained_periodic = trained.dataset.periodicity
    if (mask_path.parent / METADATA).is_file():
        periodic = DatasetInfo.load(mask_path.parent).periodicity
        if periodic != trained_periodic:
            found.append(
                f"periodic (x, y) {periodic} vs {trained_periodic}; the network keeps the "
                "training's padding"
            )
    if not found:
        return None
    return f"{mask_path} is not the training grid {train_path}: " + "; ".join(found)


def far_from_training(fields: np.ndarray, ocean: np.ndarray, trained: TrainedModel) -> str | None:
    """Which channels lie more than ``FAR_FROM_TRAINING`` standard deviations from the training
    statistics on some ocean cells (None: none do)."""
    stats = trained.standardizer.inputs
    z = np.abs(fields[:, ocean] - stats.mean[:3, None]) / stats.std[:3, None]
    far = (z > FAR_FROM_TRAINING).sum(axis=1)
    parts = [f"{name} on {n} cell(s)" for name, n in zip(CHANNELS, far, strict=True) if n]
    return ", ".join(parts) + f" of {int(ocean.sum())} ocean cells" if parts else None


def read_inputs(
    path: Path, ocean: np.ndarray, mask_source: str, original: OriginalInputs | None = None
) -> tuple[np.ndarray, str | None]:
    """(3, H, W) fields A_i, A_j, W of an input file, checked against the (H, W) mask: refused
    where no diffusion operator can have them on ocean cells (``physics.field_violations``),
    naming the channel and the first bad cell. Also says, when it did, how it cropped a halo.
    ``original``: the file is in the original code's layout, read as ``OriginalInputs`` says."""
    fields = load_array(path)
    if original is None:
        check_input_channels(fields, path)
    have = fields.shape[1:]
    try:
        if original is not None:
            fields = original.fields(fields, ocean, path)
        fields = crop_halo(fields, ocean.shape, path)
    except DatasetError as error:
        raise DatasetError(
            f"{error}; for inputs on another grid than {mask_source}, give its mask with --mask"
        ) from None
    for bad in field_violations(fields, ocean)[:1]:
        row, column = bad.first
        raise DatasetError(
            f"{path}: inputs hold {bad.problem} on ocean cells in channel {bad.channel} "
            f"({bad.cells} cell(s), first at row {row}, column {column}); "
            f"{bad.channel} must be finite and {bad.rule} on ocean cells"
        )
    cropped = None
    if have != ocean.shape:
        rows, columns = (np.subtract(have, ocean.shape) // 2).tolist()
        cropped = (
            f"inputs {have[0]}x{have[1]} were cropped to the {ocean.shape[0]}x{ocean.shape[1]} of "
            f"{mask_source} (a halo of {rows} row(s) and {columns} column(s) on each side)"
        )
    return np.where(np.isfinite(fields), fields, 0.0), cropped


def flux_through_land(fields: np.ndarray, ocean: np.ndarray, trained: TrainedModel) -> str | None:
    """Faces the mask closes (touching land) where the inputs' A_i or A_j are not 0, as every
    input made on that grid has them: the inputs' coastline is not the mask's (None: it is)."""
    north, east = open_faces(ocean, *trained.dataset.periodicity)
    faces = int(np.count_nonzero(fields[0][~north])) + int(np.count_nonzero(fields[1][~east]))
    if not faces:
        return None
    return f"A_i or A_j are nonzero on {faces} face(s) that the mask closes (touching land)"


def warn_once(found: list[tuple[Path, str]], advice: str) -> None:
    """One warning for a finding shared by several files: the first file, and how many more."""
    if found:
        others = f" (and {len(found) - 1} other file(s))" if len(found) > 1 else ""
        warn(f"{found[0][0]}{others}: {found[0][1]}{advice}")


def predict_files(
    trained: TrainedModel,
    inputs: list[Path],
    ocean: np.ndarray,
    out_dir: str | Path,
    overwrite: bool = False,
    mask_source: str = "the mask",
    tta: bool = False,
    original: OriginalInputs | None = None,
) -> list[Path]:
    """Write γ of every input; check every input and output first, so that a bad one
    leaves nothing written. ``tta``: see ``normcoef.inference.predict_gamma``; ``original``:
    see ``read_inputs``."""
    out_dir = Path(out_dir)
    outputs = [output_path(out_dir, path) for path in inputs]
    if len(set(outputs)) < len(outputs):
        raise ValueError("two inputs share an id (file name up to the first dot)")
    check_outputs(outputs, overwrite)
    read = [read_inputs(path, ocean, mask_source, original) for path in inputs]
    fields = [sample for sample, _ in read]
    warn_once(
        [(path, text) for path, (_, text) in zip(inputs, read, strict=True) if text],
        "; if they are on another grid, give its mask with --mask",
    )
    warn_once(
        [
            (path, f"{text} lie more than {FAR_FROM_TRAINING:g} standard deviations")
            for path, sample in zip(inputs, fields, strict=True)
            if (text := far_from_training(sample, ocean, trained))
        ],
        " from the training data's mean (other units or resolution?); the network "
        "extrapolates there",
    )
    warn_once(
        [
            (path, text)
            for path, sample in zip(inputs, fields, strict=True)
            if (text := flux_through_land(sample, ocean, trained))
        ],
        f"; their coastline is not that of {mask_source}: give the inputs' own mask with --mask",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample, out in zip(fields, outputs, strict=True):
        gamma = np.where(ocean, trained.predict(sample, ocean, tta), np.nan)
        write_npz_atomically(out, gamma=gamma, mask=ocean)
    return outputs


CHECKPOINT_HELP = "a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id"


def add_checkpoint_arguments(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """The command-line arguments ``load_from_arguments`` reads, shared by the entry points;
    without ``positional`` the caller adds CHECKPOINT itself (``checkpoint_or_pretrained``)."""
    if positional:
        parser.add_argument("checkpoint", nargs="?", help=CHECKPOINT_HELP + " (or --pretrained)")
    parser.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a network shipped with normcoef instead of CHECKPOINT: "
        + (", ".join(available()) or "none shipped")
        + " (provenance: normcoef/pretrained/NAME.json)",
    )
    parser.add_argument(
        "--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")


def checkpoint_or_pretrained(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exactly one of CHECKPOINT and --pretrained, or argparse's one-line usage error."""
    if args.pretrained is not None and args.checkpoint is not None:
        parser.error(f"give CHECKPOINT ({args.checkpoint}) or --pretrained, not both")
    if args.pretrained is None and args.checkpoint is None:
        parser.error(
            "give a CHECKPOINT or --pretrained NAME ("
            + (", ".join(available()) or "none shipped")
            + ")"
        )


def load_from_arguments(args: argparse.Namespace) -> TrainedModel:
    """The network the arguments name: a shipped one (``--pretrained``, its grid with it)
    or a checkpoint, run directory or MLflow run id."""
    if args.pretrained is not None:
        trained = load_trained_model(checkpoint_path(args.pretrained), args.device)
        trained.grid = grid_path(args.pretrained)
        print(f"Using {describe(args.pretrained)}.")
        return trained
    return load_trained_model(resolve_checkpoint(args.checkpoint, args.tracking_uri), args.device)
