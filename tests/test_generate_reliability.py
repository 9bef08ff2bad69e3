"""Hostile inputs to data generation and data files: damaged, foreign or misshapen files get
a one-line error naming the file and the fix; `generate` recovers from its own failures."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line

from normcoef.data import generation
from normcoef.data.generation import GenerationSpec, generate_dataset
from normcoef.data.storage import (
    METADATA,
    DatasetError,
    crop_halo,
    list_ids,
    load_array,
    load_split,
    read_json,
    read_sample,
    sample_paths,
    write_json,
)
from normcoef.physics.diffusion import FieldError
from normcoef.physics.solvers import cuda_available

REPO = Path(__file__).resolve().parents[1]

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


# --- generate: bad values, failed runs, damaged samples, interruptions ---------------------

SPEC = GenerationSpec(grid="python", height=16, width=24, splits={"train": 2, "valid": 1})


def generate_cli(cwd: Path, *overrides: str, **popen) -> subprocess.Popen:
    """Start ``python -m normcoef.generate`` of this checkout from ``cwd``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("NORMCOEF_DEBUG", None)
    command = [sys.executable, "-m", "normcoef.generate", "progress=false", *overrides]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run_generate(cwd: Path, *overrides: str) -> tuple[int, str]:
    process = generate_cli(cwd, *overrides)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


@pytest.mark.reliability(
    "generate",
    "a value out of range (tolerance, workers, device)",
    "error",
    "one line naming the key and the range; nothing written",
)
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.tolerance=5", r"dataset.tolerance=5.0: must be in \(0, 1e-04\]"),
        ("workers=0", "workers=0: must be >= 1"),
        ("device=gpu", "device=gpu: unknown; use one of auto, cpu, cuda"),
    ],
)
def test_generate_refuses_a_bad_value_in_one_line_before_writing(tmp_path, override, message):
    root = tmp_path / "data"
    code, stderr = run_generate(tmp_path, f"dataset.root={root}", override)
    assert code == 2
    assert re.match(f"error: {message}", one_error_line(stderr)), stderr
    assert not root.exists()


@pytest.mark.reliability(
    "generate", "device=cuda on a machine without CUDA", "error", "one line; nothing written"
)
@pytest.mark.skipif(cuda_available(), reason="checks a machine without CUDA")
def test_generate_on_cuda_without_a_device_is_refused_in_one_line(tmp_path):
    root = tmp_path / "data"
    code, stderr = run_generate(tmp_path, f"dataset.root={root}", "device=cuda")
    assert code == 2
    one_error_line(stderr, "error: device=cuda: no CUDA device here")
    assert not root.exists()


@pytest.mark.reliability(
    "generate", "dataset.root a non-empty foreign directory", "error", "one line; nothing written"
)
def test_generate_refuses_a_foreign_directory_in_one_line(tmp_path):
    root = tmp_path / "thesis"
    root.mkdir()
    (root / "thesis.tex").write_text("precious")
    code, stderr = run_generate(tmp_path, f"dataset.root={root}")
    assert code == 2
    one_error_line(stderr, f"error: {root} is not empty")
    assert [p.name for p in root.iterdir()] == ["thesis.tex"]


def fail_first_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise FieldError("A_i has NaN or infinite values on ocean cells")

    monkeypatch.setattr(generation, "generate_sample", fail)


@pytest.mark.reliability(
    "generate",
    "a run that fails before its first sample",
    "handled",
    "removes only what it created, so the corrected command runs",
)
@pytest.mark.parametrize("root_existed", [False, True])
def test_a_run_failing_before_its_first_sample_leaves_nothing_behind(
    tmp_path, monkeypatch, root_existed
):
    root = tmp_path / "data" / "python"
    if root_existed:
        root.mkdir(parents=True)
    with monkeypatch.context() as patch:
        fail_first_sample(patch)
        with pytest.raises(FieldError):
            generate_dataset(root, SPEC, progress=False)
    assert sorted(tmp_path.rglob("*")) == ([root.parent, root] if root_existed else [])

    corrected = GenerationSpec(grid="python", height=16, width=24, seed=1, splits={"train": 1})
    generate_dataset(root, corrected, progress=False)
    assert list_ids(root, "train") == ["00000"]


