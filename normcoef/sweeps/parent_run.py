"""The MLflow parent run of a sweep, opened when the sweep starts (a Hydra callback).

Registered in conf/train.yaml (``hydra.callbacks.parent_run``). ``on_multirun_start`` first
refuses a sweep that cannot run (``normcoef.sweeps.preflight``), then opens (or, for a sweep
directory that already has one, e.g. a resumed Optuna study, reopens) a run tagged like the
sweep's jobs and described in its note, and records its id in the sweep directory
(``normcoef.tracking.PARENT_FILE``): each job, in this process, a joblib worker or another
host, reads it and starts nested under the parent. ``on_multirun_end`` logs
``normcoef.report``'s table on the parent, tags the best job (chosen on validation ε_Q), and
closes it.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from normcoef.console import USER_ERRORS, one_line
from normcoef.sweeps.preflight import refuse, sweep_problem
from normcoef.tracking import (
    RunStore,
    Tag,
    configured_tracking_uri,
    read_sweep_parent,
    sweep_run_name,
    tracking_store_problem,
    tracks_to_mlflow,
    write_sweep_parent,
)

log = logging.getLogger(__name__)


def varied_keys(config: DictConfig) -> list[str]:
    """Keys the sweep varies: command-line sweeps (``a=1,2``) and the sweeper's ``params``."""
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.key_or_group for o in overrides if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params") or {}
    return list(dict.fromkeys([*keys, *params]))


def git_commit() -> str | None:
    """The commit of the checkout normcoef runs from, if it is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def sweep_tags(config: DictConfig, varied: list[str]) -> dict[str, str]:
    """The parent's tags: what ``normcoef.report`` finds it by, and a description."""
    sweep_dir = str(config.hydra.sweep.dir)
    task = " ".join(config.hydra.overrides.task)
    description = (
        f"Sweep of `{config.experiment_name}` started {datetime.now():%Y-%m-%d %H:%M}: "
        f"`{task or '(defaults)'}`, varying {', '.join(varied) or 'nothing'}. "
        f"Jobs write under `{sweep_dir}`; each is a child run of this one."
    )
    tags = {
        Tag.SUMMARY: "true",
        Tag.EXPERIMENT: str(config.experiment_name),
        Tag.SWEEP: sweep_dir,
        Tag.DESCRIPTION: description,
        Tag.NOTE: description,
    }
    commit = git_commit()
    if commit:
        tags[Tag.GIT_COMMIT] = commit
    return tags


def prepared(store: RunStore, experiment: str) -> str:
    """The id of ``experiment`` in ``store``, created if new; a store runs cannot be written to
    (``tracking_store_problem``, the rule a single run follows too) refuses the sweep: each of
    its jobs would fail on it."""
    if (problem := tracking_store_problem(store.uri)) is not None:
        refuse(problem)
    try:
        return store.prepare(experiment)
    except (OSError, ImportError) as error:
        refuse(
            f"logger.tracking_uri={store.uri}: its MLflow store cannot be opened: {one_line(error)}"
        )


class ParentRun(Callback):
    """Opens the sweep's parent run before its jobs start and closes it after they end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Before any run opens: a sweep that cannot run is refused and leaves no trace.
        if (problem := sweep_problem(config)) is not None:
            refuse(problem)
        if not tracks_to_mlflow(config.logger):
            return
        uri = configured_tracking_uri(config.logger)
        store = RunStore(uri)
        # First in the sweep to open the store: creates it (under its lock) before any job.
        experiment_id = prepared(store, config.logger.experiment)
        sweep_dir = str(config.hydra.sweep.dir)
        varied = varied_keys(config)
        known = read_sweep_parent(sweep_dir, uri)
        if known is not None:  # the same sweep directory again: its jobs join the same parent
            store.reopen(known["run_id"])
            write_sweep_parent(sweep_dir, uri, known["run_id"], varied)
            return
        run_id = store.create_run(
            experiment_id, sweep_tags(config, varied), sweep_run_name(config.experiment_name)
        )
        write_sweep_parent(sweep_dir, uri, run_id, varied)
        log.info("MLflow parent run of the sweep: %s", run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not tracks_to_mlflow(config.logger):
            return
        from normcoef.report import report

        sweeper, uri = config.hydra.sweeper, configured_tracking_uri(config.logger)
        try:  # logs the table on the parent run and closes it
            table = report(
                str(config.experiment_name),
                uri,
                config.logger.experiment,
                str(config.hydra.sweep.dir),
                (sweeper.get("storage"), sweeper.get("study_name")),
            )
        except USER_ERRORS as error:  # e.g. every job failed: the sweep itself has ended
            log.warning("no report of the sweep: %s", error)
            parent = read_sweep_parent(str(config.hydra.sweep.dir), uri)
            if parent is not None:
                store = RunStore(uri)
                store.set_tags(parent["run_id"], {Tag.FAILURE: str(error)})
                store.end(parent["run_id"], "FAILED")
            return
        log.info("\n%s", table)
