"""The same ocean on a grid k times coarser or finer, and a cell field brought back.

A network trained at one resolution learned corrections with a receptive field counted in
cells, and kernel widths of so many cells; shown a grid 2x finer, it sees every length scale
twice as wide and extrapolates. Coarsened by the ratio of resolutions, the finer grid's inputs
are what it was trained on again. The physics makes that exact in the coefficients: a face
coefficient a = κ·l/d keeps its value when the face's length l and the distance d between
cell centres both grow k times, so a coarse face's coefficient is the mean of the fine faces
of its block; a coarse cell's area W is the sum of its k×k cells'. A coarse cell is ocean
when at least half of its cells are. A grid coarser than the network's is refined the other
way (``refine_fields``): each cell becomes k×k cells of its kind, the coefficients
interpolated, and the network's correction is averaged back over each block.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import map_coordinates

from normcoef.physics.diffusion import open_faces
from normcoef.physics.geometry_prior import neighbourhood_sum

__all__ = ["block_mean", "coarsen_fields", "coarsen_mask", "refine", "refine_fields"]


def check_factor(shape: tuple[int, ...], factor: int) -> None:
    """A grid coarsens by ``factor`` only when its sides divide by it."""
    if factor < 1:
        raise ValueError(f"the coarsening factor must be >= 1; got {factor}")
    if shape[-2] % factor or shape[-1] % factor:
        raise ValueError(
            f"a {shape[-2]}x{shape[-1]} grid does not coarsen by {factor}: its sides must "
            f"divide by {factor}"
        )


def block_sum(values: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) -> (H/k, W/k): the sum of each k×k block."""
    height, width = values.shape
    return values.reshape(height // factor, factor, width // factor, factor).sum(axis=(1, 3))


def block_mean(values: np.ndarray, where: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean of ``values`` over the cells of each k×k block ``where`` is True, and whether
    a block has any (0 where not)."""
    sums = block_sum(np.where(where, values, 0.0), factor)
    counts = block_sum(where.astype(np.int64), factor)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0), counts > 0


def coarsen_mask(ocean: np.ndarray, factor: int) -> np.ndarray:
    """(H/k, W/k) bool: a coarse cell is ocean when at least half of its k×k cells are."""
    check_factor(ocean.shape, factor)
    return block_sum(ocean.astype(np.int64), factor) * 2 >= factor * factor


def fill_from_neighbours(values: np.ndarray, known: np.ndarray, periodic_x: bool) -> np.ndarray:
    """``values`` where ``known``; elsewhere the mean of the known values of the 3x3
    neighbourhood, widened up to 7x7, else the mean of all known ones (as the geometry
    table fills a cell without faces, ``neighbourhood_sum``)."""
    if known.all() or not known.any():
        return values
    periodicity = (periodic_x, False)
    filled, missing = values.copy(), ~known
    for radius in (1, 2, 3):
        sums = neighbourhood_sum(np.where(known, values, 0.0), radius, periodicity)
        counts = neighbourhood_sum(known.astype(float), radius, periodicity)
        found = missing & (counts > 1e-9)
        filled[found] = sums[found] / counts[found]
        missing &= ~found
        if not missing.any():
            return filled
    filled[missing] = values[known].mean()
    return filled


def coarsen_fields(
    fields: np.ndarray, ocean: np.ndarray, factor: int, periodicity: tuple[bool, bool]
) -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) fields [A_i, A_j, W] on ``ocean`` -> the same ocean on a grid ``factor``
    times coarser: (3, H/k, W/k) fields and their mask.

    A coarse face's coefficient is the mean of the open fine faces on it (a = κ·l/d is
    unchanged by the scale); one with none open (the majority rule opened it) takes the mean
    of its block's open faces of that direction, else its neighbours'. A coarse area is the
    sum of its cells'."""
    check_factor(ocean.shape, factor)
    coarse = coarsen_mask(ocean, factor)
    fine_open = open_faces(ocean, *periodicity)
    coarse_open = open_faces(coarse, *periodicity)
    faces = []
    for axis, (coefficient, fine, wanted) in enumerate(
        zip(fields[:2], fine_open, coarse_open, strict=True)
    ):
        # The fine faces on the coarse face: the block's last row (north) or column (east);
        # where none is open, the block's open faces of that direction, then its neighbours'.
        on_face = np.zeros(ocean.shape, bool)
        if axis == 0:
            on_face[factor - 1 :: factor] = True
        else:
            on_face[:, factor - 1 :: factor] = True
        means, known = block_mean(coefficient, fine & on_face, factor)
        inner, inner_known = block_mean(coefficient, fine, factor)
        means = np.where(known, means, inner)
        means = fill_from_neighbours(means, known | inner_known, periodicity[0])
        faces.append(np.where(wanted, means, 0.0))
    area = np.where(np.isfinite(fields[2]), fields[2], 0.0)
    cells = block_sum(np.isfinite(fields[2]).astype(np.int64), factor)
    coarse_area = block_sum(area, factor) * factor * factor / np.maximum(cells, 1)
    return np.stack([*faces, coarse_area]), coarse


def refine(
    values: np.ndarray, coarse: np.ndarray, ocean: np.ndarray, factor: int, periodic_x: bool
) -> np.ndarray:
    """A field on the coarse grid's ocean cells (H/k, W/k) -> (H, W) on the fine grid's:
    bilinear between the centres of ocean coarse cells only (a coast does not pull land
    values in), a fine ocean cell with no ocean coarse cell around it takes the nearest
    ones' mean; 0 on land."""
    check_factor(ocean.shape, factor)
    known = coarse & np.isfinite(values)
    filled = fill_from_neighbours(np.where(known, values, 0.0), known, periodic_x)
    pad = 2
    mode: Literal["wrap", "edge"] = "wrap" if periodic_x else "edge"
    weighted = np.pad(np.where(known, filled, 0.0), ((0, 0), (pad, pad)), mode=mode)
    weights = np.pad(known.astype(float), ((0, 0), (pad, pad)), mode=mode)
    rows = (np.arange(ocean.shape[0]) + 0.5) / factor - 0.5
    columns = (np.arange(ocean.shape[1]) + 0.5) / factor - 0.5 + pad
    y, x = np.meshgrid(rows, columns, indexing="ij")
    numerator = map_coordinates(weighted, [y, x], order=1, mode="nearest")
    denominator = map_coordinates(weights, [y, x], order=1, mode="nearest")
    nearest = map_coordinates(
        np.pad(filled, ((0, 0), (pad, pad)), mode=mode), [y, x], order=0, mode="nearest"
    )
    fine = np.where(denominator > 1e-6, numerator / np.maximum(denominator, 1e-6), nearest)
    return np.where(ocean, fine, 0.0)


def values_at(
    values: np.ndarray, rows: np.ndarray, columns: np.ndarray, periodic_x: bool
) -> np.ndarray:
    """Bilinear values of a (h, w) field at (rows, columns), in its own index coordinates."""
    pad = 2
    mode: Literal["wrap", "edge"] = "wrap" if periodic_x else "edge"
    padded = np.pad(values, ((0, 0), (pad, pad)), mode=mode)
    y, x = np.meshgrid(rows, columns + pad, indexing="ij")
    return map_coordinates(padded, [y, x], order=1, mode="nearest")


def refine_fields(
    fields: np.ndarray, ocean: np.ndarray, factor: int, periodicity: tuple[bool, bool]
) -> tuple[np.ndarray, np.ndarray]:
    """(3, h, w) fields on ``ocean`` -> the same ocean on a grid ``factor`` times finer, each
    coarse cell k×k cells of its own kind: (3, kh, kw) fields and their mask.

    The inverse of ``coarsen_fields`` where the coarse grid holds no detail: a face
    coefficient a = κ·l/d is interpolated at the fine faces (it does not change with the
    scale), an area is shared by the k² cells (interpolated, then scaled by 1/k²)."""
    if factor < 1:
        raise ValueError(f"the refinement factor must be >= 1; got {factor}")
    fine = np.repeat(np.repeat(ocean, factor, axis=0), factor, axis=1)
    fine_open = open_faces(fine, *periodicity)
    coarse_open = open_faces(ocean, *periodicity)
    height, width = fine.shape
    centres_y = (np.arange(height) + 0.5) / factor - 0.5
    centres_x = (np.arange(width) + 0.5) / factor - 0.5
    faces_y = (np.arange(height) + 1.0) / factor - 1.0  # fine north faces, in coarse face rows
    faces_x = (np.arange(width) + 1.0) / factor - 1.0
    refined = []
    for axis, (coefficient, wanted) in enumerate(zip(fields[:2], fine_open, strict=True)):
        known = coarse_open[axis]
        filled = fill_from_neighbours(np.where(known, coefficient, 0.0), known, periodicity[0])
        rows, columns = (faces_y, centres_x) if axis == 0 else (centres_y, faces_x)
        values = values_at(filled, rows, columns, periodicity[0])
        refined.append(np.where(wanted, values, 0.0))
    area = np.where(np.isfinite(fields[2]), fields[2], np.nanmean(fields[2]))
    fine_area = values_at(area, centres_y, centres_x, periodicity[0]) / factor**2
    return np.stack([*refined, fine_area]), fine
