"""Specification of failing runs and sweeps: a sweep that lost jobs says which and why and exits
non-zero, a single run's mistake is one line, and no run writes into another run's folder.

The callback is driven directly with hand-made job configs; the end-to-end tests run
``python -m normcoef.train`` as a subprocess on a 16x24 python grid with 4-channel networks.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TinyDataset
from helpers import compose_config
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from normcoef.pipeline import run_training
from normcoef.sweeps.failures import (
    BASIC_SWEEPER,
    EXIT_ALL_JOBS_FAILED,
    EXIT_SOME_JOBS_FAILED,
    STATUS_FILE,
    SWEEP_ID_ENV,
    FailedJobs,
    LostJobError,
    lost_job,
)
from normcoef.training.checkpoint import load_checkpoint

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
TINY = [
    "experiment=smoke/shrink",
    "logger=none",
    "evaluate=false",
    "trainer.steps=2",
    "trainer.eval_every=1",
    "trainer.device=cpu",
    "trainer.num_threads=1",
]


@pytest.fixture(scope="module")
def data(tiny_dataset: TinyDataset) -> Path:
    return tiny_dataset(test=1)


# --- the callback, job by job --------------------------------------------------------------


def job_config(sweep_dir: Path, num: int, sweeper: str = BASIC_SWEEPER) -> DictConfig:
    """What Hydra hands a callback for job ``num`` of a multirun writing under ``sweep_dir``."""
    hydra = {
        "mode": RunMode.MULTIRUN,
        "job": {"num": num, "override_dirname": f"trainer.seed={num}"},
        "runtime": {"output_dir": str(sweep_dir / str(num))},
        "sweep": {"dir": str(sweep_dir)},
        "sweeper": {"_target_": sweeper},
    }
    (sweep_dir / str(num)).mkdir(parents=True, exist_ok=True)
    return OmegaConf.create({"hydra": hydra})


def failed(error: Exception) -> JobReturn:
    """A job that raised ``error`` (with its traceback), as Hydra's run_job returns it."""
    try:
        raise error
    except Exception as raised:
        return JobReturn(status=JobStatus.FAILED, _return_value=raised)


def completed() -> JobReturn:
    return JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)


def status(sweep_dir: Path, num: int) -> dict:
    return json.loads((sweep_dir / str(num) / STATUS_FILE).read_text())


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FailedJobs, Path]:
    """A started multirun's callback and its sweep folder."""
    monkeypatch.delenv(SWEEP_ID_ENV, raising=False)
    callback = FailedJobs()
    callback.on_multirun_start(OmegaConf.create({}))
    return callback, tmp_path / "sweep"


@pytest.mark.reliability(
    "sweep", "a grid job fails on a user error", "handled", "one-line reason in the job log"
)
def test_a_failed_grid_job_logs_its_reason_and_lets_the_other_jobs_run(
    sweep, caplog: pytest.LogCaptureFixture
):
    callback, sweep_dir = sweep
    job = failed(FileNotFoundError("data set directory /nope does not exist"))
    with caplog.at_level(logging.ERROR):
        callback.on_job_end(job_config(sweep_dir, 0), job)

    assert status(sweep_dir, 0)["error"] == "data set directory /nope does not exist"
    [record] = caplog.records
    assert record.getMessage() == "data set directory /nope does not exist"
    assert record.exc_info is None
    # Hydra's BasicSweeper would re-raise the job's exception and stop the multirun.
    assert job.status == JobStatus.COMPLETED
    assert math.isnan(job.return_value)


@pytest.mark.reliability(
    "sweep", "a job fails on a bug", "error", "one line at the end, traceback kept in the job log"
)
def test_a_job_failing_on_a_bug_keeps_its_traceback_in_the_job_log(
    sweep, caplog: pytest.LogCaptureFixture
):
    callback, sweep_dir = sweep
    with caplog.at_level(logging.ERROR):
        callback.on_job_end(job_config(sweep_dir, 0), failed(ZeroDivisionError("division")))

    error = status(sweep_dir, 0)["error"]
    assert error.startswith("ZeroDivisionError: division (a bug? traceback in ")
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


@pytest.mark.reliability(
    "sweep", "an Optuna trial's model refuses its layers", "handled", "FAIL in the study, one line"
)
def test_an_optuna_trial_refused_by_its_model_stays_failed_with_the_models_reason(sweep):
    callback, sweep_dir = sweep
    reason = "layers - 2 = 3 hidden layers must be a positive multiple of 2"
    # What hydra.utils.instantiate raises when a constructor refuses its arguments.
    refused = InstantiationException("Error in call to target 'SkipAddCNN'")
    refused.__cause__ = ValueError(reason)
    job = failed(refused)
    callback.on_job_end(job_config(sweep_dir, 0, OPTUNA_SWEEPER), job)
    assert job.status == JobStatus.FAILED  # the sweeper records FAIL in the study
    assert status(sweep_dir, 0)["error"] == reason


