"""Data sets in the layout of the report's original code (FolkeKS/DL-normalization, 2022).

    <src>/{train,valid}/X/<id>.npz              arr_0: (3[+1], H + 2a, W + 2b) float64,
                                                alpha_i_minus, alpha_j_minus, w[, distance]
    <src>/{train,valid}/Y/<id>_norm_coeffs.npz  arr_0: (H, W) γ, 0 on land
    <src>/dict_std_mean.txt | dict_min_max.txt  two dict literals: std and mean | min and max
    <src>/norms_std_mean.txt | norms_min_max.txt   the norm_coeffs pair, one number a line

It differs from ours (``storage``) in three ways, each undone by ``convert``:

- faces: ``alpha_i_minus[i, j]`` sits on the face between rows i-1 and i (south),
  ``alpha_j_minus[i, j]`` between columns j-1 and j (west); ours are north and east
  (``physics.diffusion``). Read as stored, their exact Γ is ~4 % off the targets.
- a halo, equally wide on both sides of an axis (40 periodic columns on the demo grid).
- scaling: the original's ``src/features.py`` scaled each variable's *nonzero* values only
  (``aux[np.nonzero(aux)]``), so zeros (land γ, closed faces) stay 0 when standardized;
  min-max scaling also maps each minimum to 0, indistinguishable from land.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from normcoef.data.storage import (
    SPLITS,
    DatasetError,
    crop_halo,
    list_ids,
    load_array,
    sample_paths,
)
from normcoef.physics.diffusion import open_faces

SCALINGS: tuple[str, ...] = ("auto", "none", "standardize", "minmax")
VARIABLES: tuple[str, ...] = ("alpha_i_minus", "alpha_j_minus", "w", "norm_coeffs")
STATISTICS_FILES: dict[str, tuple[str, str]] = {
    # mode: (per-variable dicts, the norm_coeffs pair); line order as the original wrote them
    "standardize": ("dict_std_mean.txt", "norms_std_mean.txt"),
    "minmax": ("dict_min_max.txt", "norms_min_max.txt"),
}
AUGMENTED_SUFFIXES: tuple[str, ...] = ("_90", "_180", "_270", "_flip_hor", "_flip_vert")
"""Ids of the original's augmented copies. They are skipped: that augmentation had an aliasing
bug and shifted the two flips' faces with opposite signs, and our pipeline augments itself."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class Scaling:
    """How the stored values were scaled: stored = (raw - offset) / scale on nonzero raw values."""

    mode: str = "none"
    offset: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VARIABLES, 0.0))
    scale: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VARIABLES, 1.0))
    source: str | None = None

    def unscale(self, name: str, stored: np.ndarray, support: np.ndarray) -> np.ndarray:
        """Raw values: stored * scale + offset where ``support``, 0 elsewhere."""
        raw = stored * self.scale[name] + self.offset[name]
        return np.where(support, raw, 0.0)


_NUMPY_SCALAR = re.compile(r"(?:np|numpy)\.float(?:16|32|64)\(([^()]*)\)")


def _read_dicts(path: Path) -> tuple[dict, dict]:
    """The two dict literals of a statistics file (``np.float64(x)`` reprs read as x)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != 2:
        raise DatasetError(
            f"{path} has {len(lines)} non-empty lines; expected 2, each a dict literal "
            "(std then mean, or min then max) as the original code wrote it"
        )
    dicts = []
    for number, line in enumerate(lines, 1):
        try:
            value = ast.literal_eval(_NUMPY_SCALAR.sub(r"\1", line.strip()))
        except (ValueError, SyntaxError) as error:
            raise DatasetError(
                f"{path}, line {number}: not a Python dict literal ({error})"
            ) from None
        if not isinstance(value, dict):
            raise DatasetError(f"{path}, line {number}: expected a dict literal, got {line!r}")
        missing = [name for name in VARIABLES if name not in value]
        if missing:
            raise DatasetError(f"{path}, line {number}: no value for {', '.join(missing)}")
        try:
            numbers = {name: float(value[name]) for name in VARIABLES}
        except (TypeError, ValueError):
            raise DatasetError(f"{path}, line {number}: values must be numbers") from None
        if not all(np.isfinite(list(numbers.values()))):
            raise DatasetError(f"{path}, line {number}: values must be finite")
        dicts.append(numbers)
    return dicts[0], dicts[1]


def read_scaling(path: Path, mode: str) -> Scaling:
    """The ``mode`` (standardize or minmax) statistics in ``path``, a ``dict_*.txt`` file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"missing statistics file {path}: the {mode} scaling cannot be undone without it; "
            "copy it from the original data folder or give it with --statistics"
        )
    first, second = _read_dicts(path)
    if mode == "standardize":  # line 1 std, line 2 mean
        scale, offset = first, second
    else:  # line 1 min, line 2 max
        offset = first
        scale = {name: second[name] - first[name] for name in VARIABLES}
    bad = [name for name in VARIABLES if scale[name] <= 0]
    if bad:
        what = "std" if mode == "standardize" else "max - min"
        raise DatasetError(f"{path}: {what} of {', '.join(bad)} is not positive")
    _check_target_pair(path.parent / STATISTICS_FILES[mode][1], first, second)
    return Scaling(mode, offset, scale, str(path))


