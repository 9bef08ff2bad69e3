"""Networks shipped with the package (``normcoef.pretrained``): written from a run without its
optimizer state, loaded as safely as any checkpoint, used by ``--pretrained`` in predict and
evaluate, with their provenance; and the global presets' two sizes are one recipe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TrainTiny
from helpers import compose_config, one_error_line
from omegaconf import OmegaConf

from normcoef import pretrained
from normcoef.cli import evaluate, predict
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import Grid
from normcoef.data.storage import GRID, load_split
from normcoef.inference import load_trained_model
from normcoef.metrics import sample_metrics
from normcoef.physics import DiffusionOperator, exact_normalization
from normcoef.physics.geometry_prior import GeometryTable
from normcoef.training.checkpoint import load_checkpoint

PROVENANCE_KEYS = {"commit", "recipe", "command", "data", "hardware", "validation", "test"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, train_tiny: TrainTiny) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory.mktemp("pretrained"))


def test_a_shipped_network_is_the_runs_weights_without_its_optimizer(
    tiny_run: tuple[Path, Path], tmp_path: Path
):
    root, run_dir = tiny_run
    details = {"commit": "abc", "test": {"eps_max": 0.5, "samples": 2}}
    path = pretrained.write_pretrained(run_dir / "best.pt", root / GRID, "tiny", details, tmp_path)

    state, original = load_checkpoint(path), load_checkpoint(run_dir / "best.pt")
    assert state["optimizer"] is None and original["optimizer"] is not None
    assert path.stat().st_size < (run_dir / "best.pt").stat().st_size
    for key, tensor in original["model"].items():
        assert torch.equal(state["model"][key], tensor), key
    assert json.loads((tmp_path / "tiny.json").read_text()) == details
    assert (tmp_path / "tiny-grid.npz").read_bytes() == (root / GRID).read_bytes()

    test = load_split(root, "test")
    shipped, trained = load_trained_model(path), load_trained_model(run_dir / "best.pt")
    np.testing.assert_array_equal(
        shipped.predict(test.fields[0], test.ocean[0]),
        trained.predict(test.fields[0], test.ocean[0]),
    )
    with pytest.raises(FileExistsError, match="remove it first"):
        pretrained.write_pretrained(run_dir / "best.pt", root / GRID, "tiny", details, tmp_path)


def test_an_unknown_pretrained_name_is_refused_naming_the_shipped_ones(
    capsys: pytest.CaptureFixture, tmp_path: Path
):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--pretrained", "glob", "x.npz", "-o", str(tmp_path)])
    assert exit_info.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: no pretrained network 'glob'; shipped: global")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--pretrained", "global"], "not both"),
        ([], "give a CHECKPOINT or --pretrained NAME (global)"),
    ],
)
def test_evaluate_takes_a_checkpoint_or_a_pretrained_network(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_predict_needs_an_input_after_its_checkpoint(capsys: pytest.CaptureFixture, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["run", "-o", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "give at least one INPUT after CHECKPOINT" in capsys.readouterr().err


def test_the_global_network_ships_with_its_grid_and_provenance():
    assert "global" in pretrained.available()
    info = pretrained.provenance("global")
    assert PROVENANCE_KEYS <= set(info)
    assert info["test"]["samples"] == 190 and info["data"]["splits"]["test"] == 190
    for split in ("validation", "test"):
        assert {"eps_q", "eps_max", "eps_mean", "rmse"} <= set(info[split])
    trained = load_trained_model(pretrained.checkpoint_path("global"))
    assert trained.dataset.shape == (292, 360) and trained.standardizer.uses_prior
    assert trained.standardizer.prior_name == "geometry"
    assert len(list(pretrained.HERE.glob("prior-geometry-*.npz"))) == 1
    assert load_checkpoint(pretrained.checkpoint_path("global"))["optimizer"] is None
    assert pretrained.checkpoint_path("global").stat().st_size < 5_000_000
    with np.load(pretrained.grid_path("global")) as grid:
        assert grid["mask"].shape == (292, 360)


@pytest.mark.slow
def test_the_global_network_predicts_exact_gamma_of_a_new_global_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    """A global sample none of its data saw (data seed 1), exact γ computed here (~10 s):
    ``predict --pretrained global`` gets it within twice the test errors its provenance
    states, NaN on land, and the same γ as the checkpoint by path with the grid as --mask."""
    with np.load(pretrained.grid_path("global")) as npz:
        grid = Grid("global", npz["lat"], npz["lat_north"], npz["lon"], npz["mask"])
    fields = make_fields(grid, FieldParameters(), seed=1, index=0)
    op = DiffusionOperator(fields, grid.mask, 10, grid.periodic_x, grid.periodic_y)
    gamma = exact_normalization(op, tol=2e-6)
    inputs = tmp_path / "X"
    inputs.mkdir()
    np.savez(inputs / "00000.npz", fields)

    # Its grid's geometry table ships with it: nothing is solved for the global grid.
    monkeypatch.setattr(GeometryTable, "build", None)
    (written,) = predict.run(["--pretrained", "global", str(inputs), "-o", str(tmp_path / "a")])
    assert "pretrained network 'global'" in capsys.readouterr().out
    with np.load(written) as out:
        predicted, mask = out["gamma"], out["mask"]
    assert np.array_equal(mask, grid.mask) and np.all(np.isnan(predicted[~mask]))
    metrics = sample_metrics(np.nan_to_num(predicted), gamma, grid.mask)
    stated = pretrained.provenance("global")["test"]
    assert metrics["eps_max"] < 2 * stated["eps_max"]
    assert metrics["eps_mean"] < 2 * stated["eps_mean"]
    shutil.copyfile(pretrained.grid_path("global"), tmp_path / "grid.npz")
    (by_path,) = predict.run(
        [str(pretrained.checkpoint_path("global")), str(inputs), "-o", str(tmp_path / "b")]
        + ["--mask", str(tmp_path / "grid.npz")]
    )
    with np.load(by_path) as again:
        np.testing.assert_array_equal(again["gamma"], predicted)


def test_the_global_presets_are_one_recipe_in_two_sizes():
    gpu, cpu = (
        compose_config("train", "experiment=global"),
        compose_config("train", "experiment=global_cpu"),
    )
    for key in ("dataset", "model._target_", "model.layers", "activation", "distance_map"):
        assert OmegaConf.select(gpu, key) == OmegaConf.select(cpu, key), key
    for key in ("loss", "target", "augmentation", "scheduler", "optimizer"):
        assert gpu[key] == cpu[key], key
    assert (gpu.model.channels, cpu.model.channels) == (64, 32)
    assert gpu.dataset.splits == {"train": 10, "valid": 1, "test": 190}
    assert gpu.trainer.monitor == cpu.trainer.monitor == "val/eps_q"