def test_a_single_run_is_left_to_its_own_error(tmp_path: Path):
    config = job_config(tmp_path, 0)
    config.hydra.mode = RunMode.RUN
    job = failed(ValueError("bad"))
    FailedJobs().on_job_end(config, job)
    assert job.status == JobStatus.FAILED
    assert not (tmp_path / "0" / STATUS_FILE).exists()


# --- the callback, at the end of the sweep -------------------------------------------------


@pytest.mark.reliability(
    "sweep", "some jobs of a sweep fail", "error", "one line per failed job at the end, exit 3"
)
def test_the_sweep_ends_listing_each_failed_job_and_exits_non_zero(
    sweep, capsys: pytest.CaptureFixture
):
    callback, sweep_dir = sweep
    callback.on_job_end(job_config(sweep_dir, 0), failed(FileNotFoundError("no /nope")))
    callback.on_job_end(job_config(sweep_dir, 1), completed())
    callback.on_job_end(job_config(sweep_dir, 2), failed(ValueError("bad\nlr")))
    with pytest.raises(SystemExit) as ended:
        callback.on_multirun_end(job_config(sweep_dir, 0))

    assert ended.value.code == EXIT_SOME_JOBS_FAILED
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"2 of 3 jobs of the sweep in {sweep_dir} failed:",
        "  job 0 (trainer.seed=0): no /nope",
        "  job 2 (trainer.seed=2): bad lr",
    ]


def test_a_sweep_whose_jobs_all_failed_exits_with_its_own_code(sweep):
    callback, sweep_dir = sweep
    for num in range(2):
        callback.on_job_end(job_config(sweep_dir, num), failed(OSError("disk full")))
    with pytest.raises(SystemExit) as ended:
        callback.on_multirun_end(job_config(sweep_dir, 0))
    assert ended.value.code == EXIT_ALL_JOBS_FAILED


def test_a_sweep_counts_only_its_own_jobs_in_a_shared_folder(
    sweep, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    callback, sweep_dir = sweep
    callback.on_job_end(job_config(sweep_dir, 0), completed())
    # An earlier (or parallel) run of the same Optuna study wrote into the same folder.
    with monkeypatch.context() as other:
        other.setenv(SWEEP_ID_ENV, "another")
        callback.on_job_end(job_config(sweep_dir, 1), failed(ValueError("old failure")))
    callback.on_multirun_end(job_config(sweep_dir, 0))  # no SystemExit
    assert capsys.readouterr().err == ""


CANCELLED = "SLURM job 11 ended CANCELLED by 0 without a result"


def test_a_lost_grid_job_lets_the_others_run_and_the_sweep_lists_it(
    sweep, capsys: pytest.CaptureFixture
):
    # A job scancel'ed never reaches on_job_end: the launcher reports it from the sweep's
    # process (hydra_plugins/normcoef_slurm_launcher; end to end in tests/cluster/).
    callback, sweep_dir = sweep
    callback.on_job_end(job_config(sweep_dir, 0), completed())
    job = lost_job(
        job_config(sweep_dir, 1), 1, ["activation=elu", "hydra.x=1"], CANCELLED, sweep_dir / "11"
    )

    assert job.status == JobStatus.COMPLETED and math.isnan(job.return_value)  # BasicSweeper
    with pytest.raises(SystemExit) as ended:
        callback.on_multirun_end(job_config(sweep_dir, 0))
    assert ended.value.code == EXIT_SOME_JOBS_FAILED
    assert capsys.readouterr().err.splitlines() == [
        f"1 of 2 jobs of the sweep in {sweep_dir} failed:",
        f"  job 1 (activation=elu): {CANCELLED}",
    ]


def test_a_cancelled_job_that_recorded_its_own_failure_is_listed_once(
    sweep, capsys: pytest.CaptureFixture
):
    # scancel: SIGTERM ends the job's run (its own on_job_end), then the launcher finds the job
    # ended without a result and records SLURM's word for it. One job, one line.
    callback, sweep_dir = sweep
    callback.on_job_end(job_config(sweep_dir, 0), completed())
    callback.on_job_end(job_config(sweep_dir, 1), failed(RuntimeError("Terminated")))
    lost_job(job_config(sweep_dir, 1), 1, ["activation=elu"], CANCELLED, sweep_dir / "11")

    with pytest.raises(SystemExit) as ended:
        callback.on_multirun_end(job_config(sweep_dir, 0))
    assert ended.value.code == EXIT_SOME_JOBS_FAILED
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"1 of 2 jobs of the sweep in {sweep_dir} failed:",
        f"  job 1 (activation=elu): {CANCELLED}",
    ]


