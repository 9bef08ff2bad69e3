"""Ablation tables from MLflow: ``python -m normcoef.report experiment=<name> [sweep=<dir>]``.

Reads the runs of one sweep (tag ``normcoef.sweep``; by default the latest sweep of the
experiment), groups them by what the sweep varied, seeds apart, and prints a Markdown table in
the layout of the report's Tables 2-8: ε_Q, ε_max, ε_mean per configuration, mean ± std over
seeds, failed runs listed. The best configuration is chosen on validation (the lowest mean
``best/val/eps_q``, the validation ε_Q of each run's best checkpoint); the test metrics are
reported and never choose. The table is also logged as ``ablation_table.md`` on the sweep's
parent run (opened by ``normcoef.sweeps.parent_run``; created here for older sweeps), with a
tag naming the best run.

``log=false`` prints the table without logging it. Other ``key=value`` arguments are Hydra
overrides of the training config (``experiment=``, ``hparams_search=``,
``logger.tracking_uri=``...): they name the experiment and the stores as the training command
did.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from normcoef.cli import exit_on_user_error
from normcoef.metrics import aggregate
from normcoef.tracking import (
    DEFAULT_TRACKING_URI,
    DESCRIPTION_TAG,
    EXPERIMENT_TAG,
    FAILURE_TAG,
    OVERRIDE_TAG,
    SUMMARY_TAG,
    SWEEP_TAG,
    job_context,
    short_value,
)

METRICS = (("eps_q", "ε_Q"), ("eps_max", "ε_max"), ("eps_mean", "ε_mean"))
SELECT_ON = "eps_q"  # the validation metric that chooses the best configuration
SEED_KEY = "trainer.seed"
TABLE_FILE = "ablation_table.md"
REPORT_OPTIONS = ("sweep", "log")  # the report's own arguments; the rest are Hydra overrides
# Runs before structured override tags (normcoef.override.<key>) hold only override_dirname,
# which joins "key=value" items with ","; a comma inside a value (a list) is not followed by
# "key=".
_ITEM_SPLIT = re.compile(r",(?=[\w.+~/@-]+=)")


@dataclass
class RunResult:
    """One job of a sweep: its overrides and, when it finished, the CNN's metrics."""

    overrides: dict[str, str]
    status: str = "FINISHED"  # MLflow status, or "MISSING": the job left no MLflow run
    metrics: dict[str, float] = field(default_factory=dict)  # reported
    split: str = "test"  # where the metrics come from: "test", or "val" at the best step
    validation: dict[str, float] = field(default_factory=dict)  # chooses; best checkpoint
    baseline: dict[str, float] = field(default_factory=dict)  # randomization, test split
    baseline_label: str = "Randomization"
    failure: str = ""
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED" and bool(self.metrics)


@dataclass
class Row:
    """The runs of one configuration (all its seeds), aggregated."""

    values: dict[str, str]
    runs: list[RunResult]
    summary: dict[str, float] = field(default_factory=dict)  # mean and <key>_std over seeds
    validation: dict[str, float] = field(default_factory=dict)  # the same, of validation

    @property
    def completed(self) -> list[RunResult]:
        return [run for run in self.runs if run.ok]

    @property
    def failed(self) -> list[RunResult]:
        return [run for run in self.runs if not run.ok]


def parse_overrides(text: str) -> dict[str, str]:
    """Hydra's ``override_dirname`` ("a=1,b=x") -> {"a": "1", "b": "x"}."""
    if not text or text == "(defaults)":
        return {}
    items = (item.split("=", 1) for item in _ITEM_SPLIT.split(text))
    return {item[0]: item[1] if len(item) > 1 else "" for item in items}


def varied_keys(runs: Sequence[RunResult]) -> list[str]:
    """Override keys whose value differs between runs, seeds excepted, in first-seen order."""
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    return [
        key for key in keys if key != SEED_KEY and len({run.overrides.get(key) for run in runs}) > 1
    ]


def group_runs(runs: Sequence[RunResult], keys: Sequence[str]) -> list[Row]:
    """One row per combination of the varied values, in the order runs appear."""
    rows: dict[tuple[str, ...], Row] = {}
    for run in runs:
        values = {key: run.overrides.get(key, "(default)") for key in keys}
        rows.setdefault(tuple(values.values()), Row(values, [])).runs.append(run)
    for row in rows.values():
        if row.completed:
            row.summary = aggregate([run.metrics for run in row.completed])
        validated = [run.validation for run in row.completed if SELECT_ON in run.validation]
        if validated and len(validated) == len(row.completed):
            row.validation = aggregate(validated)
    return list(rows.values())


