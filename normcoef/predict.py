"""Predict normalization coefficients γ with a trained network.

    python -m normcoef.predict CHECKPOINT INPUT [INPUT ...] -o OUT_DIR [--mask grid.npz] [--tta]

CHECKPOINT is a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id. Each
INPUT is an npz file holding one (3, H, W) array A_i, A_j, W (named ``arr_0`` or alone, as in
a data set's ``X/<id>.npz``; an array with a halo, equally wide on both sides of each axis, is
cropped to the mask), or a directory of them. Each gives ``OUT_DIR/<id>_norm_coeffs.npz`` with
``gamma`` (H, W) float64, NaN on land, and ``mask`` (H, W) bool, True on ocean:

    with np.load("out/00000_norm_coeffs.npz") as f:
        gamma, ocean = f["gamma"], f["mask"]

The mask is the training data set's ``grid.npz`` unless ``--mask`` gives another. The
networks are fully convolutional, so another grid works when its mask is given (with a
warning saying how it differs from the training grid); the distance channel is recomputed
from that mask, the standardization statistics stay the training's.

On ocean cells inputs must be what a diffusion operator can have (``physics.check_fields``):
finite, A_i and A_j >= 0 (0 closes a face, as on every face touching land) and W > 0;
anything else is refused. Values far outside the training statistics get a warning.
Non-finite land values are set to 0 (the generator's closed land faces), as with "full"
standardization land values reach the network. Outputs are written atomically and never
through a link: an existing output, a link included, is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from normcoef.cli import exit_on_user_error, warn
from normcoef.data.storage import (
    GRID,
    METADATA,
    TARGET_SUFFIX,
    DatasetError,
    crop_halo,
    load_array,
    load_mask,
    read_json,
)
from normcoef.inference import TrainedModel, add_checkpoint_arguments, load_from_arguments

CHANNELS = ("A_i", "A_j", "W")
FAR_FROM_TRAINING = 10.0
"""Standard deviations from the training mean beyond which an input is an extrapolation
(other units or another resolution, typically)."""


def input_files(paths: list[str | Path]) -> list[Path]:
    """The files given, with each directory replaced by its input ``*.npz`` files (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p
                for p in path.glob("*.npz")
                if not p.name.endswith(f"{TARGET_SUFFIX}.npz") and ".tmp" not in p.name
            )
            if not found:
                raise FileNotFoundError(f"directory {path} holds no input .npz file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no input file or directory {path}")
    return files


def output_path(out_dir: Path, input_path: Path) -> Path:
    """``<out_dir>/<id>_norm_coeffs.npz``, the id being the input's name up to its first dot."""
    return Path(out_dir) / f"{input_path.name.split('.')[0]}{TARGET_SUFFIX}.npz"


def grid_differences(ocean: np.ndarray, mask_path: Path, trained: TrainedModel) -> str | None:
    """How the grid of ``mask_path`` differs from the training grid (None: it does not).

    Periodicity is known only for a data set's grid.npz (its metadata.json beside it).
    """
    train_path = Path(trained.config.dataset.root) / GRID
    if not train_path.is_file():
        return f"the training grid {train_path} is missing, so {mask_path} cannot be compared"
    train_ocean = load_mask(train_path)
    (h, w), (th, tw) = ocean.shape, train_ocean.shape
    found = []
    if ocean.shape != train_ocean.shape:
        found.append(f"shape {h}x{w} vs {th}x{tw}")
    elif (changed := int((ocean != train_ocean).sum())) > 0:
        found.append(f"{changed} of {ocean.size} mask cells differ")
    meta = read_json(mask_path.parent / METADATA) or {}
    trained_periodic = (trained.periodic_x, trained.periodic_y)
    if "periodic_x" in meta:
        periodic = (bool(meta["periodic_x"]), bool(meta.get("periodic_y", False)))
        if periodic != trained_periodic:
            found.append(
                f"periodic (x, y) {periodic} vs {trained_periodic}; the network keeps the "
                "training's padding"
            )
    if not found:
        return None
    return f"{mask_path} is not the training grid {train_path}: " + "; ".join(found)


def check_physical(path: Path, fields: np.ndarray, ocean: np.ndarray) -> None:
    """Refuse (3, H, W) fields no diffusion operator can have on ocean cells (the rules of
    ``physics.check_fields``), naming the channel and the first bad cell."""
    for name, channel in zip(CHANNELS, fields, strict=True):
        if name == "W":
            below, problem, rule = channel <= 0, "values <= 0", "> 0 (cell areas)"
        else:
            below, problem, rule = channel < 0, "negative values", ">= 0 (0 closes a face)"
        for bad, what in ((~np.isfinite(channel), "NaN or infinite values"), (below, problem)):
            bad = bad & ocean
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise DatasetError(
                    f"{path}: inputs hold {what} on ocean cells in channel {name} "
                    f"({int(bad.sum())} cell(s), first at row {row}, column {column}); "
                    f"{name} must be finite and {rule} on ocean cells"
                )


