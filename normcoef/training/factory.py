"""Build model, loss, optimizer and scheduler from composed configs (Hydra ``_target_``)."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine", "step")


def build_model(
    model_cfg: DictConfig, activation_cfg: DictConfig, in_channels: int, periodic_x: bool = True
) -> nn.Module:
    """The network of ``conf/model`` with the activation of ``conf/activation``."""
    activation = instantiate(activation_cfg)
    return instantiate(
        model_cfg, in_channels=in_channels, activation=activation, periodic_x=periodic_x
    )


def build_loss(loss_cfg: DictConfig) -> nn.Module:
    return instantiate(loss_cfg)


def build_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, steps: int):
    """``none`` (report: Adam, no scheduler), ``cosine`` to 0 over the run, or ``step``
    (x0.1 at 50 % and 75 % of the steps)."""
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    if name == "step":
        milestones = [steps // 2, (3 * steps) // 4]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, CPU otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but no CUDA device is visible; use auto or cpu")
    return torch.device(name)
