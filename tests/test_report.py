"""Specification of ``normcoef.report``: the best configuration is chosen on validation and its
test metrics reported; a missing store, experiment or sweep, or a sweep with no finished run,
is one line naming it.

Runs are made by hand with ``MlflowClient`` in SQLite stores copied from one template (creating
a store runs seconds of schema migrations); no network is trained here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import one_error_line
from mlflow import MlflowClient

from normcoef.cli.report import main, split_arguments
from normcoef.report import (
    RunResult,
    best_row,
    format_table,
    group_runs,
    run_result,
)
from normcoef.tracking import Tag

KEYS = ("eps_q", "eps_max", "eps_mean")
EXPERIMENT = ["experiment=smoke/activation"]  # experiment_name: activation_smoke


def metrics(eps_q: float) -> dict[str, float]:
    return {"eps_q": eps_q, "eps_max": 2 * eps_q, "eps_mean": eps_q / 10}


# --- choosing ----------------------------------------------------------------------------


def test_the_best_row_is_the_lowest_validation_eps_q_even_where_test_ranks_otherwise():
    # relu: better on test, worse on validation; elu the other way round.
    relu = RunResult({"activation": "relu"}, metrics=metrics(0.01), validation=metrics(0.09))
    elu = RunResult({"activation": "elu"}, metrics=metrics(0.05), validation=metrics(0.02))
    rows = group_runs([relu, elu], ["activation"])
    assert best_row(rows).values == {"activation": "elu"}
    table = format_table(rows, ["activation"])
    # The validation ε_Q that chose, then the test metrics reported.
    assert "| **elu** (best) | 2.00e-02 | **5.00e-02** |" in table
    assert "| relu | 9.00e-02 | 1.00e-02 |" in table
    assert "Best chosen on validation ε_Q" in table
    assert "test metrics reported" in table
    assert "Best (lowest validation ε_Q, 2.00e-02): activation=elu." in table


def test_rows_without_validation_metrics_are_never_chosen():
    tested_only = RunResult({"loss": "mse"}, metrics=metrics(0.01))
    validated = RunResult({"loss": "rel_sq"}, metrics=metrics(0.05), validation=metrics(0.03))
    assert best_row(group_runs([tested_only, validated], ["loss"])).values == {"loss": "rel_sq"}


# --- reading MLflow runs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow store with the ``normcoef`` experiment and no run, to copy."""
    root = tmp_path_factory.mktemp("report_store")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    client.create_experiment("normcoef", artifact_location=str(root / "artifacts"))
    return root / "mlflow.db"


@pytest.fixture
def store(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def job_run(uri: str, tags: dict[str, str], values: dict[str, float], status: str = "FINISHED"):
    """A finished job run of the activation_smoke experiment with ``values`` as metrics."""
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("normcoef").experiment_id
    base = {"normcoef.experiment": "activation_smoke", "normcoef.sweep": "multirun/s1"}
    run = client.create_run(experiment_id, tags={**base, **tags})
    for key, value in values.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, status)
    return client.get_run(run.info.run_id)


def test_a_run_is_read_from_structured_override_tags_choosing_on_best_validation(store: str):
    values = {f"test/cnn/{k}": v for k, v in metrics(0.5).items()}
    values.update({f"best/val/{k}": v for k, v in metrics(0.2).items()})
    run = job_run(
        store,
        {Tag.OVERRIDE_PREFIX + "activation": "elu", Tag.OVERRIDE_PREFIX + "a.b": "[1,2]"},
        values,
    )
    result = run_result(MlflowClient(store), run)
    assert result.overrides == {"activation": "elu", "a.b": "[1,2]"}
    assert result.metrics == metrics(0.5)
    assert result.validation == metrics(0.2)
    assert result.split == "test"


def test_a_run_from_before_structured_tags_is_read_from_its_override_string(store: str):
    values = {f"val/{k}": v for k, v in metrics(0.3).items()}
    run = job_run(store, {"normcoef.overrides": "activation=relu,experiment=smoke/x"}, values)
    result = run_result(MlflowClient(store), run)
    assert result.overrides == {"activation": "relu", "experiment": "smoke/x"}
    assert result.validation == metrics(0.3)
    assert (result.metrics, result.split) == (metrics(0.3), "val")


# --- a user's mistakes: one line, exit 2 --------------------------------------------------


