"""Experiment tracking: MLflow (embedded SQLite store by default) or nothing.

The embedded store is ``sqlite:///mlflow.db`` in the working directory; browse it with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``. ``logger.tracking_uri`` points at a
tracking server instead (``http://host:5000``), which several hosts can share.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
BACKENDS = ("mlflow", "none")


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become JSON strings."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


class NullTracker:
    """Tracks nothing (``logger=none``)."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def log_text(self, text: str, name: str) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class MLflowTracker(NullTracker):
    """One MLflow run; params are the flattened resolved config."""

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        import mlflow

        from normcoef.tracking_store import prepare_tracking_store

        self._mlflow = mlflow
        prepare_tracking_store(tracking_uri or DEFAULT_TRACKING_URI, experiment)
        self._run = mlflow.start_run(run_name=run_name, tags=tags or {})
        self.run_id = self._run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        # MLflow caps a param value at 6000 characters and a batch at 100 params.
        items = [(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._mlflow.log_params(dict(items[start : start + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self._mlflow.log_text(text, name)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._mlflow.set_tags(tags)

    def finish(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)


def make_tracker(
    backend: str,
    experiment: str,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    tags: dict[str, str] | None = None,
) -> NullTracker:
    if backend == "none":
        return NullTracker()
    if backend == "mlflow":
        return MLflowTracker(experiment, run_name, tracking_uri, tags)
    raise ValueError(f"unknown logger backend {backend!r}; choose one of {BACKENDS}")


def download_checkpoint(run_id: str, tracking_uri: str | None, name: str = "last.pt") -> Path:
    """Fetch ``checkpoints/<name>`` of an MLflow run (for resume and evaluation).

    The whole ``checkpoints/`` folder comes down, so that a run resumed from last.pt finds
    the best.pt saved beside it.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or DEFAULT_TRACKING_URI)
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints")
        path = Path(local) / name
        if not path.exists():
            raise FileNotFoundError(f"the run has no checkpoints/{name}")
    except Exception as error:  # MLflow raises several types for unknown runs/paths
        raise FileNotFoundError(
            f"cannot fetch checkpoints/{name} of MLflow run {run_id!r} from "
            f"{tracking_uri or DEFAULT_TRACKING_URI}: {error}"
        ) from error
    return path
