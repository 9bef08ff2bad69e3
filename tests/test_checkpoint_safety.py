"""Specification of loading checkpoints from anyone: nothing in a ``.pt`` file runs code.

A checkpoint is read with ``torch.load(weights_only=True)`` (tensors and plain Python values
only), and the config stored in it may build only what conf/model, conf/activation and
conf/loss offer. Damaged files and foreign ones are refused in one line naming the file.

One tiny run (16x24 python grid, 3/1/2 samples, a 2-layer 4-channel CNN, 3 steps, step
scheduler, untracked) is trained once; tests tamper with copies of its checkpoint.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyDataset
from helpers import compose_config, one_error_line, tiny_overrides
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from normcoef.config import CONF_DIR
from normcoef.data.info import DatasetInfo
from normcoef.data.standardization import ChannelStatistics
from normcoef.data.torch_dataset import Standardizer
from normcoef.inference import CheckpointError, load_trained_model, resolve_checkpoint
from normcoef.pipeline import run_training
from normcoef.training.checkpoint import load_checkpoint
from normcoef.training.factory import (
    BUILT_GROUPS,
    build_loss,
    build_model,
    buildable_targets,
    unbuildable,
)

TINY = [
    *tiny_overrides(test=2, layers=2, steps=3, eval_every=1),
    "trainer.checkpoint_every=3",
    "scheduler=step",  # its state holds a collections.Counter
    "logger=none",
    "evaluate=false",
]


class Payload:
    """Unpickling this creates ``marker``: what a hostile checkpoint would do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def compose_train(root: Path, out: Path, *overrides: str) -> DictConfig:
    return compose_config(
        "train", f"dataset.root={root}", f"trainer.output_dir={out}", *TINY, *overrides
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """The tiny run's directory (best.pt, last.pt); the data set is its sibling data/."""
    tmp = tmp_path_factory.mktemp("checkpoint_safety")
    tiny_dataset(test=2, into=tmp / "data")
    run_training(compose_train(tmp / "data", tmp / "checkpoints"), run_dir=tmp / "run")
    return tmp / "run"


def state_of(run_dir: Path) -> dict:
    return torch.load(run_dir / "best.pt", weights_only=True)


def tampered(run_dir: Path, path: Path, change: Callable[[dict], None]) -> Path:
    """The run's best checkpoint with ``change`` made to its state, saved at ``path``."""
    state = state_of(run_dir)
    change(state)
    torch.save(state, path)
    return path


def assert_one_line_naming(error: pytest.ExceptionInfo, path: Path) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message


# --- what training writes --------------------------------------------------------------------


def test_checkpoints_written_by_training_load_as_tensors_and_plain_values(trained: Path):
    for name in ("best.pt", "last.pt"):
        state = torch.load(trained / name, weights_only=True)
        assert state["scheduler"]["milestones"]  # step scheduler state came through
        assert isinstance(state["best_value"], float)
    model = load_trained_model(trained / "best.pt")
    assert model.standardizer.in_channels == 3


@pytest.mark.reliability(
    "checkpoint",
    "numpy bool periodicity flag in the statistics",
    "handled",
    "stored as plain Python values, so the checkpoint loads weights-only",
)
def test_standardizer_statistics_are_stored_as_plain_python_values(tmp_path: Path):
    stats = ChannelStatistics(np.ones(3), np.full(3, 2.0))
    info = DatasetInfo(periodic_x=np.bool_(False))  # as read from a numpy metadata file
    standardizer = Standardizer(stats, ChannelStatistics(1.0, 1.0), "partial", "manhattan", info)
    torch.save(standardizer.to_dict(), tmp_path / "s.pt")

    restored = Standardizer.from_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert restored.periodic_x is False
    np.testing.assert_array_equal(restored.inputs.std, stats.std)


@pytest.mark.reliability(
    "checkpoint",
    "checkpoint holding numpy objects (older writer)",
    "error",
    "refused unread, says to retrain",
)
def test_a_checkpoint_holding_numpy_objects_is_refused_with_advice(trained: Path, tmp_path: Path):
    def numpy_mean(state):
        state["standardizer"]["inputs"]["mean"] = np.zeros(3)

    path = tampered(trained, tmp_path / "old.pt", numpy_mean)

    with pytest.raises(CheckpointError, match=r"numpy.*retrain") as error:
        load_trained_model(path)
    assert_one_line_naming(error, path)


# --- pickle payloads -------------------------------------------------------------------------


def payload_files(tmp_path: Path, marker: Path, state: dict) -> dict[str, Path]:
    """A payload as the whole file, hidden in an otherwise valid checkpoint, and in the legacy
    (non-zip) format and a bare pickle."""
    files = {name: tmp_path / f"{name}.pt" for name in ("whole", "nested", "legacy", "pickle")}
    torch.save(Payload(marker), files["whole"])
    hidden = copy.deepcopy(state)
    hidden["standardizer"]["mode"] = Payload(marker)
    torch.save(hidden, files["nested"])
    torch.save(hidden, files["legacy"], _use_new_zipfile_serialization=False)
    # Protocol 2, as torch writes: later ones fail on a framing opcode before the payload.
    files["pickle"].write_bytes(pickle.dumps({"model": Payload(marker)}, protocol=2))
    return files


@pytest.mark.parametrize("kind", ["whole", "nested", "legacy", "pickle"])
@pytest.mark.reliability(
    "checkpoint",
    "pickle payload that would run code",
    "error",
    "refused unread, names the file and the object; nothing runs",
)
def test_a_pickle_payload_is_refused_and_runs_nothing(trained: Path, tmp_path: Path, kind: str):
    marker = tmp_path / "pwned"
    path = payload_files(tmp_path, marker, state_of(trained))[kind]

    with pytest.raises(CheckpointError, match="arbitrary code") as error:
        load_checkpoint(path)
    assert_one_line_naming(error, path)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        load_trained_model(path)
    assert not marker.exists()


# --- configs that would build something else --------------------------------------------------


def hostile_configs(victim: Path) -> dict[str, tuple[str, Callable[[dict], None]]]:
    """Ways a stored config could make Hydra call ``open(victim, "w")`` (truncating it)."""
    opener = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    nested_args = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    decoded = "${oc.decode:'{_target_: builtins.open, file: " + str(victim) + ", mode: w}'}"

    def set_activation(config):
        config["activation"] = opener

    def set_loss(config):
        config["loss"] = opener

    def nested_in_model(config):
        config["model"]["layers"] = opener

    def nested_in_args(config):
        config["model"]["_args_"] = [nested_args]

    def deep_in_list(config):
        config["activation"]["extra"] = [{"a": [nested_args]}]

    def interpolated(config):
        config["model"]["channels"] = decoded

    def model_target(config):
        config["model"]["_target_"] = "os.system"

    def loss_as_activation(config):
        config["activation"] = config["loss"]

    return {
        "activation target": ("builtins.open", set_activation),
        "loss target": ("builtins.open", set_loss),
        "target nested in a model argument": ("builtins.open", nested_in_model),
        "target nested in _args_": ("builtins.open", nested_in_args),
        "target deep in a list": ("builtins.open", deep_in_list),
        "interpolation decoding a target": ("interpolation", interpolated),
        "model target": ("os.system", model_target),
        "a loss as the activation": ("normcoef.losses.MSELoss", loss_as_activation),
    }


@pytest.mark.parametrize("case", list(hostile_configs(Path("victim"))))
@pytest.mark.reliability(
    "checkpoint",
    "config _target_ outside the project (also nested or interpolated)",
    "error",
    "refused before anything is built, names the file and the target",
)
def test_a_config_that_builds_anything_but_the_projects_classes_is_refused(
    trained: Path, tmp_path: Path, case: str
):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    offender, tamper = hostile_configs(victim)[case]
    path = tampered(trained, tmp_path / "hostile.pt", lambda state: tamper(state["config"]))

    with pytest.raises(CheckpointError, match="refus") as error:
        load_trained_model(path)
    assert_one_line_naming(error, path)
    assert offender in str(error.value)
    assert victim.read_text() == "precious"


def old_keys(config: dict) -> None:
    """The config as checkpoints stored it before conf/optimizer and conf/scheduler existed."""
    optimizer = config.pop("optimizer")
    del config["scheduler"]
    config["trainer"].update(
        optimizer="adam",
        lr=optimizer["lr"],
        weight_decay=optimizer["weight_decay"],
        scheduler="step",  # TINY's
        output_dir="checkpoints",
    )
    config["dataset"]["name"] = "python"
    config["logger"] = {"backend": "none"}


def hostile_training_parts(victim: Path) -> Callable[[dict], None]:
    """Optimizer, scheduler and logger configs that would truncate ``victim`` if built."""

    def tamper(config: dict) -> None:
        for group in ("optimizer", "scheduler", "logger"):
            config[group] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}

    return tamper


