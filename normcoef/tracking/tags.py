"""MLflow tag names, and the tags that find, group and nest a run.

Job runs (training), a sweep's parent run (``normcoef.sweeps.parent_run``) and the report
(``normcoef.report``) find each other by these tags; every module names them through
``Tag``, never as string literals.

A run's overrides are tagged one per key (``normcoef.override.<key>`` = value as typed): the
structured form the report reads. ``normcoef.overrides`` holds Hydra's ``override_dirname``
too, for people (it names the job's folder); only runs from before the structured tags are
read from it, by ``parse_override_dirname``, a fallback kept so that old sweeps still report.
"""

from __future__ import annotations

import re

from normcoef.tracking.job import PRESET_GROUPS, JobContext


class Tag:
    """The run tags normcoef writes and reads (``Tag.SWEEP``, ...): one namespace, so that no
    module spells a tag as a string literal."""

    EXPERIMENT = "normcoef.experiment"
    SWEEP = "normcoef.sweep"
    DESCRIPTION = "normcoef.description"
    FAILURE = "normcoef.failure"
    PRESET = "normcoef.preset"
    OVERRIDE_PREFIX = "normcoef.override."
    """Prefix of one tag per override: ``normcoef.override.<key>`` = value as typed."""
    OVERRIDE_DIRNAME = "normcoef.overrides"
    """Hydra's ``override_dirname`` ("a=1,b=x"): for people; read only for runs without
    ``OVERRIDE_PREFIX`` tags."""
    SUMMARY = "normcoef.summary"
    """``true`` on a sweep's parent run, which holds the report rather than a job."""
    BEST = "normcoef.best"
    BEST_RUN = "normcoef.best_run"
    RESUMED_BY = "normcoef.resumed_by"
    RESUMED_FROM = "normcoef.resumed_from"
    # MLflow's own tags: the UI nests, describes and links runs by them.
    PARENT_RUN = "mlflow.parentRunId"
    NOTE = "mlflow.note.content"
    GIT_COMMIT = "mlflow.source.git.commit"


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
        Tag.EXPERIMENT: experiment,
        Tag.OVERRIDE_DIRNAME: override_dirname or NO_OVERRIDES,
        Tag.SWEEP: sweep_dir or "",
    }
    presets = [f"{g}={job.choices[g]}" for g in PRESET_GROUPS if g in job.choices]
    if presets:
        tags[Tag.PRESET] = ",".join(presets)
    tags.update({Tag.OVERRIDE_PREFIX + key: value for key, value in job.overrides.items()})
    if parent_run_id:
        tags[Tag.PARENT_RUN] = parent_run_id
    return tags


def run_overrides(tags: dict[str, str]) -> dict[str, str]:
    """A run's overrides: its ``normcoef.override.<key>`` tags, or (runs from before them)
    its parsed ``normcoef.overrides`` tag."""
    structured = {
        k[len(Tag.OVERRIDE_PREFIX) :]: v
        for k, v in tags.items()
        if k.startswith(Tag.OVERRIDE_PREFIX)
    }
    return structured or parse_override_dirname(tags.get(Tag.OVERRIDE_DIRNAME, ""))


def parse_override_dirname(text: str) -> dict[str, str]:
    """Hydra's ``override_dirname`` ("a=1,b=x") -> {"a": "1", "b": "x"}: old runs only."""
    if not text or text == NO_OVERRIDES:
        return {}
    items = (item.split("=", 1) for item in _ITEM_SPLIT.split(text))
    return {item[0]: item[1] if len(item) > 1 else "" for item in items}
