"""Ocean grids: cell metrics and land masks.

Both grids are Mercator (isotropic cells, dy = cos(lat) dx) and east-west periodic, with
row 0 the southernmost row and closed boundaries beyond the first and last rows.

- ``python``: the report's toy model, continents along the north and south edges.
- ``global``: ORCA1-like, 292 x 360 cells, 1 degree in longitude from 78S, coastlines from the
  1 km GLOBE land mask shipped by the ``global-land-mask`` package (nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Grid:
    """Metrics (km) of an (H, W) grid and its ocean mask (True = ocean).

    ``lat`` (H,) are cell-centre latitudes and ``lat_north`` (H,) the latitudes of the north
    faces, in degrees; ``lon`` (W,) cell-centre longitudes.
    """

    name: str
    lat: np.ndarray
    lat_north: np.ndarray
    lon: np.ndarray
    mask: np.ndarray
    periodic_x: bool = True
    periodic_y: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def dlon_rad(self) -> float:
        return 2 * np.pi / self.lon.size

    def _broadcast(self, values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(values[:, None], self.shape).copy()

    def cell_widths(self) -> tuple[np.ndarray, np.ndarray]:
        """(e1t, e2t): cell widths in x and y, (H, W) each."""
        lat_south = np.concatenate([[2 * self.lat[0] - self.lat_north[0]], self.lat_north[:-1]])
        e1t = EARTH_RADIUS_KM * np.cos(np.radians(self.lat)) * self.dlon_rad
        e2t = EARTH_RADIUS_KM * np.radians(self.lat_north - lat_south)
        return self._broadcast(e1t), self._broadcast(e2t)

    def north_face_metrics(self) -> tuple[np.ndarray, np.ndarray]:
        """(face length along x, distance between the centres across the face), (H, W)."""
        length = EARTH_RADIUS_KM * np.cos(np.radians(self.lat_north)) * self.dlon_rad
        lat_next = np.concatenate([self.lat[1:], [2 * self.lat_north[-1] - self.lat[-1]]])
        distance = EARTH_RADIUS_KM * np.radians(lat_next - self.lat)
        return self._broadcast(length), self._broadcast(distance)

    def east_face_metrics(self) -> tuple[np.ndarray, np.ndarray]:
        """(face length along y, distance between the centres across the face), (H, W)."""
        e1t, e2t = self.cell_widths()
        return e2t, e1t


def mercator_latitudes(rows: int, dlon_deg: float, south: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre and north-face latitudes of isotropic Mercator rows starting at ``south``."""
    step = np.radians(dlon_deg)
    y_south = np.log(np.tan(np.pi / 4 + np.radians(south) / 2))
    y_faces = y_south + step * np.arange(rows + 1)
    y_centres = y_south + step * (np.arange(rows) + 0.5)

    def to_lat(y: np.ndarray) -> np.ndarray:
        return np.degrees(2 * np.arctan(np.exp(y)) - np.pi / 2)

    return to_lat(y_centres), to_lat(y_faces[1:])


def python_grid(height: int = 200, width: int = 360) -> Grid:
    """The report's toy grid: symmetric Mercator rows, wavy continents north and south."""
    if height < 4 or width < 4:
        raise ValueError(f"python grid needs at least 4x4 cells; got {height}x{width}")
    dlon = 360.0 / width
    half_span = height * np.radians(dlon) / 2
    south = np.degrees(2 * np.arctan(np.exp(-half_span)) - np.pi / 2)
    lat, lat_north = mercator_latitudes(height, dlon, south)
    lon = (np.arange(width) + 0.5) * dlon
    lam = np.radians(lon)
    limit = 0.85 * abs(south)
    south_coast = -limit + 0.1 * limit * (np.sin(2 * lam) + 0.5 * np.sin(5 * lam + 1.0))
    north_coast = limit + 0.1 * limit * (np.cos(3 * lam) + 0.5 * np.sin(4 * lam + 2.0))
    mask = (lat[:, None] > south_coast[None, :]) & (lat[:, None] < north_coast[None, :])
    mask[0, :] = mask[-1, :] = False
    return Grid("python", lat, lat_north, lon, mask)


def global_grid(height: int = 292, width: int = 360, south: float = -78.0) -> Grid:
    """ORCA1-like Mercator grid with real coastlines (majority of 3x3 sub-samples per cell)."""
    from global_land_mask import globe

    dlon = 360.0 / width
    lat, lat_north = mercator_latitudes(height, dlon, south)
    lon = (np.arange(width) + 0.5) * dlon
    lat_south = np.concatenate([[2 * lat[0] - lat_north[0]], lat_north[:-1]])
    offsets = (np.arange(3) + 0.5) / 3
    sub_lat = lat_south[:, None] + offsets[None, :] * (lat_north - lat_south)[:, None]
    sub_lon = (np.arange(width)[:, None] + offsets[None, :]) * dlon
    sub_lon = np.where(sub_lon > 180, sub_lon - 360, sub_lon)
    lat_mesh = np.broadcast_to(sub_lat[:, :, None, None], (height, 3, width, 3))
    lon_mesh = np.broadcast_to(sub_lon[None, None, :, :], (height, 3, width, 3))
    land = globe.is_land(lat_mesh.ravel(), lon_mesh.ravel()).reshape(height, 3, width, 3)
    mask = land.mean(axis=(1, 3)) < 0.5
    return Grid("global", lat, lat_north, lon, mask)


GRIDS = {"python": python_grid, "global": global_grid}


def make_grid(name: str, height: int | None = None, width: int | None = None) -> Grid:
    """Build a named grid; ``height``/``width`` override its default size."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; choose one of {sorted(GRIDS)}")
    sizes = {k: v for k, v in (("height", height), ("width", width)) if v is not None}
    return GRIDS[name](**sizes)
