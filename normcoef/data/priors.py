"""Which physics prior γ_prior a network corrects, and where a grid's geometry table lives.

Two priors (``PRIORS``), chosen by ``conf/prior`` and recorded in every checkpoint:

- ``uniform``: the unbounded lattice with each cell's coefficients
  (``normcoef.physics.prior``); no walls. Checkpoints from before the choice have it.
- ``geometry``: the same, times the exact wall factor of uniform coefficients on the grid's
  own mask (``normcoef.physics.geometry_prior``): coasts and closed edges included.

A geometry table belongs to a grid (mask, M, periodicity) and to the nodes the network was
trained with. It is made once, with a progress bar, and saved as
``prior-geometry-<key>.npz`` in the first writable of the prior's ``directories``: beside the
grid in a data set (training and ``evaluate --dataset`` put the data set's root first), beside
a shipped network, and in the user's cache (``NORMCOEF_CACHE_DIR``, else
``~/.cache/normcoef``) for a user's own grid in ``predict``. A table found there is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from normcoef.data.info import DatasetInfo
from normcoef.data.storage import DamagedFileError, DatasetError, load_npz_arrays, save_npz
from normcoef.physics.geometry_prior import (
    DEFAULT_NODES,
    NODE_ROUNDING,
    GeometryTable,
    grid_digest,
    log_nodes,
    sample_reference_ratios,
)
from normcoef.physics.prior import uniform_lattice_prior

__all__ = ["DEFAULT_NODES", "PRIORS", "CellPrior", "GeometryPrior", "UniformPrior", "make_prior"]

PRIORS: tuple[str, ...] = ("geometry", "uniform")
"""``geometry`` (walls included) is the default for new runs; ``uniform`` for comparison."""
TABLE_PREFIX = "prior-geometry-"
COVER_SHARE = 0.01
"""A geometry prior's nodes are placed again over inputs of which more than this share of
cells lie outside them (``GeometryPrior.covering``): another resolution, not a few outliers."""


def check_prior(name: str) -> None:
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {', '.join(PRIORS)}")


def cache_dir() -> Path:
    """Where tables for a user's own grids go: ``NORMCOEF_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/normcoef``, else ``~/.cache/normcoef``."""
    explicit = os.environ.get("NORMCOEF_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "normcoef"


class CellPrior(Protocol):
    """γ_prior (H, W) of one sample's physical fields (A_i, A_j, W first) on its mask."""

    def __call__(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UniformPrior:
    """The unbounded-lattice prior, walls ignored."""

    steps: int
    periodic_x: bool = True
    periodic_y: bool = False

    def __call__(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        return uniform_lattice_prior(
            fields[:3], ocean, self.steps, self.periodic_x, self.periodic_y
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": "uniform"}


@dataclass
class GeometryPrior:
    """The wall-aware prior: one ``GeometryTable`` per grid (ocean mask and areas W) met,
    found in ``directories``, ``read_only`` or the cache, else made into the first of them
    that takes it."""

    steps: int
    periodic_x: bool
    periodic_y: bool
    log_alpha: tuple[float, ...]
    log_beta: tuple[float, ...]
    directories: tuple[Path, ...] = ()
    """Searched first to last, then the cache; a made table goes to the first that takes it."""
    read_only: tuple[Path, ...] = ()
    """Searched after ``directories``, never written (a shipped network's folder)."""
    _tables: dict[str, GeometryTable] = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, fields: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        return self.table(ocean, fields[2]).prior(fields[:3], ocean)

    @property
    def periodicity(self) -> tuple[bool, bool]:
        return self.periodic_x, self.periodic_y

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "geometry",
            "log_alpha": list(self.log_alpha),
            "log_beta": list(self.log_beta),
        }

    def stored_in(self, *directories: Path, write: bool = True) -> GeometryPrior:
        """This prior looking first in ``directories`` (a data set's root; with ``write``
        False, a folder only read, e.g. a shipped network's), then where it looked before;
        tables already read are kept."""
        added = tuple(Path(d) for d in directories)
        if not write:
            kept = tuple(d for d in self.read_only if d not in added)
            return replace(self, read_only=added + kept, _tables=self._tables)
        kept = tuple(d for d in self.directories if d not in added)
        return replace(self, directories=added + kept, _tables=self._tables)

    def nodes_outside(self, fields: Sequence[np.ndarray], oceans: Sequence[np.ndarray]) -> float:
        """The share of the samples' cells whose reference ratio (either axis) lies past the
        nodes by more than one rounding step: where the table would be read clamped."""
        return self._outside(self._log_ratios(fields, oceans))

    def _log_ratios(
        self, fields: Sequence[np.ndarray], oceans: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """log reference ratios of the samples' cells, x then y (``sample_reference_ratios``)."""
        pairs = [
            sample_reference_ratios(sample[:3], ocean, self.periodicity)
            for sample, ocean in zip(fields, oceans, strict=True)
        ]
        return (
            np.log(np.concatenate([x for x, _ in pairs] or [np.empty(0)])),
            np.log(np.concatenate([y for _, y in pairs] or [np.empty(0)])),
        )

    def _outside(self, log_ratios: tuple[np.ndarray, np.ndarray]) -> float:
        outside = total = 0
        for log_ratio, nodes in zip(log_ratios, (self.log_alpha, self.log_beta), strict=True):
            low, high = nodes[0] - NODE_ROUNDING, nodes[-1] + NODE_ROUNDING
            outside += int(((log_ratio < low) | (log_ratio > high)).sum())
            total += log_ratio.size
        return outside / max(total, 1)

    def covering(
        self, fields: Sequence[np.ndarray], oceans: Sequence[np.ndarray]
    ) -> tuple[GeometryPrior, float]:
        """This prior with its nodes placed over the samples' ratios (as many per axis) when
        more than ``COVER_SHARE`` of their cells lie outside its own, and that share.

        The nodes are the table's coordinates, not something a network learned: the prior is
        exact for reference fields wherever its table is made. On another resolution the
        kernel widths in cells scale with it (2x finer: ratios 4x larger), and a table read
        clamped at the training's nodes is off by tens of percent at every coast."""
        log_x, log_y = self._log_ratios(fields, oceans)
        share = self._outside((log_x, log_y))
        if share <= COVER_SHARE:
            return self, share
        alpha = log_nodes(np.exp(log_x), len(self.log_alpha))
        beta = log_nodes(np.exp(log_y), len(self.log_beta))
        return replace(self, log_alpha=alpha, log_beta=beta, _tables={}), share

    def key(self, ocean: np.ndarray, area: np.ndarray) -> str:
        """The table's name: its grid (mask, areas), M, periodicity and nodes."""
        facts = json.dumps(
            [
                grid_digest(ocean, area),
                self.steps,
                self.periodic_x,
                self.periodic_y,
                # -0.0 and 0.0 are one node (a checkpoint may hold either).
                [x + 0.0 for x in self.log_alpha],
                [x + 0.0 for x in self.log_beta],
            ]
        )
        return hashlib.sha256(facts.encode()).hexdigest()[:16]

    def table(self, ocean: np.ndarray, area: np.ndarray) -> GeometryTable:
        """The table of the grid (``ocean`` mask, (H, W) ``area``): in memory, else from a
        file, else made and saved."""
        key = self.key(ocean, area)
        if key not in self._tables:
            self._tables[key] = self._read(key, ocean, area) or self._make(ocean, area, key)
        return self._tables[key]

    def _read(self, key: str, ocean: np.ndarray, area: np.ndarray) -> GeometryTable | None:
        """The table named ``key`` in the first folder holding one, checked to be the grid's
        and this prior's (a renamed or copied file is refused, not used)."""
        for directory in (*self.directories, *self.read_only, cache_dir()):
            path = directory / f"{TABLE_PREFIX}{key}.npz"
            if path.is_file():
                try:
                    table = GeometryTable.from_arrays(load_npz_arrays(path))
                    table.check_matches(ocean, area, self.steps, self.periodicity)
                    return table
                except DamagedFileError as error:
                    raise DatasetError(
                        f"{path} {error.problem}; remove it: the geometry table is made again "
                        "on first use"
                    ) from error
                except (KeyError, ValueError, TypeError) as error:
                    raise DatasetError(
                        f"{path} is not a geometry table ({error}); remove it: the table is "
                        "made again on first use"
                    ) from error
        return None

    def _make(self, ocean: np.ndarray, area: np.ndarray, key: str) -> GeometryTable:
        nodes = len(self.log_alpha) * len(self.log_beta)
        height, width = ocean.shape
        print(
            f"making the geometry prior's table for this {height}x{width} grid "
            f"({int(ocean.sum())} ocean cells, M = {self.steps}): {nodes} exact solves, once "
            "(1-4 minutes for a 292x360 grid on one core)",
            file=sys.stderr,
        )
        start = time.perf_counter()
        with tqdm(total=nodes, desc="geometry table") as bar:
            table = GeometryTable.build(
                ocean,
                area,
                self.steps,
                self.periodicity,
                (self.log_alpha, self.log_beta),
                on_node=bar.update,
            )
        saved = self._save(table, key)
        where = f"saved to {saved}" if saved else "not saved (no writable folder)"
        print(
            f"geometry table made in {time.perf_counter() - start:.0f} s, {where}", file=sys.stderr
        )
        return table

    def _save(self, table: GeometryTable, key: str) -> Path | None:
        """Into the first folder that takes it; None if none does (the table still serves)."""
        for directory in (*self.directories, cache_dir()):
            path = directory / f"{TABLE_PREFIX}{key}.npz"
            try:
                save_npz(path, **table.to_arrays())
            except OSError:
                continue
            return path
        return None


def training_ratios(fields: np.ndarray, ocean: np.ndarray, info: DatasetInfo) -> tuple:
    """Reference ratios (``sample_reference_ratios``) of the samples (N, 3, H, W) on masks
    (N, H, W), concatenated: x, y."""
    pairs = [
        sample_reference_ratios(f[:3], o, info.periodicity)
        for f, o in zip(fields, ocean, strict=True)
    ]
    return np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])


def make_prior(
    name: str,
    info: DatasetInfo,
    fields: np.ndarray | None = None,
    ocean: np.ndarray | None = None,
    *,
    nodes: int = DEFAULT_NODES,
    directories: tuple[Path, ...] = (),
) -> CellPrior:
    """The prior ``name`` on ``info``'s grid and M. ``geometry`` places its ``nodes`` per axis
    over the (α, β) of the training samples ``fields`` (N, 3, H, W) on ``ocean`` (N, H, W)."""
    check_prior(name)
    placed = None
    if name == "geometry":
        if fields is None or ocean is None or len(fields) == 0:
            raise ValueError("the geometry prior places its nodes on training samples; none given")
        alpha, beta = training_ratios(fields, ocean, info)
        placed = (log_nodes(alpha, nodes), log_nodes(beta, nodes))
    return _prior(name, info, placed, directories)


def recorded_prior(data: dict[str, Any] | None) -> dict[str, Any]:
    """The prior a checkpoint's statistics record (``to_dict``); none recorded: ``uniform``,
    the only prior before the choice existed."""
    return data or {"name": "uniform"}


def prior_from_dict(data: dict[str, Any] | None, info: DatasetInfo) -> CellPrior:
    """The prior a checkpoint recorded (``recorded_prior``), on ``info``'s grid and M."""
    data = recorded_prior(data)
    name = data.get("name", "uniform")
    placed = None
    if name == "geometry":
        placed = (
            tuple(float(x) for x in data["log_alpha"]),
            tuple(float(x) for x in data["log_beta"]),
        )
    return _prior(name, info, placed)


def _prior(
    name: str,
    info: DatasetInfo,
    nodes: tuple[tuple[float, ...], tuple[float, ...]] | None,
    directories: tuple[Path, ...] = (),
) -> CellPrior:
    """``uniform``, or ``geometry`` at ``nodes`` (log α, log β), on ``info``'s grid and M."""
    check_prior(name)
    if info.steps is None:
        raise ValueError("the prior_residual target needs the number of diffusion steps M")
    if name == "uniform":
        return UniformPrior(info.steps, *info.periodicity)
    assert nodes is not None  # make_prior and prior_from_dict place them
    return GeometryPrior(info.steps, *info.periodicity, *nodes, tuple(Path(d) for d in directories))
