"""Artificial input fields (A_i, A_j, W) from smooth random length-scale fields.

Length scales are drawn in grid-cell units (D = s * cell width, s in [min, max]) so that the
kernel width in cells, sqrt(A/W) ~ s / sqrt(2M - 4), stays resolved at every latitude.
kappa = D^2/(2M - 4) (Weaver & Mirouze 2013); A_i = kappa_y * e1v / e2v on north faces,
A_j = kappa_x * e2u / e1u on east faces, W = e1t * e2t; faces touching land are closed (0).
Every sample is reproducible from (grid, seed, index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import ndtr

from normcoef.data.grids import Grid
from normcoef.physics.diffusion import diffusivity_from_length_scale, open_faces


@dataclass
class FieldParameters:
    """How random length scales are drawn (all in grid cells); also the `dataset.fields` schema."""

    min_cells: float = 1.5
    max_cells: float = 4.0
    correlation_cells: float = 12.0
    anisotropic: bool = True
    steps: int = 10

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


def smooth_unit_field(rng: np.random.Generator, grid: Grid, correlation: float) -> np.ndarray:
    """Smooth field in (0, 1): Gaussian-filtered white noise (periodic in x) through Φ."""
    noise = rng.standard_normal(grid.shape)
    smooth = gaussian_filter(noise, correlation, mode=("nearest", "wrap"))
    return ndtr(smooth / max(smooth.std(), 1e-12))


def sample_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def length_scales(
    grid: Grid, params: FieldParameters, seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """(s_x, s_y) length scales in grid cells for sample ``index``."""
    rng = sample_rng(seed, index)
    span = params.max_cells - params.min_cells
    s_x = params.min_cells + span * smooth_unit_field(rng, grid, params.correlation_cells)
    if not params.anisotropic:
        return s_x, s_x
    s_y = params.min_cells + span * smooth_unit_field(rng, grid, params.correlation_cells)
    return s_x, s_y


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
