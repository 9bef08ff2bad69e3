"""Specification of tracking: nothing logged is lost, runs are named and tagged for review,
a sweep's jobs nest under a parent opened before them, and checkpoints reach MLflow as they
are written, so that a crashed run can be resumed by its run id.

Runs call ``run_training`` on a 16x24 python grid with 3/1/1 samples, 3-layer 4-channel
networks and a few CPU steps; each test gets its own copy of one SQLite store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TinyDataset
from helpers import compose_config, tiny_overrides
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from normcoef import tracking
from normcoef.metrics import aggregate
from normcoef.pipeline import run_training
from normcoef.sweeps.failures import BASIC_SWEEPER
from normcoef.sweeps.parent_run import ParentRun
from normcoef.tracking import (
    JobContext,
    MLflowTracker,
    job_context,
    read_sweep_parent,
    run_name,
)

REPO = Path(__file__).resolve().parents[1]
TINY = [
    *tiny_overrides(test=1, layers=3, steps=4, eval_every=2),
    "trainer.checkpoint_every=2",
    "trainer.num_threads=1",
    "evaluation.randomization_samples=0",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """The tiny data set under data/ and an MLflow store to copy, template.db."""
    root = tmp_path_factory.mktemp("tracking")
    tiny_dataset(test=1, into=root / "data")
    client = MlflowClient(f"sqlite:///{root / 'template.db'}")
    client.create_experiment("normcoef", artifact_location=str(root / "artifacts"))
    return root


@pytest.fixture
def store(workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(workdir / "template.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def config(workdir: Path, out: Path, uri: str, *overrides: str) -> DictConfig:
    return compose_config(
        "train",
        f"dataset.root={workdir / 'data'}",
        f"trainer.output_dir={out}",
        f"logger.tracking_uri={uri}",
        *TINY,
        *overrides,
    )


def only_run(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("normcoef").experiment_id])
    runs = [run for run in runs if "normcoef.summary" not in run.data.tags]
    assert len(runs) == 1
    return runs[0]


# --- logging -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["FINISHED", "FAILED"])
def test_metrics_are_written_in_batches_and_all_are_in_mlflow_once_the_run_ends(
    store: str, monkeypatch: pytest.MonkeyPatch, status: str
):
    monkeypatch.setattr(tracking.tracker, "FLUSH_SECONDS", 1e9)  # batches by size only, here
    tracker = MLflowTracker("normcoef", "batched", store)
    writes = []
    log_batch = tracker._client.log_batch
    monkeypatch.setattr(
        tracker._client, "log_batch", lambda *a, **k: writes.append(log_batch(*a, **k))
    )
    for step in range(1, 601):  # 1200 values: one full batch of 1000 during the loop
        tracker.log_metrics({"train/loss": 1.0 / step, "train/lr": 1e-3}, step)
    assert len(writes) == 1
    tracker.finish(status)
    assert len(writes) == 2
    history = MlflowClient(store).get_metric_history(tracker.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / s) for s in range(1, 601)]
    assert MlflowClient(store).get_run(tracker.run_id).info.status == status


def test_the_experiment_opens_on_mlflows_model_training_view(store: str):
    MLflowTracker("normcoef", "first", store).finish()
    experiment = MlflowClient(store).get_experiment_by_name("normcoef")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # The review view (?viewStateShareKey=normcoef) shows the test metrics as columns.
    view = json.loads(experiment.tags["mlflow.sharedViewState.normcoef"])
    assert "metrics.`test/cnn/eps_max`" in view["selectedColumns"]
    assert "params.`model`" in view["selectedColumns"]
    # Wide enough that test/cnn/eps_max and test/cnn/eps_mean are told apart in the headers.
    assert view["columnWidths"]["metrics.`test/cnn/eps_mean`"] >= 150
    assert set(view["columnWidths"]) <= set(view["columnOrder"])


def test_one_sample_has_no_std_to_log():
    assert aggregate([{"eps_q": 0.5}]) == {"eps_q": 0.5}
    assert aggregate([{"eps_q": 0.5}, {"eps_q": 1.5}]) == {"eps_q": 1.0, "eps_q_std": 0.5}


def test_a_finished_run_logs_the_best_checkpoints_validation_metrics(
    workdir: Path, store: str, tmp_path: Path
):
    run_training(config(workdir, tmp_path, store, "trainer.monitor=val/eps_q"))
    run = only_run(store)
    history = MlflowClient(store).get_metric_history(run.info.run_id, "val/eps_q")
    best = min(history, key=lambda m: m.value)
    eps_max = MlflowClient(store).get_metric_history(run.info.run_id, "val/eps_max")
    assert run.data.metrics["best/val/eps_q"] == best.value
    assert run.data.metrics["best/val/eps_max"] == {m.step: m.value for m in eps_max}[best.step]
    assert not [key for key in run.data.metrics if key.endswith("_std")]  # 1 val, 1 test sample


# --- names, tags, nesting ------------------------------------------------------------------


def test_run_names_lead_with_what_the_sweep_varies_and_leave_presets_out():
    overrides = {"experiment": "smoke/activation", "dataset.root": "data", "activation": "elu"}
    assert run_name(overrides, ["activation"]) == "elu,root=data"
    assert run_name({"trainer.lr": "0.0015930522616241021"}) == "lr=0.00159"
    assert run_name({"experiment": "quickstart"}) is None
    # Trials of an Optuna search share most choices: the trial number leads.
    trial = {"model": "skip_add", "model.layers": "4", "optimizer.lr": "0.0015930522616241021"}
    assert run_name(trial, list(trial), 2) == "#2 skip_add,layers=4,lr=0.00159"


def test_the_runs_of_a_sweep_differ_within_the_characters_the_runs_table_shows():
    shown = 18  # MLflow's runs table cuts a name at about 20 characters with an ellipsis
    for varied, values in {
        "model": ["skip_add", "skip_concat", "cnn"],
        "loss": ["rel_sq", "mse", "eps_sq"],
        "optimizer.lr": ["0.0015930522616241021", "0.0015123", "0.001"],
    }.items():
        names = [run_name({varied: v, "model.layers": "10"}, [varied]) for v in values]
        assert len({name[:shown] for name in names if name}) == len(values), names


def test_job_context_holds_the_overrides_less_excluded_keys_and_the_group_choices():
    hydra = OmegaConf.create(
        {
            "job": {"config": {"override_dirname": {"exclude_keys": ["logger.tracking_uri"]}}},
            "overrides": {
                "task": ["activation=elu", "+extra=1", "logger.tracking_uri=sqlite:///x.db"]
            },
            "runtime": {"choices": {"model": "skip_add", "hydra/launcher": "basic", "x": None}},
        }
    )
    job = job_context(hydra)
    assert job.overrides == {"activation": "elu", "extra": "1"}
    assert job.choices == {"model": "skip_add"}


HYDRA_PLUGINS = "hydra._internal.core_plugins"


def sweep_config(uri: str, sweep_dir: Path) -> DictConfig:
    """What the callbacks read of a multirun's config."""
    return OmegaConf.create(
        {
            "experiment_name": "activation_smoke",
            "logger": {
                "_target_": "normcoef.tracking.MLflowTracker",
                "tracking_uri": uri,
                "experiment": "normcoef",
            },
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "overrides": {"task": ["experiment=smoke/activation", "activation=relu,elu"]},
                # Hydra's basic sweeper and launcher, as a multirun composes them.
                "sweeper": {"_target_": BASIC_SWEEPER, "params": None},
                "launcher": {
                    "_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
                },
            },
        }
    )


