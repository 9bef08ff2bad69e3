"""Signed distance to the coast (report section 4.1), periodic east-west.

The coast is the set of land cells with an ocean 4-neighbour; the distance is measured to the
nearest coast cell, positive in the ocean, negative inland, 0 on the coast. Unlike the
original notebook, the distance wraps across the east-west seam (the date line). With
``walls``, a closed edge of the grid counts as coast too (a land row or column beyond it):
the diffusion reflects from it as from land.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

Metric = Literal["manhattan", "euclidean"]
METRICS: tuple[str, ...] = ("manhattan", "euclidean")


def coast(mask: np.ndarray, periodic_x: bool = True) -> np.ndarray:
    """Land cells with at least one ocean 4-neighbour (neighbours wrap east-west)."""
    ocean = np.asarray(mask, dtype=bool)
    halo = 1 if periodic_x else 0
    padded = np.pad(ocean, ((0, 0), (halo, halo)), mode="wrap")
    cross = ndimage.generate_binary_structure(2, 1)
    near_ocean = ndimage.binary_dilation(padded, cross)[:, halo : padded.shape[1] - halo]
    return near_ocean & ~ocean


def signed_distance(
    mask: np.ndarray,
    metric: Metric = "manhattan",
    periodic_x: bool = True,
    walls: bool = False,
    periodic_y: bool = False,
):
    """(H, W) float signed distance (in cells) to the nearest coast cell; with ``walls``, to
    the nearest coast cell or closed edge (of a non-periodic axis).

    A grid without coast (all ocean or all land) has no distance to speak of: it gets the
    largest possible distance, signed by the cell type.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; choose one of {METRICS}")
    ocean = np.asarray(mask, dtype=bool)
    if walls:
        rows, columns = (0, 0) if periodic_y else (1, 1), (0, 0) if periodic_x else (1, 1)
        padded = np.pad(ocean, (rows, columns), constant_values=False)
        inner = signed_distance(padded, metric, periodic_x)
        return inner[rows[0] : rows[0] + ocean.shape[0], columns[0] : columns[0] + ocean.shape[1]]
    shore = coast(ocean, periodic_x)
    sign = np.where(ocean, 1.0, -1.0)
    if not shore.any():
        return sign * float(sum(ocean.shape))
    width = ocean.shape[1]
    # Tile three copies east-west so distances wrap across the seam, keep the middle one.
    not_coast = ~(np.tile(shore, (1, 3)) if periodic_x else shore)
    if metric == "manhattan":
        distance = ndimage.distance_transform_cdt(not_coast, metric="taxicab")
    else:
        distance = ndimage.distance_transform_edt(not_coast)
    if periodic_x:
        distance = distance[:, width : 2 * width]
    return sign * distance.astype(np.float64)


def standardized_distance(
    mask: np.ndarray, metric: Metric, periodic_x: bool = True, walls: bool = False
):
    """Signed distance standardized over the whole map (the network's 4th channel)."""
    distance = signed_distance(mask, metric, periodic_x, walls)
    std = distance.std()
    return (distance - distance.mean()) / (std if std > 0 else 1.0)
