"""normcoef's SLURM launcher (the package docstring says why); imported only with the extra."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class SettledJob:
    """A submitted job whose ``results()`` gives a failed ``JobReturn`` instead of raising."""

    def __init__(self, job: Any, launcher: SlurmLauncher, overrides: Sequence[str], num: int):
        self.job, self.launcher, self.overrides, self.num = job, launcher, overrides, num

    def results(self) -> list[JobReturn]:
        from submitit.core.utils import UncompletedJobError

        from normcoef.sweeps.failures import lost_job

        try:
            return self.job.results()
        except UncompletedJobError:  # FailedJobError too: submitit's own code failed
            state = self.job.watcher.get_state(self.job.job_id, mode="force")
            reason = (
                f"SLURM job {self.job.job_id} ended {state} without a result (scancel, time "
                f"limit, lost node?); its log: {self.job.paths.stderr}"
            )
            assert self.launcher.config is not None
            folder = Path(self.job.paths.folder)
            return [lost_job(self.launcher.config, self.num, self.overrides, reason, folder)]


class NormcoefSlurmLauncher(SlurmLauncher):
    """``SlurmLauncher`` whose jobs that end without a result fail alone (module docstring)."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        submit = submitit.AutoExecutor.map_array

        def settled(executor: Any, function: Any, *arguments: Sequence[Any]) -> list[SettledJob]:
            overrides, _, numbers = arguments[:3]  # SlurmLauncher.launch's job_params
            jobs = submit(executor, function, *arguments)
            return [
                SettledJob(job, self, job_overrides, number)
                for job, job_overrides, number in zip(jobs, overrides, numbers, strict=True)
            ]

        # The parent's launch, with its executor's jobs settled (it calls results() on them).
        with mock.patch.object(submitit.AutoExecutor, "map_array", settled):
            return super().launch(job_overrides, initial_job_idx)
