"""Ship a trained run as a pretrained network of the package (normcoef/pretrained/NAME.*).

    python benchmarks/ship_pretrained.py RUN_ID --name global --hardware "..." [--tracking-uri URI]

Reads the run from MLflow: its best checkpoint, its commit, command and data set, its best
validation metrics (``best/val/*``) and its test metrics (``test/cnn/*`` and the sample count
of ``test_metrics.md``: evaluate it on the whole test split first), and writes the weights
without optimizer state, the grid and the provenance (``normcoef.pretrained.write_pretrained``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from normcoef import pretrained
from normcoef.data.info import DatasetInfo
from normcoef.data.input_range import InputRange
from normcoef.data.priors import TABLE_PREFIX, GeometryPrior
from normcoef.data.storage import GRID, load_split
from normcoef.data.torch_dataset import Standardizer
from normcoef.inference import load_trained_model, resolve_checkpoint
from normcoef.tracking import DEFAULT_TRACKING_URI

METRICS = ("eps_q", "eps_max", "eps_mean", "rmse")


def provenance(
    run_id: str, uri: str, hardware: str, wall_s: float | None, note: str | None = None
) -> dict:
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    # The whole table as data: means and spreads of every method (test_metrics.json).
    table = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/test_metrics.json"))
    methods = table.get("methods", {})
    if "CNN" not in methods or any(f"test/cnn/{key}" not in metrics for key in METRICS):
        raise SystemExit(f"run {run_id} has no test evaluation: run normcoef.evaluate on it")
    cnn, prior = methods["CNN"], methods.get("Prior alone (no network)", {})
    trained = load_trained_model(resolve_checkpoint(run_id, uri))
    root = Path(trained.config.dataset.root)
    info = DatasetInfo.load(root)
    return {
        "mlflow_run_id": run_id,
        "run_name": run.info.run_name,
        "commit": tags.get("mlflow.source.git.commit", "unknown"),
        "recipe": tags.get("normcoef.preset", "?"),
        "command": "python -m normcoef.train "
        + " ".join(tags.get("normcoef.overrides", "").split(",")),
        "hardware": hardware,
        "note": note,
        "training": {
            "steps": int(params.get("trainer.steps", 0)),
            "best_step": trained.step,
            "monitor": params.get("trainer.monitor"),
            "wall_s": wall_s,
        },
        "data": {
            "grid": params.get("dataset.grid"),
            "shape": list(info.shape or ()),
            "seed": int(params.get("dataset.seed", 0)),
            # The test split the stated metrics come from (evaluate may score more samples
            # than the run's end-of-training test did).
            "splits": {
                "train": int(params["dataset.splits.train"]),
                "valid": int(params["dataset.splits.valid"]),
                "test": int(table["samples"]),
            },
            "tolerance": float(params.get("dataset.tolerance", "nan")),
            "steps_M": info.steps,
            "standardization": params.get("dataset.standardization"),
        },
        "validation": {key: metrics[f"best/val/{key}"] for key in METRICS},
        "test": {
            **{key: cnn[key] for key in METRICS},
            **{f"{key}_std": cnn[f"{key}_std"] for key in METRICS if f"{key}_std" in cnn},
            "samples": int(table["samples"]),
        },
        "test_prior_alone": {key: prior[key] for key in METRICS if key in prior},
        "prior": trained.standardizer.prior_name,
    }


def grid_tables(standardizer: Standardizer, root: Path) -> tuple[Path, ...]:
    """The geometry table of the training grid (made if missing), for a network on the
    geometry prior; none for the uniform prior."""
    standardizer.read_tables_from(root)
    prior = standardizer.prior_model
    if not isinstance(prior, GeometryPrior):
        return ()
    sample = load_split(root, "test", 1)
    fields, ocean = sample.fields[0], sample.ocean[0]
    prior(fields, ocean)  # read, or made and saved in root
    return (root / f"{TABLE_PREFIX}{prior.key(ocean, fields[2])}.npz",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("--name", required=True)
    parser.add_argument("--hardware", required=True, help="where it trained, in words")
    parser.add_argument("--wall-s", type=float, help="training wall time in seconds")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    parser.add_argument("--note", help="anything else a user should know, in words")
    args = parser.parse_args()
    details = provenance(args.run_id, args.tracking_uri, args.hardware, args.wall_s, args.note)
    checkpoint = resolve_checkpoint(args.run_id, args.tracking_uri)
    trained = load_trained_model(checkpoint)
    root = Path(trained.config.dataset.root)
    tables = grid_tables(trained.standardizer, root)
    train = load_split(root, "train", int(details["data"]["splits"]["train"]))
    # What evaluate and predict measure another grid's resolution against (older checkpoints
    # lack it): the kernel widths and grid spacing of the training split.
    input_range = InputRange.of(list(train.fields), list(train.ocean)).to_dict()
    path = pretrained.write_pretrained(
        checkpoint, root / GRID, args.name, details, tables=tables, input_range=input_range
    )
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and its provenance.")


if __name__ == "__main__":
    main()
