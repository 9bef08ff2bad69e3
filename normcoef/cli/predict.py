"""Predict normalization coefficients γ with a trained network.

    python -m normcoef.predict CHECKPOINT INPUT [INPUT ...] -o OUT_DIR [--mask grid.npz] [--tta]
    python -m normcoef.predict --pretrained global INPUT [INPUT ...] -o OUT_DIR
    python -m normcoef.predict CHECKPOINT --original [--statistics dict_std_mean.txt] \
        original/valid/X -o OUT_DIR --mask grid.npz

CHECKPOINT is a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id;
``--pretrained global`` uses the network shipped with the package (trained on the global
292x360 grid, whose mask it brings; provenance in normcoef/pretrained/global.json). Each
INPUT is an npz file holding one (3, H, W) array A_i, A_j, W (named ``arr_0`` or alone, as in
a data set's ``X/<id>.npz``; an array with a halo, equally wide on both sides of each axis, is
cropped to the mask), or a directory of them. Each gives ``OUT_DIR/<id>_norm_coeffs.npz`` with
``gamma`` (H, W) float64, NaN on land, and ``mask`` (H, W) bool, True on ocean:

    with np.load("out/00000_norm_coeffs.npz") as f:
        gamma, ocean = f["gamma"], f["mask"]

The mask is the training data set's ``grid.npz`` (a shipped network's own grid) unless
``--mask`` gives another. The networks are fully convolutional, so another grid works when
its mask is given (with a warning saying how it differs from the training grid); the distance
channel is recomputed from that mask, the standardization statistics stay the training's.

On ocean cells inputs must be what a diffusion operator can have (``physics.field_violations``,
the rules of ``physics.check_fields``): finite, A_i and A_j >= 0 (0 closes a face, as on every
face touching land) and W > 0; anything else is refused. Values far outside the training
statistics get a warning. Non-finite land values are set to 0 (the generator's closed land
faces), as with "full" standardization land values reach the network. With ``--original`` each
INPUT is an X file of the original code (``normcoef.data.original_inputs``): halo cropped,
the scaling of ``--statistics`` undone, faces moved from south/west to north/east. Outputs are
written atomically and never through a link: an existing output, a link included, is replaced only
with ``--overwrite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from normcoef.cli.checkpoint_options import (
    CHECKPOINT_HELP,
    add_checkpoint_arguments,
    add_inference_arguments,
    load_from_arguments,
)
from normcoef.console import console_main, warn
from normcoef.data.info import DatasetInfo, enclosing_dataset, fact_differences
from normcoef.data.original import SCALINGS
from normcoef.data.original_inputs import OriginalInputs, inputs_scaling, stored_fields
from normcoef.data.storage import DatasetError, input_files, load_array, load_mask
from normcoef.gamma_files import grid_differences, predict_files, read_inputs
from normcoef.inference import TrainedModel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m normcoef.predict",
        description="Write γ predicted by a trained CNN for input fields A_i, A_j, W.",
        usage="%(prog)s (CHECKPOINT | --pretrained NAME) INPUT [INPUT ...] -o OUTPUT_DIR [options]",
    )
    add_checkpoint_arguments(parser, positional=False)
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=f"CHECKPOINT (not with --pretrained): {CHECKPOINT_HELP}; then npz files of "
        "(3, H, W) fields, or directories of them",
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
    add_inference_arguments(parser)
    original = parser.add_argument_group(
        "inputs in the original code's layout (FolkeKS/DL-normalization; docs/original-data.md)"
    )
    original.add_argument(
        "--original",
        action="store_true",
        help="each INPUT is an original X/<id>.npz (halo, faces south/west, maybe scaled)",
    )
    original.add_argument(
        "--scaling", choices=SCALINGS, default="auto", help="scaling to undo (auto: by file name)"
    )
    original.add_argument(
        "--statistics", type=Path, help="the data set's dict_std_mean.txt or dict_min_max.txt"
    )
    args = parser.parse_args(argv)
    if not args.original and (args.statistics is not None or args.scaling != "auto"):
        parser.error(
            "--scaling and --statistics read inputs in the original layout: add --original"
        )
    paths = list(args.paths)
    args.checkpoint = None if args.pretrained is not None else paths.pop(0)
    if not paths:
        parser.error("give at least one INPUT after CHECKPOINT")
    args.inputs = paths
    return args


def run(argv: list[str] | None = None) -> list[Path]:
    """The command's work; returns the files written to Python callers."""
    args = parse_args(argv)
    trained = load_from_arguments(args)
    if args.mask is not None:
        mask_path, mask_source = Path(args.mask), str(args.mask)
    else:
        mask_path = trained.training_grid
        mask_source = f"the training grid {mask_path}"
    ocean = load_mask(mask_path)
    inputs = input_files(args.inputs)
    refuse_another_operator(trained, args.inputs)
    original = None
    if args.original:
        stored = [(path, stored_fields(load_array(path), ocean.shape, path)) for path in inputs]
        scaling = inputs_scaling(args.scaling, args.statistics, stored)
        original = OriginalInputs(scaling, trained.dataset.periodicity)
        print(f"Original layout: scaling {scaling.mode} undone, faces moved north/east.")
    if args.mask is not None and (differences := grid_differences(ocean, mask_path, trained)):
        # Another resolution of the training's ocean is expected to differ: predict_files
        # says how it is shown (measured on the first input's kernel widths).
        first, _ = read_inputs(inputs[0], ocean, mask_source, original)
        if trained.resolution_ratio(first, ocean) == 1:
            warn(
                f"{differences}; the network is fully convolutional, but learned from its grid only"
            )
    outputs = predict_files(
        trained, inputs, ocean, args.output_dir, args.overwrite, mask_source, args.tta, original
    )
    print(f"Wrote {len(outputs)} file(s) to {args.output_dir}.")
    return outputs


def refuse_another_operator(trained: TrainedModel, paths: list[str | Path]) -> None:
    """Inputs taken from a data set of another M ask for Γ of another operator than the
    network's: refused (``info.fact_differences``), once per set. A mask is geometry only,
    whichever data set it sits in."""
    for root in dict.fromkeys(filter(None, (enclosing_dataset(Path(p)) for p in paths))):
        info = DatasetInfo.load(root)
        wrong, _ = fact_differences(trained.dataset, info, f"data set {root}", targets=False)
        if wrong:
            raise DatasetError("; ".join(wrong))


main = console_main(run)  # normcoef-predict

if __name__ == "__main__":
    main()
