"""Settings of the training loop: no torch here, so the config schema (``TrainerConfig``)
extends them without importing the loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoopSettings:
    steps: int = 2000  # fixed budget: augmented and plain runs train for the same steps
    batch_size: int = 4
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    seed: int = 42
    eval_every: int = 100
    checkpoint_every: int = 500
    monitor: str = "val/loss"
    mixed_precision: bool = False
    progress: bool = True
    stop_at: int | None = None  # stop (resumably) after this step; the schedule keeps `steps`