@pytest.mark.reliability(
    "generate",
    "metadata of a run killed before its first sample",
    "handled",
    "the next command with other values proceeds",
)
def test_metadata_without_any_sample_does_not_block_other_parameters(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    write_json(root / METADATA, {"generator": {"seed": 99}})
    generate_dataset(root, SPEC, progress=False)
    assert read_json(root / METADATA)["generator"] == SPEC.describe()


def test_samples_of_other_parameters_still_block_the_directory(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, GenerationSpec(grid="python", height=16, width=24, splits={"train": 1}))
    other = GenerationSpec(grid="python", height=16, width=24, seed=1, splits={"train": 1})
    with pytest.raises(DatasetError, match="other parameters"):
        generate_dataset(root, other, progress=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated") / "data"
    generate_dataset(root, SPEC, progress=False)
    return root


def modification_times(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted(root.glob("*/[XY]/*.npz"))}


@pytest.mark.reliability(
    "generate",
    "a truncated, emptied or corrupted sample from an earlier run",
    "warning",
    "re-read in full on rerun, rewritten with a warning naming the file",
)
@pytest.mark.parametrize(("file", "how"), [(0, "truncated"), (1, "empty"), (0, "bit flipped")])
def test_rerunning_generate_rewrites_a_damaged_sample_and_says_so(
    generated, tmp_path, capsys, file, how
):
    root = tmp_path / "data"
    shutil.copytree(generated, root)
    before = modification_times(root)
    expected = read_sample(root, "train", "00001")
    damaged = sample_paths(root, "train", "00001")[file]
    damage(damaged, how)

    generate_dataset(root, SPEC, progress=False)

    warning = capsys.readouterr().err
    assert warning.startswith(f"warning: {damaged} ") and warning.count("\n") == 1
    assert "regenerating sample train/00001" in warning
    for got, want in zip(read_sample(root, "train", "00001"), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    after = modification_times(root)
    assert after[damaged] != before[damaged]
    untouched = [p for p in before if "00001" not in p.name or p.parent.parent.name != "train"]
    assert {p: after[p] for p in untouched} == {p: before[p] for p in untouched}


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.reliability(
    "generate",
    "Ctrl-C or kill during a parallel run",
    "handled",
    "workers stopped, finished samples kept, one line, exit 130 (Ctrl-C) or 143 (kill)",
)
@pytest.mark.parametrize("how", ["Ctrl-C", "kill"])
def test_interrupting_a_parallel_run_stops_its_workers_and_keeps_finished_samples(tmp_path, how):
    root = tmp_path / "data"
    process = generate_cli(
        tmp_path,
        f"dataset.root={root}",
        # Enough samples that the run is still going when it is interrupted (a 32x48 set of
        # 8 finished before its first sample was seen once the generator got fast).
        "dataset.height=64",
        "dataset.width=96",
        "dataset.splits={train: 400, valid: 0, test: 0}",
        "workers=2",
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + 240
    # A finished sample: its X renamed into place (``*.tmp.npz`` is one being written).
    while not list_ids(root, "train") and process.poll() is None:
        assert time.monotonic() < deadline, "no sample written in time"
        time.sleep(0.1)
    workers = children(process.pid)
    assert len(workers) >= 2, workers
    if how == "Ctrl-C":
        os.killpg(process.pid, signal.SIGINT)  # the terminal signals the whole group
    else:
        os.kill(process.pid, signal.SIGTERM)  # `kill PID` reaches the parent alone
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == (130 if how == "Ctrl-C" else 143), stderr
    one_error_line(stderr, "interrupted: the samples finished")
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)]
    kept = list_ids(root, "train")
    assert 1 <= len(kept) < 400
    for sample_id in kept:
        read_sample(root, "train", sample_id)
    assert not list(root.rglob("*.tmp*"))
