"""MLflow tag names, and the tags that find, group and nest a run.

Job runs (training), a sweep's parent run (``normcoef.sweeps.parent_run``) and the report
(``normcoef.report``) find each other by these tags; every module names them through these
constants, never as string literals.

A run's overrides are tagged one per key (``normcoef.override.<key>`` = value as typed): the
structured form the report reads. ``normcoef.overrides`` holds Hydra's ``override_dirname``
too, for people (it names the job's folder); only runs from before the structured tags are
read from it, by ``parse_override_dirname``, a fallback kept so that old sweeps still report.
"""

from __future__ import annotations

import re

from normcoef.tracking.job import PRESET_GROUPS, JobContext

EXPERIMENT_TAG = "normcoef.experiment"
SWEEP_TAG = "normcoef.sweep"
DESCRIPTION_TAG = "normcoef.description"
FAILURE_TAG = "normcoef.failure"
PRESET_TAG = "normcoef.preset"
OVERRIDE_TAG = "normcoef.override."
"""Prefix of one tag per override: ``normcoef.override.<key>`` = value as typed."""
OVERRIDE_DIRNAME_TAG = "normcoef.overrides"
"""Hydra's ``override_dirname`` ("a=1,b=x"): for people; read only for runs without
``OVERRIDE_TAG`` tags."""
SUMMARY_TAG = "normcoef.summary"
"""``true`` on a sweep's parent run, which holds the report rather than a job."""
BEST_TAG = "normcoef.best"
BEST_RUN_TAG = "normcoef.best_run"
RESUMED_BY_TAG = "normcoef.resumed_by"
RESUMED_FROM_TAG = "normcoef.resumed_from"
# MLflow's own tags: the UI nests, describes and links runs by them.
PARENT_RUN_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
GIT_COMMIT_TAG = "mlflow.source.git.commit"

NO_OVERRIDES = "(defaults)"
# override_dirname joins "key=value" items with ","; a comma inside a value (a list) is not
# followed by "key=".
_ITEM_SPLIT = re.compile(r",(?=[\w.+~/@-]+=)")


def run_tags(
    experiment: str,
    job: JobContext,
    override_dirname: str = "",
    sweep_dir: str | None = None,
    parent_run_id: str | None = None,
) -> dict[str, str]:
    """Tags that find, group and nest a job run: experiment, sweep, preset, each override,
    and the sweep's parent run when there is one."""
    tags = {
        EXPERIMENT_TAG: experiment,
        OVERRIDE_DIRNAME_TAG: override_dirname or NO_OVERRIDES,
        SWEEP_TAG: sweep_dir or "",
    }
    presets = [f"{g}={job.choices[g]}" for g in PRESET_GROUPS if g in job.choices]
    if presets:
        tags[PRESET_TAG] = ",".join(presets)
    tags.update({OVERRIDE_TAG + key: value for key, value in job.overrides.items()})
    if parent_run_id:
        tags[PARENT_RUN_TAG] = parent_run_id
    return tags


def run_overrides(tags: dict[str, str]) -> dict[str, str]:
    """A run's overrides: its ``normcoef.override.<key>`` tags, or (runs from before them)
    its parsed ``normcoef.overrides`` tag."""
    structured = {k[len(OVERRIDE_TAG) :]: v for k, v in tags.items() if k.startswith(OVERRIDE_TAG)}
    return structured or parse_override_dirname(tags.get(OVERRIDE_DIRNAME_TAG, ""))


def parse_override_dirname(text: str) -> dict[str, str]:
    """Hydra's ``override_dirname`` ("a=1,b=x") -> {"a": "1", "b": "x"}: old runs only."""
    if not text or text == NO_OVERRIDES:
        return {}
    items = (item.split("=", 1) for item in _ITEM_SPLIT.split(text))
    return {item[0]: item[1] if len(item) > 1 else "" for item in items}
