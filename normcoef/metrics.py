"""Relative-error metrics of estimated coefficients γ̂ against exact γ (report §2).

ε = (γ̂² − γ²) / γ² on ocean cells: the relative error on γ², i.e. on the inverse variance
the operator is normalized by. Each sample gets RMSE(ε), mean |ε|, the 99.99 % quantile of
|ε| and max |ε|; a data set reports the mean and std of these over its samples.
Arrays hold physical γ (not standardized), shape (H, W) or (N, H, W); land never counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # the loss passes tensors; this module stays importable without torch
    import torch

EPS_QUANTILE = 0.9999
"""The report's ε_Q: the worst pixels, robust to a single outlier."""

Array = TypeVar("Array", np.ndarray, "torch.Tensor")


def relative_variance_error(gamma_hat: Array, gamma: Array) -> Array:
    """ε = (γ̂² − γ²) / γ², for numpy arrays and torch tensors alike (the loss uses it too)."""
    return (gamma_hat**2 - gamma**2) / gamma**2


def _ocean(ocean: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(ocean, dtype=bool), shape)


def relative_error(gamma_hat: np.ndarray, gamma: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """ε on the ocean cells, flattened (1-D); ``ocean`` broadcasts to γ's shape."""
    gamma = np.asarray(gamma, dtype=np.float64)
    mask = _ocean(ocean, gamma.shape)
    return relative_variance_error(np.asarray(gamma_hat, dtype=np.float64)[mask], gamma[mask])


def relative_error_map(gamma_hat: np.ndarray, gamma: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """ε with γ's shape, NaN on land (where γ = 0 and ε means nothing)."""
    mask = _ocean(ocean, np.shape(gamma))
    eps = np.full(mask.shape, np.nan)
    eps[mask] = relative_error(gamma_hat, gamma, mask)
    return eps


def sample_metrics(gamma_hat: np.ndarray, gamma: np.ndarray, ocean: np.ndarray) -> dict[str, float]:
    """The report's four metrics of one sample: rmse, eps_mean, eps_q, eps_max."""
    eps = relative_error(gamma_hat, gamma, ocean)
    abs_eps = np.abs(eps)
    return {
        "rmse": float(np.sqrt(np.mean(eps**2))),
        "eps_mean": float(np.mean(abs_eps)),
        "eps_q": float(np.quantile(abs_eps, EPS_QUANTILE)),
        "eps_max": float(np.max(abs_eps)),
    }


def aggregate(per_sample: list[dict[str, float]]) -> dict[str, float]:
    """Mean over samples of each metric, and its std (ddof 0) under ``<key>_std``.

    One sample has no spread: its ``_std`` keys are left out rather than reported as 0
    (they would be tracked as constant metrics).
    """
    if not per_sample:
        raise ValueError("aggregate needs at least one sample's metrics")
    summary: dict[str, float] = {}
    for key in per_sample[0]:
        values = np.array([metrics[key] for metrics in per_sample], dtype=np.float64)
        summary[key] = float(values.mean())
        if len(values) > 1:
            summary[f"{key}_std"] = float(values.std())
    return summary


def error_by_distance(
    abs_eps_maps: np.ndarray, distance: np.ndarray, ocean: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean |ε| grouped by distance to the coast (report Figs. 5-7, 10).

    abs_eps_maps (N, H, W); distance (H, W) to the coast in grid cells, rounded to integers;
    ocean (H, W). Returns the distances present in the ocean, ascending, the mean |ε| over all
    samples' ocean cells at each, and how many values (cells × samples) each mean averages.
    """
    abs_eps_maps = np.asarray(abs_eps_maps, dtype=np.float64)
    mask = _ocean(ocean, abs_eps_maps.shape)
    rounded = np.broadcast_to(np.rint(distance).astype(np.int64), abs_eps_maps.shape)
    distances, group = np.unique(rounded[mask], return_inverse=True)
    counts = np.bincount(group, minlength=distances.size)
    sums = np.bincount(group, weights=abs_eps_maps[mask], minlength=distances.size)
    return distances, sums / counts, counts


def mean_error_map(abs_eps_maps: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """Mean |ε| over samples, (N, H, W) -> (H, W), NaN on land (report Fig. 11)."""
    return np.where(np.asarray(ocean, dtype=bool), np.mean(abs_eps_maps, axis=0), np.nan)
