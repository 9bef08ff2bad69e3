"""Specification of inference from checkpoints: ``normcoef.evaluate`` and ``normcoef.predict``.

One tiny run (16x24 python grid, 3/1/2 samples, a 2-layer 4-channel CNN, 3 steps) is trained
once with ``run_training`` into its own SQLite MLflow store; every test reads its checkpoints.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import TinyDataset
from helpers import compose_config, tiny_overrides
from mlflow import MlflowClient
from omegaconf import DictConfig

from normcoef.cli import evaluate, predict
from normcoef.data.info import DatasetInfo
from normcoef.data.storage import load_split
from normcoef.data.torch_dataset import NormalizationDataset
from normcoef.inference import load_trained_model, resolve_checkpoint
from normcoef.pipeline import run_training
from normcoef.scoring import ScoringOptions
from normcoef.scoring import evaluate as evaluate_metrics
from normcoef.training.factory import build_loss
from normcoef.training.forward import evaluate_split

RANDOMIZATION_SAMPLES = 20


@dataclass
class TrainedRun:
    root: Path
    run_dir: Path
    run_id: str
    tracking_uri: str
    cfg: DictConfig
    logged: dict[str, float]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> TrainedRun:
    tmp = tmp_path_factory.mktemp("inference")
    root = tiny_dataset(test=2)
    uri = f"sqlite:///{tmp}/mlflow.db"
    # Artifacts under tmp, not in ./mlruns of the working directory.
    MlflowClient(uri).create_experiment("inference", artifact_location=str(tmp / "artifacts"))
    overrides = [
        f"dataset.root={root}",
        *tiny_overrides(test=2, layers=2, steps=3, eval_every=1),
        "dataset.standardization=partial",
        "distance_map=manhattan",
        "trainer.checkpoint_every=3",
        f"trainer.output_dir={tmp / 'checkpoints'}",
        f"logger.tracking_uri={uri}",
        "logger.experiment=inference",
        f"evaluation.randomization_samples={RANDOMIZATION_SAMPLES}",
    ]
    cfg = compose_config("train", *overrides)
    run_training(cfg)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("inference")
    (run,) = client.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    return TrainedRun(root, tmp / "checkpoints" / run_id, run_id, uri, cfg, run.data.metrics)


def test_a_run_directory_resolves_to_its_best_checkpoint(trained: TrainedRun):
    assert resolve_checkpoint(trained.run_dir) == trained.run_dir / "best.pt"
    assert (trained.run_dir / "last.pt").exists()


def test_a_hydra_run_folder_resolves_to_the_best_checkpoint_in_its_checkpoints(
    trained: TrainedRun, tmp_path: Path
):
    import shutil

    shutil.copytree(trained.run_dir, tmp_path / "outputs" / "checkpoints")
    found = resolve_checkpoint(tmp_path / "outputs")
    assert found == tmp_path / "outputs" / "checkpoints" / "best.pt"
    with pytest.raises(FileNotFoundError, match="holds none of best.pt, last.pt, nor does its"):
        resolve_checkpoint(tmp_path)


def test_evaluating_the_checkpoint_reproduces_the_test_metrics_training_logged(
    trained: TrainedRun, capsys: pytest.CaptureFixture, tmp_path: Path
):
    out = tmp_path / "report"
    result = evaluate.run(
        [str(trained.run_dir), "-n", str(RANDOMIZATION_SAMPLES), "--output-dir", str(out)]
    )

    logged = {k: v for k, v in trained.logged.items() if k.startswith("test/")}
    assert set(logged) == set(result.charted_metrics())
    for key, value in result.charted_metrics().items():
        assert value == pytest.approx(logged[key], rel=1e-6, abs=1e-12), key
    printed = capsys.readouterr().out
    assert "| CNN |" in printed
    assert f"| Randomization (N={RANDOMIZATION_SAMPLES}) |" in printed
    assert "2 test samples." in printed
    assert "| CNN |" in (out / "test_metrics.md").read_text()
    assert (out / "error_by_distance.png").exists()


def test_a_sample_limit_applies_to_the_cnn_and_the_randomization_alike(trained: TrainedRun):
    model = load_trained_model(trained.run_dir / "best.pt", "cpu")
    test = NormalizationDataset(load_split(trained.root, "test"), model.standardizer)
    loss_fn = build_loss(trained.cfg.loss)

    def run(dataset, limit):
        return evaluate_metrics(
            model.model,
            loss_fn,
            dataset,
            model.device,
            DatasetInfo(steps=10),
            ScoringOptions(limit=limit, randomization_samples=RANDOMIZATION_SAMPLES),
        )

    limited, first_only = run(test, 1), run(test.head(1), None)
    assert limited.samples == 1
    assert limited.flat_metrics() == first_only.flat_metrics()
    assert limited.flat_metrics() != run(test, None).flat_metrics()
    assert "1 test samples." in limited.table()


def test_evaluating_an_mlflow_run_id_logs_metrics_and_table_to_that_run(trained: TrainedRun):
    result = evaluate.run([trained.run_id, "--tracking-uri", trained.tracking_uri, "-n", "3"])

    client = MlflowClient(trained.tracking_uri)
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    randomization = result.methods["Randomization (N=3)"]
    assert run.data.metrics["test/randomization/eps_q"] == pytest.approx(randomization["eps_q"])
    table = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/test_metrics.md")
    assert "| Randomization (N=3) |" in table
    assert "| CNN |" in table
    figures = {f.path for f in client.list_artifacts(trained.run_id, "figures")}
    assert "figures/mean_abs_error_map.png" in figures


def test_logging_to_an_unknown_run_fails_before_evaluating(
    trained: TrainedRun, capsys: pytest.CaptureFixture
):
    unknown = "0" * 32
    args = [str(trained.run_dir), "--log-to", unknown, "--tracking-uri", trained.tracking_uri]
    with pytest.raises(SystemExit, match="^2$"):
        evaluate.main(args)
    assert f"no MLflow run '{unknown}'" in capsys.readouterr().err


def test_predict_writes_the_models_physical_gamma_with_nan_exactly_on_land(
    trained: TrainedRun, tmp_path: Path
):
    outputs = predict.run(
        [str(trained.run_dir), str(trained.root / "test" / "X"), "-o", str(tmp_path)]
    )

    model = load_trained_model(trained.run_dir / "best.pt", "cpu")
    test = NormalizationDataset(load_split(trained.root, "test"), model.standardizer)
    _, expected = evaluate_split(model.model, build_loss(trained.cfg.loss), test, model.device)
    with np.load(trained.root / "grid.npz") as grid:
        land = ~grid["mask"]
    assert [p.name for p in outputs] == ["00000_norm_coeffs.npz", "00001_norm_coeffs.npz"]
    for path, gamma_hat, ocean in zip(outputs, expected, test.split.ocean, strict=True):
        with np.load(path) as written:
            gamma, mask = written["gamma"], written["mask"]
        np.testing.assert_array_equal(np.isnan(gamma), land)
        np.testing.assert_array_equal(mask, ~land)
        np.testing.assert_allclose(gamma[ocean], gamma_hat[ocean], rtol=1e-12)


def test_predict_refuses_to_overwrite_unless_asked(
    trained: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    sample = trained.root / "test" / "X" / "00000.npz"
    (out,) = predict.run([str(trained.run_dir), str(sample), "-o", str(tmp_path)])
    out.write_bytes(b"kept")

    with pytest.raises(SystemExit, match="^2$"):
        predict.main([str(trained.run_dir), str(sample), "-o", str(tmp_path)])
    assert re.search("exist.*--overwrite", capsys.readouterr().err)
    assert out.read_bytes() == b"kept"

    predict.main([str(trained.run_dir), str(sample), "-o", str(tmp_path), "--overwrite"])
    with np.load(out) as written:
        assert written["gamma"].shape == (16, 24)


def test_a_missing_checkpoint_is_a_clear_error(
    trained: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    missing = str(tmp_path / "nowhere" / "best.pt")
    with pytest.raises(SystemExit, match="^2$"):
        evaluate.main([missing])
    assert re.search("no checkpoint at .*nowhere", capsys.readouterr().err)
    with pytest.raises(SystemExit, match="^2$"):
        predict.main([missing, str(trained.root / "test" / "X"), "-o", str(tmp_path)])
    assert re.search("no checkpoint at .*nowhere", capsys.readouterr().err)


def test_a_checkpoint_without_config_and_statistics_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
):
    path = tmp_path / "weights_only.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(SystemExit, match="^2$"):
        evaluate.main([str(path)])
    assert "lacks ['config', 'standardizer', 'periodic']" in capsys.readouterr().err


def test_an_input_on_another_grid_without_its_mask_is_refused(
    trained: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, arr_0=np.ones((3, 16, 23)))
    with pytest.raises(SystemExit, match="^2$"):
        predict.main([str(trained.run_dir), str(wrong), "-o", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert re.search(r"\(16, 23\) do not fit the grid \(16, 24\)", error)
    assert "the training grid" in error and "--mask" in error
    assert not (tmp_path / "out").exists()


def test_nan_on_ocean_is_refused_but_nan_on_land_is_not(
    trained: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    with np.load(trained.root / "test" / "X" / "00000.npz") as stored:
        fields = stored["arr_0"]
    with np.load(trained.root / "grid.npz") as grid:
        ocean = grid["mask"]
    on_land = np.where(ocean, fields, np.nan)
    np.savez(tmp_path / "land.npz", on_land)
    on_ocean = fields.copy()
    on_ocean[2, ocean] = np.nan
    np.savez(tmp_path / "ocean.npz", on_ocean)

    with pytest.raises(SystemExit, match="^2$"):
        predict.main([str(trained.run_dir), str(tmp_path / "ocean.npz"), "-o", str(tmp_path)])
    assert "ocean.npz: inputs hold NaN" in capsys.readouterr().err
    (out,) = predict.run(
        [str(trained.run_dir), str(tmp_path / "land.npz"), "-o", str(tmp_path / "out")]
    )
    with np.load(out) as written:
        assert np.isfinite(written["gamma"][ocean]).all()


def test_predict_runs_as_a_module_with_a_given_mask(trained: TrainedRun, tmp_path: Path):
    command = [
        sys.executable,
        "-m",
        "normcoef.predict",
        str(trained.run_dir / "last.pt"),
        str(trained.root / "test" / "X" / "00001.npz"),
        "--mask",
        str(trained.root / "grid.npz"),
        "-o",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "00001_norm_coeffs.npz").exists()


@pytest.mark.reliability(
    "evaluate",
    "a data set of another resolution",
    "warning",
    "says HxW vs HxW; evaluates",
)
def test_evaluating_on_another_resolution_warns_naming_both_shapes(
    trained: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    from normcoef.data.generation import GenerationSpec, generate_dataset

    spec = GenerationSpec(grid="python", height=20, width=28, splits={"train": 1, "test": 1})
    generate_dataset(tmp_path / "fine", spec, progress=False)

    result = evaluate.run(
        [str(trained.run_dir), "--dataset", str(tmp_path / "fine"), "-n", "0", "--no-log"]
    )

    warnings = [line for line in capsys.readouterr().err.splitlines() if "grid" in line]
    line, spacing = warnings
    assert line.startswith(f"warning: {tmp_path / 'fine'} is a 20x28 grid")
    assert "trained on 16x24" in line
    # Smaller cells, each kernel as many of them wide: the spacing is what lies outside.
    assert "grid spacing sqrt(W) lies outside" in spacing
    assert "kernel widths in cells are the training's" in spacing
    assert result.samples == 1


def test_evaluating_on_the_training_data_set_warns_of_nothing(
    trained: TrainedRun, capsys: pytest.CaptureFixture
):
    evaluate.run([str(trained.run_dir), "-n", "0", "--no-log"])
    assert "warning" not in capsys.readouterr().err


def test_a_run_charts_the_means_and_keeps_spreads_and_the_prior_in_a_table_artifact(
    trained: TrainedRun, tmp_path: Path
):
    """One MLflow metric is one chart on the run's page: only the CNN's and randomization's
    means are metrics; the spreads over the 2 test samples (and a prior's row) are data."""
    test_keys = {key for key in trained.logged if key.startswith("test/")}
    assert test_keys == {
        f"test/{method}/{metric}"
        for method in ("cnn", "randomization")
        for metric in ("eps_q", "eps_max", "eps_mean", "rmse")
    }
    path = MlflowClient(trained.tracking_uri).download_artifacts(
        trained.run_id, "test_metrics.json", str(tmp_path)
    )
    table = json.loads(Path(path).read_text())
    assert table["samples"] == 2
    cnn = table["methods"]["CNN"]
    assert cnn["key"] == "cnn"
    assert cnn["eps_q"] == pytest.approx(trained.logged["test/cnn/eps_q"])
    assert cnn["eps_q_std"] >= 0.0
