"""Hostile inputs to ``python -m normcoef.evaluate`` and to evaluation during training: bad
argument values, sample limits < 1, an empty test split.

One tiny run with an empty test split (16x24 python grid, 3/1/0 samples, a 2-layer 4-channel
CNN, 3 steps, no tracking) is trained once for the module with ``run_training``.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TrainTiny
from helpers import one_error_line

from normcoef.cli import evaluate
from normcoef.data.info import DatasetInfo
from normcoef.data.storage import load_split
from normcoef.data.torch_dataset import NormalizationDataset
from normcoef.inference import load_trained_model
from normcoef.scoring import ScoringOptions, evaluate_checkpoint
from normcoef.scoring import evaluate as evaluate_metrics
from normcoef.training.factory import build_loss


@dataclass
class EmptyTestRun:
    root: Path
    run_dir: Path
    printed: str


@pytest.fixture(scope="module")
def empty_test(tmp_path_factory: pytest.TempPathFactory, train_tiny: TrainTiny) -> EmptyTestRun:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        root, run_dir = train_tiny(tmp_path_factory.mktemp("evaluate"), test_samples=0)
    return EmptyTestRun(root, run_dir, printed.getvalue())


def argparse_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run ``evaluate.main`` expecting argparse to refuse ``argv``; return its one error line
    (after the usage)."""
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(argv)
    assert exit_info.value.code == 2
    return one_error_line(capsys.readouterr().err, "python -m normcoef.evaluate: ", usage=True)


@pytest.mark.slow
@pytest.mark.reliability(
    "evaluate",
    "--max-samples -1",
    "error",
    "argparse one-line error before any checkpoint is read",
)
def test_a_negative_sample_limit_is_refused_by_the_command(tmp_path: Path):
    command = [sys.executable, "-m", "normcoef.evaluate", str(tmp_path / "none.pt")]
    done = subprocess.run(
        [*command, "--max-samples", "-1"], capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 2
    assert one_error_line(done.stderr, "python -m normcoef.evaluate: ", usage=True) == (
        "python -m normcoef.evaluate: error: argument --max-samples: must be >= 1; got -1"
    )


@pytest.mark.reliability(
    "evaluate",
    "--max-samples 0, --randomization-samples -1 or --seed -3",
    "error",
    "argparse one-line error naming the option and the bound",
)
@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [("--max-samples", "0", 1), ("--randomization-samples", "-1", 0), ("--seed", "-3", 0)],
)
def test_out_of_range_option_values_are_refused_at_parse_time(
    empty_test: EmptyTestRun, capsys: pytest.CaptureFixture, option: str, value: str, bound: int
):
    line = argparse_error(capsys, [str(empty_test.run_dir), option, value])
    assert re.search(rf"error: argument {option}(/-n)?: must be >= {bound}; got {value}$", line)


@pytest.mark.reliability(
    "evaluate",
    "evaluate() with a sample limit of 0 or -1",
    "error",
    "ValueError naming evaluation.max_samples",
)
@pytest.mark.parametrize("limit", [0, -1])
def test_a_sample_limit_below_one_is_refused_rather_than_sliced(
    empty_test: EmptyTestRun, limit: int
):
    trained = load_trained_model(empty_test.run_dir / "best.pt")
    samples = NormalizationDataset(load_split(empty_test.root, "train"), trained.standardizer)
    loss_fn = build_loss(trained.config.loss)

    with pytest.raises(ValueError, match=rf"evaluation.max_samples.*>= 1.*got {limit}"):
        evaluate_metrics(
            trained.model,
            loss_fn,
            samples,
            trained.device,
            DatasetInfo(steps=10),
            ScoringOptions(limit=limit, randomization_samples=0),
        )
    with pytest.raises(ValueError, match=rf"--max-samples.*got {limit}"):
        options = ScoringOptions(split="train", limit=limit, randomization_samples=0)
        evaluate_checkpoint(trained, empty_test.root, options)


@pytest.mark.slow
@pytest.mark.reliability(
    "train",
    "evaluate=true with an empty test split",
    "warning",
    "says evaluation was skipped, names <root>/test and dataset.splits.test=N",
)
def test_training_says_when_an_empty_test_split_skips_evaluation(empty_test: EmptyTestRun):
    (line,) = [line for line in empty_test.printed.splitlines() if "Evaluation" in line]
    assert line.startswith(f"Evaluation skipped: {empty_test.root / 'test'} holds no sample")
    assert "dataset.splits.test=N" in line and "python -m normcoef.generate" in line
    assert (empty_test.run_dir / "best.pt").exists()


@pytest.mark.reliability(
    "evaluate",
    "a run whose test split is empty",
    "error",
    "names <root>/test and dataset.splits.test=N",
)
def test_evaluating_an_empty_test_split_names_the_folder(
    empty_test: EmptyTestRun, capsys: pytest.CaptureFixture
):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(empty_test.run_dir), "-n", "0"])

    assert exit_info.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {empty_test.root / 'test'} holds no sample")
    assert "dataset.splits.test=N" in line


def test_debug_mode_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NORMCOEF_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        evaluate.main([str(tmp_path / "none.pt")])
