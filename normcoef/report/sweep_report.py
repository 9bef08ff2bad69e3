"""The Markdown report of one sweep: its runs read, tabled, and logged on its parent run."""

from __future__ import annotations

from pathlib import Path

from normcoef.report.runs import TABLE_FILE, log_summary, run_result, select_sweep
from normcoef.report.sweep_dir import missing_jobs, optuna_summary
from normcoef.report.table import best_row, best_run, format_table, group_runs, varied_keys
from normcoef.tracking import (
    RunStore,
    Tag,
    review_url,
)

LOCAL_UI = "http://127.0.0.1:5000"
"""Where ``make ui`` serves ./mlflow.db (MLFLOW_HOST, MLFLOW_PORT)."""


def report(
    experiment: str,
    tracking_uri: str | None = None,
    mlflow_experiment: str = "normcoef",
    sweep: str = "latest",
    optuna: tuple[str | None, str | None] = (None, None),
    log: bool = True,
) -> str:
    """The Markdown report of one sweep of ``experiment`` (the ``experiment_name`` tag)."""
    store = RunStore(tracking_uri)
    uri = store.uri
    if not store.exists():
        raise FileNotFoundError(
            f"no MLflow store at {uri}: train first, or name the sweep's store with "
            "logger.tracking_uri=..."
        )
    experiment_id = store.experiment_id(mlflow_experiment)
    if experiment_id is None:
        raise LookupError(f"no MLflow experiment {mlflow_experiment!r} in {uri}")
    runs = store.job_runs(experiment_id, experiment)
    if not runs and sweep != "latest":
        raise LookupError(
            f"no MLflow run of the sweep {sweep} in {uri}: its jobs ended before training "
            "started (each job's error is listed when the sweep ends), or logged elsewhere "
            "(logger.tracking_uri)"
        )
    if not runs:
        raise LookupError(
            f"no run of experiment {experiment!r} in {uri}; sweep it first: "
            "python -m normcoef.train -m experiment=..."
        )
    sweep = select_sweep(runs, sweep)
    runs = [run for run in runs if run.data.tags.get(Tag.SWEEP) == sweep]
    results = [run_result(store, run) for run in runs]
    results += missing_jobs(Path(sweep), [result.overrides for result in results])
    if not any(result.ok for result in results):
        reasons = sorted(
            {f"{r.status.lower()}: {r.failure}" if r.failure else r.status.lower() for r in results}
        )
        raise LookupError(
            f"sweep {sweep} has no finished run ({len(results)} jobs; {'; '.join(reasons)})"
        )
    keys = varied_keys(results)
    rows = group_runs(results, keys)
    table = f"## {experiment}: sweep `{sweep}`\n\n{format_table(rows, keys)}"
    search = optuna_summary(Path(sweep), *optuna)
    if search:
        table += f"\n\n{search}"
    best = best_row(rows)
    if best is not None:
        table += f"\n\nBest run (validation ε_Q): MLflow run {best_run(best).run_id}."
    if log:
        run_id = log_summary(store, experiment_id, experiment, sweep, table, rows)
        table += f"\n\nLogged as {TABLE_FILE} on MLflow run {run_id}, the sweep's parent run."
        ui = uri if uri.startswith(("http://", "https://")) else LOCAL_UI
        link = review_url(ui, experiment_id)
        table += f"\nReview it in the MLflow UI (`make ui` over ./mlflow.db): {link}"
    return table
