"""Ablation tables of a sweep from MLflow (the command: ``normcoef.cli.report``).

- ``table``: the Markdown table, pure functions of ``RunResult``/``Row`` (best on validation);
- ``runs``: a sweep's runs read through ``normcoef.tracking``, the table logged on its parent;
- ``sweep_dir``: jobs that left no run, and the Optuna summary, from the sweep's folder;
- ``sweep_report``: ``report()``, the three put together (also called when a sweep ends);
"""

from normcoef.report.runs import (
    TABLE_FILE,
    best_validation,
    log_summary,
    parent_run,
    run_result,
    select_sweep,
)
from normcoef.report.sweep_dir import missing_jobs, optuna_summary
from normcoef.report.sweep_report import report
from normcoef.report.table import (
    METRICS,
    SELECT_ON,
    Row,
    RunResult,
    best_row,
    best_run,
    format_table,
    group_runs,
    varied_keys,
)
from normcoef.tracking import run_overrides

__all__ = [
    "METRICS",
    "SELECT_ON",
    "TABLE_FILE",
    "Row",
    "RunResult",
    "best_row",
    "best_run",
    "best_validation",
    "format_table",
    "group_runs",
    "log_summary",
    "missing_jobs",
    "optuna_summary",
    "parent_run",
    "report",
    "run_overrides",
    "run_result",
    "select_sweep",
    "varied_keys",
]
