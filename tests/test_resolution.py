"""One network for every resolution: a grid k times finer than the network's is shown to it
coarsened k times, its correction refined onto the fine grid's own prior (issue 28)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config, tiny_overrides

from normcoef.cli import evaluate, predict
from normcoef.data.fields import FieldParameters
from normcoef.data.generation import GenerationSpec, generate_dataset
from normcoef.data.info import DatasetInfo
from normcoef.data.storage import load_split, sample_paths
from normcoef.inference import TrainedModel, load_trained_model, whole_ratio
from normcoef.pipeline import run_training
from normcoef.training.forward import resampled_gamma

TINY = (16, 24)
"""The tiny data set's grid (``helpers.tiny_spec``); its ocean 2x finer is 32x48."""


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory: pytest.TempPathFactory, tiny_dataset) -> tuple[Path, Path]:
    """A tiny network on the geometry prior (prior_residual target) and a test set of the same
    ocean 2x finer (length scales in cells of the 24-column tiny grid)."""
    tmp = tmp_path_factory.mktemp("resolution")
    root = tiny_dataset(2)
    run_dir = tmp / "checkpoints" / "run"
    overrides = [
        f"dataset.root={root}",
        *tiny_overrides(test=2),
        "target=prior_residual",
        "trainer.checkpoint_every=3",
        "logger=none",
        "evaluate=false",
    ]
    run_training(compose_config("train", *overrides), run_dir=run_dir)
    fine = tmp / "fine"
    spec = GenerationSpec(
        grid="python",
        height=2 * TINY[0],
        width=2 * TINY[1],
        splits={"train": 1, "valid": 0, "test": 2},
        fields=FieldParameters(units="reference", reference_width=TINY[1]),
    )
    generate_dataset(fine, spec, progress=False)
    return run_dir, fine


@pytest.mark.parametrize(
    ("measured", "expected"),
    [(2.02, 2.0), (1.88, 2.0), (0.504, 0.5), (3.1, 3.0), (1.0, 1.0), (1.15, 1.0), (1.5, 1.0)],
)
def test_a_measured_width_ratio_near_a_whole_number_is_that_number(measured, expected):
    # 2.02: ½° over 1°; 1.88: the python grid at 128x256 over 64x128; 0.504: 2° over 1°.
    assert whole_ratio(measured) == expected


def ratio_of(trained: TrainedModel, root: Path) -> float:
    sample = load_split(root, "test", 1)
    return trained.resolution_ratio(sample.fields[0], sample.ocean[0])


@pytest.mark.reliability(
    "evaluate",
    "a grid larger than the network's but drawn in its own cells (its kernels as many cells "
    "wide as the training's)",
    "handled",
    "shown as it is: the resolution is measured on the kernel widths in cells, not the shape",
)
def test_the_resolution_is_measured_on_kernel_widths_in_cells_not_the_shape(
    residual_run, tiny_dataset
):
    trained = load_trained_model(residual_run[0] / "best.pt")
    assert trained.input_range.kernel_median is not None
    assert ratio_of(trained, residual_run[1]) == 2  # the same ocean 2x finer
    assert ratio_of(trained, tiny_dataset(2)) == 1  # its own
    # 2x the cells on each axis, kernels as many cells wide as the training's (its own sample
    # tiled 2x2): the shape alone said 2 and coarsened it, making every kernel half as wide.
    own = load_split(tiny_dataset(2), "test", 1)
    tiled = np.tile(own.fields[0], (1, 2, 2)), np.tile(own.ocean[0], (2, 2))
    assert tiled[1].shape == (32, 48)
    assert trained.resolution_ratio(*tiled) == 1
    fine = load_split(residual_run[1], "test", 1)
    fields, ocean = fine.fields[0], fine.ocean[0]
    assert replace(trained, resolution="native").resolution_ratio(fields, ocean) == 1
    assert replace(trained, input_range=None).resolution_ratio(fields, ocean) == 1
    # Kernels as wide as a 2x finer grid's on sides that do not divide by 2: shown as it is.
    assert trained.resolution_ratio(fields[:, :31, :47], ocean[:31, :47]) == 1
    # The other way: every kernel half as many cells wide, a grid 2x coarser.
    coarse = fields.copy()
    coarse[:2] /= 16.0
    assert trained.resolution_ratio(coarse, ocean) == 0.5
    with pytest.raises(ValueError, match="resolution='fine': choose one of auto, native"):
        replace(trained, resolution="fine").resolution_ratio(fields, ocean)


