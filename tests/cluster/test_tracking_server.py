"""Trainings against the MLflow server when things go wrong: the server restarts in the middle
of a training, and a run killed on one host resumes on another from its MLflow run id, its
checkpoint downloaded from the server (``trainer.resume=<run id>``). Single runs, as a SLURM
job's command runs them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import (
    MLFLOW_URI,
    Host,
    artifact_paths,
    download_artifact,
    engines,
    server_runs,
    unique,
    wait,
    wait_until,
)
from mlflow import MlflowClient
from mlflow.entities import Run

from normcoef.tracking import Tag
from normcoef.training.checkpoint import load_checkpoint

STEPS = 3000  # about 20 s of training on a busy CPU core


def train(
    host: Host, experiment: str, *overrides: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """One training of the smoke size, ``STEPS`` long, logging to the MLflow server."""
    return host.start(
        "normcoef.train",
        "experiment=smoke/activation",
        f"trainer.steps={STEPS}",
        "trainer.checkpoint_every=500",
        "trainer.num_threads=1",
        f"logger.tracking_uri={MLFLOW_URI}",
        f"logger.experiment={experiment}",
        *overrides,
        env=env,
    )


def the_run(experiment: str) -> Run | None:
    """The experiment's one run, once it is on the server and has logged a training loss."""
    runs = [run for run in server_runs(experiment) if "train/loss" in run.data.metrics]
    return runs[0] if len(runs) == 1 else None


def test_a_training_survives_the_mlflow_server_restarting_and_keeps_every_metric(new_host):
    experiment = unique("server-restart")
    process = train(new_host("restart"), experiment)
    run_id = wait_until(lambda: the_run(experiment), "run logging on the server").info.run_id

    engines("stop-mlflow")  # down for its restart's ~15-20 s: longer than a flush period
    assert process.poll() is None, "the training stopped with the server"
    engines("start-mlflow")
    done = wait(process)

    # MLflow's client retries a request for ~4 minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES, 7, with
    # exponential backoff): the training waited at its next write, then went on.
    assert done.returncode == 0, done.output[-4000:]
    client = MlflowClient(MLFLOW_URI)
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = sorted(metric.step for metric in client.get_metric_history(run_id, "train/loss"))
    assert steps == list(range(1, STEPS + 1))  # every step's loss: none lost, none twice
    assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= set(
        artifact_paths(run_id, "checkpoints")
    )


def test_a_server_down_past_the_retries_ends_the_run_in_one_line_naming_its_checkpoints(
    new_host,
):
    experiment = unique("server-lost")
    host = new_host("server_lost")
    # No retries: the outage outlasts them at once (by default they take minutes).
    process = train(host, experiment, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    wait_until(lambda: checkpointed(experiment), "checkpoint on the server")
    engines("stop-mlflow")
    try:
        done = wait(process)
    finally:
        engines("start-mlflow")

    assert done.returncode == 2, done.output[-4000:]  # a user-facing error, not a bug
    (line,) = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert f"the MLflow server {MLFLOW_URI} stopped answering" in line
    assert "Traceback" not in done.output
    checkpoints = line.rsplit("trainer.resume=", 1)[1]
    assert (Path(checkpoints) / "last.pt").is_file()

    resumed = wait(train(host, experiment, f"trainer.resume={checkpoints}"))

    assert resumed.returncode == 0, resumed.output[-4000:]
    assert "FINISHED" in {run.info.status for run in server_runs(experiment)}


def checkpointed(experiment: str) -> str | None:
    """The id of the experiment's run once its ``checkpoints/last.pt`` is on the server."""
    run = the_run(experiment)
    paths = artifact_paths(run.info.run_id, "checkpoints") if run else {}
    return run.info.run_id if run and "checkpoints/last.pt" in paths else None


def test_a_run_killed_on_one_host_resumes_on_another_from_its_checkpoint_on_the_server(
    new_host, tmp_path: Path
):
    experiment = unique("resume")
    process = train(new_host("resume_first"), experiment)

    killed = wait_until(lambda: checkpointed(experiment), "checkpoint on the server")
    process.kill()  # SIGKILL: the host is lost, the run stays RUNNING on the server
    process.wait()
    at = load_checkpoint(download_artifact(killed, "checkpoints/last.pt", tmp_path))["step"]
    assert 0 < at < STEPS

    done = wait(train(new_host("resume_second"), experiment, f"trainer.resume={killed}"))

    assert done.returncode == 0, done.output[-4000:]
    client = MlflowClient(MLFLOW_URI)
    old = client.get_run(killed)
    (new,) = [run for run in server_runs(experiment) if run.info.run_id != killed]
    assert new.info.status == "FINISHED"
    assert old.info.status == "KILLED"  # closed by the run that resumed it
    assert new.data.tags[Tag.RESUMED_FROM] == killed
    assert old.data.tags[Tag.RESUMED_BY] == new.info.run_id
    steps = sorted(m.step for m in client.get_metric_history(new.info.run_id, "train/loss"))
    assert steps == list(range(at + 1, STEPS + 1))  # went on from the checkpoint
    resumed = load_checkpoint(download_artifact(new.info.run_id, "checkpoints/last.pt", tmp_path))
    assert resumed["step"] == STEPS
