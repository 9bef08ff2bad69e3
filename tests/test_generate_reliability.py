"""Hostile inputs to data generation and data files: damaged, foreign or misshapen files get
a one-line error naming the file and the fix; `generate` recovers from its own failures."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from normcoef.data.storage import (
    DatasetError,
    crop_halo,
    load_array,
    load_split,
    read_json,
    read_sample,
    sample_paths,
)

# --- damaged and foreign data files --------------------------------------------------------


def write_sample_files(root: Path, sample_id: str, inputs: np.ndarray, gamma: np.ndarray) -> None:
    """A training sample as the report's code saves it (np.savez, positional arr_0)."""
    x_path, y_path = sample_paths(root, "train", sample_id)
    x_path.parent.mkdir(parents=True, exist_ok=True)
    y_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(x_path, inputs)
    np.savez(y_path, gamma)


def small_sample(shape: tuple[int, int] = (4, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 2.0, (3, *shape)), rng.uniform(1.0, 2.0, shape)


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "cut short by one byte":
        path.write_bytes(data[:-1])
    elif how == "bit flipped":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif how == "text":
        path.write_text("A_i,A_j,W\n1,2,3\n")
    elif how == "npy":
        np.save(path.with_suffix(".tmp.npy"), np.ones((3, 4, 5)))
        path.with_suffix(".tmp.npy").replace(path)
    elif how == "pickled objects":
        np.savez(path, arr_0=np.array([{"A_i": 1.0}], dtype=object))
    elif how == "strings":
        np.savez(path, arr_0=np.array(["a", "b"]))
    elif how == "zip of other files":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not an array")


DAMAGES = {
    "empty": "is empty .0 bytes.*rerun `python -m normcoef.generate`",
    "truncated": "is truncated or damaged.*rerun `python -m normcoef.generate`",
    "cut short by one byte": "is truncated or damaged.*rerun `python -m normcoef.generate`",
    "bit flipped": "is (damaged|truncated or damaged).*rerun `python -m normcoef.generate`",
    "text": r"is not an npz file .*convert it with np.savez",
    "npy": r"is a .npy array, not an npz archive; save it with np.savez",
    "pickled objects": "holds Python objects .a pickled array., which are not loaded",
    "strings": "has dtype <U1; expected real numbers",
    "zip of other files": "has dtype .S.*expected real numbers",
}


@pytest.mark.reliability(
    "train",
    "an empty, truncated or bit-flipped sample file",
    "error",
    "names the file, rerun generate",
)
@pytest.mark.parametrize("how", ["empty", "truncated", "cut short by one byte", "bit flipped"])
def test_a_damaged_sample_file_names_the_file_and_says_to_regenerate(tmp_path, how):
    write_sample_files(tmp_path, "a", *small_sample())
    x_path, _ = sample_paths(tmp_path, "train", "a")
    damage(x_path, how)
    with pytest.raises(DatasetError, match=DAMAGES[how]) as error:
        load_split(tmp_path, "train")
    assert str(error.value).startswith(str(x_path))
    assert "allow_pickle" not in str(error.value)


@pytest.mark.reliability(
    "train",
    "a sample file that is not an npz (text, .npy, pickled objects, strings)",
    "error",
    "names the file and how to save it",
)
@pytest.mark.parametrize("how", ["text", "npy", "pickled objects", "strings", "zip of other files"])
def test_a_foreign_file_in_place_of_a_sample_is_refused_without_unpickling(tmp_path, how):
    write_sample_files(tmp_path, "a", *small_sample())
    _, y_path = sample_paths(tmp_path, "train", "a")
    damage(y_path, how)
    with pytest.raises(DatasetError, match=DAMAGES[how]) as error:
        read_sample(tmp_path, "train", "a")
    assert str(error.value).startswith(str(y_path))
    assert "allow_pickle" not in str(error.value)


def test_an_npz_holding_one_boolean_array_loads_as_floats(tmp_path):
    path = tmp_path / "mask.npz"
    np.savez_compressed(path, mask=np.array([[True, False]]))
    np.testing.assert_array_equal(load_array(path), [[1.0, 0.0]])


@pytest.mark.reliability("train", "a metadata.json that is not JSON", "error", "names the file")
def test_unreadable_metadata_names_the_file(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_text('{"generator": ')
    with pytest.raises(DatasetError, match=f"^{path} is not valid JSON"):
        read_json(path)


# --- inputs wider than their targets (halo) ------------------------------------------------


def test_a_symmetric_halo_may_differ_between_axes():
    inputs = np.arange(3 * 4 * 5, dtype=float).reshape(3, 4, 5)
    padded = np.pad(inputs, ((0, 0), (0, 0), (40, 40)), constant_values=-1.0)
    np.testing.assert_array_equal(crop_halo(padded, (4, 5), Path("x.npz")), inputs)


@pytest.mark.reliability(
    "train",
    "inputs with an off-centre halo (odd excess)",
    "error",
    "names the file, both shapes and the fix",
)
def test_training_data_with_an_off_centre_halo_are_refused(tmp_path):
    inputs, gamma = small_sample()
    write_sample_files(tmp_path, "a", np.pad(inputs, ((0, 0), (0, 0), (1, 2))), gamma)
    x_path, _ = sample_paths(tmp_path, "train", "a")
    with pytest.raises(DatasetError) as error:
        load_split(tmp_path, "train")
    message = str(error.value)
    assert message.startswith(f"{x_path}: inputs (4, 8) do not fit the grid (4, 5)")
    assert "equally wide on both sides" in message and "\n" not in message


def test_crop_halo_refuses_inputs_smaller_than_the_grid():
    with pytest.raises(
        DatasetError, match=r"^in.npz: inputs \(4, 5\) do not fit the grid \(6, 5\)"
    ):
        crop_halo(np.zeros((3, 4, 5)), (6, 5), Path("in.npz"))