@pytest.mark.parametrize("case", ["keys from before the optimizer group", "hostile targets"])
def test_a_checkpoints_optimizer_scheduler_and_logger_are_never_built_from_its_config(
    trained: Path, tmp_path: Path, case: str
):
    """Loading and resuming read the network's groups of a stored config; the training parts
    come from the current run's config, so old keys load and foreign targets never run."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    change = old_keys if case.startswith("keys") else hostile_training_parts(victim)
    path = tampered(trained, tmp_path / "stored.pt", lambda state: change(state["config"]))

    assert load_trained_model(path).model.training is False
    cfg = compose_train(
        trained.parent / "data", tmp_path, "trainer.steps=4", f"trainer.resume={path}"
    )
    run_training(cfg, run_dir=tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 4
    assert victim.read_text() == "precious"


def test_buildable_targets_are_those_of_the_conf_groups():
    for group in BUILT_GROUPS:
        options = {OmegaConf.load(yaml)["_target_"] for yaml in (CONF_DIR / group).glob("*.yaml")}
        assert buildable_targets(group) == options
    assert "normcoef.models.SkipAddCNN" in buildable_targets("model")
    assert "torch.nn.ELU" in buildable_targets("activation")
    assert "normcoef.losses.MSELoss" in buildable_targets("loss")


@pytest.mark.parametrize("group", BUILT_GROUPS)
def test_every_option_of_the_conf_groups_passes_the_check_and_builds(group: str):
    for yaml in sorted((CONF_DIR / group).glob("*.yaml")):
        cfg = compose_config("train", f"{group}={yaml.stem}", "model.layers=4")
        stored = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        assert unbuildable(OmegaConf.to_container(stored)) is None, yaml
        assert isinstance(build_model(stored.model, stored.activation, 3), torch.nn.Module)
        assert isinstance(build_loss(stored.loss), torch.nn.Module)


UNBUILDABLE = {
    "a bad argument": ("model", "padding", "sideways"),
    "a partial network": ("model", "_partial_", True),
    "a missing value": ("dataset", "root", "???"),
    "broken statistics": ("standardizer", "mode", "sometimes"),
    "weights of another network": ("model", "channels", 8),
}


@pytest.mark.parametrize("case", list(UNBUILDABLE))
@pytest.mark.reliability(
    "checkpoint",
    "config, statistics or weights that do not build",
    "error",
    "one line naming the file",
)
def test_a_checkpoint_whose_contents_do_not_build_is_refused(
    trained: Path, tmp_path: Path, case: str
):
    def spoil(state):
        node, key, value = UNBUILDABLE[case]
        (state["config"] if node != "standardizer" else state)[node][key] = value

    path = tampered(trained, tmp_path / "unbuildable.pt", spoil)

    with pytest.raises(CheckpointError, match="cannot build|do not fit") as error:
        load_trained_model(path)
    assert_one_line_naming(error, path)


# --- damaged and foreign files ----------------------------------------------------------------


DAMAGED = (
    "empty",
    "truncated to half",
    "truncated to 100 bytes",
    "cut at the end",
    "random bytes",
    "text",
    "zip of something else",
    "a list",
    "a dict without weights",
)


def damaged_files(good: Path, tmp_path: Path) -> dict[str, Path]:
    data = good.read_bytes()
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hello.txt", "not a checkpoint")
    contents = {
        "empty": b"",
        "truncated to half": data[: len(data) // 2],
        "truncated to 100 bytes": data[:100],
        "cut at the end": data[:-10],
        "random bytes": np.random.default_rng(0).bytes(4096),
        "text": b"model: weights\n",
        "zip of something else": archive.read_bytes(),
    }
    files = {}
    for i, (name, content) in enumerate(contents.items()):
        files[name] = tmp_path / f"damaged_{i}.pt"
        files[name].write_bytes(content)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "no_model.pt")
    files["a list"] = tmp_path / "list.pt"
    files["a dict without weights"] = tmp_path / "no_model.pt"
    return files


@pytest.mark.parametrize("kind", DAMAGED)
@pytest.mark.reliability(
    "checkpoint",
    "empty, truncated, random or foreign .pt file",
    "error",
    "one line naming the file: damaged or not a normcoef checkpoint",
)
def test_damaged_or_foreign_files_are_refused_in_one_line_naming_the_file(
    trained: Path, tmp_path: Path, kind: str
):
    path = damaged_files(trained / "best.pt", tmp_path)[kind]
    with pytest.raises(CheckpointError, match="damaged|not a normcoef checkpoint") as error:
        load_checkpoint(path)
    assert_one_line_naming(error, path)


def test_a_missing_checkpoint_file_is_a_file_not_found_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")


# --- the entry points -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.reliability(
    "predict",
    "hostile checkpoint (pickle payload or foreign _target_)",
    "error",
    "one-line error, exit 2, nothing runs or is written",
)
def test_predict_refuses_a_hostile_checkpoint_in_one_line(trained: Path, tmp_path: Path):
    marker, victim = tmp_path / "pwned", tmp_path / "victim.txt"
    victim.write_text("precious")
    opener = hostile_configs(victim)["activation target"][1]
    checkpoints = [
        payload_files(tmp_path, marker, state_of(trained))["nested"],
        tampered(trained, tmp_path / "config.pt", lambda state: opener(state["config"])),
    ]
    sample = trained.parent / "data" / "test" / "X" / "00000.npz"
    for checkpoint in checkpoints:
        out = tmp_path / f"out_{checkpoint.stem}"
        command = [sys.executable, "-m", "normcoef.predict", str(checkpoint), str(sample)]
        env = {**os.environ, "NORMCOEF_DEBUG": ""}
        done = subprocess.run(
            [*command, "-o", str(out)], capture_output=True, text=True, timeout=120, env=env
        )
        assert done.returncode == 2, done.stderr
        assert str(checkpoint) in one_error_line(done.stderr)
        assert not out.exists()
    assert not marker.exists()
    assert victim.read_text() == "precious"


@pytest.mark.slow
@pytest.mark.reliability(
    "train",
    "trainer.resume names a hostile checkpoint",
    "error",
    "refused before the first step, nothing runs",
)
def test_resuming_from_a_hostile_checkpoint_is_refused_before_training(
    trained: Path, tmp_path: Path
):
    marker = tmp_path / "pwned"
    payload = payload_files(tmp_path, marker, state_of(trained))["nested"]
    cfg = compose_train(trained.parent / "data", tmp_path, f"trainer.resume={payload}")

    with pytest.raises(CheckpointError, match="arbitrary code"):
        run_training(cfg, run_dir=tmp_path / "resumed")
    assert not marker.exists()
    assert not (tmp_path / "resumed" / "last.pt").exists()


@pytest.mark.slow
@pytest.mark.reliability(
    "checkpoint",
    "MLflow run whose checkpoint artifact is hostile",
    "error",
    "downloaded, then refused unread",
)
def test_a_hostile_checkpoint_fetched_by_mlflow_run_id_is_refused(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    payload = payload_files(tmp_path, marker, state_of(trained))["nested"]
    folder = tmp_path / "upload"
    folder.mkdir()
    payload.rename(folder / "best.pt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("hostile", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(experiment).info.run_id
    client.log_artifact(run_id, str(folder / "best.pt"), "checkpoints")

    path = resolve_checkpoint(run_id, uri)
    with pytest.raises(CheckpointError, match="arbitrary code") as error:
        load_trained_model(path)
    assert_one_line_naming(error, path)
    assert not marker.exists()
