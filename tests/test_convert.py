"""Importing the original code's data layout (convert) and checking targets against exact Γ.

A tiny generated data set is written out the way the original code stored its data (faces on
the south/west, a periodic halo in x, values scaled on their nonzero entries with statistics
files), converted back, and compared with what the generator wrote.
"""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TinyDataset
from test_inference import TrainedRun, trained  # noqa: F401 (the module-scoped fixture)

from normcoef.cli import check, convert, predict
from normcoef.console import EXIT_USER_ERROR
from normcoef.data.info import DatasetInfo
from normcoef.data.storage import (
    GRID,
    METADATA,
    SPLITS,
    list_ids,
    load_split,
    read_json,
    read_sample,
    sample_paths,
    write_json,
    write_sample,
)

STEPS = 6
HALO = 3
VARIABLES = ("alpha_i_minus", "alpha_j_minus", "w", "norm_coeffs")


@pytest.fixture(scope="module")
def ours(tiny_dataset: TinyDataset) -> Path:
    """The tiny data set with M = STEPS and no test split (the original has none)."""
    return tiny_dataset(test=None, steps=STEPS)


# --- the original's layout, test-only --------------------------------------------------------


def to_original_faces(fields: np.ndarray) -> np.ndarray:
    """North/east faces (ours) onto south/west faces (the original): face i|i+1 is stored at
    row i + 1. Our last row's north face is the closed boundary, 0, and lands on row 0."""
    return np.stack([np.roll(fields[0], 1, axis=0), np.roll(fields[1], 1, axis=1), fields[2]])