def best_row(rows: Sequence[Row]) -> Row | None:
    """The configuration with the lowest mean validation ε_Q (never chosen on test)."""
    candidates = [row for row in rows if SELECT_ON in row.validation]
    return min(candidates, key=lambda row: row.validation[SELECT_ON], default=None)


def best_run(row: Row) -> RunResult:
    """The run (seed) of a row with the lowest validation ε_Q."""
    return min(row.completed, key=lambda run: run.validation[SELECT_ON])


def _cell(summary: dict[str, float], key: str, bold: bool = False) -> str:
    text = f"{summary[key]:.2e}"
    text = f"**{text}**" if bold else text
    std = summary.get(f"{key}_std", 0.0)
    return f"{text} ± {std:.1e}" if std else text


def format_table(rows: Sequence[Row], keys: Sequence[str]) -> str:
    """The report-style Markdown table, its legend, and the list of failed runs."""
    if not rows:
        return "No runs found."
    best = best_row(rows)
    header = list(keys) or ["Method"]
    lines = [
        "| " + " | ".join([*header, *(label for _, label in METRICS), "runs"]) + " |",
        "|" + "---|" * (len(header) + len(METRICS) + 1),
    ]
    for row in rows:
        labels = [short_value(value) for value in row.values.values()] or ["CNN"]
        is_best = row is best and len(rows) > 1
        if is_best:
            labels[0] = f"**{labels[0]}** (best)"
        if row.summary:
            cells = [_cell(row.summary, key, is_best) for key, _ in METRICS]
        else:
            cells = ["failed"] * len(METRICS)
        count = f"{len(row.completed)}"
        if row.failed:
            count += f" + {len(row.failed)} failed"
        if row.completed and row.completed[0].split == "val":
            count += " (val)"
        lines.append("| " + " | ".join([*labels, *cells, count]) + " |")
    lines += _baseline_lines(rows, len(header))
    lines.append("")
    lines.append(_legend(rows, best))
    failures = [run for row in rows for run in row.failed]
    if failures:
        lines += ["", "Failed runs:"]
        lines += [f"- `{_label(run)}`: {run.failure or run.status.lower()}" for run in failures]
    return "\n".join(lines)


def _baseline_lines(rows: Sequence[Row], key_columns: int) -> list[str]:
    """The randomization estimator on the same test samples (report Table 8), if evaluated."""
    runs = [run for row in rows for run in row.completed if run.baseline]
    if not runs:
        return []
    summary = aggregate([run.baseline for run in runs])
    labels = [runs[0].baseline_label] + [""] * (key_columns - 1)
    cells = [_cell(summary, key) for key, _ in METRICS]
    return ["| " + " | ".join([*labels, *cells, "baseline"]) + " |"]


def _legend(rows: Sequence[Row], best: Row | None) -> str:
    seeds = any(len(row.completed) > 1 for row in rows)
    text = (
        "Best chosen on validation ε_Q (`best/val/eps_q`, the best checkpoint's); test "
        "metrics reported: the test split of the best checkpoint (`test/cnn/*`)"
    )
    if any(run.split == "val" for row in rows for run in row.completed):
        text += "; rows marked (val): best validation metrics (`val/*`), no test metrics"
    if seeds:
        text += "; mean ± std over the runs (seeds) of a row"
    text += "."
    if best is not None and len(rows) > 1:
        chosen = ", ".join(f"{key}={short_value(value)}" for key, value in best.values.items())
        text += (
            f" Best (lowest validation ε_Q, {best.validation[SELECT_ON]:.2e}): {chosen or 'CNN'}."
        )
    return text


def _label(run: RunResult) -> str:
    return ",".join(f"{k}={v}" for k, v in run.overrides.items()) or "(defaults)"


# --- MLflow and the sweep directory ---------------------------------------------------------


