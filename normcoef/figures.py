"""PNG figures of the error analysis (report Figs. 5, 6 and 11).

Figures are built with matplotlib's object API and saved through the Agg canvas, so nothing
needs a display and pyplot's global state is never touched (safe in sweeps and workers).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_error_by_distance(
    distances: np.ndarray,
    mean_abs_eps: dict[str, np.ndarray],
    path: str | os.PathLike[str],
) -> Path:
    """Mean |ε| against distance to the coast (Fig. 5), one curve per method (label -> curve
    from ``metrics.error_by_distance``), on a log axis: coastal errors are often 10-100x the
    open ocean's."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for label, curve in mean_abs_eps.items():
        ax.plot(distances, curve, marker="o", markersize=3, label=label)
    if all(np.all(np.asarray(c) > 0) for c in mean_abs_eps.values()):
        ax.set_yscale("log")
    ax.set_xlabel("distance to the coast (cells)")
    ax.set_ylabel("mean |ε| (relative error of γ²)")
    ax.set_title("Error against distance to the coast")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_distance_histogram(
    distances: np.ndarray, counts: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """Share of ocean cells at each distance to the coast (Fig. 6).

    Shares, not counts, so the figure does not depend on how many samples were pooled.
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    counts = np.asarray(counts, dtype=np.float64)
    ax.bar(distances, counts / counts.sum(), width=1.0)
    ax.set_xlabel("distance to the coast (cells)")
    ax.set_ylabel("share of ocean cells")
    return _save(fig, path)


ROBUST_PERCENTILES = (1.0, 99.5)
"""The colour scale of error maps spans these percentiles of the values (beyond: the end
colours): a few coastal cells, 100x the open ocean's error, would set a linear or full range."""


def error_map_scale(*error_maps: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) of a log colour scale shared by maps: ``ROBUST_PERCENTILES`` of their
    positive values, at least a decade apart."""
    values = np.concatenate([np.asarray(m)[np.isfinite(m)].ravel() for m in error_maps])
    values = values[values > 0]
    if values.size == 0:
        return 1e-12, 1.0
    low, high = (float(v) for v in np.percentile(values, ROBUST_PERCENTILES))
    return low, max(high, low * 10)


def plot_error_map(
    error_map: np.ndarray,
    path: str | os.PathLike[str],
    title: str = "Mean |ε| over the test samples",
    scale: tuple[float, float] | None = None,
) -> Path:
    """Map of mean |ε| (Fig. 11), from ``metrics.mean_error_map``, on a log colour scale
    (``scale``: shared (vmin, vmax), see ``error_map_scale``); NaN land shows grey.

    Row 0 is the southern edge, so the image is drawn with origin="lower".
    """
    vmin, vmax = scale or error_map_scale(error_map)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        np.ma.masked_invalid(error_map),
        origin="lower",
        cmap="viridis",
        norm=LogNorm(vmin=vmin, vmax=vmax, clip=True),
        interpolation="nearest",
    )
    ax.set_facecolor("lightgrey")
    ax.set_title(title)
    ax.set_xlabel("grid column (west → east)")
    ax.set_ylabel("grid row (south → north)")
    fig.colorbar(image, ax=ax, label="mean |ε| (log scale; land grey)", extend="both")
    return _save(fig, path)
