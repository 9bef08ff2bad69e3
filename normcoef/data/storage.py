"""Data sets on disk, in the layout of the report's code.

    <root>/metadata.json                          grid, generator parameters, split sizes
    <root>/grid.npz                               mask, lat, lat_north, lon
    <root>/statistics.json                        standardization statistics (training split)
    <root>/{train,valid,test}/X/<id>.npz          arr_0: (3, H, W) float64, A_i, A_j, W
    <root>/{train,valid,test}/Y/<id>_norm_coeffs.npz   arr_0: (H, W) float64, γ (0 on land)

Only the X/Y files are required: a directory of such files written by other code (e.g. the
report's own ``{train,valid}/X|Y`` folders) loads too; the ocean mask is then ``γ != 0``.
Prediction reads inputs in the X layout and writes ``<id>_norm_coeffs.npz`` files the same way
(``input_files``, ``output_path``, ``write_npz_atomically``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normcoef.physics.diffusion import field_violations

SPLITS: tuple[str, ...] = ("train", "valid", "test")
TARGET_SUFFIX = "_norm_coeffs"
METADATA = "metadata.json"
GRID = "grid.npz"
STATISTICS = "statistics.json"
REGENERATE = (
    "if it belongs to a generated data set, rerun `python -m normcoef.generate` with the same "
    "settings (damaged samples are rewritten); otherwise replace the file"
)


class DatasetError(ValueError):
    """A data set on disk is missing, incomplete or malformed."""


class DamagedFileError(DatasetError):
    """A file cut short, corrupted or emptied (e.g. by an interrupted copy): rewriting it is
    the fix, which ``generate`` does for its own samples."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}; {REGENERATE}")
        self.path = path
        self.problem = problem


def sample_paths(root: Path, split: str, sample_id: str) -> tuple[Path, Path]:
    base = Path(root) / split
    return base / "X" / f"{sample_id}.npz", base / "Y" / f"{sample_id}{TARGET_SUFFIX}.npz"


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``write_npz_atomically`` (the one atomic npz write), creating the folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npz_atomically(path, **arrays)


def write_sample(
    root: Path, split: str, sample_id: str, fields: np.ndarray, gamma: np.ndarray
) -> None:
    x_path, y_path = sample_paths(root, split, sample_id)
    save_npz(y_path, arr_0=gamma)
    save_npz(x_path, arr_0=fields)


def list_ids(root: Path, split: str) -> list[str]:
    """Ids (file names up to the first dot) of the split's inputs; each must have its target.

    The generator writes Y before X, so an X without Y is a foreign set missing a file: say
    so rather than train on fewer samples than the user has.
    """
    x_dir = Path(root) / split / "X"
    if not x_dir.is_dir():
        return []
    ids = sorted({p.name.split(".")[0] for p in x_dir.glob("*.npz") if ".tmp" not in p.name})
    orphans = [i for i in ids if not sample_paths(root, split, i)[1].exists()]
    if orphans:
        missing = sample_paths(root, split, orphans[0])[1]
        raise DatasetError(
            f"{len(orphans)} input file(s) in {x_dir} have no target, e.g. {missing} is missing; "
            "add the targets or move those inputs out of X/"
        )
    return ids


NPY_MAGIC = b"\x93NUMPY"


def _check_archive(path: Path) -> None:
    """Refuse, naming ``path`` and the fix, a file that is not a complete, intact npz (zip).

    Every member's CRC is checked, so a truncated or bit-flipped file fails here with a plain
    message instead of whatever numpy's parser happens to raise on the garbage.
    """
    with path.open("rb") as file:
        head = file.read(len(NPY_MAGIC))
    if not head:
        raise DamagedFileError(path, "is empty (0 bytes), e.g. after an interrupted copy")
    if head == NPY_MAGIC:
        raise DatasetError(
            f"{path} is a .npy array, not an npz archive; save it with np.savez(path, array)"
        )
    if not head.startswith(b"PK"):
        raise DatasetError(
            f"{path} is not an npz file (the zip of arrays np.savez writes); "
            "convert it with np.savez(path, array)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except Exception as error:  # on garbage, zipfile's parser raises whatever it runs into
        reason = f"{type(error).__name__}: {error}"
        raise DamagedFileError(path, f"is truncated or damaged ({reason})") from error
    if damaged is not None:
        raise DamagedFileError(path, f"is damaged: {damaged} fails its checksum")


@contextlib.contextmanager
def _open_npz(path: Path) -> Iterator[Any]:
    """``np.load`` of an intact npz file, pickles refused; what goes wrong while it is read
    (here or in the ``with`` body) comes out as a one-line ``DatasetError``."""
    if not path.exists():
        raise DatasetError(f"missing file {path}; regenerate the data set or fix the path")
    try:
        _check_archive(path)
        with np.load(path, allow_pickle=False) as data:
            yield data
    except DatasetError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):  # numpy's refusal of an object array
            raise DatasetError(
                f"{path} holds Python objects (a pickled array), which are not loaded because "
                "unpickling can run code; save plain float arrays with np.savez"
            ) from error
        raise DamagedFileError(path, f"holds no valid array ({error})") from error
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error}") from error


