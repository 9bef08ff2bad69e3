"""Specification of ``DatasetInfo``: a data set's grid facts read once and passed whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import conftest
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from normcoef.data.info import DatasetInfo
from normcoef.data.storage import DatasetError, Split
from normcoef.data.torch_dataset import augment_offline
from normcoef.data.transforms import transform_sample
from normcoef.inference import load_trained_model
from normcoef.training.factory import build_model

GENERATED = {
    "generator": {"format": "normcoef-dataset/1", "grid": "python", "seed": 3, "height": 8},
    "splits": {"train": 4, "valid": 1, "test": 2},
    "shape": [8, 12],
    "ocean_fraction": 0.7,
    "periodic_x": True,
    "periodic_y": False,
    "steps": 12,
}


def write_metadata(root: Path, meta: dict | str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (root / "metadata.json").write_text(text)
    return root


def test_a_generated_data_set_is_described_by_its_metadata(tmp_path: Path):
    info = DatasetInfo.load(write_metadata(tmp_path, GENERATED), default_steps=10)
    assert info == DatasetInfo(
        periodic_x=True,
        periodic_y=False,
        steps=12,
        shape=(8, 12),
        ocean_fraction=0.7,
        grid="python",
        provenance="generated",
        seed=3,
        splits={"train": 4, "valid": 1, "test": 2},
    )
    assert info.is_generated and info.periodicity == (True, False)


def test_a_converted_data_set_is_used_whole(tmp_path: Path):
    meta = {**GENERATED, "converted": {"from": "/x"}}
    del meta["generator"]
    info = DatasetInfo.load(write_metadata(tmp_path, meta))
    assert info.provenance == "converted" and not info.is_generated and info.grid is None


def test_a_directory_without_metadata_gets_the_defaults_and_the_configs_m(tmp_path: Path):
    info = DatasetInfo.load(tmp_path, default_steps=10)
    assert info == DatasetInfo(periodic_x=True, periodic_y=False, steps=10, provenance="foreign")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "holds a list, not a JSON object"),
        ('{"shape": 5}', "does not describe a data set"),
        ('{"generator": "python"}', "does not describe a data set"),
        ('{"steps": "ten"}', "does not describe a data set"),
    ],
)
def test_a_damaged_metadata_file_is_a_one_line_error_naming_it(tmp_path, text, message):
    write_metadata(tmp_path, text)
    with pytest.raises(DatasetError, match=message) as error:
        DatasetInfo.load(tmp_path)
    assert "metadata.json" in str(error.value) and "\n" not in str(error.value)


def test_the_info_round_trips_through_a_weights_only_checkpoint(tmp_path: Path):
    info = DatasetInfo.from_metadata({**GENERATED, "periodic_y": np.bool_(True)})
    torch.save({"dataset": info.to_dict()}, tmp_path / "c.pt")
    stored = torch.load(tmp_path / "c.pt", weights_only=True)["dataset"]
    assert DatasetInfo.from_dict(stored) == info and stored["periodic_y"] is True


def test_offline_augmentation_moves_faces_with_the_grids_north_south_periodicity():
    rng = np.random.default_rng(0)
    fields, gamma = rng.uniform(0.5, 2.0, (3, 6, 8)), rng.uniform(0.5, 2.0, (6, 8))
    ocean = np.ones((6, 8), bool)
    split = Split(["a"], fields[None], gamma[None], ocean[None])
    info = DatasetInfo(periodic_x=True, periodic_y=True)

    augmented = augment_offline(split, ["vflip"], info)

    online = transform_sample("vflip", fields, ocean, gamma, True, True)  # the online path's
    np.testing.assert_array_equal(augmented.fields[1], online[0])


def test_the_model_takes_both_periodicities_from_the_data():
    model_cfg = OmegaConf.create({"_target_": "normcoef.models.PlainCNN", "layers": 2})
    activation = OmegaConf.create({"_target_": "torch.nn.ELU", "_partial_": True})
    info = DatasetInfo(periodic_x=False, periodic_y=True)
    model = build_model(model_cfg, activation, 3, info)
    assert (model.periodic_x, model.periodic_y) == (False, True)


def test_a_model_config_whose_periodic_y_contradicts_the_data_is_refused():
    model_cfg = OmegaConf.create({"_target_": "normcoef.models.PlainCNN", "periodic_y": False})
    activation = OmegaConf.create({"_target_": "torch.nn.ELU", "_partial_": True})
    with pytest.raises(ValueError, match="model.periodic_y=False .* remove model.periodic_y"):
        build_model(model_cfg, activation, 3, DatasetInfo(periodic_y=True))


@dataclass
class CountedRun:
    root: Path
    run_dir: Path
    metadata_reads: int


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory, train_tiny: conftest.TrainTiny) -> CountedRun:
    """A tiny training run; how often ``run_training`` read metadata.json."""
    reads = []
    read_text = Path.read_text
    train = conftest.run_training

    def counting_read_text(self: Path, *args, **kwargs):
        if self.name == "metadata.json" and reads:
            reads[0] += 1
        return read_text(self, *args, **kwargs)

    def counting_run_training(*args, **kwargs):
        reads.append(0)  # count from here: generating the data set reads it too
        return train(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "read_text", counting_read_text)
        patch.setattr(conftest, "run_training", counting_run_training)
        root, run_dir = train_tiny(tmp_path_factory.mktemp("info"))
    return CountedRun(root, run_dir, reads[0])


def test_training_reads_the_metadata_once(counted: CountedRun):
    assert counted.metadata_reads == 1


def test_a_checkpoint_stores_the_data_sets_info(counted: CountedRun):
    trained = load_trained_model(counted.run_dir / "best.pt")
    assert trained.dataset == DatasetInfo.load(counted.root)
    assert trained.dataset.shape == (16, 24) and trained.dataset.is_generated


def test_a_checkpoint_from_before_the_info_still_loads(counted: CountedRun, tmp_path: Path):
    state = torch.load(counted.run_dir / "best.pt", weights_only=True)
    del state["dataset"], state["standardizer"]["periodic_y"]  # as written before both
    state["periodic"] = [True, False]
    state["config"]["model"]["periodic_y"] = False
    torch.save(state, tmp_path / "old.pt")

    old, new = (
        load_trained_model(tmp_path / "old.pt"),
        load_trained_model(counted.run_dir / "best.pt"),
    )
    assert old.dataset.periodicity == (True, False) and old.dataset.steps == 10
    with np.load(counted.root / "test" / "X" / "00000.npz") as stored:
        fields = stored["arr_0"]
    with np.load(counted.root / "grid.npz") as grid:
        ocean = grid["mask"]
    np.testing.assert_array_equal(old.predict(fields, ocean), new.predict(fields, ocean))
