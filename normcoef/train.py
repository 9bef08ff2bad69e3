"""Train a network: ``python -m normcoef.train [overrides]``; ``-m`` for sweeps.

Returns the best value of ``trainer.monitor`` so the Optuna sweeper can minimise it. A single
run that fails on a user mistake prints one line and exits with 2; in a sweep a failed job
raises, and normcoef.sweeps.failures lists it when the sweep ends and exits non-zero.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from normcoef.cli import exit_on_user_error, interrupt_on_sigterm
from normcoef.config import CONF_DIR, register_configs
from normcoef.pipeline import run_training
from normcoef.sweeps.naming import register_resolvers
from normcoef.tracking import job_context

register_configs()
register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    interrupt_on_sigterm()  # a killed or timed-out run ends KILLED in MLflow, not RUNNING
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    train = functools.partial(
        run_training,
        cfg,
        overrides=hydra_cfg.job.override_dirname,
        sweep_dir=hydra_cfg.sweep.dir if multirun else None,
        run_dir=Path(hydra_cfg.runtime.output_dir) / cfg.trainer.output_dir,
        job=job_context(cast(DictConfig, hydra_cfg)),  # typed HydraConf, a DictConfig at run time
    )
    return train() if multirun else exit_on_user_error(train)()


if __name__ == "__main__":
    main()
