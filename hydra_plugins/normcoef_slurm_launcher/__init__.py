"""Hydra plugin of normcoef's SLURM launcher: hydra-submitit-launcher's, except for lost jobs.

hydra-submitit-launcher collects each job's result with ``job.results()``, which raises when a
job ended without one (``scancel``, a time limit, a lost node): the whole sweep then stops with
a traceback, the other jobs' results unread, an Optuna search without its target. Here such a
job is that job's failure only (``normcoef.sweeps.failures.lost_job``): an Optuna trial ends
FAIL and the search goes on, a grid sweep runs its other jobs, and the sweep lists the job and
exits non-zero when it ends. Selected by ``_target_`` in conf/hydra/launcher/slurm_*.yaml;
every key of ``hydra/launcher=submitit_slurm`` stays valid.

Hydra loads ``NormcoefSlurmLauncher`` from here through the ``hydra.plugins`` entry point
(pyproject.toml). The class lives in ``_launcher``, imported only when hydra-submitit-launcher
is installed (the ``cluster`` extra); without it a stand-in takes its name, so that loading the
entry point at every Hydra start neither fails nor warns. The stand-in is never built: the
``slurm_*`` launcher configs need the extra's ``submitit_slurm`` to compose.
"""

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

MISSING_EXTRA = "the SLURM launcher needs the cluster extra: pip install -e '.[cluster]'"

try:
    import hydra_plugins.hydra_submitit_launcher  # noqa: F401 (the `cluster` extra)
except ImportError:

    class NormcoefSlurmLauncher(Launcher):
        """Stand-in without the ``cluster`` extra (module docstring)."""

        def setup(
            self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
        ) -> None:
            raise ImportError(MISSING_EXTRA)

        def launch(
            self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
        ) -> Sequence[JobReturn]:
            raise ImportError(MISSING_EXTRA)

else:
    from hydra_plugins.normcoef_slurm_launcher._launcher import (  # type: ignore[assignment, unused-ignore]
        NormcoefSlurmLauncher,
    )

__all__ = ["NormcoefSlurmLauncher"]