def _check_target_pair(path: Path, first: dict, second: dict) -> None:
    """The ``norms_*.txt`` beside a dict file must repeat its norm_coeffs pair."""
    if not path.is_file():
        return
    try:
        pair = [float(line) for line in _NUMPY_SCALAR.sub(r"\1", path.read_text()).split()]
    except ValueError:
        raise DatasetError(f"{path}: expected two numbers, one a line") from None
    expected = [first["norm_coeffs"], second["norm_coeffs"]]
    if len(pair) != 2 or not np.allclose(pair, expected, rtol=1e-12, atol=0):
        raise DatasetError(
            f"{path} holds {pair} but the dict file beside it has norm_coeffs {expected}: "
            "they come from different data sets; keep the pair that matches the samples"
        )


# --- faces ---------------------------------------------------------------------------------


def original_open_faces(
    mask: np.ndarray, periodic_x: bool, periodic_y: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(south, west) faces that carry flux, indexed as the original: face (i-1|i), (j-1|j)."""
    north, east = open_faces(mask, periodic_x, periodic_y)
    return np.roll(north, 1, axis=0), np.roll(east, 1, axis=1)


def faces_to_ours(
    fields: np.ndarray, mask: np.ndarray, periodic_x: bool, periodic_y: bool
) -> np.ndarray:
    """(3, H, W) fields with south/west faces (original) moved onto north/east faces (ours).

    Our north face of cell i is the original's south face of cell i + 1. Across the last row
    (column) that is row (column) 0 on a periodic axis; on a closed axis it is the closed
    boundary, 0, as are faces touching land.
    """
    north, east = open_faces(mask, periodic_x, periodic_y)
    a_i = np.where(north, np.roll(fields[0], -1, axis=0), 0.0)
    a_j = np.where(east, np.roll(fields[1], -1, axis=1), 0.0)
    return np.stack([a_i, a_j, fields[2]])


# --- samples -------------------------------------------------------------------------------


def halo_widths(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, columns) of halo on each side; ``crop_halo`` refuses an odd difference."""
    return (x_shape[-2] - y_shape[-2]) // 2, (x_shape[-1] - y_shape[-1]) // 2


def periodic_copy_shift(padded: np.ndarray, core: np.ndarray, halo: int, axis: int) -> int | None:
    """The shift s for which ``padded`` is ``core`` wrapped with ``halo + s`` cells before and
    ``halo - s`` after along ``axis`` (s = 0: centred); None when it is no periodic copy."""
    size = core.shape[axis]
    for shift in sorted(range(-halo, halo + 1), key=abs):
        index = np.arange(-(halo + shift), size + halo - shift) % size
        if np.array_equal(padded, np.take(core, index, axis=axis)):
            return shift
    return None


def check_periodic_halo(
    padded: np.ndarray, core: np.ndarray, halo: tuple[int, int], periodic_x: bool, periodic_y: bool
) -> tuple[str | None, str | None]:
    """(error, note) about the halo of each periodic axis.

    An even total halo split unevenly (say 30 and 50 columns) of periodic copies passes the
    shape check but would shift every field against its grid: an error. A halo that is no
    periodic copy at all (the original's demo data: its columns are another part of the grid)
    is cropped and never used, the grid's own wrap is: a note, not a refusal.
    """
    hy, hx = halo
    # Each axis is compared on the other axis's core: a halo of rows is checked apart.
    axes = (
        (-1, hx, periodic_x, "columns", (..., slice(hy, padded.shape[-2] - hy), slice(None))),
        (-2, hy, periodic_y, "rows", (..., slice(None), slice(hx, padded.shape[-1] - hx))),
    )
    for axis, width, periodic, name, core_of_other in axes:
        if not (periodic and width):
            continue
        shift = periodic_copy_shift(padded[core_of_other], core, width, axis)
        if shift is None:
            return None, (
                f"its halo ({width} {name} each side) is not a periodic copy of the grid; it is "
                "cropped and not used (the network and the operator wrap the grid itself)"
            )
        if shift:
            before, after = width + shift, width - shift
            return (
                f"its halo is asymmetric ({before} {name} before the grid, {after} after: a "
                "periodic copy split unevenly); pad both sides equally"
            ), None
    return None, None


def faces_on_land(
    fields: np.ndarray | Sequence[np.ndarray], mask: np.ndarray, periodic: tuple[bool, bool]
) -> int:
    """How many alpha_i_minus/alpha_j_minus values are nonzero on faces touching land."""
    south, west = original_open_faces(mask, *periodic)
    return int(((fields[0] != 0) & ~south).sum() + ((fields[1] != 0) & ~west).sum())


def misplaced_halo(
    padded: np.ndarray, gamma: np.ndarray, halo: tuple[int, int], periodic: tuple[bool, bool]
) -> str | None:
    """How the halo is split, when its faces show that it is uneven (None: centred fits).

    An even total split unevenly (say 1 and 5 columns) of periodic copies passes both the shape
    and the copy check, yet the centred crop shifts the fields against γ's land. Only a shift
    that puts every nonzero face off land is taken as evidence.
    """
    mask = gamma != 0
    height, width = gamma.shape

    def window(dy: int, dx: int) -> np.ndarray:
        top, left = halo[0] + dy, halo[1] + dx
        return padded[:, top : top + height, left : left + width]

    if faces_on_land(window(0, 0), mask, periodic) == 0:
        return None
    for axis, name in ((0, "rows"), (1, "columns")):
        for shift in sorted(range(-halo[axis], halo[axis] + 1), key=abs)[1:]:
            offset = (shift, 0) if axis == 0 else (0, shift)
            if faces_on_land(window(*offset), mask, periodic) == 0:
                before, after = halo[axis] + shift, halo[axis] - shift
                return (
                    f"its halo is asymmetric ({before} {name} before the grid, {after} after, "
                    "judging by where the faces touch land); pad both sides equally"
                )
    return None


@dataclass
class RawSample:
    """One sample as stored: fields (C, H, W) cropped to γ's grid, γ (H, W), both still scaled."""

    split: str
    sample_id: str
    fields: np.ndarray
    gamma: np.ndarray
    x_path: Path
    y_path: Path
    halo: tuple[int, int]
    halo_note: str | None = None  # the halo is no periodic copy: cropped, unused


def original_ids(src: Path, split: str, note: Log) -> list[str]:
    """Ids of ``split``, augmented copies left out (with a note saying so)."""
    ids = list_ids(src, split)
    augmented = [i for i in ids if i.endswith(AUGMENTED_SUFFIXES)]
    if augmented:
        note(
            f"{split}: skipped {len(augmented)} augmented copies ({', '.join(AUGMENTED_SUFFIXES)} "
            "suffixes; the original's augmentation was buggy and training augments itself)"
        )
    return [i for i in ids if i not in augmented]


def read_original_sample(
    src: Path, split: str, sample_id: str, periodic: tuple[bool, bool]
) -> RawSample:
    x_path, y_path = sample_paths(src, split, sample_id)
    padded, gamma = load_array(x_path), load_array(y_path)
    if gamma.ndim != 2:
        raise DatasetError(f"{y_path}: γ must be 2-D (H, W); got shape {gamma.shape}")
    if padded.ndim != 3 or padded.shape[0] not in (3, 4):
        raise DatasetError(
            f"{x_path}: expected (3, H, W) alpha_i_minus, alpha_j_minus, w (a 4th channel, the "
            f"distance map, is allowed); got {padded.shape}"
        )
    padded = padded[:3]
    fields = crop_halo(padded, gamma.shape, x_path)
    halo = halo_widths(padded.shape, gamma.shape)
    problem, halo_note = check_periodic_halo(padded, fields, halo, *periodic)
    problem = problem or misplaced_halo(padded, gamma, halo, periodic)
    if problem:
        raise DatasetError(f"{x_path}: {problem}")
    for name, array, path in (("inputs", fields, x_path), ("γ", gamma, y_path)):
        if not np.isfinite(array).all():
            raise DatasetError(f"{path}: {name} contain NaN or infinite values")
    return RawSample(split, sample_id, fields, gamma, x_path, y_path, halo, halo_note)


def scaled_evidence(samples: list[RawSample]) -> str | None:
    """Why the stored values look scaled (None: they could be raw).

    Raw diffusivities, areas and γ are never negative; standardized ones are. Min-max scaled
    ones all lie in [0, 1].
    """
    for sample in samples:
        for name, array, path in (
            ("inputs", sample.fields, sample.x_path),
            ("γ", sample.gamma, sample.y_path),
        ):
            if (array < 0).any():
                return f"{path} has negative {name}, as standardized data have"
    if all(0 <= s.fields.min() and s.fields.max() <= 1 and s.gamma.max() <= 1 for s in samples):
        return (
            f"every value of the {len(samples)} samples lies in [0, 1], as min-max scaled data do"
        )
    return None


def scaling_none(evidence: str | None, advice: str) -> Scaling:
    """``--scaling none``: no scaling, refused where values are negative (``evidence``), as
    standardized ones are; ``advice`` says what to give instead."""
    if evidence and "negative" in evidence:
        raise DatasetError(f"--scaling none, but {evidence}; {advice}")
    return Scaling()


def scaling_named_by(statistics: Path) -> Scaling:
    """The scaling of a statistics file, told by its name (``dict_std_mean.txt`` or
    ``dict_min_max.txt``), read from it."""
    modes = [m for m, (name, _) in STATISTICS_FILES.items() if Path(statistics).name == name]
    if not modes:
        raise DatasetError(
            f"cannot tell the scaling of {statistics} from its name; pass --scaling "
            "standardize or --scaling minmax"
        )
    return read_scaling(statistics, modes[0])


def resolve_scaling(
    src: Path, requested: str, statistics: Path | None, samples: list[RawSample], note: Log
) -> Scaling:
    """The scaling to undo: the one requested, or (auto) the one whose statistics file is in
    ``src``; scaled-looking data without statistics are refused rather than taken as raw."""
    if requested not in SCALINGS:
        raise ValueError(f"unknown scaling {requested!r}; choose one of {SCALINGS}")
    evidence = scaled_evidence(samples)
    if requested == "none":
        return scaling_none(
            evidence, "give the statistics file (dict_std_mean.txt) and --scaling standardize"
        )
    if requested != "auto":
        name = STATISTICS_FILES[requested][0]
        return read_scaling(statistics or src / name, requested)
    if statistics is not None:
        return scaling_named_by(statistics)
    present = [m for m, (name, _) in STATISTICS_FILES.items() if (src / name).is_file()]
    if len(present) > 1:
        raise DatasetError(
            f"{src} holds both {STATISTICS_FILES['standardize'][0]} and "
            f"{STATISTICS_FILES['minmax'][0]}; pass --scaling standardize or --scaling minmax"
        )
    if present:
        note(f"scaling: {present[0]}, undone with {src / STATISTICS_FILES[present[0]][0]}")
        return read_scaling(src / STATISTICS_FILES[present[0]][0], present[0])
    if evidence:
        files = " or ".join(str(src / name) for name, _ in STATISTICS_FILES.values())
        raise DatasetError(
            f"the data look scaled ({evidence}) but neither {files} exists; copy the statistics "
            "file of this data set there (or give it with --statistics), or pass --scaling none "
            "if the values are raw"
        )
    note("scaling: none (no statistics file, values look raw)")
    return Scaling()


# --- masks ---------------------------------------------------------------------------------


def union_mask(samples: list[RawSample]) -> np.ndarray:
    """Cells where any sample's stored γ is nonzero (all samples must share a grid)."""
    shapes = {s.gamma.shape for s in samples}
    if len(shapes) > 1:
        raise DatasetError(f"samples have different grid shapes {sorted(shapes)}")
    return np.any([s.gamma != 0 for s in samples], axis=0)


def sample_mask(
    sample: RawSample, scaling: Scaling, shared: np.ndarray | None, warn: Log
) -> np.ndarray:
    """The ocean of ``sample``: γ != 0, except that min-max scaling turned γ's minimum into 0
    too, so there the shared mask (``--mask`` or the union over samples) decides."""
    own = sample.gamma != 0
    if shared is None:
        return own
    if shared.shape != own.shape:
        raise DatasetError(f"the mask {shared.shape} does not fit {sample.y_path} {own.shape}")
    outside = own & ~shared
    if outside.any():
        raise DatasetError(
            f"{sample.y_path} has {int(outside.sum())} nonzero γ values on land of the mask; "
            "the mask belongs to another grid"
        )
    if scaling.mode != "minmax" and (gap := int((shared & ~own).sum())):
        warn(f"{sample.y_path}: {gap} ocean cells of the mask have γ = 0; they are kept as land")
        return own
    return shared


def unscale_stored(
    stored: Sequence[np.ndarray], scaling: Scaling, mask: np.ndarray, periodic: tuple[bool, bool]
) -> list[np.ndarray]:
    """The stored A_i, A_j, W (and γ, when given) with ``scaling`` undone, in the original's
    faces: see ``unscale_sample`` for where min-max scaled zeros are values."""
    south, west = original_open_faces(mask, *periodic)
    w_support = np.ones_like(mask) if (stored[2][~mask] != 0).any() else mask
    supports = (south, west, w_support, mask)[: len(stored)]
    raw = []
    for name, values, support in zip(VARIABLES, stored, supports, strict=False):
        nonzero = values != 0
        if scaling.mode == "minmax":
            nonzero |= support
        raw.append(scaling.unscale(name, values, nonzero))
    return raw


def unscale_sample(
    sample: RawSample,
    scaling: Scaling,
    mask: np.ndarray,
    periodic: tuple[bool, bool],
) -> tuple[np.ndarray, np.ndarray, int]:
    """(fields (3, H, W) on our faces, γ (H, W), face values off the original's open faces).

    Standardizing left zeros at 0, so the nonzero stored values are exactly the scaled ones.
    Min-max scaling also maps each minimum to 0: there the values are undone on every face or
    cell that must carry a value (open faces, ocean cells; w everywhere when it is stored on
    land, as the original's w is).
    """
    raw = unscale_stored([*sample.fields, sample.gamma], scaling, mask, periodic)
    stray = faces_on_land(raw, mask, periodic)
    fields = faces_to_ours(np.stack(raw[:3]), mask, *periodic)
    gamma = np.where(mask, raw[3], 0.0)
    if (bad := int((gamma[mask] <= 0).sum())) > 0:
        raise DatasetError(
            f"{sample.y_path}: after undoing the {scaling.mode} scaling, {bad} ocean cells have "
            f"γ <= 0; the statistics ({scaling.source}) or the scaling mode do not match the data"
        )
    return fields, gamma, stray


def read_all(src: Path, periodic: tuple[bool, bool], note: Log) -> list[RawSample]:
    """Every non-augmented sample of every split of ``src``."""
    samples = []
    for split in SPLITS:
        if not (src / split / "X").is_dir():
            if split == "test":
                note(
                    f"{src} has no test/ split (the original evaluated on valid/): the "
                    "converted set has none; keep a real test split, e.g. generate one"
                )
            continue
        ids = original_ids(src, split, note)
        samples += [read_original_sample(src, split, i, periodic) for i in ids]
    odd = [s for s in samples if s.halo_note]
    if odd:
        others = f" (and {len(odd) - 1} other sample(s))" if len(odd) > 1 else ""
        note(f"{odd[0].x_path}{others}: {odd[0].halo_note}")
    if not any(s.split == "train" for s in samples):
        raise DatasetError(
            f"{src} holds no training sample (train/X/<id>.npz with train/Y/<id>_norm_coeffs.npz)"
        )
    return samples
