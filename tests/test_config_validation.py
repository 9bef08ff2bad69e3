"""A value out of range fails when the run starts, with one line naming its key and the
allowed range, rather than as a crash inside torch or numpy, or a run that does nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from helpers import compose_config
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from normcoef.config import DatasetConfig, validate
from normcoef.data.fields import FieldParameters
from normcoef.data.generation import GenerationSpec
from normcoef.models import PlainCNN, SkipAddCNN, SkipConcatCNN
from normcoef.pipeline import run_training
from normcoef.training.factory import build_model
from normcoef.training.settings import LoopSettings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["train", "generate"])
def test_the_shipped_defaults_are_valid(name):
    validate(compose_config(name))


def refused(fault: str, detail: str, *cases: tuple[str, str]) -> list:
    """(override, message) cases of one row of docs/reliability.md."""
    mark = pytest.mark.reliability("train", fault, "error", detail)
    return [pytest.param(override, message, marks=mark, id=override) for override, message in cases]


OUT_OF_RANGE = [
    *refused(
        "trainer.steps, batch_size, eval_every, checkpoint_every, stop_at <= 0; lr <= 0",
        "one line naming the key and the range, before anything runs",
        ("trainer.steps=0", "trainer.steps=0: must be >= 1"),
        ("trainer.steps=-5", "trainer.steps=-5: must be >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0: must be >= 1"),
        ("trainer.eval_every=0", "trainer.eval_every=0: must be >= 1"),
        ("trainer.checkpoint_every=-1", "trainer.checkpoint_every=-1: must be >= 1"),
        ("trainer.stop_at=0", "trainer.stop_at=0: must be >= 1"),
        ("trainer.stop_at=-3", "trainer.stop_at=-3: must be >= 1"),
        ("optimizer.lr=0", "optimizer.lr=0.0: must be a finite number > 0"),
        ("optimizer.lr=-0.001", "optimizer.lr=-0.001: must be a finite number > 0"),
        ("optimizer.weight_decay=-0.1", "optimizer.weight_decay=-0.1: must be >= 0"),
        ("trainer.seed=-1", r"trainer.seed=-1: must be in \[0, 2\*\*32 - 1\]"),
        ("trainer.num_threads=0", "trainer.num_threads=0: must be >= 1, or null"),
    ),
    *refused(
        "a misspelt trainer.monitor",
        "one line naming the key and the metrics it may name, before any data is read",
        ("trainer.monitor=val/epsq", "trainer.monitor='val/epsq': choose one of val/loss"),
    ),
    *refused(
        "negative split sizes, a loose tolerance, odd or zero M, a negative seed",
        "one line naming the dataset key and the range",
        ("dataset.splits.valid=-1", "dataset.splits.valid=-1: must be >= 0"),
        ("dataset.splits.train=0", "dataset.splits.train=0: must be >= 1"),
        ("+dataset.splits.tset=2", "dataset.splits.tset: unknown split; use train, valid, test"),
        ("dataset.tolerance=5", r"dataset.tolerance=5.0: must be in \(0, 1e-04\]"),
        ("dataset.tolerance=0", r"dataset.tolerance=0.0: must be in \(0, 1e-04\]"),
        ("dataset.fields.steps=0", "dataset.fields.steps=0: must be an even number >= 4"),
        ("dataset.fields.steps=7", "dataset.fields.steps=7: must be an even number >= 4"),
        ("dataset.fields.min_cells=0", "dataset.fields.min_cells=0.0, max_cells=4.0: need 0 <"),
        ("dataset.fields.correlation_cells=-1", "dataset.fields.correlation_cells=-1.0: "),
        ("dataset.height=2", "dataset.height=2: must be >= 4, or null"),
        ("dataset.seed=-1", "dataset.seed=-1: must be >= 0"),
    ),
    *refused(
        "negative randomization samples or seed, max_samples 0",
        "one line naming the evaluation key",
        (
            "evaluation.randomization_samples=-1",
            "evaluation.randomization_samples=-1: must be >= 0",
        ),
        ("evaluation.randomization_seed=-2", "evaluation.randomization_seed=-2: must be >= 0"),
        ("evaluation.max_samples=0", "evaluation.max_samples=0: must be >= 1, or null"),
    ),
]


@pytest.mark.parametrize(("override", "message"), OUT_OF_RANGE)
def test_a_value_out_of_range_is_refused_naming_its_key_and_range(override, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        validate(compose_config("train", override))


def test_a_missing_mandatory_value_is_named():
    with pytest.raises(ValueError, match="^dataset.root: missing; set it"):
        validate(compose_config("train", "dataset.root=???"))


def test_the_dataset_schema_is_the_generators_plus_what_only_training_reads():
    """One schema and one set of defaults for the generator and the config, no copy."""
    assert issubclass(DatasetConfig, GenerationSpec)
    added = {f.name for f in fields(DatasetConfig)} - {f.name for f in fields(GenerationSpec)}
    assert added == {"root", "standardization"}
    assert DatasetConfig(root="data") == DatasetConfig(root="data", **vars(GenerationSpec()))


def test_the_unread_dataset_name_is_no_key_any_more():
    with pytest.raises(ConfigCompositionException, match="dataset.name"):
        compose_config("train", "dataset.name=python")


def test_the_schemas_check_their_values_when_built_directly():
    with pytest.raises(ValueError, match="^steps=0: must be >= 1$"):
        LoopSettings(steps=0)
    with pytest.raises(ValueError, match="^steps=3: must be an even number >= 4$"):
        FieldParameters(steps=3)


@pytest.mark.reliability(
    "train",
    "model.channels or model.layers too small",
    "error",
    "one line naming model.channels or model.layers and the allowed range",
)
@pytest.mark.parametrize("model_class", [PlainCNN, SkipAddCNN, SkipConcatCNN])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "model.channels=0: must be >= 1"),
        ({"channels": -4}, "model.channels=-4: must be >= 1"),
        ({"layers": 1}, r"model.layers=1: must be >= 2"),
    ],
)
def test_models_refuse_too_few_channels_or_layers_naming_the_key(model_class, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        model_class(3, **kwargs)


def test_the_factory_passes_a_models_own_error_on_unwrapped():
    """Hydra wraps a constructor's error in a multi-line InstantiationException; the user
    must see the model's one-line message instead."""
    model = OmegaConf.load(REPO / "conf" / "model" / "cnn.yaml")
    model.channels = 0
    activation = OmegaConf.load(REPO / "conf" / "activation" / "elu.yaml")
    with pytest.raises(ValueError, match="^model.channels=0: must be >= 1") as caught:
        build_model(model, activation, in_channels=3)
    assert "\n" not in str(caught.value)


@pytest.mark.reliability(
    "train",
    "trainer.steps=0 (an untrained network)",
    "error",
    "refused before data, tracking or checkpoints",
)
def test_training_with_zero_steps_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "checkpoints"
    cfg = compose_config(
        "train",
        f"dataset.root={tmp_path / 'no-data'}",
        f"trainer.output_dir={out}",
        "logger=none",
        "trainer.steps=0",
    )
    with pytest.raises(ValueError, match="^trainer.steps=0: must be >= 1$"):
        run_training(cfg, run_dir=out / "run")
    assert list(tmp_path.iterdir()) == []


def cli(module: str, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Run ``python -m module`` of this checkout from ``cwd`` (Hydra writes outputs/ there)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("NORMCOEF_DEBUG", None)
    command = [sys.executable, "-m", module, *overrides]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.reliability(
    "train", "trainer.batch_size=0 on the command line", "error", "one line, exit 2"
)
def test_train_cli_refuses_a_zero_batch_size_in_one_line(tmp_path):
    done = cli("normcoef.train", tmp_path, "trainer.batch_size=0", "logger=none")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: trainer.batch_size=0: must be >= 1"
    assert not (tmp_path / "mlflow.db").exists()
