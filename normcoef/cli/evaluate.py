"""Evaluate a trained network against the randomization estimator (report Table 8).

    python -m normcoef.evaluate CHECKPOINT|--pretrained NAME [--dataset ROOT] [--split test]
        [--randomization-samples 10000] [--max-samples K] [--log-to RUN_ID] [--tta]

CHECKPOINT is a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id;
``--pretrained global`` scores the network shipped with the package instead. The
inputs are standardized with the statistics stored in the checkpoint, not refitted, so the
CNN's numbers on the training data set equal those training logged. Given an MLflow run id
(or ``--log-to``), the metrics (``test/...``), the table (``test_metrics.md``) and the figures
go to that run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from normcoef.cli.checkpoint_options import (
    add_checkpoint_arguments,
    add_inference_arguments,
    checkpoint_or_pretrained,
    load_from_arguments,
)
from normcoef.console import bounded_int, console_main, warn
from normcoef.data.info import DatasetInfo, fact_differences
from normcoef.data.storage import SPLITS, load_split
from normcoef.gamma_files import FAR_FROM_TRAINING, far_from_training
from normcoef.inference import TrainedModel
from normcoef.scoring import (
    DEFAULT_RANDOMIZATION_SAMPLES,
    Evaluation,
    ScoringOptions,
    check_scorable,
    default_limit,
    evaluate_checkpoint,
    log_evaluation,
    write_figures,
)
from normcoef.tracking import ExistingRun


def warn_if_unlike_training(
    trained: TrainedModel, root: Path, split: str, info: DatasetInfo
) -> None:
    """A data set on another grid, or whose inputs lie far from the training statistics (other
    units, another resolution), is evaluated with a warning saying so: the metrics are right,
    but they measure an extrapolation (``scoring.check_scorable`` refuses another operator)."""
    first = load_split(root, split, 1)
    # Shown at its own resolution, the network meets neither this shape nor these raw inputs.
    resampled = bool(len(first)) and trained.resolution_ratio(first.fields[0], first.ocean[0]) != 1
    _, doubtful = fact_differences(trained.dataset, info, str(root), resampled=resampled)
    for difference in doubtful:
        warn(difference)
    if resampled:
        return
    if len(first) and trained.input_range is not None:
        what = f"{root / split} (first sample)"
        if outside := trained.input_range.outside(first.fields[0], first.ocean[0], what):
            warn(outside)
    if len(first) and (far := far_from_training(first.fields[0], first.ocean[0], trained)):
        warn(
            f"{root / split} (first sample): {far} lie more than {FAR_FROM_TRAINING:g} standard "
            "deviations from "
            "the training data's mean (other units or resolution?); the network extrapolates"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m normcoef.evaluate",
        description="Test metrics of a trained CNN vs the randomization estimator (Table 8).",
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--dataset", help="data set root (default: the one in the checkpoint's config)"
    )
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument(
        "--randomization-samples",
        "-n",
        type=bounded_int(0),
        default=DEFAULT_RANDOMIZATION_SAMPLES,
        help="draws N of the randomization estimator; 0 skips it (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=bounded_int(0), help="randomization seed (default: the one training used)"
    )
    parser.add_argument(
        "--max-samples",
        type=bounded_int(1),
        metavar="K",
        help="evaluate both methods on the first K >= 1 samples (default: the samples training "
        "evaluated)",
    )
    parser.add_argument(
        "--randomization-max-samples",
        type=bounded_int(1),
        metavar="K",
        help="run randomization on the first K of the evaluated samples only (minutes per "
        "global sample), and score the CNN on the same K too (default: all of them)",
    )
    parser.add_argument(
        "--log-to",
        metavar="RUN_ID",
        help="log metrics, table and figures to this MLflow run (default: CHECKPOINT when it "
        "is a run id)",
    )
    parser.add_argument("--no-log", action="store_true", help="log to no MLflow run")
    parser.add_argument("--output-dir", type=Path, help="also write the table and figures here")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    checkpoint_or_pretrained(parser, args)
    return args


def run(argv: list[str] | None = None) -> Evaluation:
    """The command's work; returns the evaluation to Python callers."""
    args = parse_args(argv)
    # A checkpoint that is no local path was resolved as an MLflow run id: log to that run.
    local = args.pretrained is not None or Path(args.checkpoint).exists()
    run_id = args.log_to or (None if local else args.checkpoint)
    trained = load_from_arguments(args)
    tracked = None if args.no_log or not run_id else ExistingRun(run_id, args.tracking_uri)
    root = Path(args.dataset or trained.config.dataset.root)
    info = DatasetInfo.load(root, trained.dataset.steps)
    check_scorable(trained, info, root)  # before any warning: a refusal is one line
    warn_if_unlike_training(trained, root, args.split, info)
    limit = args.max_samples
    if limit is None:
        limit = default_limit(trained, root, args.split, info)
    seed = args.seed
    if seed is None:
        seed = trained.config.evaluation.randomization_seed
    options = ScoringOptions(
        split=args.split,
        limit=limit,
        randomization_samples=args.randomization_samples,
        randomization_limit=args.randomization_max_samples,
        seed=seed,
        tta=args.tta,
        progress=args.progress,
    )
    evaluation = evaluate_checkpoint(trained, root, options, info)
    table = evaluation.table()
    print(f"{args.split} metrics of {trained.path} (step {trained.step}) on {root}:\n\n{table}")
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / f"{args.split}_metrics.md").write_text(table + "\n")
        write_figures(evaluation, args.output_dir, trained.dataset.periodic_x)
    if tracked is not None:
        log_evaluation(tracked, evaluation, args.split, trained.dataset.periodic_x)
        print(f"\nLogged to MLflow run {run_id}.")
    return evaluation


main = console_main(run)  # normcoef-evaluate

if __name__ == "__main__":
    main()
