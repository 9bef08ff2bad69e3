"""The record, in a sweep's directory, of the MLflow parent run its jobs nest under.

Written by ``normcoef.sweeps.parent_run`` when the sweep starts; each job reads it from any
process or host that sees the directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from normcoef.tracking.store import resolve_tracking_uri

PARENT_FILE = "mlflow_parent.json"
"""In a sweep directory: the MLflow parent run of the sweep's jobs, and its store."""


def write_sweep_parent(
    sweep_dir: str | Path, tracking_uri: str | None, run_id: str, varied: list[str]
) -> Path:
    """Record the sweep's parent run, and the keys the sweep varies, in its directory: jobs
    read it from any process or host that sees the directory."""
    path = Path(sweep_dir) / PARENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": run_id,
        "tracking_uri": resolve_tracking_uri(tracking_uri),
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
    return record if record.get("tracking_uri") == resolve_tracking_uri(tracking_uri) else None
