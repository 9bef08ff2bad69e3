"""Specification of the CPU thread default: a process's share of the cores it may use."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from normcoef.tracking.job import parallel_jobs
from normcoef.training.threads import thread_share, usable_cores


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)


def test_the_share_divides_the_usable_cores_among_the_jobs_at_once(eight_cores):
    assert usable_cores() == 8
    assert [thread_share(jobs) for jobs in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_a_slurm_job_uses_its_cpus_per_task_when_not_pinned(
    eight_cores, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert thread_share() == 2


def hydra_cfg(mode: RunMode, launcher: dict) -> object:
    return OmegaConf.create({"mode": mode, "launcher": launcher})


def test_only_a_parallel_launcher_of_a_sweep_runs_jobs_at_once(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher", "n_jobs": 2}
    assert parallel_jobs(hydra_cfg(RunMode.MULTIRUN, joblib)) == 2
    assert parallel_jobs(hydra_cfg(RunMode.MULTIRUN, {**joblib, "n_jobs": -1})) == 8
    assert parallel_jobs(hydra_cfg(RunMode.RUN, joblib)) == 1  # no sweep: one process
    assert parallel_jobs(hydra_cfg(RunMode.MULTIRUN, {"_target_": "BasicLauncher"})) == 1


WAIT_POLICY_PROBE = """
import os, sys

loaded = []  # whether torch was loaded, at each write of OMP_WAIT_POLICY


def hook(event, args):
    if event == "os.putenv" and os.fsdecode(args[0]) == "OMP_WAIT_POLICY":
        loaded.append("torch" in sys.modules)


sys.addaudithook(hook)
import normcoef.cli.train  # the command that loads the most, torch among it
import torch

print(os.environ["OMP_WAIT_POLICY"], loaded)
"""
"""A fresh interpreter that imports a command and prints the variable and, for each time it
was set, whether torch was loaded already (libgomp reads it once, when torch loads)."""


def wait_policy(**env: str) -> str:
    """What the probe prints in a fresh process, with ``env`` over this one's environment
    less OMP_WAIT_POLICY."""
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    command = [sys.executable, "-c", WAIT_POLICY_PROBE]
    done = subprocess.run(command, env={**base, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_openmp_threads_sleep_by_a_setting_made_before_torch_loads_unless_the_user_set_it():
    assert wait_policy() == "PASSIVE [False]"  # set once, torch not yet loaded
    assert wait_policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE []"  # the user's value, untouched
