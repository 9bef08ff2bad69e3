"""Learning-rate schedules of ``conf/scheduler``, by the run's step budget.

Each takes the optimizer and ``trainer.steps`` (which ``trainer.stop_at`` leaves unchanged, so
that a run stopped and resumed follows the schedule of the whole run) and returns what the loop
steps once per training step, or None for a constant rate.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR


def constant(optimizer: torch.optim.Optimizer, steps: int) -> LRScheduler | None:
    """No schedule (the report's: Adam at a constant rate)."""
    return None


def cosine(optimizer: torch.optim.Optimizer, steps: int) -> LRScheduler:
    """Cosine annealing to 0 over the run."""
    return CosineAnnealingLR(optimizer, T_max=max(steps, 1))


def step_decay(optimizer: torch.optim.Optimizer, steps: int) -> LRScheduler:
    """The rate times 0.1 at 50 % and again at 75 % of the steps."""
    return MultiStepLR(optimizer, [steps // 2, (3 * steps) // 4], gamma=0.1)
