"""A sweep that lost jobs says which and why when it ends, and exits non-zero.

Hydra leaves failed jobs to the sweeper: its BasicSweeper (grid sweeps) re-raises the first
failed job's exception once all jobs ran, with a traceback and no word on the others; the
Optuna sweeper records the trial as FAIL and exits 0. ``FailedJobs`` (registered under
``hydra.callbacks`` in conf/train.yaml) makes both end the same way:

- ``on_job_end`` runs in the job's own process, wherever the launcher put it (in-process,
  joblib worker, SLURM node): it logs a failed job's one-line reason to the job's log (with the
  traceback when the failure looks like a bug) and writes ``job_status.json`` in the job's
  folder, tagged with the id of the multirun that launched it.
- ``on_multirun_end`` runs in the launching process: it reads its own jobs' statuses, prints one
  line per failed job and exits with ``EXIT_SOME_JOBS_FAILED`` or ``EXIT_ALL_JOBS_FAILED``.

A job whose process was killed by its batch system (``scancel``, a time limit, a lost node)
never reaches ``on_job_end``: its launcher reports it with ``lost_job``, which writes the status
from the launching process (hydra_plugins/normcoef_slurm_launcher).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from normcoef.console import USER_ERRORS, one_line
from normcoef.sweeps.naming import unique_suffix

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"
SWEEP_ID_ENV = "NORMCOEF_SWEEP_ID"  # set by the launching process, inherited by its jobs
EXIT_SOME_JOBS_FAILED = 3  # `make sweep` still prints the report of the jobs that finished
EXIT_ALL_JOBS_FAILED = 4
# Failures whose message names the cause and the fix; anything else is a bug: traceback.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = USER_ERRORS  # DivergenceError too
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@dataclass
class JobOutcome:
    """What ``job_status.json`` holds: one job of one multirun, and why it failed."""

    sweep_id: str
    job: int
    overrides: str
    error: str | None = None  # one line; None when the job completed
    lost: bool = False  # written by the launcher for a job that ended without a result

    def line(self) -> str:
        return f"job {self.job} ({self.overrides or 'no overrides'}): {self.error}"


def expected_failure(error: BaseException) -> BaseException | None:
    """The error, or the error it was raised from (``hydra.utils.instantiate`` wraps a model's
    ValueError), that is an expected failure; None for a bug."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, EXPECTED_FAILURES):
        cause = cause.__cause__
    return cause


def failure_reason(error: BaseException, log_file: str) -> str:
    """One line: the message of an expected failure, else the type and where its traceback is."""
    expected = expected_failure(error)
    if expected is not None:
        return one_line(expected)
    return f"{type(error).__name__}: {one_line(error)} (a bug? traceback in {log_file})"


def read_outcomes(sweep_dir: Path, sweep_id: str) -> list[JobOutcome]:
    """The outcomes the jobs of multirun ``sweep_id`` wrote under ``sweep_dir``, one per job
    number.

    Other multiruns may write in the same folder (a resumed or parallel Optuna study). A SLURM
    job cancelled or out of time writes its own failure as SIGTERM stops it, and the launcher
    writes SLURM's word for it (``lost_job``, in the job's submitit folder): SLURM's stands.
    """
    found: dict[int, JobOutcome] = {}
    for path in sweep_dir.rglob(STATUS_FILE) if sweep_dir.is_dir() else ():
        outcome = JobOutcome(**json.loads(path.read_text()))
        if outcome.sweep_id == sweep_id and not getattr(found.get(outcome.job), "lost", False):
            found[outcome.job] = outcome
    return [found[job] for job in sorted(found)]


def summary(outcomes: list[JobOutcome], sweep_dir: Path) -> str:
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    lines = [f"{len(failed)} of {len(outcomes)} jobs of the sweep in {sweep_dir} failed:"]
    return "\n".join(lines + [f"  {outcome.line()}" for outcome in failed])


class LostJobError(RuntimeError):
    """A job ended without a result: cancelled, killed at its time limit, or its node lost."""


def keeps_sweep_going(config: DictConfig, job_return: JobReturn) -> None:
    """BasicSweeper (grid sweeps) would stop the whole multirun at a failed job's exception once
    the batch ends (skipping on_multirun_end): hand it NaN, the failure is recorded."""
    if config.hydra.sweeper._target_ == BASIC_SWEEPER:
        job_return.status, job_return.return_value = JobStatus.COMPLETED, math.nan


def write_outcome(folder: Path, outcome: JobOutcome) -> None:
    """``job_status.json`` in ``folder``, written whole or not at all: a job killed mid-write
    leaves no half a status behind."""
    status = folder / STATUS_FILE
    partial = status.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(outcome)) + "\n")
    partial.replace(status)


def lost_job(
    config: DictConfig, job: int, overrides: Sequence[str], reason: str, folder: Path
) -> JobReturn:
    """The result of job number ``job`` (``overrides``), which ended without one for
    ``reason``: FAILED with a ``LostJobError``, its status written in ``folder`` (under the
    sweep directory) by the launching process."""
    shown = ",".join(o for o in overrides if not o.startswith("hydra."))
    outcome = JobOutcome(os.environ.get(SWEEP_ID_ENV, ""), job, shown, reason, lost=True)
    log.error(outcome.line())
    folder.mkdir(parents=True, exist_ok=True)
    write_outcome(folder, outcome)
    job_return = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    job_return.return_value = LostJobError(reason)
    keeps_sweep_going(config, job_return)
    return job_return


class FailedJobs(Callback):
    """Lists a multirun's failed jobs when it ends and exits non-zero; the others still run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[SWEEP_ID_ENV] = unique_suffix()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return  # a single run ends with its own error (normcoef.train)
        outcome = JobOutcome(
            sweep_id=os.environ.get(SWEEP_ID_ENV, ""),
            job=int(config.hydra.job.num),
            overrides=str(config.hydra.job.override_dirname),
        )
        if job_return.status == JobStatus.FAILED:
            # The exception itself: the return_value property would raise it.
            error = job_return._return_value
            log_file = OmegaConf.select(
                config,
                "hydra.job_logging.handlers.file.filename",
                default=config.hydra.runtime.output_dir,
            )
            outcome.error = failure_reason(error, log_file)
            bug = expected_failure(error) is None
            log.error(outcome.error, exc_info=error if bug else None)
            keeps_sweep_going(config, job_return)
        write_outcome(Path(config.hydra.runtime.output_dir), outcome)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        outcomes = read_outcomes(sweep_dir, os.environ.get(SWEEP_ID_ENV, ""))
        failed = sum(outcome.error is not None for outcome in outcomes)
        if failed:
            print(summary(outcomes, sweep_dir), file=sys.stderr)
            # SystemExit passes Hydra's callback guard and its error report: a clean exit code.
            # Hydra calls on_multirun_end in reverse order: callbacks listed after this one in
            # conf/train.yaml have run theirs by now.
            raise SystemExit(
                EXIT_ALL_JOBS_FAILED if failed == len(outcomes) else EXIT_SOME_JOBS_FAILED
            )
