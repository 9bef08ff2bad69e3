"""Specification of sweeps: grid multiruns, Optuna studies and the ablation report.

The end-to-end tests run ``python -m normcoef.train -m`` as a subprocess on a 16x24 python grid
with 4-channel networks and a few steps (the smoke presets), each with its own SQLite stores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from conftest import TinyDataset
from mlflow import MlflowClient

from normcoef.cli.report import main
from normcoef.report import (
    RunResult,
    format_table,
    group_runs,
    varied_keys,
)
from normcoef.sweeps.failures import EXIT_SOME_JOBS_FAILED
from normcoef.tracking.tags import parse_override_dirname
from normcoef.training.threads import usable_cores

# normcoef's Optuna sweeper is a Hydra plugin in hydra_plugins/ at the repository root.
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """A working directory holding the tiny data set at the smoke presets' root."""
    root = tmp_path_factory.mktemp("sweeps")
    tiny_dataset(test=1, into=root / "data" / "python-16x24-seed0")
    (root / "multirun").mkdir()
    return root


def train(workdir: Path, *overrides: str, returncode: int = 0) -> subprocess.CompletedProcess:
    """A ``normcoef.train`` multirun in ``workdir``; fails the test on another exit code."""
    command = [sys.executable, "-m", "normcoef.train", "-m", *overrides]
    done = subprocess.run(
        command, cwd=workdir, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == returncode, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def runs_of(tracking_uri: str, experiment: str) -> list:
    """The job runs of ``experiment`` (its sweeps' parent runs left out)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name("normcoef")
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`normcoef.experiment` = '{experiment}'"
    )
    return [run for run in runs if "normcoef.summary" not in run.data.tags]


def result(overrides: str, eps_q: float, status: str = "FINISHED") -> RunResult:
    """A job whose test and (choosing) validation metrics are the same numbers."""
    metrics = {"eps_q": eps_q, "eps_max": 2 * eps_q, "eps_mean": eps_q / 10}
    if status != "FINISHED":
        return RunResult(parse_override_dirname(overrides), status)
    return RunResult(parse_override_dirname(overrides), status, metrics, validation=dict(metrics))


# --- the report's table, without MLflow ----------------------------------------------------


def test_override_strings_split_into_keys_and_values_keeping_lists_whole():
    parsed = parse_override_dirname(
        "augmentation.transforms=[hflip,vflip],experiment=smoke/loss,loss=mse"
    )
    assert parsed == {
        "augmentation.transforms": "[hflip,vflip]",
        "experiment": "smoke/loss",
        "loss": "mse",
    }


def test_rows_are_the_varied_values_with_seeds_averaged_and_lowest_eps_q_marked_best():
    runs = [
        result("activation=relu,experiment=activation,trainer.seed=42", 0.07),
        result("activation=relu,experiment=activation,trainer.seed=43", 0.09),
        result("activation=elu,experiment=activation,trainer.seed=42", 0.05),
        result("activation=elu,experiment=activation,trainer.seed=43", 0.06),
    ]
    keys = varied_keys(runs)
    rows = group_runs(runs, keys)
    assert keys == ["activation"]
    assert [row.values for row in rows] == [{"activation": "relu"}, {"activation": "elu"}]
    assert rows[0].summary["eps_q"] == pytest.approx(0.08)
    assert rows[0].summary["eps_q_std"] == pytest.approx(0.01)
    table = format_table(rows, keys)
    assert "| activation | val ε_Q (chooses) | ε_Q | ε_max | ε_mean | runs |" in table
    assert "| **elu** (best) | 5.50e-02 ± 5.0e-03 | **5.50e-02** ± 5.0e-03 |" in table
    assert "Best (lowest validation ε_Q, 5.50e-02): activation=elu." in table


def test_failed_runs_are_listed_as_failed_and_never_best():
    runs = [
        result("model.layers=6", 0.03),
        result("model.layers=7", 0.0, status="MISSING"),
    ]
    runs[1].failure = "layers - 2 = 5 hidden layers must be a positive multiple of 2"
    table = format_table(group_runs(runs, ["model.layers"]), ["model.layers"])
    assert "| 7 | – | failed | failed | failed | 0 + 1 failed |" in table
    assert "| **6** (best) |" in table
    assert "- `model.layers=7`: layers - 2 = 5 hidden layers" in table


# --- end to end ------------------------------------------------------------------------------


def test_two_value_sweep_gives_two_runs_and_a_report_table_logged_in_mlflow(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    uri = f"sqlite:///{workdir}/grid.db"
    train(
        workdir, "experiment=smoke/activation", "activation=relu,elu", f"logger.tracking_uri={uri}"
    )

    runs = runs_of(uri, "activation_smoke")
    assert sorted(run.data.tags["normcoef.overrides"] for run in runs) == [
        "activation=elu,experiment=smoke/activation",
        "activation=relu,experiment=smoke/activation",
    ]
    assert {run.info.status for run in runs} == {"FINISHED"}

    monkeypatch.chdir(workdir)
    main(["experiment=smoke/activation", f"logger.tracking_uri={uri}"])
    printed = capsys.readouterr().out
    assert "| activation | val ε_Q (chooses) | ε_Q | ε_max | ε_mean | runs |" in printed
    assert printed.count("(best)") == 1
    assert "| Randomization (N=50) |" in printed

    client = MlflowClient(uri)
    summary = client.search_runs(
        [runs[0].info.experiment_id], filter_string="tags.`normcoef.summary` = 'true'"
    )
    assert len(summary) == 1
    logged = mlflow.artifacts.load_text(f"{summary[0].info.artifact_uri}/ablation_table.md")
    assert "| activation | val ε_Q (chooses) | ε_Q | ε_max | ε_mean | runs |" in logged
    children = {client.get_run(run.info.run_id).data.tags["mlflow.parentRunId"] for run in runs}
    assert children == {summary[0].info.run_id}


def test_optuna_study_resumes_from_its_sqlite_storage(workdir: Path):
    storage = f"sqlite:///{workdir}/optuna.db"
    study = [
        "hparams_search=optuna_smoke",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=resumed",
        f"logger.tracking_uri=sqlite:///{workdir}/optuna_runs.db",
    ]
    done = train(workdir, *study)
    assert len(optuna.load_study(study_name="resumed", storage=storage).trials) == 3
    assert "A new study created" in done.stderr and "\x1b[" not in done.stderr  # no colours

    # n_trials is the study's target of COMPLETE trials: 5 resumes the study for 2 more.
    train(workdir, *study, "hydra.sweeper.n_trials=5")
    trials = optuna.load_study(study_name="resumed", storage=storage).trials
    assert [trial.number for trial in trials] == [0, 1, 2, 3, 4]
    assert {trial.state for trial in trials} == {optuna.trial.TrialState.COMPLETE}
    # Each trial's MLflow run leads with its trial number, which the study and folder share.
    names = [run.info.run_name for run in runs_of(study[-1].split("=", 1)[1], "optuna_smoke")]
    assert sorted(name.split(" ")[0] for name in names) == ["#0", "#1", "#2", "#3", "#4"]
    assert (workdir / "multirun/optuna_smoke/resumed/optimization_results.yaml").exists()


def test_failing_trial_is_recorded_as_fail_and_the_study_goes_on(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    storage = f"sqlite:///{workdir}/failing.db"
    study = [
        "hparams_search=optuna_smoke",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=failing",
        f"logger.tracking_uri=sqlite:///{workdir}/failing_runs.db",
    ]
    # Additive skips need layers - 2 to split into blocks of 2: 5 layers cannot be built.
    space = ["model=skip_add", "model.layers=choice(4,5)", "activation=elu", "loss=mse"]
    done = train(
        workdir,
        *study,
        *space,
        "optimizer.lr=0.001",
        "hydra.sweeper.n_trials=3",
        returncode=EXIT_SOME_JOBS_FAILED,
    )
    assert "jobs of the sweep in multirun/optuna_smoke/failing failed:" in done.stderr
    assert "model.layers=5" in done.stderr.split("failed:")[-1]

    trials = optuna.load_study(study_name="failing", storage=storage).trials
    states = {(trial.params["model.layers"], trial.state.name) for trial in trials}
    assert len(trials) == 3
    assert states == {(5, "FAIL"), (4, "COMPLETE")}

    monkeypatch.chdir(workdir)
    main([*study, "log=false"])
    printed = capsys.readouterr().out
    failed = sum(trial.state.name == "FAIL" for trial in trials)  # as the sampler drew them
    assert f"| 5 | – | failed | failed | failed | 0 + {failed} failed |" in printed
    assert f"3 trials, {3 - failed} COMPLETE, {failed} FAIL" in printed


def test_local_parallel_launcher_runs_jobs_in_worker_processes(workdir: Path):
    uri = f"sqlite:///{workdir}/parallel.db"
    # Create the store first: two jobs creating one SQLite store at once race on its schema.
    MlflowClient(uri).create_experiment("normcoef", artifact_location=str(workdir / "mlruns"))
    done = train(
        workdir,
        "experiment=smoke/loss",
        "hydra/launcher=local_parallel",
        f"logger.tracking_uri={uri}",
    )
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr
    runs = runs_of(uri, "loss_smoke")
    assert len(runs) == 2
    # No trainer.num_threads: each of the 2 jobs at once takes half the cores, not all of them.
    share = str(max(1, usable_cores() // 2))
    assert [run.data.params["threads"] for run in runs] == [share, share]