def test_a_lost_optuna_trial_fails_with_the_reason(sweep):
    _, sweep_dir = sweep
    job = lost_job(job_config(sweep_dir, 3, OPTUNA_SWEEPER), 3, [], CANCELLED, sweep_dir / "11")

    assert job.status == JobStatus.FAILED
    with pytest.raises(LostJobError, match=CANCELLED):
        job.return_value  # noqa: B018 (what the Optuna sweeper reads)


# --- end to end ----------------------------------------------------------------------------


def train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "normcoef.train", *overrides]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "data set missing for one job",
    "error",
    "refused before any job runs, one line, exit 2",
)
def test_a_grid_sweep_with_a_missing_data_set_is_refused_before_any_job_runs(
    data: Path, tmp_path: Path
):
    missing = tmp_path / "nodata"
    done = train(tmp_path, "-m", *TINY, f"dataset.root={data},{missing}", "hydra.sweep.dir=sweep")

    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr.startswith(f"error: dataset.root={missing} does not exist; generate it")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "every job fails before training (a checkpoint to resume that is not there)",
    "error",
    "jobs listed, exit 4; the report says no job started training, not 'sweep it first'",
)
def test_a_sweep_whose_jobs_all_fail_before_training_says_so(data: Path, tmp_path: Path):
    tracked = [override for override in TINY if override != "logger=none"]
    done = train(
        tmp_path,
        "-m",
        *tracked,
        f"dataset.root={data}",
        # Valid values the command-line check lets through; each job then fails on its own.
        f"trainer.resume={tmp_path}/gone1.pt,{tmp_path}/gone2.pt",
        "hydra.sweep.dir=sweep",
        f"logger.tracking_uri=sqlite:///{tmp_path}/runs.db",
    )
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    printed = done.stdout + done.stderr
    assert "no MLflow run of the sweep sweep" in printed
    assert "its jobs ended before training started" in printed
    assert "sweep it first" not in printed
    assert "2 of 2 jobs of the sweep in sweep failed:" in done.stderr


@pytest.mark.slow
def test_a_sweep_whose_jobs_all_succeed_exits_zero(data: Path, tmp_path: Path):
    done = train(tmp_path, "-m", *TINY, f"dataset.root={data}", "trainer.seed=1,2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "jobs of the sweep" not in done.stderr
    assert len(list((tmp_path / "multirun/default").rglob("checkpoints/last.pt"))) == 2


@pytest.mark.slow
@pytest.mark.reliability("train", "data set missing", "error", "one line, exit 2")
def test_a_single_run_on_missing_data_fails_in_one_line(tmp_path: Path):
    done = train(tmp_path, *TINY, f"dataset.root={tmp_path / 'nodata'}")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        f"error: dataset.root={tmp_path / 'nodata'} does not exist; generate it first: "
        "python -m normcoef.generate dataset=python dataset.height=16 dataset.width=24"
    )
    assert "Traceback" not in done.stderr


# --- one run, one folder -------------------------------------------------------------------


def config(data: Path, *overrides: str) -> DictConfig:
    return compose_config("train", *TINY, f"dataset.root={data}", *overrides)


@pytest.mark.reliability(
    "train", "two untracked runs in one output_dir", "handled", "each trains into its own folder"
)
def test_untracked_runs_train_into_folders_of_their_own(data: Path, tmp_path: Path):
    for _ in range(2):
        run_training(config(data, f"trainer.output_dir={tmp_path}"))
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == 2
    assert all((folder / "last.pt").exists() for folder in folders)


@pytest.mark.reliability(
    "checkpoint", "training into a folder holding a run", "error", "refused, names trainer.resume"
)
def test_a_folder_holding_checkpoints_is_refused_unless_resuming_from_it(
    data: Path, tmp_path: Path
):
    run_dir = tmp_path / "run"
    run_training(config(data, "trainer.steps=4", "trainer.stop_at=2"), run_dir=run_dir)
    before = (run_dir / "last.pt").read_bytes()

    with pytest.raises(FileExistsError) as refused:
        run_training(config(data, "trainer.steps=4"), run_dir=run_dir)
    assert str(refused.value) == (
        f"checkpoint folder {run_dir} already holds a run: resume it with "
        f"trainer.resume={run_dir / 'last.pt'}, or train into another folder"
    )
    assert (run_dir / "last.pt").read_bytes() == before

    resume = f"trainer.resume={run_dir / 'last.pt'}"
    run_training(config(data, "trainer.steps=4", resume), run_dir=run_dir)
    assert load_checkpoint(run_dir / "last.pt")["step"] == 4
