"""Evaluate a trained network against the randomization estimator (report Table 8).

    python -m normcoef.evaluate CHECKPOINT [--dataset ROOT] [--split test]
        [--randomization-samples 10000] [--max-samples K] [--log-to RUN_ID] [--tta]

CHECKPOINT is a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id. The
inputs are standardized with the statistics stored in the checkpoint, not refitted, so the
CNN's numbers on the training data set equal those training logged. Given an MLflow run id
(or ``--log-to``), the metrics (``test/...``), the table (``test_metrics.md``) and the figures
go to that run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from normcoef.cli import bounded_int, exit_on_user_error
from normcoef.data.storage import (
    SPLITS,
    TARGET_SUFFIX,
    is_generated,
    load_split,
    recorded_steps,
)
from normcoef.data.torch_dataset import NormalizationDataset
from normcoef.evaluation import Evaluation, check_limit, evaluate, write_figures
from normcoef.inference import TrainedModel, add_checkpoint_arguments, load_from_arguments
from normcoef.losses import for_target
from normcoef.tracking import DEFAULT_TRACKING_URI
from normcoef.training.factory import build_loss
from normcoef.training.run import grid_periodicity

DEFAULT_RANDOMIZATION_SAMPLES = 10_000
"""The report's baseline, N = 1e4 draws."""


def default_limit(trained: TrainedModel, root: Path, split: str) -> int | None:
    """How many samples of ``split`` training evaluated: its ``dataset.splits`` size on its own
    generated data set (which may hold more), every sample otherwise (also when that size is
    0: training evaluated none, so there is no count to match)."""
    dataset = trained.config.dataset
    same_root = Path(dataset.root).resolve() == Path(root).resolve()
    if same_root and is_generated(root):
        return dataset.splits.get(split) or None
    return None


def evaluate_checkpoint(
    trained: TrainedModel,
    root: str | Path,
    split: str = "test",
    randomization_samples: int = DEFAULT_RANDOMIZATION_SAMPLES,
    seed: int = 0,
    limit: int | None = None,
    progress: bool = False,
    tta: bool = False,
) -> Evaluation:
    """CNN and randomization metrics on the first ``limit`` samples of ``split`` (all: None)."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    check_limit(limit)
    periodic = grid_periodicity(root)
    if periodic != (trained.periodic_x, trained.periodic_y):
        raise ValueError(
            f"{root} is a grid with (periodic_x, periodic_y) = {periodic} but the network was "
            f"trained on one with {(trained.periodic_x, trained.periodic_y)}"
        )
    dataset = NormalizationDataset(load_split(root, split, limit), trained.standardizer)
    if len(dataset) == 0:
        raise ValueError(
            f"{root / split} holds no sample ({split}/X/<id>.npz with "
            f"{split}/Y/<id>{TARGET_SUFFIX}.npz); generate some with dataset.splits.{split}=N "
            "or choose another --split"
        )
    steps = recorded_steps(root, trained.config.dataset.fields.steps)
    return evaluate(
        trained.model,
        for_target(build_loss(trained.config.loss), trained.standardizer.target_mode),
        dataset,
        trained.device,
        randomization_samples,
        steps,
        seed,
        trained.periodic_y,
        progress=progress,
        split=split,
        tta=tta,
    )


def existing_run(run_id: str, tracking_uri: str | None):
    """An MLflow client for a run that exists (checked before hours of evaluation)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or DEFAULT_TRACKING_URI
    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except MlflowException as error:
        raise ValueError(f"no MLflow run {run_id!r} at {uri}: {error.message}") from error
    return client


def log_evaluation(
    client, run_id: str, evaluation: Evaluation, split: str = "test", periodic_x: bool = True
) -> None:
    """Metrics ``<split>/...``, the table ``<split>_metrics.md`` and figures, into an existing
    MLflow run; the client API leaves the run's status as it is."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in evaluation.flat_metrics(split).items()]
    client.log_batch(run_id, metrics=metrics)
    client.log_text(run_id, evaluation.table(), f"{split}_metrics.md")
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_figures(evaluation, Path(tmp), periodic_x):
            client.log_artifact(run_id, str(path), "figures")


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
        "--log-to",
        metavar="RUN_ID",
        help="log metrics, table and figures to this MLflow run (default: CHECKPOINT when it "
        "is a run id)",
    )
    parser.add_argument("--no-log", action="store_true", help="log to no MLflow run")
    parser.add_argument("--output-dir", type=Path, help="also write the table and figures here")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument(
        "--tta", action="store_true", help="average the CNN's γ² over flips of each input"
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> Evaluation:
    args = parse_args(argv)
    # A checkpoint that is no local path was resolved as an MLflow run id: log to that run.
    run_id = args.log_to or (None if Path(args.checkpoint).exists() else args.checkpoint)
    trained = load_from_arguments(args)
    client = None if args.no_log or not run_id else existing_run(run_id, args.tracking_uri)
    root = Path(args.dataset or trained.config.dataset.root)
    limit = args.max_samples
    if limit is None:
        limit = default_limit(trained, root, args.split)
    seed = args.seed
    if seed is None:
        seed = trained.config.evaluation.randomization_seed
    evaluation = evaluate_checkpoint(
        trained, root, args.split, args.randomization_samples, seed, limit, args.progress, args.tta
    )
    table = evaluation.table()
    print(f"{args.split} metrics of {trained.path} (step {trained.step}) on {root}:\n\n{table}")
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / f"{args.split}_metrics.md").write_text(table + "\n")
        write_figures(evaluation, args.output_dir, trained.periodic_x)
    if client is not None:
        log_evaluation(client, run_id, evaluation, args.split, trained.periodic_x)
        print(f"\nLogged to MLflow run {run_id}.")
    return evaluation


if __name__ == "__main__":
    main()
