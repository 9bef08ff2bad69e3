"""Physical validity is one rule for every target and every reader: fields no diffusion
operator can have (``physics.field_violations``: W <= 0, A_i or A_j < 0 on an ocean cell) are
refused when a sample is read, naming the file and the first bad cell, whatever the command
and whatever ``target`` it trains."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TinyDataset
from helpers import compose_config, tiny_overrides

from normcoef.data.storage import DatasetError, load_split, sample_paths
from normcoef.pipeline import run_training


def broken_copy(root: Path, into: Path, channel: int, value: float) -> Path:
    """The tiny data set with one ocean cell of training sample 00001 set to ``value`` in
    ``channel`` (0 A_i, 1 A_j, 2 W)."""
    shutil.copytree(root, into)
    x_path, y_path = sample_paths(into, "train", "00001")
    with np.load(x_path) as data:
        fields = data[data.files[0]].copy()
    with np.load(y_path) as data:
        gamma = data[data.files[0]]
    row, column = np.argwhere(gamma > 0)[len(np.argwhere(gamma > 0)) // 2]
    fields[channel, row, column] = value
    np.savez(x_path, fields)
    return into


@pytest.mark.reliability(
    "train",
    "W <= 0 or a negative diffusivity on an ocean cell, whatever the target",
    "error",
    "one line naming the file, the channel and the first bad cell; no run opened",
)
@pytest.mark.parametrize("target", ["gamma", "prior_residual"])
@pytest.mark.parametrize(("channel", "value", "name"), [(2, 0.0, "W"), (0, -1.0, "A_i")])
def test_fields_no_operator_can_have_are_refused_for_every_target(
    tiny_dataset: TinyDataset, tmp_path: Path, target: str, channel: int, value: float, name: str
):
    data = broken_copy(tiny_dataset(2), tmp_path / "data", channel, value)
    overrides = [
        f"dataset.root={data}",
        *tiny_overrides(test=2),
        f"target={target}",
        "logger=none",
        f"trainer.output_dir={tmp_path / 'checkpoints'}",
    ]
    expected = rf"train/X/00001.npz: inputs hold .* in channel {name} \(1 cell\(s\), first at"
    with pytest.raises(DatasetError, match=expected):
        run_training(compose_config("train", *overrides), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_every_reader_of_a_split_applies_the_rule(tiny_dataset: TinyDataset, tmp_path: Path):
    data = broken_copy(tiny_dataset(2), tmp_path / "data", 1, -0.5)
    with pytest.raises(DatasetError, match=r"channel A_j .* must be finite and >= 0"):
        load_split(data, "train")
    assert len(load_split(data, "test")) == 2  # the other splits read as before
