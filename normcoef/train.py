"""Train a network: ``python -m normcoef.train [overrides]``; ``-m`` for sweeps.

Returns the best value of ``trainer.monitor`` so the Optuna sweeper can minimise it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from normcoef.config import register_configs
from normcoef.tracking import job_context
from normcoef.training.loop import DivergenceError
from normcoef.training.run import run_training

log = logging.getLogger(__name__)
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        return run_training(
            cfg,
            overrides=hydra_cfg.job.override_dirname,
            sweep_dir=hydra_cfg.sweep.dir if multirun else None,
            run_dir=Path(hydra_cfg.runtime.output_dir) / "checkpoints",
            job=job_context(hydra_cfg),
        )
    except (DivergenceError, ValueError) as error:
        # Optuna records a raised trial as FAILED and goes on (max_failure_rate); a grid
        # sweep would stop, so there a failed run returns NaN after saying why.
        if multirun and "optuna" not in str(hydra_cfg.sweeper.get("_target_", "")):
            log.error("run %s failed: %s", hydra_cfg.job.override_dirname, error)
            return math.nan
        raise


if __name__ == "__main__":
    main()