class UniformCorrection(torch.nn.Module):
    """A network whose standardized output is ``value`` everywhere."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], self.value)


@pytest.mark.parametrize("ratio", [2.0, 0.5])
def test_a_uniform_correction_goes_onto_the_grids_own_prior(residual_run, tiny_dataset, ratio):
    """Coarsened (2x finer grid) or refined (2x coarser), a network's uniform correction
    comes back uniform onto the evaluated grid's own prior, whatever the resampling."""
    run_dir, fine = residual_run
    trained = load_trained_model(run_dir / "best.pt")
    standardizer = trained.standardizer
    # 2x finer: the fine set coarsened to 16x24; 2x coarser: the tiny set refined to 32x48.
    sample = load_split(fine if ratio > 1 else tiny_dataset(2), "test", 1)
    fields, ocean = sample.fields[0], sample.ocean[0]
    standardizer.cover_inputs([fields], [ocean])
    mean, std = standardizer.target_scale

    model = UniformCorrection(0.5)
    gamma = resampled_gamma(model, standardizer, fields, ocean, trained.device, ratio)

    expected = standardizer.prior(fields, ocean) * np.exp((0.5 * std + mean) / 2)
    np.testing.assert_allclose(gamma[ocean], expected[ocean], rtol=1e-6)


def test_a_coarsened_network_needs_the_prior_residual_target(residual_run, tiny_dataset):
    trained = load_trained_model(residual_run[0] / "best.pt")
    gamma_target = replace(trained.standardizer, target_mode="gamma", prior_stats=None)
    sample = load_split(residual_run[1], "test", 1)
    with pytest.raises(ValueError, match="needs the prior_residual target"):
        resampled_gamma(
            trained.model, gamma_target, sample.fields[0], sample.ocean[0], trained.device, 2.0
        )
    # So --resolution auto leaves such a network's inputs as they are (with the range warning).
    unresampled = replace(trained, standardizer=gamma_target)
    assert unresampled.resolution_ratio(sample.fields[0], sample.ocean[0]) == 1


@pytest.mark.reliability(
    "evaluate",
    "a data set on a grid a whole number of times finer or coarser than the network's",
    "handled",
    "one note: the network is shown the inputs at its own resolution; --resolution native: "
    "as they are, with the shape warning",
)
def test_evaluate_shows_a_finer_grid_at_the_networks_resolution_says_so_and_native_turns_it_off(
    residual_run, capsys: pytest.CaptureFixture
):
    run_dir, fine = residual_run
    common = [str(run_dir), "--dataset", str(fine), "-n", "0", "--no-log"]

    coarsened = evaluate.run(common)
    said = capsys.readouterr().err
    native = evaluate.run([*common, "--resolution", "native"])
    said_native = capsys.readouterr().err

    assert (
        "as many cells wide as the network's (a grid 2x finer): it is shown the inputs "
        "coarsened 2x" in said
    )
    assert "coarsened" not in said_native
    assert "expect larger errors" not in said  # it is shown its own resolution
    assert "32x48 grid, the network was trained on 16x24" in said_native
    cnn, cnn_native = coarsened.methods["CNN"], native.methods["CNN"]
    assert cnn["eps_mean"] != cnn_native["eps_mean"]
    prior = "Prior alone (no network)"
    assert coarsened.methods[prior] == native.methods[prior]
    assert DatasetInfo.load(fine).shape == (32, 48)


@pytest.mark.reliability(
    "predict",
    "inputs on a grid a whole number of times finer or coarser than the network's",
    "handled",
    "one note: the network is shown the inputs at its own resolution, its correction put "
    "onto the grid's own prior",
)
def test_predict_on_a_finer_grid_says_so_and_writes_the_resampled_gamma(
    residual_run, tmp_path: Path, capsys: pytest.CaptureFixture
):
    run_dir, fine = residual_run
    x_path, _ = sample_paths(fine, "test", "00000")
    predict.run([str(run_dir), str(x_path), "--mask", str(fine / "grid.npz"), "-o", str(tmp_path)])
    said = capsys.readouterr().err

    assert "(a grid 2x finer): it is shown the inputs coarsened 2x" in said
    assert "lie more than" not in said and "is not the training grid" not in said
    sample = load_split(fine, "test", 1)
    with np.load(tmp_path / "00000_norm_coeffs.npz") as written:
        gamma = written["gamma"]
    trained = load_trained_model(run_dir / "best.pt")
    expected = trained.predict(sample.fields[0], sample.ocean[0])
    ocean = sample.ocean[0]
    np.testing.assert_allclose(gamma[ocean], expected[ocean], rtol=1e-6)
