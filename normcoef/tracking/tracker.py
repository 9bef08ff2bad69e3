"""The training run's tracker: MLflow (embedded SQLite store by default) or nothing.

Metrics are buffered and written in batches (``MlflowClient.log_batch``) every
``FLUSH_SECONDS`` or ``BATCH_METRICS`` values: one write to the embedded SQLite store costs
tens of milliseconds, a quarter of a CPU training step if paid every step, and MLflow's own
asynchronous logging writes (and slows the step with) one transaction per call. ``finish``
writes what is left before closing the run, also when the run failed; a killed process loses
at most the last ``FLUSH_SECONDS`` of metrics, never a checkpoint.
The jobs of a sweep nest under one parent run whose id the sweep directory holds
(``normcoef.tracking.sweep_parent``).

A tracking server that stops answering is waited for: MLflow's client retries each request
with exponential backoff (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7: minutes), so a training
survives a server restart. Past that, the write raises ``TrackingServerLost``, one line naming
the server and the local checkpoints to resume from (tests/cluster/test_tracking_server.py).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from normcoef.tracking.store import prepare_tracking_store, resolve_tracking_uri
from normcoef.tracking.tags import Tag

MLFLOW_TRACKER = "normcoef.tracking.MLflowTracker"
"""``conf/logger/mlflow.yaml``'s ``_target_``: the runs of a sweep that tracks reach MLflow."""
BATCH_METRICS = 1000  # MLflow's cap on the metrics of one log_batch
FLUSH_SECONDS = 10.0  # how stale the UI's curves may get during training
NETWORK_MODEL = "network"
"""The name of the run's MLflow model (``log_network``): ``runs:/<run id>/network``."""
NETWORK_MODEL_CODE = Path(__file__).with_name("network_model.py")
"""The model's code, which MLflow copies into the model and loads from there ("models from
code"); not imported here: it imports ``normcoef.inference``, a layer above tracking."""
MODEL_REQUIREMENTS = ["normcoef", "torch", "numpy", "scipy", "omegaconf", "hydra-core"]
"""What loading the model needs (normcoef from this repository); given, not inferred: MLflow's
inference imports and runs the model, seconds at the end of every run."""


class TrackingServerLost(OSError):
    """The tracking server did not answer a write, after MLflow's own retries."""


def unreachable(error: BaseException) -> bool:
    """Whether an MLflow error comes from a connection that failed (``requests``' error in its
    chain), not from an answer of the server."""
    from requests.exceptions import ConnectionError, Timeout

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionError | Timeout):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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

    def log_network(self, checkpoint: Path, example: dict[str, np.ndarray]) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class MLflowTracker(NullTracker):
    """One MLflow run, the process's active one; params are the flattened resolved config."""

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, str] | None = None,
        log_model: bool = False,
    ) -> None:
        import mlflow

        self.log_model = log_model  # log_network: the best network as an MLflow model
        self._mlflow = mlflow
        prepare_tracking_store(resolve_tracking_uri(tracking_uri), experiment)
        self._run = mlflow.start_run(run_name=run_name, tags=tags or {})
        self.run_id: str = self._run.info.run_id
        self._client = mlflow.MlflowClient()
        self._pending: list[Any] = []  # mlflow.entities.Metric, not yet written
        self._flushed = time.monotonic()
        self._uri = resolve_tracking_uri(tracking_uri)
        self._checkpoints: Path | None = None  # the local folder of the checkpoints logged

    def _write(self, write: Callable[[], Any]) -> Any:
        """``write()``; a server that stopped answering raises ``TrackingServerLost``."""
        try:
            return write()
        except Exception as error:
            if not unreachable(error):
                raise
            then = (
                f"go on from its checkpoints with trainer.resume={self._checkpoints}"
                if self._checkpoints
                else "train it again (it had saved no checkpoint)"
            )
            raise TrackingServerLost(
                f"the MLflow server {self._uri} stopped answering (after MLflow's retries, "
                f"MLFLOW_HTTP_REQUEST_MAX_RETRIES): run {self.run_id} is cut short; once the "
                f"server is back, {then}"
            ) from error

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
            self._write(functools.partial(self._client.log_batch, self.run_id, metrics=batch))
        self._pending, self._flushed = [], time.monotonic()

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if artifact_path == "checkpoints":  # written on disk before it is logged
            self._checkpoints = Path(path).parent
        self._write(lambda: self._mlflow.log_artifact(str(path), artifact_path=artifact_path))

    def log_text(self, text: str, name: str) -> None:
        self._mlflow.log_text(text, name)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._mlflow.set_tags(tags)

    def log_network(self, checkpoint: Path, example: dict[str, np.ndarray]) -> None:
        """The network of ``checkpoint`` as an MLflow model of this run (the runs table's Models
        column; registrable), from code (``NETWORK_MODEL_CODE``), with its signature and
        ``example`` as input example ({"fields": (1, 3, H, W), "mask": (1, H, W)}). Only
        with ``logger.log_model=true``: MLflow's model logging loads and runs the model, seconds
        per run, in which an interrupt was seen lost."""
        if not self.log_model:
            return
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        # Any number of samples of any grid: the networks are fully convolutional.
        signature = ModelSignature(
            inputs=Schema(
                [
                    TensorSpec(np.dtype(np.float64), (-1, 3, -1, -1), "fields"),
                    TensorSpec(np.dtype(bool), (-1, -1, -1), "mask"),
                ]
            ),
            outputs=Schema([TensorSpec(np.dtype(np.float64), (-1, -1, -1), "gamma")]),
        )
        with quiet_untyped_predict():
            self._mlflow.pyfunc.log_model(
                name=NETWORK_MODEL,
                python_model=str(NETWORK_MODEL_CODE),
                artifacts={"checkpoint": str(checkpoint)},
                signature=signature,
                input_example=example,
                pip_requirements=MODEL_REQUIREMENTS,
            )

    def mark_resumed(self, old_run_id: str) -> None:
        """Link the run this one resumes, and close it if a crash left it RUNNING."""
        self._client.set_tag(old_run_id, Tag.RESUMED_BY, self.run_id)
        self.set_tags({Tag.RESUMED_FROM: old_run_id})
        if self._client.get_run(old_run_id).info.status == "RUNNING":
            self._client.set_terminated(old_run_id, "KILLED")

    def finish(self, status: str = "FINISHED") -> None:
        try:
            self.flush()
            self._write(lambda: self._mlflow.end_run(status=status))
        except TrackingServerLost:
            if status == "FINISHED":
                raise
            # A run ending on an error, with the server gone: the error says it all. The run
            # stays RUNNING on the server until a resume closes it (mark_resumed).


UNTYPED_PREDICT = "Add type hints to the `predict` method"
"""MLflow's warning for a PythonModel whose predict has no type hint (``network_model``'s
on purpose), issued when the class is defined and when the model is logged."""


@contextmanager
def quiet_untyped_predict() -> Iterator[None]:
    """Hide that one warning: MLflow forces it to show once, over any warnings filter."""
    shown = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if UNTYPED_PREDICT not in str(message):
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def tracks_to_mlflow(logger: Mapping[str, Any]) -> bool:
    """Whether a composed ``logger`` config (``conf/logger``) starts MLflow runs."""
    return logger.get("_target_") == MLFLOW_TRACKER