def refused(capsys: pytest.CaptureFixture, *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    assert stop.value.code == 2
    return one_error_line(capsys.readouterr().err)


@pytest.mark.reliability(
    "report", "a tracking store that does not exist", "error", "names the store, creates nothing"
)
def test_a_missing_store_is_named_and_not_created(tmp_path: Path, capsys: pytest.CaptureFixture):
    missing = tmp_path / "nowhere.db"
    err = refused(capsys, *EXPERIMENT, f"logger.tracking_uri=sqlite:///{missing}")
    assert f"no MLflow store at sqlite:///{missing}" in err
    assert not missing.exists()


@pytest.mark.reliability(
    "report", "a store without the MLflow experiment", "error", "names the experiment and store"
)
def test_a_store_without_the_mlflow_experiment_is_named(store: str, capsys: pytest.CaptureFixture):
    err = refused(capsys, *EXPERIMENT, f"logger.tracking_uri={store}", "logger.experiment=other")
    assert "no MLflow experiment 'other'" in err


@pytest.mark.reliability(
    "report", "an experiment never trained", "error", "names the experiment and how to sweep it"
)
def test_an_experiment_without_runs_is_named(store: str, capsys: pytest.CaptureFixture):
    err = refused(capsys, *EXPERIMENT, f"logger.tracking_uri={store}")
    assert "no run of experiment 'activation_smoke'" in err
    assert "python -m normcoef.train -m" in err


@pytest.mark.reliability("report", "runs but no sweep", "error", "says no run was part of a sweep")
def test_runs_outside_any_sweep_are_refused(store: str, capsys: pytest.CaptureFixture):
    job_run(store, {"normcoef.sweep": ""}, {})
    err = refused(capsys, *EXPERIMENT, f"logger.tracking_uri={store}")
    assert "none of the 1 runs of this experiment was part of a sweep" in err


@pytest.mark.reliability(
    "report", "an unknown sweep= folder", "error", "names it and lists the known sweeps"
)
def test_an_unknown_sweep_lists_the_known_ones(store: str, capsys: pytest.CaptureFixture):
    job_run(store, {}, {f"val/{k}": v for k, v in metrics(0.1).items()})
    err = refused(capsys, *EXPERIMENT, f"logger.tracking_uri={store}", "sweep=multirun/s9")
    assert "no run of sweep 'multirun/s9'; known sweeps: ['multirun/s1']" in err


@pytest.mark.reliability(
    "report", "a sweep whose runs all failed", "error", "says so with each failure"
)
def test_a_sweep_without_a_finished_run_says_why(store: str, capsys: pytest.CaptureFixture):
    job_run(store, {"normcoef.failure": "training loss is nan at step 3"}, {}, "FAILED")
    err = refused(capsys, *EXPERIMENT, f"logger.tracking_uri={store}")
    assert "sweep multirun/s1 has no finished run" in err
    assert "failed: training loss is nan at step 3" in err


@pytest.mark.reliability(
    "report", "a misspelt training config key", "error", "Hydra's message on one line"
)
def test_a_misspelt_config_key_is_one_line(capsys: pytest.CaptureFixture):
    err = refused(capsys, *EXPERIMENT, "trainer.stepz=5")
    assert "trainer.stepz" in err


@pytest.mark.reliability("report", "an argument without =", "error", "asks for key=value")
def test_an_argument_without_a_value_is_one_line(capsys: pytest.CaptureFixture):
    err = refused(capsys, "activation")
    assert "arguments are key=value; got ['activation']" in err


def test_a_malformed_override_gets_hydras_parse_message(capsys: pytest.CaptureFixture):
    err = refused(capsys, *EXPERIMENT, "+model.channels=[1,2")
    assert "arguments are key=value; got ['+model.channels=[1,2']" in err
    assert "no viable alternative at input '[1,2'" in err  # Hydra's override grammar


def test_log_is_a_boolean(capsys: pytest.CaptureFixture):
    err = refused(capsys, *EXPERIMENT, "log=maybe")
    assert "log is true or false; got 'log=maybe'" in err


def test_help_prints_the_usage(capsys: pytest.CaptureFixture):
    main(["--help"])
    assert "python -m normcoef.report experiment=<name> [sweep=<dir>]" in capsys.readouterr().out


def test_the_package_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "normcoef.report", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "python -m normcoef.report experiment=<name> [sweep=<dir>]" in done.stdout


def test_the_reports_own_options_are_split_from_the_training_overrides():
    options, overrides = split_arguments(
        ["experiment=smoke/activation", "sweep=multirun/2026", "log=false", "~trainer.resume"]
    )
    assert options == {"sweep": "multirun/2026", "log": False}
    assert overrides == ["experiment=smoke/activation", "~trainer.resume"]  # ~key: no "="


def test_a_job_whose_run_has_only_structured_override_tags_is_not_missing(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture
):
    sweep = tmp_path / "multirun" / "s2"
    hydra_dir = sweep / "0_activation=elu" / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "hydra.yaml").write_text(
        "hydra:\n"
        "  overrides:\n    task: [activation=elu]\n"
        "  job:\n    override_dirname: activation=elu\n"
        "    config:\n      override_dirname:\n        exclude_keys: []\n"
        "  runtime:\n    choices: {activation: elu}\n"
    )
    values = {f"best/val/{k}": v for k, v in metrics(0.1).items()}
    job_run(
        store, {Tag.OVERRIDE_PREFIX + "activation": "elu", "normcoef.sweep": str(sweep)}, values
    )
    main([*EXPERIMENT, f"logger.tracking_uri={store}", f"sweep={sweep}", "log=false"])
    printed = capsys.readouterr().out
    assert "| CNN | 1.00e-01 | 1.00e-01 | 2.00e-01 | 1.00e-02 | 1 (val) |" in printed
    assert "failed" not in printed  # the job's folder is matched to its run, not "missing"
