"""Predict normalization coefficients γ with a trained network.

    python -m normcoef.predict CHECKPOINT INPUT [INPUT ...] -o OUT_DIR [--mask grid.npz]

CHECKPOINT is a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id. Each
INPUT is an npz file holding one (3, H, W) array A_i, A_j, W (named ``arr_0`` or alone, as in
a data set's ``X/<id>.npz``; an array with an equal halo on every side is centre-cropped to
the mask), or a directory of them. Each gives ``OUT_DIR/<id>_norm_coeffs.npz`` with ``gamma``
(H, W) float64, NaN on land, and ``mask`` (H, W) bool, True on ocean:

    with np.load("out/00000_norm_coeffs.npz") as f:
        gamma, ocean = f["gamma"], f["mask"]

The mask is the training data set's ``grid.npz`` unless ``--mask`` gives another. The
networks are fully convolutional, so another grid works when its mask is given; the
distance channel is recomputed from that mask, the standardization statistics stay the
training's. Inputs must be finite on ocean cells; non-finite land values are set to 0 (the
generator's closed land faces), as with "full" standardization land values reach the network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from normcoef.data.storage import GRID, TARGET_SUFFIX, DatasetError, center_crop, load_array
from normcoef.inference import TrainedModel, add_checkpoint_arguments, load_from_arguments


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


def load_mask(path: str | Path) -> np.ndarray:
    """(H, W) bool ocean mask: the ``mask`` array of a ``grid.npz``, or an npz's only array
    (nonzero = ocean)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mask file {path}; give one with --mask")
    with np.load(path) as data:
        mask = data["mask"] if "mask" in data else None
    mask = np.asarray(load_array(path) if mask is None else mask) != 0
    if mask.ndim != 2 or not mask.any():
        raise DatasetError(f"{path}: the mask must be 2-D (H, W) with some ocean; got {mask.shape}")
    return mask


def read_inputs(path: Path, ocean: np.ndarray, mask_source: str) -> np.ndarray:
    """(3, H, W) fields A_i, A_j, W of an input file, checked against the (H, W) mask."""
    fields = load_array(path)
    if fields.ndim != 3 or fields.shape[0] < 3:
        raise DatasetError(
            f"{path}: inputs must be (3, H, W) with channels A_i, A_j, W; got {fields.shape}"
        )
    halo = np.subtract(fields.shape[1:], ocean.shape) / 2
    if halo[0] != halo[1] or halo[0] < 0 or halo[0] % 1:
        raise DatasetError(
            f"{path}: inputs on a {fields.shape[1]}x{fields.shape[2]} grid do not fit the "
            f"{ocean.shape[0]}x{ocean.shape[1]} mask of {mask_source} (nor with an equal halo "
            "on every side); for another grid give its mask with --mask"
        )
    fields = center_crop(fields[:3], ocean.shape)
    finite = np.isfinite(fields)
    if not finite[:, ocean].all():
        raise DatasetError(f"{path}: inputs hold NaN or infinite values on ocean cells")
    return np.where(finite, fields, 0.0)


def predict_files(
    trained: TrainedModel,
    inputs: list[Path],
    ocean: np.ndarray,
    out_dir: str | Path,
    overwrite: bool = False,
    mask_source: str = "the mask",
) -> list[Path]:
    """Write γ of every input; check every input and output first, so that a bad one
    leaves nothing written."""
    out_dir = Path(out_dir)
    outputs = [output_path(out_dir, path) for path in inputs]
    if len(set(outputs)) < len(outputs):
        raise ValueError("two inputs share an id (file name up to the first dot)")
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) exist, e.g. {existing[0]}; pass --overwrite"
        )
    fields = [read_inputs(path, ocean, mask_source) for path in inputs]
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample, out in zip(fields, outputs, strict=True):
        gamma = np.where(ocean, trained.predict(sample, ocean), np.nan)
        np.savez_compressed(out, gamma=gamma, mask=ocean)
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
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Path]:
    args = parse_args(argv)
    try:
        trained = load_from_arguments(args)
        if args.mask is not None:
            mask_path, mask_source = Path(args.mask), str(args.mask)
        else:
            mask_path = Path(trained.config.dataset.root) / GRID
            mask_source = f"the training grid {mask_path}"
        ocean = load_mask(mask_path)
        outputs = predict_files(
            trained, input_files(args.inputs), ocean, args.output_dir, args.overwrite, mask_source
        )
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"Wrote {len(outputs)} file(s) to {args.output_dir}.")
    return outputs


if __name__ == "__main__":
    main()
