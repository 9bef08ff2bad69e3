"""A grid sweep on SLURM logging to the MLflow server: what ``docs/sweeps.md`` tells cluster
users to run, at the smoke presets' size (4 runs of 6 steps, one SLURM job of 1 CPU each).

    python -m normcoef.train -m experiment=smoke/activation hydra/launcher=slurm_cpu \
        logger.tracking_uri=http://<server>:<port> ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    MLFLOW_URI,
    Done,
    Host,
    artifact_paths,
    download_artifact,
    on_slurm,
    server_runs,
    slurm_job_states,
    unique,
)

from normcoef.tracking import Tag
from normcoef.training.checkpoint import load_checkpoint

EXPERIMENT = unique("grid")
ACTIVATIONS = {"relu", "prelu", "elu", "softplus"}  # conf/experiment/activation.yaml


@dataclass
class Sweep:
    host: Host
    done: Done

    @property
    def sweep_dir(self) -> Path:
        (path,) = (self.host.root / "multirun" / "activation_smoke").iterdir()
        return path


@pytest.fixture(scope="module")
def sweep(new_host) -> Sweep:
    host = new_host("grid")
    done = host.run("normcoef.train", "-m", "experiment=smoke/activation", *on_slurm(EXPERIMENT))
    return Sweep(host, done)


def test_the_sweep_exits_0_with_its_table(sweep: Sweep):
    assert sweep.done.returncode == 0, sweep.done.output[-4000:]
    assert "| **" in sweep.done.output and "(best)" in sweep.done.output


def test_each_run_was_a_slurm_job_that_completed(sweep: Sweep):
    states = slurm_job_states(sweep.sweep_dir)
    assert len(states) == len(ACTIVATIONS)
    assert set(states.values()) == {"COMPLETED"}, states


def test_every_job_is_a_finished_run_on_the_server_nested_under_one_parent(sweep: Sweep):
    runs = server_runs(EXPERIMENT)
    (parent,) = [run for run in runs if run.data.tags.get(Tag.SUMMARY) == "true"]
    children = [run for run in runs if run is not parent]

    assert len(children) == len(ACTIVATIONS)
    assert {run.data.tags.get("mlflow.parentRunId") for run in children} == {parent.info.run_id}
    assert {run.info.status for run in [parent, *children]} == {"FINISHED"}
    assert {run.data.params["activation"] for run in children} == ACTIVATIONS
    for run in children:  # trained, validated and tested on the SLURM node
        assert {"best/val/eps_q", "test/cnn/eps_q"} <= set(run.data.metrics)


def test_checkpoints_and_figures_download_through_the_servers_rest_api(
    sweep: Sweep, tmp_path: Path
):
    runs = [run for run in server_runs(EXPERIMENT) if run.data.tags.get(Tag.SUMMARY) != "true"]
    assert runs
    for run in runs:
        run_id = run.info.run_id
        # Served by the server (--serve-artifacts), not a path on a shared disk.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        checkpoints = artifact_paths(run_id, "checkpoints")
        assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= set(checkpoints)
        figures = [path for path in artifact_paths(run_id, "figures") if path.endswith(".png")]
        assert figures

        state = load_checkpoint(download_artifact(run_id, "checkpoints/last.pt", tmp_path))
        assert state["step"] == 6  # smoke/shrink.yaml's trainer.steps
        assert download_artifact(run_id, figures[0], tmp_path).read_bytes()[:4] == b"\x89PNG"


def test_the_report_builds_its_table_from_the_server_on_another_host(sweep: Sweep, new_host):
    elsewhere = new_host("report")  # no multirun/ folder: only the server knows the sweep
    done = elsewhere.run(
        "normcoef.report",
        "experiment=smoke/activation",
        f"logger.tracking_uri={MLFLOW_URI}",
        f"logger.experiment={EXPERIMENT}",
        "log=false",
    )

    assert done.returncode == 0, done.output[-4000:]
    rows = [line for line in done.output.splitlines() if line.startswith("| ")]
    named = {row.split("|")[1].replace("*", "").split()[0] for row in rows[1:]}  # under the header
    assert ACTIVATIONS <= named
    assert "(best)" in done.output
