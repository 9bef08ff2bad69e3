"""Settings of the training loop: no torch here, so the config schema (``TrainerConfig``)
extends them without importing the loop."""

from __future__ import annotations

from dataclasses import dataclass

# What trainer.monitor may name: the validation metrics evaluate_split logs, or the loss.
MONITORS = ("val/loss", "val/eps_q", "val/eps_max", "val/eps_mean", "val/rmse", "train/loss")

# trainer.compile: torch.compile's modes; reduce-overhead adds CUDA graphs (fewer launches).
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


@dataclass
class LoopSettings:
    """Checked on construction, so that a bad value fails before any data is loaded.

    Messages start with the field name; ``normcoef.config.validate`` prefixes the key path.
    """

    steps: int = 2000  # fixed budget: augmented and plain runs train for the same steps
    batch_size: int = 4
    seed: int = 42
    eval_every: int = 100
    checkpoint_every: int = 500
    monitor: str = "val/loss"
    mixed_precision: bool = False
    progress: bool = True
    stop_at: int | None = None  # stop (resumably) after this step; the schedule keeps `steps`
    # Step losses stay on the device and are read back (one host sync) every log_every steps,
    # at evaluations and at checkpoints; a diverged loss is found within log_every steps.
    log_every: int = 10
    channels_last: bool = False  # NHWC activations: faster convolutions on tensor cores
    compile: str = "none"  # one of COMPILE_MODES
    # Train on random [height, width] windows of the grids, each cut with its halo of real
    # neighbours (normcoef.training.crops); null trains on whole grids. Evaluation: whole grids.
    crop: list[int] | None = None

    def __post_init__(self) -> None:
        # steps = 0 would "finish" an untrained network; stop_at <= 0 would train nothing.
        names = ("steps", "batch_size", "eval_every", "checkpoint_every", "stop_at", "log_every")
        for name in names:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value}: must be >= 1")
        if not 0 <= self.seed < 2**32:  # what numpy's global seed accepts
            raise ValueError(f"seed={self.seed}: must be in [0, 2**32 - 1]")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise ValueError(f"crop={list(self.crop)}: give [height, width], both >= 1, or null")
        if self.monitor not in MONITORS:  # a typo fails before any data is read
            raise ValueError(f"monitor={self.monitor!r}: choose one of {', '.join(MONITORS)}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile={self.compile!r}: choose one of {', '.join(COMPILE_MODES)}")
