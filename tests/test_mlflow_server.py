"""Specification of ``make ui``: an MLflow server from the project's environment serves a run.

The server is a real process (``python -m mlflow ui``, as ``make ui`` starts it) over the SQLite
store of the tiny training run from tests/test_inference.py. A server that imports but dies at
start (as MLflow 3.17 did on SQLAlchemy 1.4: ``sqlalchemy.Engine``) fails every test here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from test_inference import TrainedRun, trained  # noqa: F401 (the module-scoped fixture)

pytestmark = pytest.mark.slow

# A cold start on a busy 2-core machine takes a minute; a server that fails exits sooner.
START_TIMEOUT_S = 180


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or POST ``body``) a REST endpoint; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(trained: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """Base URL of an MLflow UI server over the run's store; the server is stopped afterwards."""
    cwd = tmp_path_factory.mktemp("mlflow_server")
    log = cwd / "server.log"
    port = free_loopback_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", trained.tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    # As `make ui`: no job runner (7 processes for GenAI jobs; browsing runs needs none).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("wb") as out:
        # Its own process group: the server's workers are stopped with it.
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, process, log)
        yield base
    finally:
        stop(process)


def wait_for_health(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow ui exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow ui gave no /health in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left of it after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            process.poll()  # reaps the server itself
            os.killpg(process.pid, 0)  # ProcessLookupError once the whole group is gone
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_the_server_lists_the_run_with_the_metrics_training_logged(
    server: str,
    trained: TrainedRun,  # noqa: F811
):
    client = MlflowClient(trained.tracking_uri)
    experiment_id = client.get_run(trained.run_id).info.experiment_id
    found = get_json(f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})

    (run,) = found["runs"]
    assert run["info"]["run_id"] == trained.run_id
    assert run["info"]["status"] == "FINISHED"
    metrics = {metric["key"]: metric["value"] for metric in run["data"]["metrics"]}
    assert metrics == pytest.approx(trained.logged)
    assert any(key.startswith("test/") for key in metrics)


def test_the_server_gives_the_training_loss_step_by_step(server: str, trained: TrainedRun):  # noqa: F811
    query = urllib.parse.urlencode(
        {"run_id": trained.run_id, "metric_key": "train/loss", "max_results": 1000}
    )
    history = get_json(f"{server}/api/2.0/mlflow/metrics/get-history?{query}")["metrics"]

    stored = MlflowClient(trained.tracking_uri).get_metric_history(trained.run_id, "train/loss")
    assert sorted(m["step"] for m in history) == [1, 2, 3]
    assert sorted((m["step"], m["value"]) for m in history) == sorted(
        (m.step, m.value) for m in stored
    )


def test_the_server_gives_the_runs_artifacts(server: str, trained: TrainedRun):  # noqa: F811
    def listing(path: str) -> dict[str, bool]:
        query = urllib.parse.urlencode({"run_id": trained.run_id, "path": path})
        files = get_json(f"{server}/api/2.0/mlflow/artifacts/list?{query}").get("files", [])
        return {entry["path"]: entry["is_dir"] for entry in files}

    root = listing("")
    assert {"config.yaml": False, "test_metrics.md": False, "figures": True}.items() <= root.items()
    assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= set(listing("checkpoints"))
    assert any(path.endswith(".png") for path in listing("figures"))

    query = urllib.parse.urlencode({"run_id": trained.run_id, "path": "test_metrics.md"})
    with urllib.request.urlopen(f"{server}/get-artifact?{query}", timeout=30) as response:
        assert "| CNN |" in response.read().decode()


def test_the_server_serves_the_ui_page(server: str):
    with urllib.request.urlopen(f"{server}/", timeout=30) as response:
        page = response.read().decode()
    assert response.status == 200
    assert "<html" in page.lower()
    assert "mlflow" in page.lower()
