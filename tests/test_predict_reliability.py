"""Hostile inputs to ``python -m normcoef.predict``: impossible fields, other grids, halos,
links at output paths, interrupted writes.

One tiny run (16x24 python grid, 3/1/2 samples, a 2-layer 4-channel CNN, 3 steps, no
tracking) is trained once for the module with ``run_training``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import TrainTiny
from helpers import one_error_line

from normcoef.cli import predict
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import make_grid


@dataclass
class TinyRun:
    root: Path
    run_dir: Path
    fields: np.ndarray
    ocean: np.ndarray


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, train_tiny: TrainTiny) -> TinyRun:
    root, run_dir = train_tiny(tmp_path_factory.mktemp("predict"))
    with np.load(root / "test" / "X" / "00000.npz") as stored:
        fields = stored["arr_0"]
    with np.load(root / "grid.npz") as grid:
        ocean = grid["mask"]
    return TinyRun(root, run_dir, fields, ocean)


def save(path: Path, fields: np.ndarray) -> Path:
    np.savez(path, arr_0=fields)
    return path


def user_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run ``predict.main`` expecting a user error; return its one stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        predict.main(argv)
    assert exit_info.value.code == 2
    return one_error_line(capsys.readouterr().err)


def run_module(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "normcoef.predict", *args, "--device", "cpu"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.reliability(
    "predict",
    "a negative A_i on an ocean cell",
    "error",
    "refused, names the file, channel and first cell; nothing written",
)
def test_a_negative_diffusivity_on_ocean_is_refused_by_the_command(tiny: TinyRun, tmp_path: Path):
    fields = tiny.fields.copy()
    row, column = np.argwhere(tiny.ocean)[3]
    fields[0, row, column] = -1.0
    bad = save(tmp_path / "negative.npz", fields)

    done = run_module(str(tiny.run_dir), str(bad), "-o", str(tmp_path / "out"))

    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done.stderr, f"error: {bad}: ")
    assert "channel A_i" in line and f"row {row}, column {column}" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.reliability(
    "predict", "a zero or negative W on an ocean cell", "error", "refused, names file and channel"
)
@pytest.mark.parametrize("area", [0.0, -5.0])
def test_a_cell_area_that_is_not_positive_on_ocean_is_refused(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture, area: float
):
    fields = tiny.fields.copy()
    fields[2, tiny.ocean] = area
    bad = save(tmp_path / "area.npz", fields)

    err = user_error(capsys, [str(tiny.run_dir), str(bad), "-o", str(tmp_path / "out")])

    assert f"{bad}: inputs hold values <= 0 on ocean cells in channel W" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.reliability(
    "predict",
    "zero A_i and A_j on every ocean face",
    "handled",
    "accepted: 0 closes a face, as on faces touching land",
)
def test_zero_diffusivities_are_legal_closed_faces(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    fields = tiny.fields.copy()
    assert (fields[:2][:, tiny.ocean] == 0).any(), "the generator closes faces touching land"
    fields[:2] = 0.0

    (out,) = predict.run(
        [str(tiny.run_dir), str(save(tmp_path / "closed.npz", fields)), "-o", str(tmp_path / "out")]
    )

    with np.load(out) as written:
        assert np.isfinite(written["gamma"][tiny.ocean]).all()


def test_the_training_inputs_give_no_warning(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    predict.main([str(tiny.run_dir), str(tiny.root / "test" / "X"), "-o", str(tmp_path)])
    assert "warning" not in capsys.readouterr().err


@pytest.mark.reliability(
    "predict",
    "inputs far outside the training statistics (other units)",
    "warning",
    "names the file and channels; predicts",
)
def test_inputs_far_from_the_training_data_are_predicted_with_a_warning(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    fields = tiny.fields.copy()
    fields[2] *= 1e6  # areas in another unit
    scaled = save(tmp_path / "scaled.npz", fields)

    (out,) = predict.run([str(tiny.run_dir), str(scaled), "-o", str(tmp_path / "out")])

    # Two findings, one line each: W far from the training's statistics, and so every kernel
    # width sqrt(A/W) 1000x narrower than the network ever saw.
    line, kernel = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: {scaled}: W on ")
    assert "standard deviations" in line and "A_i" not in line
    assert kernel.startswith(f"warning: {scaled}: the kernel width sqrt(A/W) of 100% of its")
    assert "x below the narrowest" in kernel
    assert out.exists()


@pytest.mark.reliability(
    "predict",
    "a mask of another resolution",
    "warning",
    "says shape HxW vs HxW; predicts on that grid",
)
def test_another_resolution_is_predicted_with_a_warning_naming_both_shapes(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    grid = make_grid("python", 20, 28)
    np.savez(tmp_path / "grid.npz", mask=grid.mask)
    sample = save(tmp_path / "fine.npz", make_fields(grid, FieldParameters(), 0, 0))

    argv = [str(tiny.run_dir), str(sample), "--mask", str(tmp_path / "grid.npz")]
    (out,) = predict.run([*argv, "-o", str(tmp_path / "out")])

    warnings = [line for line in capsys.readouterr().err.splitlines() if "training grid" in line]
    (line,) = warnings
    assert line.startswith("warning: ") and "shape 20x28 vs 16x24" in line
    with np.load(out) as written:
        assert written["gamma"].shape == (20, 28)


@pytest.mark.reliability(
    "predict",
    "a mask of the training shape with other land",
    "warning",
    "says how many mask cells differ; predicts",
)
def test_another_mask_of_the_same_shape_is_predicted_with_a_warning_counting_cells(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    mask = tiny.ocean.copy()
    mask[tuple(np.argwhere(mask)[:5].T)] = False
    np.savez(tmp_path / "islands.npz", mask=mask)
    sample = str(tiny.root / "test" / "X" / "00000.npz")

    (out,) = predict.run(
        [str(tiny.run_dir), sample, "--mask", str(tmp_path / "islands.npz")]
        + ["-o", str(tmp_path / "out")]
    )

    with np.load(out) as written:  # predicted on the new mask
        assert np.array_equal(np.isnan(written["gamma"]), ~mask)
    grid_line, coast_line = capsys.readouterr().err.splitlines()
    assert grid_line.startswith("warning: ") and f"5 of {mask.size} mask cells differ" in grid_line
    # The inputs were made on the training grid: their faces into the new islands are open.
    assert coast_line.startswith(f"warning: {sample}: A_i or A_j are nonzero on ")
    assert "face(s) that the mask closes (touching land); their coastline is not" in coast_line


@pytest.mark.reliability(
    "predict",
    "inputs larger than the mask (a halo, or another grid)",
    "warning",
    "says both shapes and the halo it cropped; predicts",
)
def test_inputs_cropped_to_a_smaller_mask_are_predicted_with_a_warning(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    np.savez(tmp_path / "small.npz", mask=tiny.ocean[1:-1, 2:-2])
    sample = save(tmp_path / "in.npz", tiny.fields)

    (out,) = predict.run(
        [str(tiny.run_dir), str(sample), "--mask", str(tmp_path / "small.npz")]
        + ["-o", str(tmp_path / "out")]
    )

    lines = capsys.readouterr().err.splitlines()
    cropped = [line for line in lines if "were cropped" in line]
    assert cropped == [
        f"warning: {sample}: inputs 16x24 were cropped to the 14x20 of {tmp_path / 'small.npz'} "
        "(a halo of 1 row(s) and 2 column(s) on each side); if they are on another grid, give "
        "its mask with --mask"
    ]
    with np.load(out) as written:
        assert written["gamma"].shape == (14, 20)


def test_inputs_made_on_the_training_grid_get_no_coastline_warning(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    sample = str(tiny.root / "test" / "X" / "00000.npz")
    predict.run([str(tiny.run_dir), sample, "-o", str(tmp_path / "out")])
    assert capsys.readouterr().err == ""


@pytest.mark.reliability(
    "predict",
    "a grid of another periodicity",
    "warning",
    "says periodic (x, y) vs training's; predicts",
)
def test_a_grid_of_another_periodicity_is_predicted_with_a_warning(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    other = tmp_path / "closed_basin"
    other.mkdir()
    np.savez(other / "grid.npz", mask=tiny.ocean)
    (other / "metadata.json").write_text(json.dumps({"periodic_x": False, "periodic_y": False}))
    sample = str(tiny.root / "test" / "X" / "00000.npz")

    predict.main(
        [str(tiny.run_dir), sample, "--mask", str(other / "grid.npz"), "-o", str(tmp_path / "out")]
    )

    err = capsys.readouterr().err
    assert "periodic (x, y) (False, False) vs (True, False)" in err
    assert "mask cells differ" not in err and "shape" not in err


def test_the_training_grid_given_as_mask_gives_no_warning(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    sample = str(tiny.root / "test" / "X" / "00000.npz")
    predict.main(
        [str(tiny.run_dir), sample, "--mask", str(tiny.root / "grid.npz"), "-o", str(tmp_path)]
    )
    assert capsys.readouterr().err == ""


@pytest.mark.reliability(
    "predict",
    "a halo of 2 columns each side and none in y",
    "handled",
    "cropped to the grid; same γ as without halo",
)
def test_a_halo_that_differs_between_axes_but_is_symmetric_is_cropped(
    tiny: TinyRun, tmp_path: Path
):
    plain = save(tmp_path / "plain.npz", tiny.fields)
    padded = save(tmp_path / "padded.npz", np.pad(tiny.fields, ((0, 0), (0, 0), (2, 2)), "wrap"))

    outputs = predict.run([str(tiny.run_dir), str(plain), str(padded), "-o", str(tmp_path)])

    with np.load(outputs[0]) as a, np.load(outputs[1]) as b:
        np.testing.assert_array_equal(a["gamma"], b["gamma"])


@pytest.mark.reliability(
    "predict",
    "a halo of odd width (wider on one side)",
    "error",
    "refused, names the file and suggests --mask",
)
def test_an_off_centre_halo_is_refused(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    shifted = save(tmp_path / "shifted.npz", np.pad(tiny.fields, ((0, 0), (1, 1), (0, 1))))

    err = user_error(capsys, [str(tiny.run_dir), str(shifted), "-o", str(tmp_path / "out")])

    assert str(shifted) in err and "--mask" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.reliability(
    "predict",
    "a dangling link at the output path pointing outside -o",
    "error",
    "refused without --overwrite (names the link); with it the link is replaced",
)
def test_a_dangling_link_out_of_the_output_folder_is_never_written_through(
    tiny: TinyRun, tmp_path: Path
):
    out_dir, outside = tmp_path / "out", tmp_path / "outside"
    out_dir.mkdir()
    outside.mkdir()
    target = outside / "stolen.npz"
    link = out_dir / "00000_norm_coeffs.npz"
    link.symlink_to(target)
    argv = [str(tiny.run_dir), str(tiny.root / "test" / "X" / "00000.npz"), "-o", str(out_dir)]

    refused = run_module(*argv)

    assert refused.returncode == 2, refused.stderr[-2000:]
    line = one_error_line(refused.stderr)
    assert f"a link to {target}" in line and "--overwrite" in line
    assert link.is_symlink() and not target.exists()

    predict.main([*argv, "--overwrite"])

    assert not link.is_symlink() and link.is_file()
    assert list(outside.iterdir()) == []


@pytest.mark.reliability(
    "predict",
    "a link at the output path to a file outside -o, with --overwrite",
    "handled",
    "the link is replaced; its target is untouched",
)
def test_overwriting_replaces_a_link_not_its_target(tiny: TinyRun, tmp_path: Path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = tmp_path / "precious.npz"
    target.write_bytes(b"precious")
    (out_dir / "00000_norm_coeffs.npz").symlink_to(target)
    sample = str(tiny.root / "test" / "X" / "00000.npz")

    (out,) = predict.run([str(tiny.run_dir), sample, "-o", str(out_dir), "--overwrite"])

    assert target.read_bytes() == b"precious"
    assert not out.is_symlink()
    with np.load(out) as written:
        assert written["gamma"].shape == (16, 24)


@pytest.mark.reliability(
    "predict",
    "the write of an output fails half-way",
    "error",
    "the previous output is intact, no temporary file is left",
)
def test_an_interrupted_write_leaves_the_previous_output_and_no_partial_file(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "00000_norm_coeffs.npz"
    out.write_bytes(b"previous")

    def fail_half_way(file, **arrays):
        file.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", fail_half_way)
    sample = str(tiny.root / "test" / "X" / "00000.npz")

    err = user_error(capsys, [str(tiny.run_dir), sample, "-o", str(tmp_path), "--overwrite"])

    assert "No space left on device" in err
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_outputs_are_readable_like_a_plainly_written_file(tiny: TinyRun, tmp_path: Path):
    sample = str(tiny.root / "test" / "X" / "00000.npz")
    (out,) = predict.run([str(tiny.run_dir), sample, "-o", str(tmp_path)])
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, "plain"]


@pytest.mark.reliability(
    "predict", "a directory at an output path", "error", "refused before anything is written"
)
def test_a_directory_at_an_output_path_is_refused_even_with_overwrite(
    tiny: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    (tmp_path / "00000_norm_coeffs.npz").mkdir()
    inputs = [str(tiny.root / "test" / "X" / name) for name in ("00001.npz", "00000.npz")]

    err = user_error(capsys, [str(tiny.run_dir), *inputs, "-o", str(tmp_path), "--overwrite"])

    assert "00000_norm_coeffs.npz is a directory" in err
    assert not (tmp_path / "00001_norm_coeffs.npz").exists()


def test_debug_mode_shows_the_traceback(
    tiny: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NORMCOEF_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="no input file or directory"):
        predict.main([str(tiny.run_dir), str(tmp_path / "missing.npz"), "-o", str(tmp_path)])
