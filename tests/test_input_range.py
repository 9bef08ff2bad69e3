"""A network knows its limits: its checkpoint records the kernel widths (cells) it was trained
on, and evaluate and predict say when an input lies outside them, and by how much."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TrainTiny

from normcoef.cli import predict
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import make_grid
from normcoef.data.input_range import InputRange, kernel_widths
from normcoef.data.storage import load_split, sample_paths
from normcoef.inference import load_trained_model


def test_the_kernel_width_is_sqrt_of_diffusivity_over_area_on_open_faces():
    ocean = np.ones((4, 5), bool)
    ocean[0, 0] = False
    fields = np.stack([np.full((4, 5), 2.0), np.full((4, 5), 8.0), np.full((4, 5), 0.5)])
    fields[0, 3] = 0.0  # a closed north face row: not a kernel
    widths = kernel_widths(fields, ocean)
    assert sorted(set(np.round(widths, 12))) == [2.0, 4.0]
    assert len(widths) == (ocean.sum() - ocean[3].sum()) + ocean.sum()


def test_generated_widths_are_the_drawn_length_scales_over_sqrt_2m_minus_4():
    grid = make_grid("python", 32, 64)
    params = FieldParameters()  # s in [1.5, 4] cells, M = 10: s / sqrt(16) in [0.375, 1]
    widths = kernel_widths(make_fields(grid, params, seed=0, index=0), grid.mask)
    assert 0.3 < widths.min() and widths.max() < 1.15


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, train_tiny: TrainTiny) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory.mktemp("range"))


def test_a_checkpoint_records_the_widths_of_its_training_split(trained: tuple[Path, Path]):
    root, run_dir = trained
    recorded = load_trained_model(run_dir / "best.pt").input_range
    train = load_split(root, "train")
    assert recorded == InputRange.of(list(train.fields), list(train.ocean))
    low, high = recorded.kernel_cells
    assert 0.3 < low < high < 1.15


@pytest.mark.reliability(
    "predict",
    "inputs whose kernel width in cells lies outside the training's (another resolution)",
    "warning",
    "one line: the share of faces outside, the trained range, and how many times wider",
)
def test_predict_says_how_far_inputs_lie_outside_the_training_range(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
):
    root, run_dir = trained
    x_path, _ = sample_paths(root, "test", "00000")
    with np.load(x_path) as data:
        fields = data[data.files[0]].copy()
    fields[:2] *= 9.0  # every kernel 3x wider in cells: a 3x finer grid of the same ocean
    wide = tmp_path / "wide.npz"
    np.savez(wide, fields)
    predict.run([str(run_dir), str(x_path), "-o", str(tmp_path / "same")])
    assert "kernel width" not in capsys.readouterr().err
    predict.run([str(run_dir), str(wide), "-o", str(tmp_path / "out")])
    [line] = [line for line in capsys.readouterr().err.splitlines() if "kernel width" in line]
    low, high = load_trained_model(run_dir / "best.pt").input_range.kernel_cells
    widths = kernel_widths(fields, load_split(root, "test", 1).ocean[0])
    share = np.mean(widths > 1.25 * high)
    assert f"of {share:.0%} of its open faces lies outside the {low:.2f}-{high:.2f} cells" in line
    assert f"up to {widths.max():.2f}, {widths.max() / high:.1f}x the widest" in line
