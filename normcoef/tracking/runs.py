"""Runs other than the process's active one, read and written through MLflow's client API:
a sweep's job runs and parent run (the report, the sweep callback), a run an evaluation
logs into, a run whose checkpoints resume or evaluate.

The client API leaves a run's status as it is unless told (``end``), so writing into a
finished run keeps it finished.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from normcoef.tracking.store import prepare_tracking_store, resolve_tracking_uri, store_exists
from normcoef.tracking.tags import Tag

if TYPE_CHECKING:  # MLflow's run entities are what the gateway hands out: ``Run`` for callers
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run


class RunStore:
    """One tracking store (``uri``; the embedded ``sqlite:///mlflow.db`` by default)."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri = resolve_tracking_uri(uri)
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def exists(self) -> bool:
        """False for an embedded SQLite store whose file is missing (MLflow would create it)."""
        return store_exists(self.uri)

    def prepare(self, experiment: str) -> str:
        """Create the store and ``experiment`` if new (under a lock); the experiment id."""
        return prepare_tracking_store(self.uri, experiment)

    def experiment_id(self, name: str) -> str | None:
        found = self.client.get_experiment_by_name(name)
        return None if found is None else found.experiment_id

    def job_runs(self, experiment_id: str, experiment: str) -> list[Run]:
        """All job runs of a normcoef experiment (sweep parent runs excluded), oldest first."""
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{Tag.EXPERIMENT}` = '{experiment}'",
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs += [run for run in page if run.data.tags.get(Tag.SUMMARY) != "true"]
            token = page.token
            if not token:
                return runs

    def sweep_parent(self, experiment_id: str, experiment: str, sweep: str) -> str | None:
        """The id of the parent run of ``sweep``, if one was opened."""
        found = self.client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{Tag.SUMMARY}` = 'true' and tags.`{Tag.EXPERIMENT}` = '{experiment}' "
                f"and tags.`{Tag.SWEEP}` = '{sweep}'"
            ),
        )
        return found[0].info.run_id if found else None

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str) -> str:
        """A new RUNNING run, not the process's active one; its id."""
        return self.client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id

    def get_run(self, run_id: str) -> Run:
        return self.client.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.client.get_metric_history(run_id, key)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """All ``metrics`` at ``step`` in one write."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(run_id, metrics=batch)

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again (a sweep resumed in its directory)."""
        self.client.update_run(run_id, status="RUNNING")

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)


class ExistingRun:
    """Writes into a run that exists, checked when opened (before hours of evaluation); its
    status stays as it is."""

    def __init__(self, run_id: str, tracking_uri: str | None = None) -> None:
        from mlflow.exceptions import MlflowException

        self.store, self.run_id = RunStore(tracking_uri), run_id
        try:
            self.store.get_run(run_id)
        except MlflowException as error:
            raise ValueError(
                f"no MLflow run {run_id!r} at {self.store.uri}: {error.message}"
            ) from error

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.store.log_metrics(self.run_id, metrics, step)

    def log_text(self, text: str, name: str) -> None:
        self.store.log_text(self.run_id, text, name)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.store.log_artifact(self.run_id, path, artifact_path)

    def log_artifacts(self, paths: Sequence[Path], artifact_path: str | None = None) -> None:
        for path in paths:
            self.log_artifact(path, artifact_path)


def download_checkpoint(run_id: str, tracking_uri: str | None, name: str = "last.pt") -> Path:
    """Fetch ``checkpoints/<name>`` of an MLflow run (for resume and evaluation).

    The whole ``checkpoints/`` folder comes down, so that a run resumed from last.pt finds
    the best.pt saved beside it.
    """
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints")
        path = Path(local) / name
        if not path.exists():
            raise FileNotFoundError(f"the run has no checkpoints/{name}")
    except Exception as error:  # MLflow raises several types for unknown runs/paths
        raise FileNotFoundError(
            f"cannot fetch checkpoints/{name} of MLflow run {run_id!r} from "
            f"{resolve_tracking_uri(tracking_uri)}: {error}"
        ) from error
    return path