@pytest.mark.slow
def test_a_sweeps_jobs_nest_as_they_start_under_a_parent_that_ends_with_the_report(
    workdir: Path, store: str, tmp_path: Path
):
    sweep_dir, sweep = tmp_path / "sweep", sweep_config(store, tmp_path / "sweep")
    callback = ParentRun()
    callback.on_multirun_start(sweep)
    parent = read_sweep_parent(sweep_dir, store)
    assert parent["varied"] == ["activation"]
    client = MlflowClient(store)
    opened = client.get_run(parent["run_id"])
    assert opened.info.status == "RUNNING"
    assert "activation=relu,elu" in opened.data.tags["mlflow.note.content"]
    assert opened.data.tags["normcoef.sweep"] == str(sweep_dir)

    job = JobContext(
        {"experiment": "smoke/activation", "activation": "elu"},
        {
            "experiment": "smoke/activation",
            "activation": "elu",
            "model": "cnn",
            "dataset": "partial_std",
        },
    )
    cfg = config(workdir, tmp_path, store, "experiment=smoke/activation", "activation=elu")
    run_training(cfg, "activation=elu,experiment=smoke/activation", str(sweep_dir), job=job)
    child = only_run(store)
    assert child.data.tags["mlflow.parentRunId"] == parent["run_id"]
    assert child.info.run_name == "elu"
    assert child.data.tags["normcoef.preset"] == "experiment=smoke/activation"
    assert child.data.tags["normcoef.override.activation"] == "elu"
    assert child.data.params["model"] == "cnn"
    # The smoke experiment keeps partial_std's standardization on the python grid: the param
    # says so instead of claiming the global grid.
    grid = f"{cfg.dataset.grid} {cfg.dataset.height}x{cfg.dataset.width}"
    assert grid.startswith("python ")
    assert child.data.params["dataset"] == f"partial_std on {grid}"

    callback.on_multirun_end(sweep)
    closed = client.get_run(parent["run_id"])
    assert closed.info.status == "FINISHED"
    assert closed.data.tags["normcoef.best_run"] == child.info.run_id
    assert "Best chosen on validation ε_Q" in closed.data.tags["mlflow.note.content"]