def scale_nonzero(values: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """The original's rule (src/features.py): only nonzero values are scaled."""
    out = values.copy()
    nonzero = values != 0
    out[nonzero] = (values[nonzero] - offset) / scale
    return out


def write_original(
    ours: Path,
    dst: Path,
    scaling: str = "standardize",
    halo: tuple[int, int] = (HALO, HALO),
    shift_faces: bool = True,
    numpy_reprs: bool = False,
) -> Path:
    """``ours`` written as the original code stored data sets (no test/ split, as there)."""
    samples = {}
    for split in ("train", "valid"):
        for sample_id in list_ids(ours, split):
            fields, gamma = read_sample(ours, split, sample_id)
            if shift_faces:
                fields = to_original_faces(fields)
            samples[split, sample_id] = [*fields, gamma]
    # standardize: std and mean of the training samples' nonzero values; min-max: all samples'
    pools = {
        k: np.concatenate(
            [
                v[k][v[k] != 0]
                for (s, _), v in samples.items()
                if s == "train" or scaling == "minmax"
            ]
        )
        for k in range(4)
    }
    if scaling == "standardize":
        first = {n: pools[k].std() for k, n in enumerate(VARIABLES)}
        second = {n: pools[k].mean() for k, n in enumerate(VARIABLES)}
        offset, scale = second, first
    elif scaling == "minmax":
        first = {n: pools[k].min() for k, n in enumerate(VARIABLES)}
        second = {n: pools[k].max() for k, n in enumerate(VARIABLES)}
        offset, scale = first, {n: second[n] - first[n] for n in VARIABLES}
    for (split, sample_id), arrays in samples.items():
        if scaling != "none":
            arrays = [
                scale_nonzero(a, offset[n], scale[n])
                for a, n in zip(arrays, VARIABLES, strict=True)
            ]
        x = np.pad(np.stack(arrays[:3]), ((0, 0), (0, 0), halo), mode="wrap")
        x_path, y_path = sample_paths(dst, split, sample_id)
        x_path.parent.mkdir(parents=True, exist_ok=True)
        y_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(x_path, x)
        np.savez_compressed(y_path, arrays[3])
    if scaling != "none":
        name = {"standardize": "std_mean", "minmax": "min_max"}[scaling]

        def literal(d):  # numpy >= 2 writes np.float64(x) for str(dict)
            return str(d if numpy_reprs else {n: float(v) for n, v in d.items()})

        (dst / f"dict_{name}.txt").write_text(f"{literal(first)}\n{literal(second)}")
        (dst / f"norms_{name}.txt").write_text(f"{first['norm_coeffs']}\n{second['norm_coeffs']}")
    return dst


def run(main, *argv) -> int:
    try:
        main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code
    return 0


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scaling, numpy_reprs",
    [("standardize", False), ("minmax", True), ("none", False)],
)
def test_original_layout_converts_back_to_the_generated_data(ours, tmp_path, scaling, numpy_reprs):
    src = write_original(ours, tmp_path / "original", scaling, numpy_reprs=numpy_reprs)
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == 0
    for split in SPLITS:
        mine, back = load_split(ours, split), load_split(dst, split)
        if split == "test":
            assert len(back) == 0  # the original layout has none
            continue
        assert back.ids == mine.ids
        np.testing.assert_allclose(back.fields, mine.fields, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(back.gamma, mine.gamma, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(back.ocean, mine.ocean)
    with np.load(ours / GRID) as grid, np.load(dst / GRID) as converted:
        np.testing.assert_array_equal(converted["mask"], grid["mask"])
    meta, generated = read_json(dst / METADATA), read_json(ours / METADATA)
    for key in ("shape", "ocean_fraction", "periodic_x", "periodic_y", "steps"):
        assert meta[key] == generated[key], key
    assert meta["splits"] == {"train": 3, "valid": 1}
    assert meta["converted"]["from"] == str(src.resolve())
    assert meta["converted"]["scaling_undone"] == scaling
    assert meta["converted"]["halo"] == [0, HALO]
    assert (dst / "statistics.json").is_file()
    # dataset.splits limits only what normcoef.generate wrote: a converted set is used whole.
    assert DatasetInfo.load(ours).is_generated and not DatasetInfo.load(dst).is_generated


def test_minmax_conversion_warns_that_the_mask_is_taken_from_all_samples(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "minmax")
    assert run(convert.main, src, tmp_path / "converted", "--steps", STEPS) == 0
    err = capsys.readouterr().err
    assert "indistinguishable from land" in err and "--mask" in err


@pytest.mark.reliability(
    "convert",
    "min-max data of one sample (its γ minimum reads as land)",
    "handled",
    "with --mask the given mask decides the ocean",
)
@pytest.mark.slow  # --mask reads the file with normcoef.predict's reader, which imports torch
def test_minmax_mask_of_a_single_sample_needs_the_given_mask(ours, tmp_path):
    full = write_original(ours, tmp_path / "original", "minmax")
    ocean = load_split(ours, "train").ocean[0]  # one grid: every sample's ocean
    # keep only the sample holding the data set's smallest γ, scaled to 0 like land
    ((split, sample_id),) = [
        (split, i)
        for split in ("train", "valid")
        for i in list_ids(full, split)
        if (np.load(sample_paths(full, split, i)[1])["arr_0"][ocean] == 0).any()
    ]
    src = tmp_path / "one"
    for name in ("dict_min_max.txt", "norms_min_max.txt"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(full / name, src / name)
    for old, new in zip(
        sample_paths(full, split, sample_id), sample_paths(src, "train", "k"), strict=True
    ):
        new.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(old, new)
    expected = read_sample(ours, split, sample_id)[1]
    guessed, given = tmp_path / "guessed", tmp_path / "given"
    assert run(convert.main, src, guessed, "--steps", STEPS, "--verify", 0) == 0
    assert (ocean & ~load_split(guessed, "train").ocean[0]).sum() == 1  # the minimum's cell
    assert run(convert.main, src, given, "--steps", STEPS, "--mask", ours / GRID) == 0
    assert read_json(given / METADATA)["converted"]["mask"] == "given"
    converted = load_split(given, "train")
    np.testing.assert_array_equal(converted.ocean[0], ocean)
    np.testing.assert_allclose(converted.gamma[0], expected, rtol=1e-12)


def test_augmented_copies_are_skipped_with_a_note(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original")
    for folder, suffix in (("X", ".npz"), ("Y", "_norm_coeffs.npz")):
        shutil.copy(
            src / "train" / folder / f"00000{suffix}", src / "train" / folder / f"00000_90{suffix}"
        )
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == 0
    assert list_ids(dst, "train") == ["00000", "00001", "00002"]
    assert "skipped 1 augmented" in capsys.readouterr().out


# --- check -----------------------------------------------------------------------------------


def test_check_agrees_on_a_converted_data_set(ours, tmp_path, capsys):
    dst = tmp_path / "converted"
    assert (
        run(convert.main, write_original(ours, tmp_path / "original"), dst, "--steps", STEPS) == 0
    )
    capsys.readouterr()
    assert run(check.main, dst, "--samples", 2) == 0
    out = capsys.readouterr().out
    assert out.count("train/") == 2 and out.count("valid/") == 1
    assert "verdict: agrees" in out


def copy_with_faces_south_west(ours: Path, dst: Path) -> Path:
    """Our layout and metadata, but the faces stored as the original stores them."""
    for split in ("train", "valid"):
        for sample_id in list_ids(ours, split):
            fields, gamma = read_sample(ours, split, sample_id)
            write_sample(dst, split, sample_id, to_original_faces(fields), gamma)
    write_json(dst / METADATA, read_json(ours / METADATA))
    return dst


@pytest.mark.reliability(
    "check",
    "faces south/west, not north/east",
    "error",
    "disagrees, exit 1, names the face convention",
)
def test_check_finds_faces_in_the_original_convention(ours, tmp_path, capsys):
    root = copy_with_faces_south_west(ours, tmp_path / "shifted")
    assert run(check.main, root, "--samples", 1) == 1
    out = capsys.readouterr().out
    assert "verdict: DISAGREES" in out and "faces are the original's" in out


@pytest.mark.reliability(
    "check", "the wrong M", "error", "disagrees, exit 1, names the M that fits"
)
def test_check_finds_the_wrong_number_of_steps(ours, capsys):
    assert run(check.main, ours, "--samples", 1, "--split", "train", "--steps", STEPS + 2) == 1
    assert f"agrees with M = {STEPS}" in capsys.readouterr().out


@pytest.mark.reliability(
    "check", "a folder still in the original layout", "error", "refused, says to convert it first"
)
def test_check_refuses_the_original_layout_and_says_convert(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original")
    assert run(check.main, src) == EXIT_USER_ERROR
    assert "python -m normcoef.convert" in one_line_error(capsys)


@pytest.mark.reliability(
    "check", "no metadata.json and no --steps", "error", "refused, asks for --steps M"
)
def test_check_needs_m_where_the_data_set_does_not_say(ours, tmp_path, capsys):
    root = tmp_path / "foreign"
    shutil.copytree(ours / "train", root / "train")
    assert run(check.main, root) == EXIT_USER_ERROR
    assert "--steps M" in one_line_error(capsys)
    assert run(check.main, root, "--steps", STEPS, "--samples", 1) == 0


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.reliability(
    "convert", "scaled data without its statistics file", "error", "refused, names the missing file"
)
@pytest.mark.parametrize("scaling, evidence", [("standardize", "negative"), ("minmax", "[0, 1]")])
def test_scaled_data_without_statistics_are_refused(ours, tmp_path, capsys, scaling, evidence):
    src = write_original(ours, tmp_path / "original", scaling)
    for path in src.glob("*.txt"):
        path.unlink()
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst) == EXIT_USER_ERROR
    line = one_line_error(capsys)
    assert "look scaled" in line and evidence in line and "dict_std_mean.txt" in line
    assert not dst.exists()


@pytest.mark.reliability(
    "convert", "scaling named but its file missing", "error", "refused, names the missing file"
)
def test_named_scaling_without_its_file_is_refused(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "none")
    assert run(convert.main, src, tmp_path / "converted", "--scaling", "minmax") == EXIT_USER_ERROR
    assert "dict_min_max.txt" in one_line_error(capsys)


@pytest.mark.reliability(
    "convert", "--scaling none on standardized data", "error", "refused, the data are scaled"
)
def test_scaling_none_on_standardized_data_is_refused(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "standardize")
    assert run(convert.main, src, tmp_path / "converted", "--scaling", "none") == EXIT_USER_ERROR
    assert "negative" in one_line_error(capsys)


@pytest.mark.reliability(
    "convert", "asymmetric halo", "error", "refused, names the file and the halo"
)
@pytest.mark.parametrize("halo", [(2, 3), (1, 5)], ids=["odd", "even"])
def test_asymmetric_halo_is_refused(ours, tmp_path, capsys, halo):
    src = write_original(ours, tmp_path / "original", halo=halo)
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == EXIT_USER_ERROR
    line = one_line_error(capsys)
    assert "00000.npz" in line and ("equally wide" in line or "asymmetric" in line)
    assert not dst.exists()


@pytest.mark.reliability(
    "convert", "non-empty destination", "error", "refused, nothing in it touched"
)
def test_non_empty_destination_is_refused(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original")
    dst = tmp_path / "converted"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    assert run(convert.main, src, dst, "--steps", STEPS) == EXIT_USER_ERROR
    assert str(dst) in one_line_error(capsys)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]
    assert (dst / "notes.txt").read_text() == "mine"


@pytest.mark.reliability(
    "convert", "the wrong M for the targets", "error", "refused after verification, no files left"
)
def test_a_failed_verification_leaves_nothing_behind(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original")
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS + 2) == EXIT_USER_ERROR
    assert f"agrees with M = {STEPS}" in one_line_error(capsys)
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["original"]


@pytest.mark.reliability(
    "convert", "statistics of another data set", "error", "refused, nothing written"
)
def test_statistics_of_another_data_set_are_refused(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "standardize")
    stats = src / "dict_std_mean.txt"
    std, mean = stats.read_text().splitlines()
    mean_dict = ast.literal_eval(mean)
    mean_dict["norm_coeffs"] *= 10
    stats.write_text(f"{std}\n{mean_dict}")
    (src / "norms_std_mean.txt").unlink()
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == EXIT_USER_ERROR
    assert "another data set's statistics" in one_line_error(capsys)
    assert not dst.exists()


@pytest.mark.reliability(
    "train",
    "dataset.root= a folder still in the original layout",
    "error",
    "refused before training, says to convert it first",
)
@pytest.mark.parametrize("scaling", ["standardize", "minmax"])
def test_training_on_the_original_layout_is_refused_naming_convert(ours, tmp_path, scaling):
    from helpers import compose_config, tiny_overrides

    from normcoef.data.storage import DatasetError
    from normcoef.pipeline import run_training

    src = write_original(ours, tmp_path / "original", scaling)
    cfg = compose_config(
        "train", f"dataset.root={src}", *tiny_overrides(), "logger=none", "evaluate=false"
    )
    with pytest.raises(DatasetError, match=rf"^{src} holds dict_.*convert it first: python -m"):
        run_training(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_column_halo_that_is_a_shifted_periodic_copy_is_refused_on_an_x_periodic_grid():
    from normcoef.data.original import check_periodic_halo

    core = np.arange(2 * 4 * 10, dtype=float).reshape(2, 4, 10)
    shifted = np.take(core, np.arange(-4, 12) % 10, axis=-1)  # 4 columns before, 2 after
    error, note = check_periodic_halo(shifted, core, (0, 3), periodic_x=True, periodic_y=False)
    assert error is not None and "(4 columns before the grid, 2 after" in error and note is None
    centred = np.take(core, np.arange(-3, 13) % 10, axis=-1)
    assert check_periodic_halo(centred, core, (0, 3), True, False) == (None, None)


@pytest.mark.reliability(
    "convert",
    "a halo that is no periodic copy of the grid (the original's demo)",
    "warning",
    "converted; a one-line note says the halo is cropped and unused",
)
def test_a_halo_that_is_no_periodic_copy_is_converted_with_a_note(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original")
    for x_path in src.glob("*/X/*.npz"):
        with np.load(x_path) as stored:
            x = stored["arr_0"]
        x[..., :HALO] = x[..., HALO + 5 : 2 * HALO + 5]  # another part of the grid
        x[..., -HALO:] = x[..., HALO + 1 : 2 * HALO + 1]
        np.savez_compressed(x_path, x)
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == 0
    out = capsys.readouterr().out + capsys.readouterr().err
    assert f"({HALO} columns each side) is not a periodic copy of the grid; it is cropped" in out
    assert (dst / "metadata.json").exists()


@pytest.mark.parametrize("existing", [False, True], ids=["new", "empty destination"])
def test_a_converted_data_set_gets_the_usual_permissions_not_owner_only(
    ours, tmp_path, existing: bool
):
    src = write_original(ours, tmp_path / "original")
    dst = tmp_path / "converted"
    if existing:
        dst.mkdir()
        dst.chmod(0o751)
    old = os.umask(0o022)
    try:
        assert run(convert.main, src, dst, "--steps", STEPS) == 0
    finally:
        os.umask(old)
    assert dst.stat().st_mode & 0o777 == (0o751 if existing else 0o755)


@pytest.mark.reliability(
    "train",
    "a converted data set (no test split)",
    "handled",
    "config logged with its real grid and splits; says where checkpoints went and how to evaluate",
)
def test_training_on_converted_data_describes_them_and_says_where_it_went(ours, tmp_path, capsys):
    from helpers import compose_config, tiny_overrides

    from normcoef.inference import load_trained_model
    from normcoef.pipeline import run_training

    src = write_original(ours, tmp_path / "original")
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == 0
    overrides = [o for o in tiny_overrides() if not o.startswith("dataset.")]
    cfg = compose_config(
        "train", f"dataset.root={dst}", *overrides, "logger=none", f"dataset.fields.steps={STEPS}"
    )
    run_training(cfg, run_dir=tmp_path / "run")

    out = capsys.readouterr().out
    assert "Evaluation skipped" in out and "normcoef.generate" not in out.split("skipped")[1]
    assert "python -m normcoef.evaluate <checkpoints> --dataset" in out
    assert f"Checkpoints: {tmp_path / 'run'} (best.pt, step" in out
    stored = load_trained_model(tmp_path / "run" / "best.pt").config.dataset
    assert (stored.height, stored.width) == (16, 24)
    assert dict(stored.splits) == {"train": 3, "valid": 1, "test": 0}
    assert stored.root == str(dst)


# --- predicting on the original's fields, without targets -------------------------------------


@pytest.fixture(scope="module")
def network(trained: TrainedRun) -> Path:  # noqa: F811
    """The run folder of a tiny trained network (tests/test_inference.py)."""
    return trained.run_dir


@pytest.mark.parametrize("scaling", ["standardize", "minmax", "none"])
def test_predict_reads_the_originals_fields_as_the_converted_ones(
    ours, network, tmp_path, scaling, capsys
):
    """An original user's X files (halo, faces south/west, scaled) give the γ of the same
    fields in normcoef's layout: what `convert` would make of them, with no targets needed."""
    src = write_original(ours, tmp_path / "original", scaling)
    ids = list_ids(ours, "train")
    files = {"standardize": "dict_std_mean.txt", "minmax": "dict_min_max.txt"}
    statistics = ["--statistics", src / files[scaling]] if scaling in files else []
    mask = ["--mask", ours / GRID]
    originals = [sample_paths(src, "train", i)[0] for i in ids]
    assert run(predict.main, network, *originals, "-o", tmp_path / "a", "--original",
               *statistics, *mask) == 0  # fmt: skip
    assert f"scaling {scaling} undone" in capsys.readouterr().out
    # The same fields as a user's own files (inside `ours`, made with M = STEPS, predict would
    # refuse them: the network learned another M's Γ; here only the reading is compared).
    (tmp_path / "mine").mkdir()
    mine = [
        shutil.copy(sample_paths(ours, "train", i)[0], tmp_path / "mine" / f"{i}.npz") for i in ids
    ]
    assert run(predict.main, network, *mine, "-o", tmp_path / "b", *mask) == 0
    for sample_id in ids:
        with (
            np.load(tmp_path / "a" / f"{sample_id}_norm_coeffs.npz") as a,
            np.load(tmp_path / "b" / f"{sample_id}_norm_coeffs.npz") as b,
        ):
            np.testing.assert_allclose(a["gamma"], b["gamma"], rtol=1e-5, equal_nan=True)


@pytest.mark.reliability(
    "predict",
    "original-layout inputs that look scaled, without their statistics",
    "error",
    "asks for --statistics (or --scaling none), writes nothing",
)
def test_predict_refuses_scaled_original_inputs_without_statistics(ours, network, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "standardize")
    x = sample_paths(src, "train", list_ids(ours, "train")[0])[0]
    out = tmp_path / "out"
    code = run(predict.main, network, x, "-o", out, "--original", "--mask", ours / GRID)
    assert code == EXIT_USER_ERROR
    error = one_line_error(capsys)
    assert "look scaled" in error and "--statistics" in error
    assert not out.exists()


def test_the_original_options_need_original(ours, network, tmp_path, capsys):
    x = sample_paths(ours, "train", list_ids(ours, "train")[0])[0]
    with pytest.raises(SystemExit) as stop:
        predict.main([str(network), str(x), "-o", str(tmp_path), "--scaling", "none"])
    assert stop.value.code == 2
    assert "add --original" in capsys.readouterr().err


@pytest.mark.reliability(
    "convert",
    "statistics of another data set for the fields (their exact Γ then disagrees)",
    "error",
    "progress while it diagnoses; names the statistics file as the likely cause",
)
def test_field_statistics_of_another_data_set_are_named_after_the_diagnosis(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "standardize")
    stats = src / "dict_std_mean.txt"
    std, mean = stats.read_text().splitlines()
    mean_dict = ast.literal_eval(mean)
    mean_dict["w"] *= 1.5  # W's mean of another data set: γ still positive, Γ another
    stats.write_text(f"{std}\n{mean_dict}")
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == EXIT_USER_ERROR
    printed = capsys.readouterr()
    assert "diagnosing: trying the original's faces" in printed.out  # convert's notes
    assert "diagnosing: trying M = " in printed.out
    error = printed.err.strip().splitlines()[-1]
    assert error.startswith("error: ") and f"the scaling was undone with {stats}" in error
    assert not dst.exists()


# --- pairing: every sample's targets are its own ---------------------------------------------


def swap_targets(src: Path, first: tuple[str, str], second: tuple[str, str]) -> None:
    """Exchange two samples' Y files, as a renaming slip would."""
    a, b = sample_paths(src, *first)[1], sample_paths(src, *second)[1]
    parked = a.with_name("parked.npz")
    a.rename(parked)
    b.rename(a)
    parked.rename(b)


@pytest.mark.reliability(
    "convert",
    "Y files swapped between two samples",
    "error",
    "refused, names both samples and whose targets each fits; nothing written",
)
def test_targets_swapped_between_samples_are_refused_naming_both(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original")
    swap_targets(src, ("train", "00001"), ("train", "00002"))
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == EXIT_USER_ERROR
    line = one_line_error(capsys)
    assert "2 of 4 samples have targets that are not the exact Γ of their own fields" in line
    assert "train/00001 fits the targets of train/00002" in line
    assert "train/00002 fits the targets of train/00001" in line
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["original"]


@pytest.mark.reliability(
    "convert",
    "Y files swapped between two samples whose Γ differ by less than the tolerance",
    "error",
    "refused: each sample's fields fit the other's targets far better than their own",
)
def test_a_swap_between_samples_closer_than_the_tolerance_is_still_named(ours, tmp_path, capsys):
    first, second = (load_split(ours, "train").gamma[i] for i in (0, 2))
    ocean = first != 0
    apart = np.median(np.abs(first[ocean] - second[ocean]) / first[ocean])
    assert 1e-4 < apart < 1e-2  # the premise: these two tiny samples are close
    src = write_original(ours, tmp_path / "original")
    swap_targets(src, ("train", "00000"), ("train", "00002"))
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS, "--tolerance", 1e-2) == EXIT_USER_ERROR
    line = one_line_error(capsys)
    assert "train/00000 fits the targets of train/00002" in line
    assert not dst.exists()


@pytest.mark.reliability(
    "convert",
    "one sample's Y file from elsewhere (5 % off its fields' Γ)",
    "error",
    "refused, names the sample and its difference; nothing written",
)
def test_one_foreign_target_file_is_refused_naming_its_sample(ours, tmp_path, capsys):
    src = write_original(ours, tmp_path / "original", "none")
    y_path = sample_paths(src, "valid", "00000")[1]
    with np.load(y_path) as stored:
        np.savez_compressed(y_path, stored["arr_0"] * 1.05)
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS) == EXIT_USER_ERROR
    line = one_line_error(capsys)
    assert "1 of 4 samples" in line and "valid/00000 differs by 5.0e-02 (> 1e-03)" in line
    assert not dst.exists()


@pytest.mark.reliability(
    "convert",
    "a correct data set",
    "handled",
    "every sample's pairing checked; says how many, and on how many whole samples exact Γ ran",
)
@pytest.mark.parametrize(
    "options, whole",
    [([], 4), (["--verify", 2], 2), (["--verify-seconds", 0], 1)],
    ids=["default", "at-most-2", "no-time"],
)
def test_a_correct_data_set_says_how_many_pairings_and_whole_samples_were_verified(
    ours, tmp_path, capsys, options, whole
):
    src = write_original(ours, tmp_path / "original")
    dst = tmp_path / "converted"
    assert run(convert.main, src, dst, "--steps", STEPS, *options) == 0
    out = capsys.readouterr().out
    assert "verified pairing of 4/4 samples (exact Γ at 8 cells each within 1e-03" in out
    assert f"verified exact Γ on {whole} of 4 whole samples: agrees" in out
    order = ["train/00000", "train/00001", "train/00002", "valid/00000"]  # training first
    checked = [line for line in out.splitlines() if line.startswith("exact Γ of ")]
    assert checked == [f"exact Γ of {name}" for name in order[:whole]]


def random_fields(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) random fields whose kernel is short enough to be probed on the grid, and an
    ocean with an island."""
    rng = np.random.default_rng(seed)
    fields = np.stack([rng.uniform(0.05, 0.2, shape), rng.uniform(0.05, 0.2, shape),
                       rng.uniform(1.0, 2.0, shape)])  # fmt: skip
    ocean = np.ones(shape, bool)
    ocean[10:16, 12:22] = False
    return fields, ocean


def test_gamma_at_the_pairing_cells_is_the_exact_gamma_of_the_whole_grid():
    from normcoef.data.pairing import pairing_cells
    from normcoef.data.verification import Settings, exact_gamma_at
    from normcoef.physics import DiffusionOperator, exact_normalization
    from normcoef.physics.normalization import probing_lattice

    fields, ocean = random_fields((30, 40), seed=3)
    settings = Settings(STEPS, periodic_x=True, periodic_y=False)
    op = DiffusionOperator(fields, ocean, STEPS, periodic_x=True, periodic_y=False)
    spacing = probing_lattice(op)
    assert spacing[0] * spacing[1] < op.n_ocean  # the full solver probes: another method
    cells = pairing_cells(ocean, settings)
    assert cells.size == 8 and ocean.ravel()[cells].all()
    full = exact_normalization(op).ravel()[cells]
    np.testing.assert_allclose(exact_gamma_at(fields, ocean, settings, cells), full, rtol=1e-7)


def test_gamma_at_cells_is_the_closed_form_of_uniform_periodic_fields():
    from normcoef.data.verification import Settings, exact_gamma_at
    from normcoef.physics import uniform_periodic_normalization

    shape, (a_i, a_j, w) = (12, 18), (1.5, 0.7, 2.0)
    fields = np.stack([np.full(shape, a_i), np.full(shape, a_j), np.full(shape, w)])
    settings = Settings(STEPS, periodic_x=True, periodic_y=True)
    cells = np.array([0, 17, 100, 215])
    gamma = exact_gamma_at(fields, np.ones(shape, bool), settings, cells)
    closed = uniform_periodic_normalization(a_i, a_j, w, shape, STEPS)
    np.testing.assert_allclose(gamma, closed, rtol=1e-12)


def test_pairing_cells_reach_from_the_coast_to_the_farthest_ocean_cell():
    from normcoef.data.distance import signed_distance
    from normcoef.data.pairing import pairing_cells
    from normcoef.data.verification import Settings

    _, ocean = random_fields((30, 40), seed=0)
    distance = signed_distance(ocean, walls=True).ravel()
    cells = pairing_cells(ocean, Settings(STEPS))
    assert distance[cells].min() == 1 and distance[cells].max() == distance.max()
    assert len(set(distance[cells])) > 4  # spread between them, not bunched at one distance
