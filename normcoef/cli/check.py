"""Check that a data set's targets are the exact Γ of its fields.

    python -m normcoef.check DATASET [--samples K] [--split train valid] [--steps M]

Prints the max and mean relative difference |Γ - γ| / Γ per sample and overall, and a verdict;
exits with 1 when they disagree beyond ``--tolerance``, naming the likely cause (face
convention, M, periodicity, scaling). Run it on a data set from elsewhere before training.
"""

from __future__ import annotations

import argparse
import sys

from normcoef.console import exit_on_user_error
from normcoef.data.storage import SPLITS
from normcoef.data.verification import DEFAULT_SAMPLES, DEFAULT_TOLERANCE, check_dataset

EXIT_DISAGREES = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m normcoef.check", description=__doc__.split("\n")[0])
    p.add_argument("dataset", help="data set directory")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="per split (3)")
    p.add_argument("--split", nargs="+", choices=SPLITS, help="splits to check (all)")
    p.add_argument("--steps", type=int, help="M (default: the data set's metadata.json)")
    p.add_argument(
        "--periodic-x",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="east-west periodic (default: metadata.json, else yes)",
    )
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    report = check_dataset(
        args.dataset,
        args.samples,
        args.split,
        args.steps,
        args.periodic_x,
        args.tolerance,
        progress=lambda message: print(f"{message} ...", file=sys.stderr, flush=True),
    )
    for s in report.samples:
        print(f"{s.split}/{s.sample_id}: max {s.max_difference:.2e}, mean {s.mean_difference:.2e}")
    print(f"verdict: {report.verdict()}")
    if not report.agrees:
        raise SystemExit(EXIT_DISAGREES)


if __name__ == "__main__":
    main()
