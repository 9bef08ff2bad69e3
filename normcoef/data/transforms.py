"""Flips and quarter turns of C-grid samples for data augmentation (report section 6.1).

A sample is ``fields`` (C, H, W) with channels A_i, A_j, W[, signed distance], an ocean
``mask`` (H, W) and the target γ (H, W). Row 0 is the southern edge; ``A_i[i, j]`` lives on the
north face of cell (i, j) and ``A_j[i, j]`` on its east face. Cell fields (W, distance, mask,
γ) move with their cells; face fields must also land on the faces that are north/east of the
new cells, otherwise the transformed input describes another operator and its exact Γ is no
longer the transformed Γ (tests/test_transforms.py checks this against exact coefficients).

Every transform is a composition of three elementary steps on the array axes:

- ``flip_y`` (reverse rows): the face north of old cell k is south of new cell H-1-k, i.e.
  north of new cell H-2-k, so A_i moves one row south: ``roll(flipud(A_i), -1, axis=0)``.
- ``flip_x`` (reverse columns): likewise A_j moves one column west.
- ``transpose``: rows become columns, so north faces become east faces: A_i and A_j swap,
  and so do the periodicities of the two axes.

The face the roll wraps around is the seam between the last and the first row (column). On a
periodic axis the seam maps onto itself, so the rolled value is right; on a closed axis it is
the closed boundary, where no flux passes, and it gets the canonical value 0.

Rotations follow ``np.rot90`` on the (H, W) arrays, k = 1, 2, 3. Note that with row 0 south
(north up on a map) ``np.rot90`` turns east into south: a clockwise quarter turn of the map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

_CELL_STEPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "flip_y": lambda a: np.flip(a, axis=-2),
    "flip_x": lambda a: np.flip(a, axis=-1),
    "transpose": lambda a: np.swapaxes(a, -2, -1),
}

# Elementary steps, applied left to right. np.rot90(m) = transpose(flip(m, axis=1)) and
# np.rot90(m, 3) = flip(transpose(m), axis=1).
TRANSFORMS: dict[str, tuple[str, ...]] = {
    "identity": (),
    "hflip": ("flip_x",),
    "vflip": ("flip_y",),
    "rot90": ("flip_x", "transpose"),
    "rot180": ("flip_y", "flip_x"),
    "rot270": ("transpose", "flip_x"),
}
AUGMENTATIONS: tuple[str, ...] = tuple(name for name in TRANSFORMS if name != "identity")
QUARTER_TURNS: tuple[str, ...] = ("rot90", "rot270")
# File-name suffixes of augmented copies, as in the original code.
SUFFIX: dict[str, str] = {
    "identity": "",
    "hflip": "_flip_hor",
    "vflip": "_flip_vert",
    "rot90": "_90",
    "rot180": "_180",
    "rot270": "_270",
}
PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "flips": ("hflip", "vflip", "rot180"),
    "all": AUGMENTATIONS,
}


class Sample(NamedTuple):
    """One training sample: fields (C, H, W), ocean mask (H, W) bool, target γ (H, W)."""

    fields: np.ndarray
    mask: np.ndarray
    gamma: np.ndarray


def _steps(name: str) -> tuple[str, ...]:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; choose one of {list(TRANSFORMS)}")
    return TRANSFORMS[name]


def transformed_periodicity(
    name: str, periodic_x: bool = True, periodic_y: bool = False
) -> tuple[bool, bool]:
    """(periodic_x, periodic_y) of the grid after ``name``: quarter turns swap them."""
    for step in _steps(name):
        if step == "transpose":
            periodic_x, periodic_y = periodic_y, periodic_x
    return periodic_x, periodic_y


def transform_cells(name: str, array: np.ndarray) -> np.ndarray:
    """Move a cell field (..., H, W) (mask, γ, W, distance) with its cells."""
    for step in _steps(name):
        array = _CELL_STEPS[step](array)
    return np.ascontiguousarray(array)


def _field_step(
    step: str, fields: np.ndarray, periodic_x: bool, periodic_y: bool
) -> tuple[np.ndarray, bool, bool]:
    moved = _CELL_STEPS[step](fields)
    if step == "transpose":
        order = [1, 0, *range(2, fields.shape[0])]
        return moved[order], periodic_y, periodic_x
    axis, periodic = (0, periodic_y) if step == "flip_y" else (1, periodic_x)
    # Channel ``axis`` holds the faces crossed when moving along that axis (A_i for rows).
    face = np.roll(moved[axis], -1, axis=axis)
    if not periodic:
        seam: list[int | slice] = [slice(None), slice(None)]
        seam[axis] = -1
        face[tuple(seam)] = 0.0
    moved = moved.copy()
    moved[axis] = face
    return moved, periodic_x, periodic_y


def transform_fields(
    name: str, fields: np.ndarray, periodic_x: bool = True, periodic_y: bool = False
) -> np.ndarray:
    """Transform physical fields (C, H, W) [A_i, A_j, W, ...]; channels from 2 on are cells.

    ``periodic_x``/``periodic_y`` describe the input grid; they decide whether the face at
    the seam keeps its value or is the closed boundary (0).
    """
    fields = np.asarray(fields)
    if fields.ndim != 3 or fields.shape[0] < 3:
        raise ValueError(
            f"fields must have shape (C, H, W) with C >= 3 (A_i, A_j, W[, ...]); got {fields.shape}"
        )
    for step in _steps(name):
        fields, periodic_x, periodic_y = _field_step(step, fields, periodic_x, periodic_y)
    return np.ascontiguousarray(fields)


def transform_sample(
    name: str,
    fields: np.ndarray,
    mask: np.ndarray,
    gamma: np.ndarray,
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> Sample:
    """Transform physical fields, mask and γ together; see ``transformed_periodicity``."""
    return Sample(
        transform_fields(name, fields, periodic_x, periodic_y),
        transform_cells(name, mask),
        transform_cells(name, gamma),
    )


def check_augmentation_supported(
    names: Iterable[str], periodic_x: bool, periodic_y: bool, shape: tuple[int, int]
) -> None:
    """Raise ValueError when a transform yields samples the training set-up cannot use.

    Quarter turns swap the axes: an east-west periodic, north-south closed grid becomes
    north-south periodic, which a model padding x circularly cannot represent, and an
    (H, W) grid becomes (W, H), which does not stack with the other samples.
    """
    turns = [name for name in names if name in QUARTER_TURNS]
    if not turns:
        return
    fix = "use hflip, vflip, rot180 or the 'flips' preset instead"
    if periodic_x != periodic_y:
        raise ValueError(
            f"{turns} swap the periodicity of the grid (periodic_x={periodic_x}, "
            f"periodic_y={periodic_y}): the rotated samples would be periodic along the other "
            f"axis, which the model's circular x padding cannot learn; {fix}"
        )
    if shape[0] != shape[1]:
        raise ValueError(
            f"{turns} turn the {shape[0]}x{shape[1]} grid into {shape[1]}x{shape[0]}: rotated "
            f"samples would not match the others' shape; {fix}"
        )


def parse_augmentation(spec: str | Sequence[str] | None) -> list[str]:
    """Transform names from a config value: a preset, one name, or a list of either."""
    allowed = [*PRESETS, *AUGMENTATIONS]
    items = [spec] if isinstance(spec, str) else list(spec or [])
    names: list[str] = []
    for item in items:
        if item in PRESETS:
            expanded = PRESETS[item]
        elif item in AUGMENTATIONS:
            expanded = (item,)
        else:
            raise ValueError(f"unknown augmentation {item!r}; choose from {allowed}")
        names += [name for name in expanded if name not in names]
    return names


def expand_offline(
    samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    transforms: Sequence[str],
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> list[Sample]:
    """Each sample followed by its transformed copies, in the order of ``transforms``.

    Copy k of sample ``id`` is named ``id + SUFFIX[name_k]`` (the original has suffix "").
    """
    expanded: list[Sample] = []
    for fields, mask, gamma in samples:
        check_augmentation_supported(transforms, periodic_x, periodic_y, np.shape(mask))
        expanded.append(Sample(fields, mask, gamma))
        expanded += [
            transform_sample(name, fields, mask, gamma, periodic_x, periodic_y)
            for name in transforms
        ]
    return expanded


def random_transform(rng: np.random.Generator, transforms: Sequence[str]) -> str:
    """Online mode: "identity" or one of ``transforms``, uniformly."""
    choices = ("identity", *transforms)
    return choices[int(rng.integers(len(choices)))]
