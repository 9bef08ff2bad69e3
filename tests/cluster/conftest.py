"""The cluster scenarios' machinery: the engines' addresses, "hosts", commands, server reads.

The engines (PostgreSQL, an MLflow server over it with ``--serve-artifacts``, a single-node
SLURM cluster) are started and stopped by tests/cluster/run.sh (``make test-cluster``), which
also installs them; these tests only use them. A "host" is a working directory of its own with
its own copy of the smoke data set: what two machines of a cluster share is the SLURM
controller, the PostgreSQL server and the MLflow server, nothing on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from optuna.trial import FrozenTrial, TrialState

REPO = Path(__file__).resolve().parents[2]
ENGINES = REPO / "tests" / "cluster" / "engines.sh"
MLFLOW_URI = os.environ.get("NORMCOEF_MLFLOW_URI", "http://127.0.0.1:55000")
PG_URI = os.environ.get("NORMCOEF_PG_URI", "postgresql://postgres@127.0.0.1:55432")
OPTUNA_URI = f"{PG_URI}/optuna"
SMOKE_DATA = "data/python-16x24-seed0"  # the smoke presets' dataset.root (smoke/shrink.yaml)
COMMAND_TIMEOUT_S = 420
SESSION = time.strftime("%H%M%S")
"""In the names of the scenarios' MLflow experiments and Optuna studies: a rerun against the
same engines reads its own runs and trials only."""


def unique(name: str) -> str:
    """``name`` made unique to this session of the tests."""
    return f"{name}-{SESSION}"


def engines(action: str) -> None:
    """``tests/cluster/engines.sh <action>``: stop-mlflow, start-mlflow, stop-postgres..."""
    subprocess.run(["bash", str(ENGINES), action], check=True, timeout=300)


def get_json(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or POST ``body``) a REST endpoint of the MLflow server; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def artifact_paths(run_id: str, path: str = "") -> dict[str, bool]:
    """``{path: is_dir}`` of a run's artifacts under ``path``, listed by the server's REST API."""
    query = urllib.parse.urlencode({"run_id": run_id, "path": path})
    files = get_json(f"{MLFLOW_URI}/api/2.0/mlflow/artifacts/list?{query}").get("files", [])
    return {entry["path"]: entry["is_dir"] for entry in files}


def download_artifact(run_id: str, path: str, into: Path) -> Path:
    """One artifact of a run, downloaded through the server's REST API into ``into``."""
    query = urllib.parse.urlencode({"run_id": run_id, "path": path})
    target = into / Path(path).name
    with urllib.request.urlopen(f"{MLFLOW_URI}/get-artifact?{query}", timeout=60) as response:
        target.write_bytes(response.read())
    return target


def server_runs(experiment: str) -> list[Run]:
    """Every run of an MLflow experiment on the server (none if it does not exist)."""
    client = MlflowClient(MLFLOW_URI)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], max_results=1000)


ACCOUNTING_SETTLE_S = 60
"""Seconds sacct may take to record the end of a job whose result the sweep already has."""


def slurm_job_states(sweep_dir: Path) -> dict[str, str]:
    """``{SLURM job id: state}`` of the jobs (array tasks ``<id>_<n>``) that submitit submitted
    for a sweep, as SLURM's accounting (sacct) reports them; ``.submitit/`` holds one folder
    per submission."""
    ids = [path.name for path in (sweep_dir / ".submitit").iterdir() if path.name.isdigit()]
    deadline = time.monotonic() + ACCOUNTING_SETTLE_S
    while True:
        done = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", *(f"-j{i}" for i in ids)],
            capture_output=True,
            text=True,
            check=True,
        )
        states = dict(line.split("|", 1) for line in done.stdout.split())
        # A job's result reaches the sweep before its end reaches the accounting (seen: the
        # last array task still RUNNING in sacct right after the sweep ended).
        unsettled = [s for s in states.values() if s in ("PENDING", "RUNNING", "COMPLETING")]
        if not unsettled or time.monotonic() > deadline:
            return states
        time.sleep(1)


@dataclass
class Done:
    """A finished command: its exit status and output (stdout and stderr together)."""

    returncode: int
    output: str


class Host:
    """A working directory standing for one machine of the cluster."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def start(
        self, module: str, *arguments: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """``python -m <module> <arguments>`` in this host's directory, in the background,
        with ``env`` added to the environment."""
        # PYTHONPATH: normcoef's Hydra plugins (sweeper, launcher) sit at the repository root.
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
        return subprocess.Popen(
            [sys.executable, "-m", module, *arguments],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, module: str, *arguments: str) -> Done:
        return wait(self.start(module, *arguments))


def wait(process: subprocess.Popen, timeout: float = COMMAND_TIMEOUT_S) -> Done:
    """The end of a command started by ``Host.start``; killed after ``timeout`` seconds."""
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"{process.args} ran over {timeout} s:\n{out[-4000:]}")
    return Done(process.returncode, out)


def on_slurm(experiment: str) -> list[str]:
    """The overrides of a sweep on the cluster: one SLURM job per run with 1 CPU, logging to
    the MLflow server under its own experiment (each scenario reads only its own runs)."""
    return [
        "hydra/launcher=slurm_cpu",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "trainer.num_threads=1",
        f"logger.tracking_uri={MLFLOW_URI}",
        f"logger.experiment={experiment}",
    ]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    """Poll ``condition`` every half second until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"no {what} after {timeout} s")


def search(host: Host, study: str, n_trials: int, *overrides: str) -> subprocess.Popen:
    """``hparams_search=optuna_smoke`` on the PostgreSQL study ``study``, trials on SLURM,
    runs in the MLflow experiment of the same name."""
    return host.start(
        "normcoef.train",
        "-m",
        "hparams_search=optuna_smoke",
        f"hydra.sweeper.storage={OPTUNA_URI}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={n_trials}",
        *on_slurm(study),
        *overrides,
    )


def trials(study: str, *states: TrialState) -> list[FrozenTrial]:
    loaded = optuna.load_study(study_name=study, storage=OPTUNA_URI)
    return loaded.get_trials(deepcopy=False, states=states or None)


@pytest.fixture(scope="session", autouse=True)
def running_engines() -> None:
    """The engines answer, or the session stops with how to start them."""
    try:
        urllib.request.urlopen(f"{MLFLOW_URI}/health", timeout=10).close()
        subprocess.run(["sinfo"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.exit(f"the cluster engines are not running ({error}): run make test-cluster")


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke presets' data set (python grid 16x24, 3/1/1 samples), generated once."""
    root = tmp_path_factory.mktemp("smoke_data")
    command = [
        sys.executable,
        "-m",
        "normcoef.generate",
        "dataset=partial_std",
        "dataset.grid=python",
        "dataset.height=16",
        "dataset.width=24",
        "dataset.splits.train=3",
        "dataset.splits.test=1",
        f"dataset.root={SMOKE_DATA}",
        "progress=false",
    ]
    subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=300)
    return root / SMOKE_DATA


@pytest.fixture(scope="session")
def new_host(tmp_path_factory: pytest.TempPathFactory, smoke_data: Path) -> Callable[[str], Host]:
    """A factory of hosts: each a new working directory with its own copy of the data."""

    def make(name: str) -> Host:
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(smoke_data, root / SMOKE_DATA)
        return Host(root)

    return make
