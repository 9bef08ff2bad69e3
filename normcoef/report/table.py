"""The ablation table: one row per configuration, seeds aggregated, the best row chosen on
validation; pure functions of the runs, which ``normcoef.report.runs`` reads from MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from normcoef.metrics import aggregate
from normcoef.tracking import short_value

METRICS = (("eps_q", "ε_Q"), ("eps_max", "ε_max"), ("eps_mean", "ε_mean"))
SELECT_ON = "eps_q"  # the validation metric that chooses the best configuration
VALIDATION_LABEL = "val ε_Q (chooses)"
"""The column of the metric the best row was chosen on, beside the test metrics reported."""
SEED_KEY = "trainer.seed"


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
        "| "
        + " | ".join([*header, VALIDATION_LABEL, *(label for _, label in METRICS), "runs"])
        + " |",
        "|" + "---|" * (len(header) + len(METRICS) + 2),
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
        chooses = _cell(row.validation, SELECT_ON) if SELECT_ON in row.validation else "–"
        count = f"{len(row.completed)}"
        if row.failed:
            count += f" + {len(row.failed)} failed"
        if row.completed and row.completed[0].split == "val":
            count += " (val)"
        lines.append("| " + " | ".join([*labels, chooses, *cells, count]) + " |")
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
    return ["| " + " | ".join([*labels, "–", *cells, "baseline"]) + " |"]


def _legend(rows: Sequence[Row], best: Row | None) -> str:
    seeds = any(len(row.completed) > 1 for row in rows)
    text = (
        "Best chosen on validation ε_Q (`best/val/eps_q`, the best checkpoint's: the "
        f'"{VALIDATION_LABEL}" column); test metrics reported: the test split of the best '
        "checkpoint (`test/cnn/*`)"
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
