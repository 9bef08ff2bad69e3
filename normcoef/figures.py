"""PNG figures of the error analysis (report Figs. 5, 6 and 11).

Figures are built with matplotlib's object API and saved through the Agg canvas, so nothing
needs a display and pyplot's global state is never touched (safe in sweeps and workers).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_error_by_distance(
    distances: np.ndarray, mean_abs_eps: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """Mean |ε| against distance to the coast (Fig. 5), from ``metrics.error_by_distance``."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(distances, mean_abs_eps, marker="o")
    ax.set_xlabel("distance to the coast (cells)")
    ax.set_ylabel("mean |ε|")
    ax.grid(True, alpha=0.3)
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


def plot_error_map(error_map: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Map of mean |ε| (Fig. 11), from ``metrics.mean_error_map``; NaN land shows grey.

    Row 0 is the southern edge, so the image is drawn with origin="lower".
    """
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(error_map), origin="lower", cmap="viridis")
    ax.set_facecolor("lightgrey")
    fig.colorbar(image, ax=ax, label="mean |ε|")
    return _save(fig, path)
