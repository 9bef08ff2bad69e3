"""Hydra plugin of normcoef's SLURM launcher: hydra-submitit-launcher's, except for lost jobs.

hydra-submitit-launcher collects each job's result with ``job.results()``, which raises when a
job ended without one (``scancel``, a time limit, a lost node): the whole sweep then stops with
a traceback, the other jobs' results unread, an Optuna search without its target. Here such a
job is that job's failure only (``normcoef.sweeps.failures.lost_job``): an Optuna trial ends
FAIL and the search goes on, a grid sweep runs its other jobs, and the sweep lists the job and
exits non-zero when it ends. Selected by ``_target_`` in conf/hydra/launcher/slurm_*.yaml;
every key of ``hydra/launcher=submitit_slurm`` stays valid.

The class lives in ``_launcher`` (Hydra's plugin scan skips modules named ``_*``) and is
imported here only when hydra-submitit-launcher is installed (the ``cluster`` extra): without
it, the scan at every Hydra start would warn that this plugin failed to import.
"""

try:
    import hydra_plugins.hydra_submitit_launcher  # noqa: F401 (the `cluster` extra)
except ImportError:
    pass
else:
    from hydra_plugins.normcoef_slurm_launcher._launcher import NormcoefSlurmLauncher

    __all__ = ["NormcoefSlurmLauncher"]
