"""Forward passes of a trained network, from physical fields to physical γ.

One sample (``predict_gamma``, optionally with test-time augmentation; ``resampled_gamma`` on
a grid finer or coarser than the network's) or a whole split with
its metrics (``evaluate_split``): the loop's validation, the test evaluation and inference
share them, so each computes γ the same way.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from torch import nn

from normcoef.data.coarsening import block_mean, coarsen_fields, refine, refine_fields
from normcoef.data.torch_dataset import NormalizationDataset, Standardizer
from normcoef.data.transforms import PRESETS, transform_cells, transform_fields
from normcoef.metrics import aggregate, sample_metrics

TTA_TRANSFORMS: tuple[str, ...] = ("identity", *PRESETS["flips"])
"""Test-time augmentation: the flips, which keep every grid's shape and periodicity (quarter
turns do not on east-west periodic grids) and are their own inverses on cells."""


@torch.no_grad()
def predict_gamma(
    model: nn.Module,
    standardizer: Standardizer,
    fields: np.ndarray,
    ocean: np.ndarray,
    device: torch.device,
    tta: bool = False,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Physical γ (H, W) float64 of (3, H, W) fields on an (H, W) ocean mask.

    With ``tta`` the network sees the input under each of ``TTA_TRANSFORMS`` (fields moved by
    ``transform_fields``, so each describes the flipped operator), each output is converted to
    physical γ and flipped back, and the variances γ² are averaged: γ = sqrt(mean γ_t²).
    ``prior``: the fields' γ_prior when the caller holds it (a data set's), not computed again.
    """
    names = TTA_TRANSFORMS if tta else ("identity",)
    periodic = standardizer.info.periodicity
    variance = np.zeros(np.shape(ocean))
    for name in names:
        moved = transform_fields(name, fields[:3], *periodic) if tta else fields
        moved_ocean = transform_cells(name, ocean) if tta else ocean
        known = prior if name == "identity" else None
        moved_prior = standardizer.prior(moved, moved_ocean) if known is None else known
        x = torch.from_numpy(standardizer.model_inputs(moved, moved_ocean, moved_prior))
        pred = model(x[None].to(device))[0, 0].double().cpu().numpy()
        gamma = standardizer.physical_gamma(pred, moved_prior)
        if not tta:
            return gamma
        variance += transform_cells(name, gamma) ** 2  # each flip is its own inverse
    return np.sqrt(variance / len(names))


def resampled_gamma(
    model: nn.Module,
    standardizer: Standardizer,
    fields: np.ndarray,
    ocean: np.ndarray,
    device: torch.device,
    ratio: float,
    tta: bool = False,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Physical γ (H, W) of fields on a grid ``ratio`` times the network's resolution (2:
    twice finer, 0.5: twice coarser; a whole number or its inverse).

    The network sees the inputs at its own resolution, coarsened (``coarsen_fields``) or
    refined (``refine_fields``): its cells per length scale, its receptive field in length
    scales. Its correction log(γ²/γ_prior²), smooth on the scale of the fields, is brought
    back (``refine``, or the mean over each block) onto this grid's own prior, which has
    this grid's walls. ``prior``: this grid's γ_prior when the caller holds it."""
    if not standardizer.uses_prior:
        raise ValueError(
            "a network shown resampled inputs needs the prior_residual target: its correction "
            "goes onto the grid's own prior; score it at its own resolution instead"
        )
    periodic = standardizer.info.periodicity
    finer = ratio > 1
    factor = round(ratio if finer else 1 / ratio)
    resample = coarsen_fields if finer else refine_fields
    seen_fields, seen = resample(fields, ocean, factor, periodic)
    at_training = standardizer.at_training_nodes()
    seen_prior = cast(np.ndarray, at_training.prior(seen_fields, seen))
    seen_gamma = predict_gamma(model, at_training, seen_fields, seen, device, tta, seen_prior)
    correction = np.zeros(seen.shape)
    correction[seen] = np.log(seen_gamma[seen] ** 2 / seen_prior[seen] ** 2)
    if finer:
        correction = refine(correction, seen, ocean, factor, periodic[0])
    else:
        correction = np.where(ocean, block_mean(correction, seen, factor)[0], 0.0)
    own_prior = standardizer.prior(fields, ocean) if prior is None else prior
    return cast(np.ndarray, own_prior) * np.exp(correction / 2)


@torch.no_grad()
def evaluate_split(
    model: nn.Module,
    loss_fn: nn.Module,
    dataset: NormalizationDataset,
    device: torch.device,
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean loss and report metrics (on physical γ) over a split, in eval mode.

    Returns the metrics and the predicted physical γ of each sample.
    """
    was_training = model.training
    model.eval()  # BatchNorm with running statistics (the original test scripts forgot this)
    mean, std = dataset.standardizer.target_scale
    losses, per_sample, predictions = [], [], []
    for i in range(len(dataset)):
        x, y, ocean = (t.unsqueeze(0).to(device) for t in dataset.item(i))
        pred = model(x)
        losses.append(float(loss_fn(pred, y, ocean, mean, std)))
        gamma_hat = dataset.physical_gamma(i, pred[0, 0].double().cpu().numpy())
        gamma = dataset.split.gamma[i]
        per_sample.append(sample_metrics(gamma_hat, gamma, dataset.split.ocean[i]))
        predictions.append(np.where(dataset.split.ocean[i], gamma_hat, 0.0))
    model.train(was_training)
    metrics = {"loss": float(np.mean(losses))} if losses else {}
    if per_sample:
        metrics.update(aggregate(per_sample))
    return metrics, predictions