def search_experiment_runs(client: Any, experiment_id: str, experiment: str) -> list[Any]:
    """All job runs of a normcoef experiment (summary runs excluded), oldest first."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{EXPERIMENT_TAG}` = '{experiment}'",
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs += [run for run in page if run.data.tags.get(SUMMARY_TAG) != "true"]
        token = page.token
        if not token:
            return runs


def select_sweep(runs: Sequence[Any], sweep: str = "latest") -> str:
    """The ``normcoef.sweep`` tag to report: the latest one, or the one naming ``sweep``."""
    sweeps = [run.data.tags.get(SWEEP_TAG, "") for run in runs]
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


def run_overrides(tags: dict[str, str]) -> dict[str, str]:
    """A run's overrides: its ``normcoef.override.<key>`` tags, or (older runs) the parsed
    ``normcoef.overrides`` tag."""
    structured = {k[len(OVERRIDE_TAG) :]: v for k, v in tags.items() if k.startswith(OVERRIDE_TAG)}
    return structured or parse_overrides(tags.get("normcoef.overrides", ""))


def run_result(client: Any, run: Any) -> RunResult:
    """Metrics of one MLflow run: test metrics reported, the best checkpoint's validation
    metrics to choose (``best/val/*``, or for older runs read from the ``val/*`` history)."""
    tags, metrics = run.data.tags, run.data.metrics
    result = RunResult(
        overrides=run_overrides(tags),
        status=run.info.status,
        failure=tags.get(FAILURE_TAG, ""),
        run_id=run.info.run_id,
    )
    keys = [key for key, _ in METRICS]
    if all(f"best/val/{key}" in metrics for key in keys):
        result.validation = {key: metrics[f"best/val/{key}"] for key in keys}
    elif all(f"val/{key}" in metrics for key in keys):
        result.validation = best_validation(client, run.info.run_id, run.data.params, keys)
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
    client: Any, run_id: str, params: dict[str, str], keys: Sequence[str]
) -> dict[str, float]:
    """``val/<key>`` at the step where ``trainer.monitor`` was best (the best checkpoint)."""
    monitor = params.get("trainer.monitor", "val/loss")
    history = client.get_metric_history(run_id, monitor)
    best_step = min(history, key=lambda m: m.value).step if history else None
    out = {}
    for key in keys:
        values = {m.step: m.value for m in client.get_metric_history(run_id, f"val/{key}")}
        out[key] = values.get(best_step, values[max(values)])
    return out


def missing_jobs(sweep_dir: Path, recorded: set[str]) -> list[RunResult]:
    """Jobs of the sweep directory with no MLflow run: they failed before tracking started."""
    jobs = []
    for hydra_yaml in sorted(sweep_dir.glob("**/.hydra/hydra.yaml")):
        hydra = OmegaConf.load(hydra_yaml).hydra
        if str(hydra.job.override_dirname) not in recorded:
            log = hydra_yaml.parent.parent / "train.log"
            errors = [line for line in _lines(log) if "ERROR" in line]
            reason = errors[-1].split(" - ", 1)[-1] if errors else f"no MLflow run; see {log}"
            jobs.append(RunResult(job_context(hydra).overrides, "MISSING", failure=reason))
    return jobs


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def optuna_summary(sweep_dir: Path, storage: str | None, study_name: str | None) -> str:
    """Best trial of an Optuna search, and the study's trial states when its storage is known."""
    lines = []
    results = sweep_dir / "optimization_results.yaml"
    if results.exists():
        best = OmegaConf.load(results)
        params = " ".join(f"{k}={v}" for k, v in best.best_params.items())
        lines.append(f"Optuna best trial: value {best.best_value:.4g}, `{params}`")
    if storage and study_name:
        import optuna

        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except Exception as error:  # no such study, or the storage is out of reach
            lines.append(f"Optuna study `{study_name}` not read from {storage}: {error}")
            return "\n".join(lines)
        states: dict[str, int] = {}
        for trial in study.trials:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        lines.append(
            f"Optuna study `{study_name}` ({storage}): {len(study.trials)} trials, {counts}"
        )
    return "\n".join(lines)


def parent_run(client: Any, experiment_id: str, experiment: str, sweep: str) -> str:
    """The sweep's parent run (opened by ``normcoef.sweeps.parent_run``); created for a
    sweep that ran without it."""
    found = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{SUMMARY_TAG}` = 'true' and tags.`{EXPERIMENT_TAG}` = '{experiment}' "
            f"and tags.`{SWEEP_TAG}` = '{sweep}'"
        ),
    )
    if found:
        return found[0].info.run_id
    tags = {SUMMARY_TAG: "true", EXPERIMENT_TAG: experiment, SWEEP_TAG: sweep}
    return client.create_run(experiment_id, tags=tags, run_name=f"{experiment} sweep").info.run_id


def log_summary(
    client: Any, experiment_id: str, experiment: str, sweep: str, table: str, rows: list[Row]
) -> str:
    """Log the table and the best run on the sweep's parent run; nest the jobs under it."""
    run_id = parent_run(client, experiment_id, experiment, sweep)
    client.log_text(run_id, table, TABLE_FILE)
    description = client.get_run(run_id).data.tags.get(DESCRIPTION_TAG, "")
    client.set_tag(run_id, "mlflow.note.content", f"{description}\n\n{table}".strip())
    best = best_row(rows)
    if best is not None:
        client.set_tag(run_id, "normcoef.best", ",".join(best.values.values()) or "CNN")
        client.set_tag(run_id, "normcoef.best_run", best_run(best).run_id)
        for key, _ in METRICS:
            client.log_metric(run_id, f"best/val/{key}", best.validation[key])
            client.log_metric(run_id, f"best/{best.completed[0].split}/{key}", best.summary[key])
    for row in rows:
        for run in row.runs:
            if run.run_id:
                client.set_tag(run.run_id, "mlflow.parentRunId", run_id)
    client.set_terminated(run_id)
    return run_id


def store_exists(tracking_uri: str) -> bool:
    """False for an embedded SQLite store whose file is missing (MLflow would create it)."""
    from normcoef.tracking_store import sqlite_path  # imports SQLAlchemy: only when reporting

    path = sqlite_path(tracking_uri)
    return path is None or path.exists()


def report(
    experiment: str,
    tracking_uri: str | None = None,
    mlflow_experiment: str = "normcoef",
    sweep: str = "latest",
    optuna: tuple[str | None, str | None] = (None, None),
    log: bool = True,
) -> str:
    """The Markdown report of one sweep of ``experiment`` (the ``experiment_name`` tag)."""
    from mlflow import MlflowClient

    uri = tracking_uri or DEFAULT_TRACKING_URI
    if not store_exists(uri):
        raise FileNotFoundError(
            f"no MLflow store at {uri}: train first, or name the sweep's store with "
            "logger.tracking_uri=..."
        )
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(mlflow_experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment {mlflow_experiment!r} in {uri}")
    runs = search_experiment_runs(client, found.experiment_id, experiment)
    if not runs:
        raise LookupError(
            f"no run of experiment {experiment!r} in {uri}; sweep it first: "
            "python -m normcoef.train -m experiment=..."
        )
    sweep = select_sweep(runs, sweep)
    runs = [run for run in runs if run.data.tags.get(SWEEP_TAG) == sweep]
    results = [run_result(client, run) for run in runs]
    recorded = {run.data.tags.get("normcoef.overrides", "") for run in runs}
    results += missing_jobs(Path(sweep), recorded)
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
        run_id = log_summary(client, found.experiment_id, experiment, sweep, table, rows)
        table += f"\n\nLogged as {TABLE_FILE} on MLflow run {run_id}, the sweep's parent run."
    return table


def compose_train_config(overrides: Sequence[str]) -> DictConfig:
    """The training config the sweep ran with (experiment name, tracking store, sweeper)."""
    from hydra import compose, initialize
    from hydra.errors import HydraException

    from normcoef.config import register_configs

    register_configs()
    with initialize(version_base="1.3", config_path="../conf"):
        try:
            return compose("train", overrides=list(overrides), return_hydra_config=True)
        except HydraException as error:  # an unknown experiment, a misspelt key...
            raise ValueError(f"{' '.join(overrides)}: {error}") from error


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__)
        return
    if malformed := [arg for arg in args if "=" not in arg]:
        raise ValueError(f"arguments are key=value; got {malformed} (see --help)")
    options = {k: v for k, v in (arg.split("=", 1) for arg in args) if k in REPORT_OPTIONS}
    cfg = compose_train_config([arg for arg in args if arg.split("=", 1)[0] not in options])
    sweeper = cfg.hydra.sweeper
    print(
        report(
            cfg.experiment_name,
            cfg.logger.tracking_uri,
            cfg.logger.experiment,
            options.get("sweep", "latest"),
            (sweeper.get("storage"), sweeper.get("study_name")),
            log=options.get("log", "true").lower() != "false",
        )
    )


if __name__ == "__main__":
    main()