def far_from_training(fields: np.ndarray, ocean: np.ndarray, trained: TrainedModel) -> str | None:
    """Which channels lie more than ``FAR_FROM_TRAINING`` standard deviations from the training
    statistics on some ocean cells (None: none do)."""
    stats = trained.standardizer.inputs
    z = np.abs(fields[:, ocean] - stats.mean[:3, None]) / stats.std[:3, None]
    far = (z > FAR_FROM_TRAINING).sum(axis=1)
    parts = [f"{name} on {n} cell(s)" for name, n in zip(CHANNELS, far, strict=True) if n]
    return ", ".join(parts) + f" of {int(ocean.sum())} ocean cells" if parts else None


def read_inputs(path: Path, ocean: np.ndarray, mask_source: str) -> np.ndarray:
    """(3, H, W) fields A_i, A_j, W of an input file, checked against the (H, W) mask."""
    fields = load_array(path)
    if fields.ndim != 3 or fields.shape[0] < 3:
        raise DatasetError(
            f"{path}: inputs must be (3, H, W) with channels A_i, A_j, W; got {fields.shape}"
        )
    try:
        fields = crop_halo(fields[:3], ocean.shape, path)
    except DatasetError as error:
        raise DatasetError(
            f"{error}; for inputs on another grid than {mask_source}, give its mask with --mask"
        ) from None
    check_physical(path, fields, ocean)
    return np.where(np.isfinite(fields), fields, 0.0)


def check_outputs(outputs: list[Path], overwrite: bool) -> None:
    """Refuse existing outputs unless ``overwrite``. A link, dangling or not, counts as
    existing: it is replaced, never followed (writing through it could land anywhere)."""
    existing = [path for path in outputs if os.path.lexists(path)]
    folders = [path for path in existing if path.is_dir() and not path.is_symlink()]
    if folders:
        raise IsADirectoryError(f"output {folders[0]} is a directory; move it or choose another -o")
    if existing and not overwrite:
        first = existing[0]
        link = f" (a link to {os.readlink(first)})" if first.is_symlink() else ""
        raise FileExistsError(
            f"{len(existing)} output file(s) exist, e.g. {first}{link}; pass --overwrite to "
            "replace them"
        )


def _new_file_mode() -> int:
    """The permissions ``open`` would give a new file (mkstemp's are owner-only)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    """npz through a temporary file in ``path``'s folder and ``os.replace``: an interrupted
    write leaves no partial file, and a link at ``path`` is itself replaced."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, **arrays)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def predict_files(
    trained: TrainedModel,
    inputs: list[Path],
    ocean: np.ndarray,
    out_dir: str | Path,
    overwrite: bool = False,
    mask_source: str = "the mask",
    tta: bool = False,
) -> list[Path]:
    """Write γ of every input; check every input and output first, so that a bad one
    leaves nothing written. ``tta``: see ``normcoef.inference.predict_gamma``."""
    out_dir = Path(out_dir)
    outputs = [output_path(out_dir, path) for path in inputs]
    if len(set(outputs)) < len(outputs):
        raise ValueError("two inputs share an id (file name up to the first dot)")
    check_outputs(outputs, overwrite)
    fields = [read_inputs(path, ocean, mask_source) for path in inputs]
    far = [
        (path, text)
        for path, sample in zip(inputs, fields, strict=True)
        if (text := far_from_training(sample, ocean, trained))
    ]
    if far:
        others = f" (and {len(far) - 1} other file(s))" if len(far) > 1 else ""
        warn(
            f"{far[0][0]}{others}: {far[0][1]} lie more than {FAR_FROM_TRAINING:g} standard "
            "deviations from the training data's mean (other units or resolution?); the "
            "network extrapolates there"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample, out in zip(fields, outputs, strict=True):
        gamma = np.where(ocean, trained.predict(sample, ocean, tta), np.nan)
        write_npz_atomically(out, gamma=gamma, mask=ocean)
    return outputs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m normcoef.predict",
        description="Write γ predicted by a trained CNN for input fields A_i, A_j, W.",
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "inputs", nargs="+", help="npz files of (3, H, W) fields, or directories of them"
    )
    parser.add_argument(
        "-o", "--output-dir", type=Path, required=True, help="where <id>_norm_coeffs.npz go"
    )
    parser.add_argument(
        "--mask",
        help="grid.npz (key mask) or npz of one (H, W) array, nonzero on ocean (default: the "
        "training data set's grid.npz)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (links: the link)"
    )
    parser.add_argument(
        "--tta", action="store_true", help="average the CNN's γ² over flips of each input"
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> list[Path]:
    args = parse_args(argv)
    trained = load_from_arguments(args)
    if args.mask is not None:
        mask_path, mask_source = Path(args.mask), str(args.mask)
    else:
        mask_path = Path(trained.config.dataset.root) / GRID
        mask_source = f"the training grid {mask_path}"
    ocean = load_mask(mask_path)
    if args.mask is not None and (differences := grid_differences(ocean, mask_path, trained)):
        warn(f"{differences}; the network is fully convolutional, but learned from its grid only")
    outputs = predict_files(
        trained,
        input_files(args.inputs),
        ocean,
        args.output_dir,
        args.overwrite,
        mask_source,
        args.tta,
    )
    print(f"Wrote {len(outputs)} file(s) to {args.output_dir}.")
    return outputs


if __name__ == "__main__":
    main()
