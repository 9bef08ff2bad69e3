"""Hydra plugin registration of normcoef's Optuna sweeper (normcoef/sweeps/optuna.py).

Hydra instantiates sweepers only from the ``hydra_plugins`` namespace package, which it scans
at start-up; this package is normcoef's part of it. ``hydra/sweeper=normcoef_optuna`` takes
every key of the plugin's ``hydra/sweeper=optuna`` plus the two heartbeat settings. No
``from __future__ import annotations``: Hydra's scan runs this module without entering it in
``sys.modules``, where ``dataclass`` would look up string annotations.
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig


@dataclass
class NormcoefOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.normcoef_optuna_sweeper.NormcoefOptunaSweeper"
    # The sampler reaches the sweeper as its config, to be built with one seed per trial.
    _recursive_: bool = False
    # Seconds between heartbeats of running trials (RDB storage); a RUNNING trial without one
    # for grace_period seconds (default 2 * heartbeat_interval) belongs to a dead process.
    heartbeat_interval: int = 60
    grace_period: int | None = None


class NormcoefOptunaSweeper(Sweeper):
    """Thin plugin class; the loop lives in normcoef (imported only when a sweep starts)."""

    def __init__(self, **config: Any) -> None:
        from normcoef.sweeps.optuna import ScalableOptunaSweeperImpl

        self.sweeper = ScalableOptunaSweeperImpl(**config)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="normcoef_optuna",
    node=NormcoefOptunaSweeperConf,
    provider="normcoef",
)