@pytest.mark.reliability(
    "train", "Ctrl-C during a tracked run", "handled", "the run ends KILLED, its metrics written"
)
def test_an_interrupted_run_ends_killed_with_every_metric_so_far(
    workdir: Path, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def interrupt(self, path, artifact_path=None):
        raise KeyboardInterrupt  # at step 2's best checkpoint, before step 2 is reported

    monkeypatch.setattr(MLflowTracker, "log_artifact", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_training(config(workdir, tmp_path, store))
    run = only_run(store)
    assert run.info.status == "KILLED"
    losses = MlflowClient(store).get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == [1]


# --- crash and resume ----------------------------------------------------------------------

CRASH = """
import os, sys
from hydra import compose, initialize_config_dir
from normcoef import tracking
from normcoef.config import register_configs
from normcoef.tracking import MLflowTracker
from normcoef.pipeline import run_training

log_metrics = MLflowTracker.log_metrics

def dying(self, metrics, step=None):
    if step == 3:  # after the step-2 checkpoint: the process dies without a word
        os._exit(9)
    log_metrics(self, metrics, step)

MLflowTracker.log_metrics = dying
register_configs()
with initialize_config_dir(config_dir=sys.argv[1]):
    cfg = compose("train", overrides=sys.argv[2:])
run_training(cfg)
"""


@pytest.mark.slow
@pytest.mark.reliability(
    "train",
    "a tracked run killed mid-training",
    "handled",
    "its last checkpoint is in MLflow; resuming by run id marks it KILLED",
)
def test_a_killed_run_is_resumed_from_its_mlflow_checkpoint_and_marked_killed(
    workdir: Path, store: str, tmp_path: Path
):
    overrides = [
        f"dataset.root={workdir / 'data'}",
        f"trainer.output_dir={tmp_path / 'crashed'}",
        f"logger.tracking_uri={store}",
        *TINY,
    ]
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(REPO / "conf"), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 9, done.stderr[-2000:]
    crashed = only_run(store)
    assert crashed.info.status == "RUNNING"

    resumed_out = tmp_path / "resumed"
    cfg = config(workdir, resumed_out, store, f"trainer.resume={crashed.info.run_id}")
    run_training(cfg)

    client = MlflowClient(store)
    old = client.get_run(crashed.info.run_id)
    assert old.info.status == "KILLED"
    new_id = old.data.tags["normcoef.resumed_by"]
    new = client.get_run(new_id)
    assert new.info.status == "FINISHED"
    assert new.data.tags["normcoef.resumed_from"] == crashed.info.run_id
    losses = client.get_metric_history(new_id, "train/loss")
    assert [m.step for m in losses] == [3, 4]  # resumed after the step-2 checkpoint
    stored = {a.path for a in client.list_artifacts(new_id, "checkpoints")}
    assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= stored


def test_the_best_network_is_an_mlflow_model_loaded_from_code_that_predicts_gamma(
    workdir: Path, store: str, tmp_path: Path
):
    import mlflow
    import numpy as np

    from normcoef.data.storage import load_split
    from normcoef.inference import load_trained_model

    run_training(config(workdir, tmp_path, store, "logger.log_model=true"))
    run = only_run(store)
    mlflow.set_tracking_uri(store)
    uri = f"runs:/{run.info.run_id}/network"
    model = mlflow.pyfunc.load_model(uri)
    test = load_split(workdir / "data", "test")

    gamma = model.predict({"fields": test.fields, "mask": test.ocean})

    best = load_trained_model(tmp_path / run.info.run_id / "best.pt")
    expected = np.where(test.ocean[0], best.predict(test.fields[0], test.ocean[0]), np.nan)
    np.testing.assert_array_equal(gamma[0], expected)
    local = Path(mlflow.artifacts.download_artifacts(uri))
    assert not list(local.rglob("*.pkl"))  # from code: no pickled Python object
    assert (local / "input_example.json").exists()
    assert model.metadata.signature.inputs.input_names() == ["fields", "mask"]
