"""Experiment tracking: MLflow (embedded SQLite store by default) or nothing.

The embedded store is ``sqlite:///mlflow.db`` in the working directory; browse it with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``. ``logger.tracking_uri`` points at a
tracking server instead (``http://host:5000``), which several hosts can share.

Metrics are buffered and written in batches (``MlflowClient.log_batch``) every
``FLUSH_SECONDS`` or ``BATCH_METRICS`` values: one write to the embedded SQLite store costs
tens of milliseconds, a quarter of a CPU training step if paid every step, and MLflow's own
asynchronous logging writes (and slows the step with) one transaction per call. ``finish``
writes what is left before closing the run, also when the run failed; a killed process loses
at most the last ``FLUSH_SECONDS`` of metrics, never a checkpoint.
The jobs of a sweep nest under one parent run whose id the sweep directory holds
(``PARENT_FILE``, written by ``normcoef.sweeps.parent_run``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
BACKENDS = ("mlflow", "none")
PARENT_FILE = "mlflow_parent.json"
"""In a sweep directory: the MLflow parent run of the sweep's jobs, and its store."""
SUMMARY_TAG = "normcoef.summary"
"""``true`` on a sweep's parent run, which holds the report rather than a job."""
# Tags shared by job runs (normcoef.training.run), the parent run (normcoef.sweeps.parent_run)
# and the report (normcoef.report), which finds runs by them.
EXPERIMENT_TAG = "normcoef.experiment"
SWEEP_TAG = "normcoef.sweep"
DESCRIPTION_TAG = "normcoef.description"
FAILURE_TAG = "normcoef.failure"
BATCH_METRICS = 1000  # MLflow's cap on the metrics of one log_batch
FLUSH_SECONDS = 10.0  # how stale the UI's curves may get during training


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


# Config groups that choose a whole preset: a tag, not the lead of every run name of a sweep.
PRESET_GROUPS = ("experiment", "hparams_search")
OVERRIDE_TAG = "normcoef.override."


@dataclass
class JobContext:
    """What Hydra knows of a job and the tracker records: its overrides and group choices."""

    overrides: dict[str, str] = field(default_factory=dict)  # key -> value, as typed
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option


def job_context(hydra_cfg: DictConfig) -> JobContext:
    """From Hydra's runtime config (``HydraConfig.get()``): the job's task overrides, less
    the keys ``override_dirname`` excludes, and the chosen option of each config group."""
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    overrides = {}
    for item in hydra_cfg.overrides.task:
        key, _, value = str(item).partition("=")
        if key.lstrip("+~") not in excluded:
            overrides[key.lstrip("+~")] = value
    choices = {
        group: str(option)
        for group, option in hydra_cfg.runtime.choices.items()
        if option is not None and not group.startswith("hydra/")
    }
    return JobContext(overrides, choices)


def short_value(value: str) -> str:
    """Sampled floats such as 0.0015930522616241021 print as 0.00159."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.3g}" if "." in value and len(value) > 8 else value


def run_name(overrides: dict[str, str], leading: Sequence[str] = ()) -> str | None:
    """``key=value`` of the overrides, the ``leading`` keys (what a sweep varies) first,
    presets left out and long floats shortened, so that a sweep's runs differ in the first
    characters shown (the exact values are tags)."""
    keys = [k for k in leading if k in overrides]
    keys += [k for k in overrides if k not in keys and k not in PRESET_GROUPS]
    return ",".join(f"{k}={short_value(overrides[k])}" for k in keys) or None


class NullTracker:
    """Tracks nothing (``logger=none``)."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def log_text(self, text: str, name: str) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def mark_resumed(self, old_run_id: str) -> None: ...

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
        self._client.set_tag(old_run_id, "normcoef.resumed_by", self.run_id)
        self.set_tags({"normcoef.resumed_from": old_run_id})
        if self._client.get_run(old_run_id).info.status == "RUNNING":
            self._client.set_terminated(old_run_id, "KILLED")

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
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


def write_sweep_parent(
    sweep_dir: str | Path, tracking_uri: str | None, run_id: str, varied: list[str]
) -> Path:
    """Record the sweep's parent run, and the keys the sweep varies, in its directory: jobs
    read it from any process or host that sees the directory."""
    path = Path(sweep_dir) / PARENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": run_id,
        "tracking_uri": tracking_uri or DEFAULT_TRACKING_URI,
        "varied": varied,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_sweep_parent(sweep_dir: str | Path | None, tracking_uri: str | None) -> dict | None:
    """``{"run_id", "tracking_uri", "varied"}`` recorded in ``sweep_dir`` for this store."""
    path = Path(sweep_dir) / PARENT_FILE if sweep_dir else None
    if path is None or not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("tracking_uri") == (tracking_uri or DEFAULT_TRACKING_URI) else None
