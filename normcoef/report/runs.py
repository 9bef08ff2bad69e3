"""A sweep's runs read from MLflow (through ``normcoef.tracking.RunStore``), and the table
logged back on the sweep's parent run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from normcoef.report.table import METRICS, Row, RunResult, best_row, best_run
from normcoef.tracking import (
    RunStore,
    Tag,
    run_overrides,
    sweep_run_name,
)

if TYPE_CHECKING:
    from normcoef.tracking.runs import Run

TABLE_FILE = "ablation_table.md"


class MetricHistory(Protocol):
    """What reading a run needs of a store: ``RunStore``, or MLflow's own client."""

    def get_metric_history(self, run_id: str, key: str) -> list[Any]: ...


def select_sweep(runs: Sequence[Run], sweep: str = "latest") -> str:
    """The ``normcoef.sweep`` tag to report: the latest one, or the one naming ``sweep``."""
    sweeps = [run.data.tags.get(Tag.SWEEP, "") for run in runs]
    sweeps = [s for s in sweeps if s]
    if not sweeps:
        raise LookupError(
            f"none of the {len(runs)} runs of this experiment was part of a sweep; "
            "run one with `python -m normcoef.train -m ...`"
        )
    if sweep == "latest":
        return sweeps[-1]
    wanted = Path(sweep).resolve()
    for candidate in reversed(sweeps):
        if candidate == sweep or Path(candidate).resolve() == wanted:
            return candidate
    raise LookupError(f"no run of sweep {sweep!r}; known sweeps: {sorted(set(sweeps))}")


def run_result(store: MetricHistory, run: Run) -> RunResult:
    """Metrics of one MLflow run: test metrics reported, the best checkpoint's validation
    metrics to choose (``best/val/*``, or for older runs read from the ``val/*`` history)."""
    tags, metrics = run.data.tags, run.data.metrics
    result = RunResult(
        overrides=run_overrides(tags),
        status=run.info.status,
        failure=tags.get(Tag.FAILURE, ""),
        run_id=run.info.run_id,
    )
    keys = [key for key, _ in METRICS]
    if all(f"best/val/{key}" in metrics for key in keys):
        result.validation = {key: metrics[f"best/val/{key}"] for key in keys}
    elif all(f"val/{key}" in metrics for key in keys):
        result.validation = best_validation(store, run.info.run_id, run.data.params, keys)
    if all(f"test/cnn/{key}" in metrics for key in keys):
        result.metrics = {key: metrics[f"test/cnn/{key}"] for key in keys}
    elif result.validation:
        result.metrics, result.split = dict(result.validation), "val"
    if all(f"test/randomization/{key}" in metrics for key in keys):
        result.baseline = {key: metrics[f"test/randomization/{key}"] for key in keys}
        samples = run.data.params.get("evaluation.randomization_samples")
        result.baseline_label = f"Randomization (N={samples})" if samples else "Randomization"
    if result.status == "FINISHED" and not result.metrics:
        result.failure = "finished without metrics"
    return result


def best_validation(
    store: MetricHistory, run_id: str, params: dict[str, str], keys: Sequence[str]
) -> dict[str, float]:
    """``val/<key>`` at the step where ``trainer.monitor`` was best (the best checkpoint)."""
    monitor = params.get("trainer.monitor", "val/loss")
    history = store.get_metric_history(run_id, monitor)
    best_step = min(history, key=lambda m: m.value).step if history else None
    out = {}
    for key in keys:
        values = {m.step: m.value for m in store.get_metric_history(run_id, f"val/{key}")}
        out[key] = values.get(best_step, values[max(values)])
    return out


def parent_run(store: RunStore, experiment_id: str, experiment: str, sweep: str) -> str:
    """The sweep's parent run (opened by ``normcoef.sweeps.parent_run``); created for a
    sweep that ran without it."""
    found = store.sweep_parent(experiment_id, experiment, sweep)
    if found is not None:
        return found
    tags = {Tag.SUMMARY: "true", Tag.EXPERIMENT: experiment, Tag.SWEEP: sweep}
    return store.create_run(experiment_id, tags, sweep_run_name(experiment))


def log_summary(
    store: RunStore, experiment_id: str, experiment: str, sweep: str, table: str, rows: list[Row]
) -> str:
    """Log the table and the best run on the sweep's parent run; nest the jobs under it."""
    run_id = parent_run(store, experiment_id, experiment, sweep)
    store.log_text(run_id, table, TABLE_FILE)
    description = store.get_run(run_id).data.tags.get(Tag.DESCRIPTION, "")
    store.set_tags(run_id, {Tag.NOTE: f"{description}\n\n{table}".strip()})
    best = best_row(rows)
    if best is not None:
        chosen = {Tag.BEST: ",".join(best.values.values()) or "CNN"}
        store.set_tags(run_id, {**chosen, Tag.BEST_RUN: best_run(best).run_id or ""})
        split = best.completed[0].split
        store.log_metrics(run_id, {f"best/val/{key}": best.validation[key] for key, _ in METRICS})
        store.log_metrics(run_id, {f"best/{split}/{key}": best.summary[key] for key, _ in METRICS})
    for row in rows:
        for run in row.runs:
            if run.run_id:
                store.set_tags(run.run_id, {Tag.PARENT_RUN: run_id})
    store.end(run_id)
    return run_id
