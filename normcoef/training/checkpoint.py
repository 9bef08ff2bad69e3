"""Checkpoints: model, optimizer and scheduler state, step, best metric, and what inference
needs (model config, standardization statistics)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    step: int = 0,
    best_value: float = float("inf"),
    best_step: int = -1,
    extra: dict | None = None,
) -> None:
    """Write atomically, so a run killed while saving keeps its previous checkpoint."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": step,
        "best_value": best_value,
        "best_step": best_step,
        **(extra or {}),
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint file (``normcoef.inference.resolve_checkpoint`` finds one)."""
    return torch.load(Path(path), map_location=map_location, weights_only=False)
