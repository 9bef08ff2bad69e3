"""The training run's tracker: MLflow (embedded SQLite store by default) or nothing.

Metrics are buffered and written in batches (``MlflowClient.log_batch``) every
``FLUSH_SECONDS`` or ``BATCH_METRICS`` values: one write to the embedded SQLite store costs
tens of milliseconds, a quarter of a CPU training step if paid every step, and MLflow's own
asynchronous logging writes (and slows the step with) one transaction per call. ``finish``
writes what is left before closing the run, also when the run failed; a killed process loses
at most the last ``FLUSH_SECONDS`` of metrics, never a checkpoint.
The jobs of a sweep nest under one parent run whose id the sweep directory holds
(``normcoef.tracking.sweep_parent``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normcoef.tracking.store import DEFAULT_TRACKING_URI, prepare_tracking_store
from normcoef.tracking.tags import RESUMED_BY_TAG, RESUMED_FROM_TAG

MLFLOW_TRACKER = "normcoef.tracking.MLflowTracker"
"""``conf/logger/mlflow.yaml``'s ``_target_``: the runs of a sweep that tracks reach MLflow."""
BATCH_METRICS = 1000  # MLflow's cap on the metrics of one log_batch
FLUSH_SECONDS = 10.0  # how stale the UI's curves may get during training


class NullTracker:
    """Tracks nothing (``logger=none``)."""

    run_id: str | None = None

    def __init__(self, run_name: str | None = None, tags: dict[str, str] | None = None) -> None:
        """Takes the run's name and tags as ``MLflowTracker`` does, and keeps neither."""

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def log_text(self, text: str, name: str) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def mark_resumed(self, old_run_id: str) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class MLflowTracker(NullTracker):
    """One MLflow run, the process's active one; params are the flattened resolved config."""

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        import mlflow

        self._mlflow = mlflow
        prepare_tracking_store(tracking_uri or DEFAULT_TRACKING_URI, experiment)
        self._run = mlflow.start_run(run_name=run_name, tags=tags or {})
        self.run_id: str = self._run.info.run_id
        self._client = mlflow.MlflowClient()
        self._pending: list[Any] = []  # mlflow.entities.Metric, not yet written
        self._flushed = time.monotonic()

    def log_params(self, params: dict[str, Any]) -> None:
        # MLflow caps a param value at 6000 characters and a batch at 100 params.
        items = [(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._mlflow.log_params(dict(items[start : start + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        stale = time.monotonic() - self._flushed >= FLUSH_SECONDS
        if stale or len(self._pending) >= BATCH_METRICS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered metrics."""
        for start in range(0, len(self._pending), BATCH_METRICS):
            batch = self._pending[start : start + BATCH_METRICS]
            self._client.log_batch(self.run_id, metrics=batch)
        self._pending, self._flushed = [], time.monotonic()

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self._mlflow.log_text(text, name)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._mlflow.set_tags(tags)

    def mark_resumed(self, old_run_id: str) -> None:
        """Link the run this one resumes, and close it if a crash left it RUNNING."""
        self._client.set_tag(old_run_id, RESUMED_BY_TAG, self.run_id)
        self.set_tags({RESUMED_FROM_TAG: old_run_id})
        if self._client.get_run(old_run_id).info.status == "RUNNING":
            self._client.set_terminated(old_run_id, "KILLED")

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        self._mlflow.end_run(status=status)


def tracks_to_mlflow(logger: Mapping[str, Any]) -> bool:
    """Whether a composed ``logger`` config (``conf/logger``) starts MLflow runs."""
    return logger.get("_target_") == MLFLOW_TRACKER
