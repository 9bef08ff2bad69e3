"""Import a data set in the original code's layout (docs/original-data.md).

    python -m normcoef.convert SRC DST [--steps M] [--scaling auto|none|standardize|minmax]
                               [--statistics FILE] [--mask grid.npz] [--no-periodic-x]
                               [--periodic-y] [--verify K] [--verify-seconds S]

SRC holds ``{train,valid[,test]}/X/<id>.npz`` (alpha_i_minus, alpha_j_minus, w, with a halo)
and ``Y/<id>_norm_coeffs.npz``, possibly scaled, with ``dict_std_mean.txt`` or
``dict_min_max.txt`` beside them. DST becomes a normcoef data set (faces north/east, no halo,
raw values, metadata.json, grid.npz, statistics.json), or nothing when anything fails.
Before it appears, every sample's targets are checked to be its own (exact Γ at a few cells)
and whole samples' to be their exact Γ, as many as ``--verify-seconds`` allow.
"""

from __future__ import annotations

import argparse

from normcoef.console import bounded_int, exit_on_user_error, warn
from normcoef.data.conversion import DEFAULT_VERIFY_SECONDS, ConversionOptions, convert_dataset
from normcoef.data.original import SCALINGS
from normcoef.data.storage import load_mask
from normcoef.data.verification import DEFAULT_TOLERANCE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m normcoef.convert", description=__doc__.split("\n")[0]
    )
    p.add_argument("src", help="folder in the original layout (with train/ and valid/)")
    p.add_argument("dst", help="new data set directory (must not exist, or be empty)")
    p.add_argument("--steps", type=int, default=10, help="M the targets were computed with (10)")
    p.add_argument("--scaling", choices=SCALINGS, default="auto", help="scaling to undo (auto)")
    p.add_argument("--statistics", help="dict_std_mean.txt / dict_min_max.txt if not in SRC")
    p.add_argument("--mask", help="npz with the ocean mask (a grid.npz, or its only array)")
    p.add_argument("--periodic-x", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--periodic-y", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument(
        "--verify",
        type=bounded_int(0),
        metavar="K",
        help="whole samples given exact Γ, training first: at most K (default: as many as "
        "--verify-seconds allow, at least 1); 0: no check at all, not even the pairing",
    )
    p.add_argument(
        "--verify-seconds",
        type=bounded_int(0),
        default=DEFAULT_VERIFY_SECONDS,
        metavar="S",
        help="time for exact Γ of whole samples after the first (%(default)s); every sample's "
        "pairing is checked regardless",
    )
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    mask = None
    if args.mask:
        mask = load_mask(args.mask)
    options = ConversionOptions(
        steps=args.steps,
        scaling=args.scaling,
        statistics=args.statistics,
        mask=mask,
        periodic_x=args.periodic_x,
        periodic_y=args.periodic_y,
        verify=args.verify,
        verify_seconds=args.verify_seconds,
        tolerance=args.tolerance,
    )
    metadata = convert_dataset(args.src, args.dst, options, note=print, warn=warn)
    counts = ", ".join(f"{split} {n}" for split, n in metadata["splits"].items())
    print(f"wrote {args.dst}: {counts} samples, {metadata['shape'][0]}x{metadata['shape'][1]}")
    print(f"check it any time with: python -m normcoef.check {args.dst}")


if __name__ == "__main__":
    main()
