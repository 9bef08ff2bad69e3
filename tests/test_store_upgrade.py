"""A user's stores of the day before issue 27 open on the new stack: upgraded in place after a
backup, or refused in one line with the upgrade command; never a traceback or a silent change.

tests/data/old_stores holds an mlflow.db and an Optuna study made by MLflow 3.16.1, Optuna
2.10.1 and SQLAlchemy 1.4 (the stack normcoef pinned until then; versions.json), written by
tests/data/old_stores/make_stores.py in a virtual environment of those releases.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from normcoef.tracking.store import (
    OutdatedStoreError,
    prepare_tracking_store,
    tracking_store_problem,
)
from normcoef.tracking.upgrade import current_revision, optuna_storage_problem

OLD_STORES = Path(__file__).parent / "data" / "old_stores"


def old_store(name: str, folder: Path) -> tuple[Path, str]:
    path = folder / name
    shutil.copy(OLD_STORES / name, path)
    return path, f"sqlite:///{path}"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stamp(path: Path, revision: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_the_stores_were_made_by_the_releases_normcoef_pinned_before():
    versions = json.loads((OLD_STORES / "versions.json").read_text())
    assert versions == {"mlflow": "3.16.1", "optuna": "2.10.1", "sqlalchemy": "1.4.54"}


@pytest.mark.reliability(
    "train",
    "an mlflow.db made by MLflow 3.16 (the release pinned before)",
    "warning",
    "copied to mlflow.db.bak-<schema>, upgraded in place, one line; its runs read back",
)
def test_an_mlflow_db_of_the_old_release_is_upgraded_after_a_backup(tmp_path, caplog):
    import mlflow

    path, uri = old_store("mlflow.db", tmp_path)
    old_revision = current_revision(uri)
    assert tracking_store_problem(uri) is None
    (backup,) = tmp_path.glob("mlflow.db.bak-*")
    assert backup.name == f"mlflow.db.bak-{old_revision}"
    assert current_revision(f"sqlite:///{backup}") == old_revision
    assert current_revision(uri) != old_revision
    assert [r.getMessage() for r in caplog.records if "upgraded" in r.getMessage()] == [
        f"{path}: upgraded from an older MLflow's schema; the store as it was is kept in {backup}"
    ]
    prepare_tracking_store(uri, "normcoef")
    runs = mlflow.search_runs(experiment_names=["normcoef"], output_format="list")
    assert sorted(run.info.run_name for run in runs) == ["elu", "sweep"]
    (job,) = [run for run in runs if run.info.run_name == "elu"]
    assert job.data.metrics["test/cnn/eps_q"] == pytest.approx(0.0474)
    assert job.data.params["activation"] == "elu"
    assert tracking_store_problem(uri) is None
    assert len(list(tmp_path.glob("mlflow.db.bak-*"))) == 1  # a current store is left alone


@pytest.mark.reliability(
    "sweep",
    "an Optuna study made by Optuna 2.10 (the release pinned before)",
    "warning",
    "copied to <file>.bak-<schema>, upgraded in place, one line; its trials read back",
)
def test_an_optuna_study_of_the_old_release_is_upgraded_after_a_backup(tmp_path):
    import optuna

    path, url = old_store("optuna.db", tmp_path)
    with pytest.raises(RuntimeError, match="optuna storage upgrade"):  # Optuna alone refuses
        optuna.load_study(study_name="old_search", storage=url)
    assert optuna_storage_problem(url) is None
    (backup,) = tmp_path.glob("optuna.db.bak-*")
    assert current_revision(f"sqlite:///{backup}") == "v2.6.0.a"
    study = optuna.load_study(study_name="old_search", storage=url)
    states = sorted(trial.state.name for trial in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    assert study.best_value == pytest.approx(0.2)
    assert study.best_params["lr"] > 0


@pytest.mark.reliability(
    "train",
    "an mlflow.db made by a newer MLflow than the one installed",
    "error",
    "one line naming the release to install; the store untouched",
)
def test_a_store_of_a_newer_release_is_refused_in_one_line_and_left_as_it_is(tmp_path):
    path, uri = old_store("mlflow.db", tmp_path)
    stamp(path, "ffffffffffff")
    before = digest(path)
    problem = tracking_store_problem(uri)
    assert problem is not None and "\n" not in problem
    assert "newer MLflow" in problem and "pip install -U mlflow" in problem
    with pytest.raises(OutdatedStoreError, match="newer MLflow"):
        prepare_tracking_store(uri, "normcoef")
    assert digest(path) == before
    assert not list(tmp_path.glob("*.bak-*"))


@pytest.mark.slow
def test_the_upgrade_command_says_one_line_per_store_and_is_idempotent(tmp_path):
    old_store("mlflow.db", tmp_path)
    old_store("optuna.db", tmp_path)

    def upgrade(*arguments: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "normcoef.cli.upgrade", *arguments]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True)

    first = upgrade("mlflow").stderr + upgrade("optuna", "sqlite:///optuna.db").stderr
    assert first.splitlines() == [
        "mlflow.db: upgraded from an older MLflow's schema; the store as it was is kept in "
        f"{next(tmp_path.glob('mlflow.db.bak-*')).name}",
        "optuna.db: upgraded from an older Optuna's schema; the store as it was is kept in "
        "optuna.db.bak-v2.6.0.a",
    ]
    again = upgrade("mlflow").stderr + upgrade("optuna", "sqlite:///optuna.db").stderr
    assert again == ""


@pytest.mark.reliability(
    "sweep",
    "an Optuna study made by a newer Optuna than the one installed",
    "error",
    "refused before any run: one line naming hydra.sweeper.storage and the release to install",
)
def test_a_study_of_a_newer_optuna_is_refused_before_the_sweep_and_left_as_it_is(tmp_path):
    from normcoef.sweeps.preflight import storage_problem

    path, url = old_store("optuna.db", tmp_path)
    stamp(path, "v99.0.0.a")
    before = digest(path)
    problem = storage_problem(url, heartbeat_interval=60, grace_period=None)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"hydra.sweeper.storage={url}: ") and "newer Optuna" in problem
    assert digest(path) == before


def test_the_sweep_preflight_upgrades_an_old_sqlite_study(tmp_path):
    from normcoef.sweeps.preflight import storage_problem

    _, url = old_store("optuna.db", tmp_path)
    assert storage_problem(url, heartbeat_interval=60, grace_period=None) is None
    assert current_revision(url) != "v2.6.0.a"
    assert len(list(tmp_path.glob("optuna.db.bak-*"))) == 1
