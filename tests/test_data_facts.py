"""A data set's facts must match the network's on every path (evaluate, predict, resume), or
the command says so: another operator (M, periodicity) is refused, another grid warned.

The network: ``train_tiny``'s (16x24 python grid, M = 10, 3 steps). The data sets of another
operator are real: generated with M = 8, or the same samples declared closed on every side.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TinyDataset, TrainTiny
from helpers import compose_config, tiny_overrides

from normcoef.cli import evaluate, predict
from normcoef.data.info import DatasetInfo, fact_differences
from normcoef.data.storage import DatasetError
from normcoef.pipeline import run_training
from normcoef.training.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, train_tiny: TrainTiny) -> tuple[Path, Path]:
    """(data set root, run directory) of a tiny network trained on M = 10."""
    return train_tiny(tmp_path_factory.mktemp("facts"))


@pytest.fixture(scope="module")
def other_m(tiny_dataset: TinyDataset) -> Path:
    return tiny_dataset(2, steps=8)


def closed_copy(root: Path, into: Path) -> Path:
    """The same samples, their metadata saying closed on every side (another operator)."""
    shutil.copytree(root, into)
    meta = json.loads((into / "metadata.json").read_text())
    meta["periodic_x"] = False
    (into / "metadata.json").write_text(json.dumps(meta))
    return into


def test_every_fact_of_another_operator_is_named_and_another_grid_only_doubted():
    trained = DatasetInfo(steps=10, shape=(16, 24), grid="python")
    wrong, doubtful = fact_differences(
        trained, DatasetInfo(steps=8, periodic_x=False, shape=(32, 48)), "X"
    )
    assert len(wrong) == 2 and "M=8" in wrong[0] and "M=10" in wrong[0]
    assert "closed on every side" in wrong[1] and "periodic east-west" in wrong[1]
    assert len(doubtful) == 1 and "32x48" in doubtful[0] and "16x24" in doubtful[0]
    # A prediction has no targets: another periodicity is only doubtful there.
    wrong, doubtful = fact_differences(
        trained, DatasetInfo(steps=10, periodic_x=False), "X", targets=False
    )
    assert wrong == [] and "keeps the training's padding" in doubtful[0]
    same = fact_differences(trained, DatasetInfo(steps=10, shape=(16, 24), grid="python"), "X")
    assert same == ([], [])
    assert fact_differences(trained, DatasetInfo(steps=None), "X") == ([], [])  # M unknown


@pytest.mark.reliability(
    "evaluate",
    "--dataset made with another M (or periodicity) than the network's",
    "error",
    "one line naming both M and the data set to use; nothing scored",
)
def test_evaluate_refuses_a_data_set_of_another_operator(
    trained: tuple[Path, Path], other_m: Path, tmp_path: Path
):
    _, run_dir = trained
    with pytest.raises(DatasetError, match=r"made with M=8 diffusion steps.*learned Γ of M=10"):
        evaluate.run([str(run_dir), "--dataset", str(other_m), "--no-log"])
    closed = closed_copy(trained[0], tmp_path / "closed")
    with pytest.raises(DatasetError, match=r"closed on every side.*periodic east-west"):
        evaluate.run([str(run_dir), "--dataset", str(closed), "--no-log"])


@pytest.mark.reliability(
    "predict",
    "inputs from a data set of another M",
    "error",
    "one line naming both M; nothing written (a mask from any data set is geometry, accepted)",
)
def test_predict_refuses_inputs_of_a_data_set_of_another_operator(
    trained: tuple[Path, Path], other_m: Path, tmp_path: Path
):
    _, run_dir = trained
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"made with M=8"):
        predict.run([str(run_dir), str(other_m / "test" / "X"), "-o", str(out)])
    assert not out.exists()
    # Its own data set's inputs still predict, on a mask from any data set (a mask is geometry).
    mask = ["--mask", str(other_m / "grid.npz")]
    written = predict.run([str(run_dir), str(trained[0] / "test" / "X"), "-o", str(out), *mask])
    assert len(written) == 2


def resume_on(root: Path, run_dir: Path, *extra: str) -> None:
    overrides = [
        f"dataset.root={root}",
        *tiny_overrides(test=2, steps=4),
        "dataset.standardization=partial",
        "logger=none",
        f"trainer.resume={run_dir / 'last.pt'}",
        *extra,
    ]
    run_training(compose_config("train", *overrides), run_dir=run_dir)


@pytest.mark.reliability(
    "train",
    "resume on a data set of another M, periodicity, standardization or statistics",
    "error",
    "one line naming what differs and how to resume; no run opened",
)
@pytest.mark.parametrize("change", ["M", "periodicity", "statistics", "standardization"])
def test_resume_refuses_data_its_weights_were_not_fit_to(
    trained: tuple[Path, Path], other_m: Path, tmp_path: Path, change: str
):
    root, run_dir = trained
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    extra: list[str] = []
    if change == "M":
        data, expected = other_m, r"made with M=8"
    elif change == "periodicity":
        data, expected = closed_copy(root, tmp_path / "closed"), r"closed on every side"
    elif change == "statistics":
        data = shutil.copytree(root, tmp_path / "fewer")
        shutil.rmtree(data / "train" / "X" / "00002.npz", ignore_errors=True)
        (data / "train" / "X" / "00002.npz").unlink(missing_ok=True)
        (data / "train" / "Y" / "00002.npz").unlink(missing_ok=True)
        expected = r"inputs statistics differ from this data set's"
    else:
        data, expected = (
            root,
            r"trained with dataset.standardization=partial, this config sets full",
        )
        extra = ["dataset.standardization=full"]
    with pytest.raises(CheckpointError, match=expected):
        resume_on(data, run_copy, *extra)
