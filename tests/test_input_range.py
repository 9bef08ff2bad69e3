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


def scaled_input(
    x_path: Path, channels: slice, factor: float, out: Path
) -> tuple[np.ndarray, Path]:
    """A test input with ``channels`` multiplied by ``factor``, saved to ``out``."""
    with np.load(x_path) as data:
        fields = data[data.files[0]].copy()
    fields[channels] *= factor
    np.savez(out, fields)
    return fields, out


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
    # Every kernel 3x wider in cells: a 3x finer grid of the same ocean.
    fields, wide = scaled_input(x_path, slice(0, 2), 9.0, tmp_path / "wide.npz")
    predict.run([str(run_dir), str(x_path), "-o", str(tmp_path / "same")])
    assert "kernel width" not in capsys.readouterr().err
    predict.run([str(run_dir), str(wide), "-o", str(tmp_path / "out")])
    [line] = [line for line in capsys.readouterr().err.splitlines() if "kernel width" in line]
    low, high = load_trained_model(run_dir / "best.pt").input_range.kernel_cells
    widths = kernel_widths(fields, load_split(root, "test", 1).ocean[0])
    share = np.mean(widths > 1.25 * high)
    assert f"of {share:.0%} of its open faces lies outside the {low:.2f}-{high:.2f} cells" in line
    assert f"up to {widths.max():.2f}, {widths.max() / high:.1f}x the widest" in line


def test_a_checkpoint_records_the_median_width_and_the_grid_spacing(trained: tuple[Path, Path]):
    root, run_dir = trained
    recorded = load_trained_model(run_dir / "best.pt").input_range
    train = load_split(root, "train")
    pairs = list(zip(train.fields, train.ocean, strict=True))
    widths = np.concatenate([kernel_widths(f, o) for f, o in pairs])
    sizes = np.concatenate([np.sqrt(f[2][o]) for f, o in pairs])
    assert recorded.kernel_median == pytest.approx(np.median(widths))
    assert recorded.cell_size == pytest.approx((sizes.min(), sizes.max()))
    assert InputRange.from_dict(recorded.to_dict()) == recorded
    # A checkpoint from before: the extremes only, their geometric mean the centre.
    old = InputRange.from_dict({"kernel_cells": [0.25, 1.0]})
    assert old.kernel_median is None and old.cell_size is None and old.kernel_centre == 0.5


@pytest.mark.reliability(
    "predict",
    "inputs on cells finer than any the network was trained on, their kernel widths in cells "
    "the training's",
    "warning",
    "one line: the grid spacing sqrt(W) outside the trained range and how far, and that the "
    "kernel widths in cells are the training's",
)
def test_predict_says_when_the_grid_spacing_lies_outside_the_training_range(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
):
    root, run_dir = trained
    x_path, _ = sample_paths(root, "test", "00000")
    # Cells 4x smaller (W / 16), A / W unchanged: the same kernels in cells.
    fields, fine = scaled_input(x_path, slice(0, 3), 1 / 16, tmp_path / "fine.npz")
    predict.run([str(run_dir), str(fine), "-o", str(tmp_path / "out")])
    [line] = [line for line in capsys.readouterr().err.splitlines() if "spacing" in line]
    low, high = load_trained_model(run_dir / "best.pt").input_range.cell_size
    smallest = np.sqrt(fields[2][load_split(root, "test", 1).ocean[0]]).min()
    assert f"outside the {low:.3g}-{high:.3g} the network was trained on" in line
    assert f"down to {smallest:.3g}, {low / smallest:.1f}x below the smallest" in line
    assert "kernel widths in cells are the training's" in line
    assert "kernel width sqrt(A/W)" not in line
