"""Forward passes of a trained network, from physical fields to physical γ.

One sample (``predict_gamma``, optionally with test-time augmentation) or a whole split with
its metrics (``evaluate_split``): the loop's validation, the test evaluation and inference
share them, so each computes γ the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

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
