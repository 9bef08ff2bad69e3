"""Specification of conf/train.yaml's groups and folders: every preset composes, a misspelt one
fails at once, and every run gets a folder of its own.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import hydra.core.utils
import pytest
import torch
from helpers import compose_config, one_error_line
from hydra.errors import MissingConfigException
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from normcoef.config import CONF_DIR, dataset_choice_label
from normcoef.pipeline import start_tracker
from normcoef.sweeps.naming import (
    MAX_JOB_DIR_BYTES,
    job_dir_name,
    register_resolvers,
    timestamped_name,
)
from normcoef.tracking import MLflowTracker, NullTracker
from normcoef.training.factory import optimizer_factory, scheduler_factory

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
register_resolvers()


def train_config(*overrides: str) -> DictConfig:
    return compose_config("train", *overrides, hydra=True)


def options(group: str) -> list[str]:
    """Every option of a config group, nested folders included (``smoke/activation``)."""
    root = CONF / group
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml"))


def test_without_an_experiment_the_defaults_compose():
    cfg = train_config()
    assert cfg.experiment_name == "default"
    assert cfg.hydra.runtime.choices.experiment is None
    assert cfg.hydra.runtime.choices.hparams_search is None


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_resolves(experiment: str):
    cfg = train_config(f"experiment={experiment}")
    assert cfg.hydra.runtime.choices.experiment == experiment
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    assert OmegaConf.to_container(job, resolve=True)["dataset"]["root"]


@pytest.mark.parametrize("search", options("hparams_search"))
def test_every_hparams_search_composes_with_the_optuna_sweeper(search: str):
    cfg = train_config(f"hparams_search={search}")
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert cfg.hydra.sweeper.params


@pytest.mark.reliability(
    "train", "misspelt experiment", "error", "Could not find, with the options"
)
@pytest.mark.parametrize(
    ("override", "missing"),
    [
        ("experiment=activaton", "experiment/activaton"),
        ("experiment=smoke/activaton", "experiment/smoke/activaton"),
    ],
)
def test_a_misspelt_experiment_fails_at_once(override: str, missing: str):
    with pytest.raises(MissingConfigException, match=f"Could not find '{missing}'") as error:
        train_config(override)
    assert "quickstart" in str(error.value) or "smoke" in missing


@pytest.mark.reliability(
    "sweep", "misspelt hparams_search", "error", "Could not find, not the basic sweeper"
)
def test_a_misspelt_hparams_search_fails_at_once():
    with pytest.raises(MissingConfigException, match="Could not find 'hparams_search/optuna_smok'"):
        train_config("hparams_search=optuna_smok")


@pytest.mark.parametrize("group", ["optimizer", "scheduler"])
def test_a_misspelt_optimizer_or_scheduler_fails_at_once(group: str):
    with pytest.raises(MissingConfigException, match=f"Could not find '{group}/adamm'"):
        train_config(f"{group}=adamm")


def parameters() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2))]


def test_the_default_optimizer_and_schedule_are_the_reports_adam_at_a_constant_rate():
    cfg = train_config()
    optimizer = optimizer_factory(cfg.optimizer)(parameters())
    assert type(optimizer) is torch.optim.Adam
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (1e-3, 0.0)
    assert scheduler_factory(cfg.scheduler)(optimizer, cfg.trainer.steps) is None


@pytest.mark.parametrize(
    ("option", "optimizer_class"),
    [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)],
)
def test_an_optimizer_option_builds_its_torch_class_with_the_configured_rate_and_decay(
    option: str, optimizer_class: type
):
    cfg = train_config(f"optimizer={option}", "optimizer.lr=3e-4", "optimizer.weight_decay=0.01")
    optimizer = optimizer_factory(cfg.optimizer)(parameters())
    assert type(optimizer) is optimizer_class
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (3e-4, 0.01)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("cosine", {"T_max": 8, "eta_min": 0.0}),
        ("step", {"milestones": {4: 1, 6: 1}, "gamma": 0.1}),
    ],
)
def test_a_scheduler_option_schedules_over_trainer_steps(option: str, expected: dict):
    cfg = train_config(f"scheduler={option}", "trainer.steps=8", "trainer.stop_at=3")
    optimizer = optimizer_factory(cfg.optimizer)(parameters())
    state = scheduler_factory(cfg.scheduler)(optimizer, cfg.trainer.steps).state_dict()
    assert {key: state[key] for key in expected} == expected


def test_the_logger_options_start_their_tracker_with_the_runs_name_and_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts
    assert type(start_tracker(train_config("logger=none").logger, "a run", {})) is NullTracker
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = train_config(f"logger.tracking_uri={uri}", "logger.experiment=groups").logger
    tracker = start_tracker(logger, "a run", {"normcoef.experiment": "groups"})
    tracker.finish()
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert isinstance(tracker, MLflowTracker)
    assert run.info.run_name == "a run"
    assert run.data.tags["normcoef.experiment"] == "groups"


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "misspelt group on the command line",
    "error",
    "one error: line with the options, exit 2",
)
@pytest.mark.parametrize(
    "command",
    [["experiment=activaton"], ["-m", "hparams_search=optuna_smok"]],
    ids=["experiment", "hparams_search"],
)
def test_the_command_line_refuses_a_misspelt_group_before_anything_runs(
    tmp_path: Path, command: list[str]
):
    done = subprocess.run(
        [sys.executable, "-m", "normcoef.train", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "has no such option; choose one of" in one_error_line(done.stderr)
    assert list(tmp_path.iterdir()) == []  # no outputs/, multirun/ or mlflow.db


# --- one run, one folder -------------------------------------------------------------------


class FrozenClock(datetime):
    """Every ``now()`` is one second: runs started at the same time."""

    @classmethod
    def now(cls, tz=None) -> datetime:
        return cls(2026, 1, 2, 3, 4, 5)


@pytest.mark.reliability(
    "train", "two runs started in the same second", "handled", "each gets its own folder"
)
@pytest.mark.parametrize("folder", ["run", "sweep"])
def test_runs_started_in_the_same_second_get_their_own_folders(
    monkeypatch: pytest.MonkeyPatch, folder: str
):
    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)  # Hydra's ${now:}
    first, second = (str(train_config().hydra[folder].dir) for _ in range(2))
    assert first != second
    assert Path(first).parent == Path(second).parent
    assert Path(first).name.startswith(("03-04-05_", "2026-01-02_03-04-05_"))


def test_a_folder_name_starts_with_its_time_so_folders_sort_by_start():
    early = timestamped_name(datetime(2026, 1, 2, 3, 4, 5))
    late = timestamped_name(datetime(2026, 1, 2, 3, 4, 6))
    assert early.startswith("2026-01-02_03-04-05_")
    assert sorted([late, early]) == [early, late]
    assert timestamped_name(datetime(2026, 1, 2, 3, 4, 5)) != early


LONG_OVERRIDES = ",".join(f"dataset.key{i}=data/value-{i}" for i in range(20)) + ",loss=mse"


@pytest.mark.reliability(
    "sweep",
    "overrides too long for a folder name, or holding a /",
    "handled",
    "the job folder is cut and ends with a hash; / becomes _",
)
def test_a_sweep_job_folder_fits_a_file_name_and_stays_unique():
    cfg = train_config()
    cfg.hydra.job.num = 7
    cfg.hydra.job.override_dirname = LONG_OVERRIDES
    name = str(cfg.hydra.sweep.subdir)  # conf/train.yaml's sweep.subdir
    assert name == job_dir_name(7, LONG_OVERRIDES)
    assert len(name.encode()) <= MAX_JOB_DIR_BYTES and "/" not in name
    assert name.startswith("7_dataset.key0=data_value-0,")
    other = job_dir_name(7, LONG_OVERRIDES.replace("loss=mse", "loss=rel_sq"))
    assert other != name and len(other.encode()) <= MAX_JOB_DIR_BYTES


def test_a_short_job_folder_is_the_number_and_the_overrides():
    assert job_dir_name(3, "activation=elu,trainer.seed=1") == "3_activation=elu,trainer.seed=1"
    assert job_dir_name(0, "") == "0_"


@pytest.mark.reliability(
    "train",
    "misspelt option, key or value on the command line",
    "error",
    "one line naming the override (options listed, smoke/* too), exit 2, nothing run",
)
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["experiment=quickstrat"], "experiment=quickstrat: conf/experiment has no such option"),
        (["-m", "model=cnn,skipp"], "model=skipp: conf/model has no such option; choose one of "),
        (["trainer.stepz=3"], "trainer.stepz=3: trainer has no key 'stepz'; did you mean"),
        (["trainer.steps=abc"], "Error merging override trainer.steps=abc; Value 'abc'"),
        (["dataset=schema"], "dataset=schema: the schema checks the options of conf/dataset"),
    ],
)
def test_a_command_line_hydra_cannot_compose_is_one_line(arguments: list[str], message: str):
    from normcoef.cli.train import composition_error

    problem = composition_error(arguments)
    assert problem is not None and problem.startswith(message), problem
    assert "\n" not in problem


@pytest.mark.reliability(
    "train",
    "a key the config does not have, added with + or ++ (Hydra's own hint) or removed with ~",
    "error",
    "one line naming the key meant (trainer.steps for +trainer.stesp), exit 2, nothing run",
)
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["+trainer.stesp=5"], "+trainer.stesp=5: trainer has no key 'stesp'; did you mean "),
        (["++trainer.stesp=5"], "++trainer.stesp=5: trainer has no key 'stesp'; did you mean "),
        (["~trainer.stesp"], "~trainer.stesp: trainer has no key 'stesp'; did you mean "),
        (["-m", "trainer.seed=1,2", "+model.chanels=3"], "+model.chanels=3: model has no key "),
        (["+stesp=5"], "+stesp=5: the config has no key 'stesp'; its keys are dataset, model"),
        (["+dataset.splits.extra=3"], "+dataset.splits.extra=3: dataset.splits has no key 'ex"),
    ],
)
def test_a_plus_does_not_open_a_way_around_the_schema(arguments: list[str], message: str):
    from normcoef.cli.train import composition_error

    problem = composition_error(arguments)
    assert problem is not None and problem.startswith(message), problem
    meant = {"trainer.stesp": "trainer.steps", "model.chanels": "model.channels"}
    for typo, key in meant.items():
        if typo in arguments[-1]:
            assert f"did you mean {key}?" in problem


def test_keys_that_exist_and_group_choices_pass_the_key_check():
    from normcoef.cli.overrides import unknown_key_problem

    overrides = ["++trainer.steps=3", "~trainer.crop", "model=cnn", "+hydra.job.env_set.X=1"]
    assert unknown_key_problem("train", overrides) is None
    assert unknown_key_problem("train", ["model=skip_add", "model.block_layers=2"]) is None
    assert unknown_key_problem("generate", ["dataset=full_std", "dataset.height=8"]) is None


def test_the_option_list_of_a_misspelt_experiment_names_the_smoke_presets_too():
    from normcoef.cli.train import composition_error

    problem = composition_error(["experiment=quickstrat"])
    assert "quickstart" in problem and "smoke/activation" in problem


def test_a_sweep_of_good_values_on_existing_data_composes(tmp_path: Path):
    from normcoef.cli.train import composition_error

    data = f"dataset.root={tmp_path}"
    assert composition_error(["-m", "model=cnn,skip_add", "trainer.seed=1,2", data]) is None
    smoke = ["hparams_search=optuna_smoke", "experiment=smoke/activation", data]
    assert composition_error(smoke) is None


def test_a_value_out_of_range_is_named_before_a_missing_data_set(tmp_path: Path):
    from normcoef.cli.train import composition_error

    missing = f"dataset.root={tmp_path / 'none'}"
    assert composition_error(["trainer.batch_size=0", missing]) == (
        "trainer.batch_size=0: must be >= 1"
    )


def test_help_says_what_the_command_does_and_lists_no_schema():
    from normcoef.config import config_groups

    groups = config_groups()
    assert "schema" not in groups
    assert "experiment: activation," in groups and "smoke/activation" in groups
    help_cfg = train_config().hydra.help
    assert help_cfg.header.startswith("normcoef-train (python -m normcoef.train): train a CNN")
    assert "${config_groups:}" in OmegaConf.to_container(help_cfg)["template"]


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "a smoke sweep before its data set exists",
    "error",
    "one line with the generate command for that data set; nothing launched",
)
def test_a_missing_data_set_is_named_with_the_command_that_generates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from normcoef.cli.train import composition_error

    monkeypatch.chdir(tmp_path)
    problem = composition_error(["-m", "experiment=smoke/activation"])
    prefix = "dataset.root=data/python-16x24-seed0 does not exist; generate it first: "
    assert problem is not None and problem.startswith(prefix), problem
    command = problem.removeprefix(prefix).split()
    assert command[:3] == ["python", "-m", "normcoef.generate"]
    assert "dataset.height=16" in command and "dataset.splits.train=3" in command

    done = subprocess.run(
        [sys.executable, *command[1:], "progress=false"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert composition_error(["-m", "experiment=smoke/activation"]) is None
    assert (tmp_path / "data" / "python-16x24-seed0" / "train").is_dir()


def test_a_dataset_option_is_recorded_with_the_grid_an_experiment_gave_it():
    own = OmegaConf.load(CONF_DIR / "dataset" / "partial_std.yaml")
    assert dataset_choice_label("partial_std", own) == "partial_std"
    shrunk = OmegaConf.merge(own, {"grid": "python", "height": 16, "width": 24})
    assert dataset_choice_label("partial_std", shrunk) == "partial_std on python 16x24"
