"""Artificial input fields (A_i, A_j, W) from smooth random length-scale fields.

Length scales are drawn in grid-cell units (D = s * cell width, s in [min, max]) so that the
kernel width in cells, sqrt(A/W) ~ s / sqrt(2M - 4), stays resolved at every latitude. The
cells are the grid's own (``units: cells``, the default, and every data set made before the
option), so a finer grid draws a shorter ocean; or those of a reference grid of
``reference_width`` columns (``units: reference``): the smooth fields are drawn on the
reference grid and interpolated, and the scales counted in its cells, so one seed gives the
same physical ocean on grids of every resolution (2°, 1°, ½°), seen with more cells.
kappa = D^2/(2M - 4) (Weaver & Mirouze 2013); A_i = kappa_y * e1v / e2v on north faces,
A_j = kappa_x * e2u / e1u on east faces, W = e1t * e2t; faces touching land are closed (0).
Every sample is reproducible from (grid, seed, index).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import ndtr

from normcoef.data.grids import Grid
from normcoef.physics.diffusion import diffusivity_from_length_scale, open_faces


@dataclass
class FieldParameters:
    """How random length scales are drawn (in the cells of ``units``); also the
    `dataset.fields` schema."""

    min_cells: float = 1.5
    max_cells: float = 4.0
    correlation_cells: float = 12.0
    anisotropic: bool = True
    steps: int = 10
    units: str = "cells"
    """cells: the grid's own; reference: cells of a grid of ``reference_width`` columns."""
    reference_width: int = 360

    def __post_init__(self) -> None:
        """Messages start with the field name; ``normcoef.config.validate`` adds the key path."""
        if not 0 < self.min_cells <= self.max_cells < math.inf:
            raise ValueError(
                f"min_cells={self.min_cells}, max_cells={self.max_cells}: "
                "need 0 < min_cells <= max_cells (finite)"
            )
        if not 0 < self.correlation_cells < math.inf:
            raise ValueError(
                f"correlation_cells={self.correlation_cells}: correlation_cells must be > 0 "
                "(finite, in grid cells)"
            )
        # M even (L^{1/2} is M/2 steps) and > 2 (kappa = D^2/(2M - 4) above).
        if self.steps < 4 or self.steps % 2:
            raise ValueError(f"steps={self.steps}: must be an even number >= 4")
        if self.units not in LENGTH_UNITS:
            raise ValueError(f"units={self.units}: choose one of {', '.join(LENGTH_UNITS)}")
        if self.reference_width < 4:
            raise ValueError(f"reference_width={self.reference_width}: must be >= 4 columns")

    def described(self) -> dict:
        """The parameters a data set's metadata records; the reference grid only when used,
        so data sets made before ``units`` existed still match the default."""
        values = asdict(self)
        if self.units == "cells":
            del values["units"], values["reference_width"]
        return values


LENGTH_UNITS = ("cells", "reference")


def smooth_unit_field(
    rng: np.random.Generator, shape: tuple[int, int], correlation: float
) -> np.ndarray:
    """Smooth field in (0, 1): Gaussian-filtered white noise (periodic in x) through Φ."""
    noise = rng.standard_normal(shape)
    smooth = gaussian_filter(noise, correlation, mode=("nearest", "wrap"))
    return ndtr(smooth / max(smooth.std(), 1e-12))


def reference_shape(shape: tuple[int, int], reference_width: int) -> tuple[int, int]:
    """The reference grid of a grid: ``reference_width`` columns over the same longitudes,
    rows in proportion (292x360 for the 146x180, 292x360 and 584x720 global grids)."""
    height, width = shape
    return max(1, round(height * reference_width / width)), reference_width


def resample(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``field`` (h, w), linear at the centres of a (H, W) grid over the same extent: periodic
    in x (the wrap is padded on), the edge held in y."""
    (h, w), (height, width) = field.shape, shape
    rows = (np.arange(height) + 0.5) * h / height - 0.5
    columns = (np.arange(width) + 0.5) * w / width - 0.5 + 2  # + 2: the padded wrap
    padded = np.pad(field, ((0, 0), (2, 2)), mode="wrap")
    y, x = np.meshgrid(rows, columns, indexing="ij")
    return map_coordinates(padded, [y, x], order=1, mode="nearest")


def sample_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def length_scales(
    grid: Grid, params: FieldParameters, seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """(s_x, s_y) length scales in the grid's own cells for sample ``index``."""
    rng = sample_rng(seed, index)
    shape, per_cell = grid.shape, 1.0
    if params.units == "reference":
        shape = reference_shape(grid.shape, params.reference_width)
        per_cell = grid.shape[1] / params.reference_width  # grid cells per reference cell

    def draw() -> np.ndarray:
        unit = smooth_unit_field(rng, shape, params.correlation_cells)
        unit = unit if shape == grid.shape else resample(unit, grid.shape)
        return per_cell * (params.min_cells + (params.max_cells - params.min_cells) * unit)

    s_x = draw()
    return (s_x, s_x) if not params.anisotropic else (s_x, draw())


def make_fields(grid: Grid, params: FieldParameters, seed: int, index: int) -> np.ndarray:
    """(3, H, W) float64 fields [A_i, A_j, W] of sample ``index``; closed faces are 0."""
    s_x, s_y = length_scales(grid, params, seed, index)
    e1t, e2t = grid.cell_widths()
    kappa_x = diffusivity_from_length_scale(s_x * e1t, params.steps)
    kappa_y = diffusivity_from_length_scale(s_y * e2t, params.steps)
    # Face diffusivities: arithmetic mean of the two cells sharing the face.
    kappa_north = 0.5 * (kappa_y + np.roll(kappa_y, -1, axis=0))
    kappa_east = 0.5 * (kappa_x + np.roll(kappa_x, -1, axis=1))
    north_length, north_distance = grid.north_face_metrics()
    east_length, east_distance = grid.east_face_metrics()
    north, east = open_faces(grid.mask, grid.periodic_x, grid.periodic_y)
    a_i = np.where(north, kappa_north * north_length / north_distance, 0.0)
    a_j = np.where(east, kappa_east * east_length / east_distance, 0.0)
    return np.stack([a_i, a_j, e1t * e2t])
