"""``scancel`` of a running trial's SLURM job: the trial ends FAIL, the search goes on and
says so in its exit status, and the same command again brings the study to its target.

Before normcoef's SLURM launcher (hydra_plugins/normcoef_slurm_launcher), hydra-submitit-
launcher raised submitit's UncompletedJobError out of the sweep: a traceback, exit 1, and no
further trial.
"""

from __future__ import annotations

import subprocess

from conftest import Host, search, server_runs, trials, unique, wait, wait_until
from optuna.trial import TrialState

from normcoef.sweeps.failures import EXIT_SOME_JOBS_FAILED
from normcoef.tracking import Tag

STUDY = unique("scancel")
N_TRIALS = 2
# Long enough (about 25 s on a CPU core) to be cancelled while it trains.
STEPS = "trainer.steps=4000"


def training_run(study: str) -> bool:
    """Whether a trial's run is in its training loop: it wrote a training loss to the server
    (the first after 10 s, normcoef.tracking.tracker.FLUSH_SECONDS)."""
    runs = server_runs(study)
    return any(r.info.status == "RUNNING" and "train/loss" in r.data.metrics for r in runs)


def running_slurm_job() -> str:
    """The id of the one SLURM job running now ('' if none)."""
    done = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True)
    return done.stdout.strip()


def test_a_cancelled_job_fails_its_trial_and_the_search_reaches_its_target_when_rerun(
    new_host,
):
    host: Host = new_host("scancel")
    process = search(host, STUDY, N_TRIALS, STEPS)
    wait_until(lambda: training_run(STUDY), "trial run training on the MLflow server")
    job = wait_until(running_slurm_job, "running SLURM job")
    subprocess.run(["scancel", job], check=True)

    done = wait(process)

    assert done.returncode == EXIT_SOME_JOBS_FAILED, done.output[-4000:]
    assert f"1 of {N_TRIALS} jobs of the sweep" in done.output
    assert f"SLURM job {job} ended CANCELLED" in done.output
    assert "Traceback" not in done.output
    states = {trial.number: trial.state for trial in trials(STUDY)}
    assert states == {0: TrialState.FAIL, 1: TrialState.COMPLETE}
    # The cancelled job's run was closed by the job itself (SIGTERM), not left RUNNING.
    statuses = sorted(r.info.status for r in server_runs(STUDY) if not r.data.tags.get(Tag.SUMMARY))
    assert statuses == ["FINISHED", "KILLED"]

    again = wait(search(host, STUDY, N_TRIALS, STEPS))

    assert again.returncode == 0, again.output[-4000:]
    assert len(trials(STUDY, TrialState.COMPLETE)) == N_TRIALS


def test_a_search_whose_host_died_has_its_trial_failed_by_another_hosts_search(new_host):
    study = unique("lost-host")
    beats = ["hydra.sweeper.heartbeat_interval=2", "hydra.sweeper.grace_period=6"]
    lost = search(new_host("lost_host"), study, N_TRIALS, STEPS, *beats)
    wait_until(lambda: training_run(study), "trial run training on the MLflow server")
    job = wait_until(running_slurm_job, "running SLURM job")
    lost.kill()  # the host and its job vanish: no result, no heartbeat, trial 0 left RUNNING
    lost.wait()
    subprocess.run(["scancel", job], check=True)
    assert [trial.state for trial in trials(study)] == [TrialState.RUNNING]

    done = wait(search(new_host("surviving_host"), study, N_TRIALS, *beats))

    # Trial 0's owner, a process of this machine, is gone: marked FAIL at once (across real
    # hosts, once its heartbeat is 6 s old); this search ran trials until the study held
    # N_TRIALS COMPLETE ones.
    assert done.returncode == 0, done.output[-4000:]
    assert "trial 0 stopped without a result (killed?): marked FAIL" in done.output
    states = {trial.number: trial.state for trial in trials(study)}
    assert states == {0: TrialState.FAIL, 1: TrialState.COMPLETE, 2: TrialState.COMPLETE}
