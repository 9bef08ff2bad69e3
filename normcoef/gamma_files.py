"""A user's input files mapped to γ files by a trained network (the predict command).

Every input is read and checked before anything is written: fields no diffusion operator can
have are refused; a grid, units or coastline unlike the training's is a warning naming the
first file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from normcoef.console import warn
from normcoef.data.info import DatasetInfo
from normcoef.data.original_inputs import OriginalInputs
from normcoef.data.storage import (
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
from normcoef.inference import TrainedModel
from normcoef.physics.diffusion import CHANNELS, field_violations, open_faces

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
        raise DatasetError(f"{path}: {bad.describe()}")
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
    leaves nothing written. ``tta``: see ``normcoef.training.forward.predict_gamma``; ``original``:
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
    # One mask, one resolution: measured on the first input.
    if note := trained.resampling_note(fields[0], ocean) if fields else "":
        print(f"note: {note}", file=sys.stderr)
    raw = not note  # resampled, the network does not see the raw inputs: no range warnings
    warn_once(
        [
            (path, f"{text} lie more than {FAR_FROM_TRAINING:g} standard deviations")
            for path, sample in zip(inputs, fields, strict=True)
            if raw and (text := far_from_training(sample, ocean, trained))
        ],
        " from the training data's mean (other units or resolution?); the network "
        "extrapolates there",
    )
    if raw and trained.input_range is not None:
        warn_once(
            [
                (path, text)
                for path, sample in zip(inputs, fields, strict=True)
                if (text := trained.input_range.outside(sample, ocean))
            ],
            "",
        )
    warn_once(
        [
            (path, text)
            for path, sample in zip(inputs, fields, strict=True)
            if (text := flux_through_land(sample, ocean, trained))
        ],
        f"; their coastline is not that of {mask_source}: give the inputs' own mask with --mask",
    )
    if note := trained.standardizer.cover_inputs(fields, [ocean] * len(fields)):
        print(f"note: {note}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample, out in zip(fields, outputs, strict=True):
        gamma = np.where(ocean, trained.predict(sample, ocean, tta), np.nan)
        write_npz_atomically(out, gamma=gamma, mask=ocean)
    return outputs