def load_array(path: Path) -> np.ndarray:
    """The one float64 array of an npz file (named ``arr_0``, or alone); pickles are refused."""
    path = Path(path)
    with _open_npz(path) as data:
        keys = list(data.keys())
        key = "arr_0" if "arr_0" in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DatasetError(f"{path} holds {keys}; expected one array named arr_0")
        array = np.asarray(data[key])  # a member that is not .npy comes back as bytes
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {key} has dtype {array.dtype}; expected real numbers")
    return array.astype(np.float64, copy=False)


def load_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an intact npz file by name (pickles refused): files of several arrays
    that this package writes itself, e.g. a geometry table."""
    path = Path(path)
    with _open_npz(path) as data:
        return {key: np.asarray(data[key]) for key in data.keys()}


def crop_halo(array: np.ndarray, shape: tuple[int, int], path: Path) -> np.ndarray:
    """``array`` (..., H + 2a, W + 2b) cropped to its centre (..., H, W) = ``shape``.

    A halo may differ between axes (the report's data carry 40 columns each side in x and
    none in y) but must be equally wide on both sides of an axis: otherwise the crop would
    shift the inputs against their grid, silently. ``path`` names the file in the error.
    """
    have = tuple(int(n) for n in array.shape[-2:])
    want = tuple(int(n) for n in shape)
    extra = np.subtract(have, want)
    if (extra < 0).any() or (extra % 2).any():
        raise DatasetError(
            f"{path}: inputs {have} do not fit the grid {want} ({extra[0]} extra rows, "
            f"{extra[1]} extra columns): a halo must be equally wide on both sides of each axis; "
            "crop the inputs to the grid or pad them equally on both sides"
        )
    top, left = extra // 2
    return array[..., top : top + want[0], left : left + want[1]]


def check_input_channels(fields: np.ndarray, path: Path) -> None:
    """Inputs are (3, H, W): A_i, A_j, W. Any other layout is refused rather than cut to its
    first three channels (a 4th, the original code's distance map, or two more of anything
    would be silently dropped, and the original's faces and scaling are not this package's)."""
    if fields.ndim != 3 or fields.shape[0] != 3:
        raise DatasetError(
            f"{path}: inputs must be (3, H, W) with channels A_i, A_j, W; got {fields.shape}; "
            "files of the report's code (scaled, south/west faces, a distance channel) need "
            "`python -m normcoef.convert` first (docs/original-data.md)"
        )


def read_sample(root: Path, split: str, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(fields (C, H, W), γ (H, W)); inputs stored with a symmetric halo are cropped to γ."""
    x_path, y_path = sample_paths(root, split, sample_id)
    fields, gamma = load_array(x_path), load_array(y_path)
    if gamma.ndim != 2:
        raise DatasetError(f"{y_path}: γ must be 2-D (H, W); got shape {gamma.shape}")
    check_input_channels(fields, x_path)
    if fields.shape[1] < gamma.shape[0] or fields.shape[2] < gamma.shape[1]:
        raise DatasetError(
            f"{x_path}: inputs {fields.shape[1:]} are smaller than γ {gamma.shape} in {y_path}"
        )
    fields = crop_halo(fields[:3], gamma.shape, x_path)
    for name, array, path in (("inputs", fields, x_path), ("γ", gamma, y_path)):
        if not np.isfinite(array).all():
            raise DatasetError(f"{path}: {name} contain NaN or infinite values")
    if (gamma < 0).any():
        raise DatasetError(f"{y_path}: γ must be >= 0 (0 marks land)")
    if not (gamma > 0).any():
        raise DatasetError(f"{y_path}: γ is 0 everywhere, so there is no ocean cell")
    # One rule for every reader and target: what no diffusion operator can have is refused.
    for bad in field_violations(fields, gamma > 0)[:1]:
        raise DatasetError(f"{x_path}: {bad.describe()}; fix or regenerate the sample")
    return fields, gamma


