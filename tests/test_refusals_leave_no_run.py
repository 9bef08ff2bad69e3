"""A refusal leaves no trace in the tracking store: every check ``run_training`` makes from the
config or the environment runs before its MLflow run opens.

One case per check of the path before the tracker starts (``pipeline.run_training``): the
schema's values (``validate``), the tracking store (``check_tracking_store``), one process per
run (``refuse_data_parallel``), the data set (missing, physically invalid), the network, the
checkpoint to resume and its data (``resume_point``, ``check_can_train`` and the resume
checks), the crop (``check_crop``), the checkpoint folder. Each must leave a fresh store with
no run at all, not a FAILED one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import TinyDataset, TrainTiny
from helpers import compose_config, tiny_overrides
from mlflow import MlflowClient
from test_physical_validity import broken_copy

from normcoef.pipeline import run_training
from normcoef.tracking.store import prepare_tracking_store, tracking_store_problem

REFUSALS: dict[str, tuple[list[str], str]] = {
    "value out of range": (["trainer.steps=0"], r"steps"),
    "crop larger than the grid": (["trainer.crop=[40,40]"], r"larger than the 16x24 grid"),
    "crop with same padding": (
        ["trainer.crop=[4,6]", "model.padding=same"],
        r"needs a network with valid padding",
    ),
    "crop with online augmentation": (
        ["trainer.crop=[4,6]", "augmentation=hflip", "augmentation.mode=online"],
        r"augmentation.mode=offline",
    ),
    "data set missing": (["dataset.root={tmp}/nowhere"], r"does not exist"),
    "W <= 0 on an ocean cell": (["dataset.root={broken}"], r"channel W"),
    "checkpoint to resume missing": (["trainer.resume={tmp}/none.pt"], r"none.pt"),
    "resume on data of another M": (
        ["dataset.root={other_m}", "trainer.resume={run}/last.pt"],
        r"made with M=8",
    ),
    "checkpoint folder already used": (["trainer.output_dir={run_parent}"], r"already holds"),
    "tracking server that does not answer": (
        ["logger.tracking_uri=http://127.0.0.1:9"],
        r"does not answer",
    ),
    "torchrun with several processes": (["WORLD_SIZE=2"], r"WORLD_SIZE=2"),
}


def runs_in(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, train_tiny: TrainTiny) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory.mktemp("refusals"))


@pytest.mark.reliability(
    "train",
    "any refusal of a training run (values, store, data, network, resume, crop, folder)",
    "error",
    "refused before the MLflow run opens: the store holds no FAILED or RUNNING run",
)
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_run_leaves_the_store_as_it_was(
    case: str,
    trained: tuple[Path, Path],
    tiny_dataset: TinyDataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    root, run_dir = trained
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_tracking_store(uri, "normcoef")
    overrides, message = REFUSALS[case]
    places = {
        "tmp": tmp_path,
        "run": run_dir,
        "run_parent": run_dir.parent,
        "other_m": tiny_dataset(2, steps=8),
        "broken": broken_copy(root, tmp_path / "broken", 2, 0.0) if "W <=" in case else "",
    }
    overrides = [o.format(**places) for o in overrides]
    if "WORLD_SIZE=2" in overrides:
        monkeypatch.setenv("WORLD_SIZE", "2")
        overrides.remove("WORLD_SIZE=2")
    settings = [
        f"dataset.root={root}",
        *tiny_overrides(test=2),
        "dataset.standardization=partial",
        f"logger.tracking_uri={uri}",
        *overrides,
    ]
    target = run_dir if case == "checkpoint folder already used" else tmp_path / "run"
    if "resume" in case and "missing" not in case:
        target = tmp_path / "resumed"
        shutil.copytree(run_dir, target)
        settings = [s.replace(str(run_dir), str(target)) for s in settings]
    with pytest.raises(Exception, match=message):
        run_training(compose_config("train", *settings), run_dir=target)
    assert runs_in(uri) == []


@pytest.mark.reliability(
    "train",
    "a tracking store runs cannot be written to (unwritable SQLite, file store, no server, "
    "no database driver)",
    "error",
    "one line naming the store and the fix, before the run opens",
)
@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "sqlite:////proc/normcoef/mlflow.db",
            r"^logger.tracking_uri=sqlite:////proc/normcoef/mlflow.db: cannot create /proc/",
        ),
        ("/proc/mlruns", r"MLflow's file store\), which MLflow no longer writes to"),
        (
            "http://127.0.0.1:9",
            r"^logger.tracking_uri=http://127.0.0.1:9: the MLflow server does not answer",
        ),
        ("postgresql+nosuchdriver://u@localhost/db", r"not a store MLflow knows"),
        ("mysql://u@127.0.0.1:9/db", r"needs the database driver|the database does not answer"),
    ],
)
def test_a_store_runs_cannot_be_written_to_is_named(uri: str, message: str):
    problem = tracking_store_problem(uri)
    assert problem is not None and "\n" not in problem
    assert re.search(message, problem), problem


def test_stores_runs_can_be_written_to_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert tracking_store_problem(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}") is None
    prepare_tracking_store(f"sqlite:///{tmp_path / 'm.db'}", "normcoef")
    assert tracking_store_problem(f"sqlite:///{tmp_path / 'm.db'}") is None
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert tracking_store_problem(str(tmp_path / "mlruns")) is None