@dataclass
class Split:
    """All samples of one split, in memory. Arrays: (N, 3, H, W), (N, H, W), (N, H, W).

    ``prior`` (N, H, W): each sample's γ_prior once computed (the prior_residual target,
    ``normcoef.data.torch_dataset.with_priors``), so that statistics, inputs, targets and the
    prior's own metrics share one computation per sample.
    """

    ids: list[str]
    fields: np.ndarray
    gamma: np.ndarray
    ocean: np.ndarray
    prior: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, count: int) -> Split:
        """The first ``count`` samples (all when there are fewer)."""
        prior = None if self.prior is None else self.prior[:count]
        return Split(
            self.ids[:count], self.fields[:count], self.gamma[:count], self.ocean[:count], prior
        )


def load_split(root: Path, split: str, limit: int | None = None) -> Split:
    """Load a split; the ocean mask of each sample is where γ != 0."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"data set directory {root} does not exist; generate it with "
            "`python -m normcoef.generate dataset=<name>` or set dataset.root"
        )
    ids = list_ids(root, split)[:limit]
    if not ids:
        return Split([], np.empty((0, 3, 0, 0)), np.empty((0, 0, 0)), np.empty((0, 0, 0), bool))
    samples = [read_sample(root, split, i) for i in ids]
    shapes = {g.shape for _, g in samples}
    if len(shapes) > 1:
        raise DatasetError(f"{root}/{split}: samples have different grid shapes {sorted(shapes)}")
    fields = np.stack([f for f, _ in samples])
    gamma = np.stack([g for _, g in samples])
    return Split(ids, fields, gamma, gamma != 0)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, None when there is no such file."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}); {REGENERATE}") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{path} holds a {type(data).__name__}, not a JSON object; {REGENERATE}")
    return data


def load_mask(path: str | Path) -> np.ndarray:
    """(H, W) bool ocean mask: the ``mask`` array of a ``grid.npz``, or an npz's only array
    (nonzero = ocean)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mask file {path}; check the path")
    with np.load(path) as data:
        mask = data["mask"] if "mask" in data else None
    mask = np.asarray(load_array(path) if mask is None else mask) != 0
    if mask.ndim != 2 or not mask.any():
        raise DatasetError(f"{path}: the mask must be 2-D (H, W) with some ocean; got {mask.shape}")
    return mask


def input_files(paths: list[str | Path]) -> list[Path]:
    """The files given, with each directory replaced by its input ``*.npz`` files (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p
                for p in path.glob("*.npz")
                if not p.name.endswith(f"{TARGET_SUFFIX}.npz") and ".tmp" not in p.name
            )
            if not found:
                raise FileNotFoundError(f"directory {path} holds no input .npz file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no input file or directory {path}")
    return files


def output_path(out_dir: Path, input_path: Path) -> Path:
    """``<out_dir>/<id>_norm_coeffs.npz``, the id being the input's name up to its first dot."""
    return Path(out_dir) / f"{input_path.name.split('.')[0]}{TARGET_SUFFIX}.npz"


def check_outputs(outputs: list[Path], overwrite: bool) -> None:
    """Refuse existing outputs unless ``overwrite``. A link, dangling or not, counts as
    existing: it is replaced, never followed (writing through it could land anywhere)."""
    existing = [path for path in outputs if os.path.lexists(path)]
    folders = [path for path in existing if path.is_dir() and not path.is_symlink()]
    if folders:
        raise IsADirectoryError(f"output {folders[0]} is a directory; move it or choose another -o")
    if existing and not overwrite:
        first = existing[0]
        link = f" (a link to {os.readlink(first)})" if first.is_symlink() else ""
        raise FileExistsError(
            f"{len(existing)} output file(s) exist, e.g. {first}{link}; pass --overwrite to "
            "replace them"
        )


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _new_file_mode() -> int:
    """The permissions ``open`` would give a new file (mkstemp's are owner-only)."""
    return 0o666 & ~_umask()


def new_directory_mode(existing: Path | None = None) -> int:
    """The permissions for a directory renamed into place: an existing one's own (the empty
    destination it replaces), else what ``mkdir`` would give (mkdtemp's are owner-only)."""
    if existing is not None and existing.is_dir():
        return existing.stat().st_mode & 0o7777
    return 0o777 & ~_umask()


def write_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    """npz through a temporary file in ``path``'s folder and ``os.replace``: an interrupted
    write leaves no partial file, and a link at ``path`` is itself replaced."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, **arrays)  # type: ignore[arg-type]  # stubs: allow_pickle
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
