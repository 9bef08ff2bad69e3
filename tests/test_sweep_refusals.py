"""Specification of the sweeps normcoef refuses: a sweep that cannot run what it asks ends
before any of it starts, with one ``error:`` line naming the key and exit 2, and leaves the
MLflow store as it was (no parent run left RUNNING, no job run).

Each case runs ``python -m normcoef.train -m`` as a subprocess in a folder holding the smoke
presets' tiny data set; the MLflow store (a SQLite file of the test) holds one earlier run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TinyDataset
from mlflow import MlflowClient
from mlflow.entities import ViewType

from normcoef.console import EXIT_USER_ERROR

REPO = Path(__file__).resolve().parents[1]
OPTUNA = ["hparams_search=optuna_smoke"]  # a new SQLite study in the test's folder, unless named
GRID = ["experiment=smoke/activation"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """A working directory holding the tiny data set at the smoke presets' root, a file where
    a folder is expected, and an MLflow store holding one finished run."""
    root = tmp_path_factory.mktemp("refusals")
    tiny_dataset(test=1, into=root / "data" / "python-16x24-seed0")
    (root / "multirun").mkdir()
    (root / "a_file").write_text("not a folder\n")
    client = MlflowClient(store_uri(root))
    experiment = client.create_experiment("normcoef", artifact_location=str(root / "mlruns"))
    client.set_terminated(client.create_run(experiment).info.run_id)
    return root


def store_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir}/mlflow.db"


def store_contents(uri: str) -> list[tuple]:
    """Every experiment and run of the store, with the runs' status and end."""
    client = MlflowClient(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)
    return [(e.name,) for e in experiments] + [
        (run.info.run_id, run.info.status, run.info.end_time) for run in runs
    ]


def refusal(fault: str, detail: str) -> pytest.MarkDecorator:
    return pytest.mark.reliability("sweep", fault, "error", f"refused before any run: {detail}")


COUNT = refusal(
    "a count of 0 or less: n_trials, n_jobs, heartbeat_interval, max_batch_size; "
    "hydra.launcher.n_jobs=0",
    "one line naming the key, exit 2, MLflow store unchanged",
)
SETTING = refusal(
    "a sweeper setting out of range: max_failure_rate, grace_period <= heartbeat_interval, "
    "a misspelt or second direction",
    "one line naming the key, exit 2, MLflow store unchanged",
)
EMPTY = refusal(
    "a sweep over no value: range(5,1), choice() in params, a glob matching no option",
    "one line naming the override, exit 2, MLflow store unchanged",
)
SPACE = refusal(
    "a search space the sweeper cannot draw from: interval(0.1,0.01), a log interval from 0, "
    "an interval in a grid sweep",
    "one line naming the override and Optuna's reason, exit 2, MLflow store unchanged",
)
SAMPLER = refusal(
    "an Optuna sampler that cannot be imported",
    "one line naming hydra.sweeper.sampler, exit 2, MLflow store unchanged",
)
DRIVER = refusal(
    "an Optuna storage whose database driver is not installed (postgresql without psycopg)",
    "one line naming the driver and pip install 'normcoef[cluster]', exit 2, store unchanged",
)
STORAGE = refusal(
    "an Optuna storage that cannot be opened (no such folder, not a URL)",
    "one line naming hydra.sweeper.storage (password hidden) and why, exit 2, store unchanged",
)
TRACKING = refusal(
    "an MLflow store of the sweep that cannot be opened",
    "one line naming logger.tracking_uri, exit 2, instead of every job failing on it",
)
NO_PSYCOPG = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is not None, reason="psycopg is installed"
)

CASES: list[tuple[pytest.MarkDecorator | list[pytest.MarkDecorator], list[tuple[list, str]]]] = [
    (
        COUNT,
        [
            (
                [*OPTUNA, "hydra.sweeper.n_trials=0"],
                "hydra.sweeper.n_trials=0: must be a positive integer",
            ),
            (
                [*OPTUNA, "hydra.sweeper.n_trials=-3"],
                "hydra.sweeper.n_trials=-3: must be a positive",
            ),
            ([*OPTUNA, "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0: must be a positive"),
            (
                [*OPTUNA, "hydra.sweeper.heartbeat_interval=0"],
                "hydra.sweeper.heartbeat_interval=0: must",
            ),
            (
                [*GRID, "activation=relu,elu", "hydra.sweeper.max_batch_size=0"],
                "max_batch_size=0: must",
            ),
            (
                [
                    *GRID,
                    "activation=relu,elu",
                    "hydra/launcher=local_parallel",
                    "hydra.launcher.n_jobs=0",
                ],
                "hydra.launcher.n_jobs=0 runs no job",
            ),
        ],
    ),
    (
        SETTING,
        [
            (
                [*OPTUNA, "hydra.sweeper.max_failure_rate=-1"],
                "max_failure_rate=-1.0: must be between 0 and 1",
            ),
            (
                [*OPTUNA, "hydra.sweeper.heartbeat_interval=60", "hydra.sweeper.grace_period=30"],
                "hydra.sweeper.grace_period=30 must exceed heartbeat_interval=60",
            ),
            (
                [*OPTUNA, "hydra.sweeper.direction=minimise"],
                "direction=minimise: must be minimize or maximize",
            ),
            (
                [*OPTUNA, "hydra.sweeper.direction=[minimize,maximize]"],
                "train returns one value to optimize",
            ),
        ],
    ),
    (
        EMPTY,
        [
            ([*OPTUNA, "model.layers=range(5,1)"], "model.layers=range(5,1): sweeps over no value"),
            (
                [*OPTUNA, 'hydra.sweeper.params={model.layers:"choice()"}'],
                "'model.layers=choice()'",
            ),
            ([*GRID, "trainer.seed=range(5,1)"], "trainer.seed=range(5,1): sweeps over no value"),
            ([*GRID, "activation=glob(nope*)"], "activation=glob(nope*): sweeps over no value"),
        ],
    ),
    (
        SPACE,
        [
            (
                [*OPTUNA, "optimizer.lr=interval(0.1,0.01)"],
                "lr=interval(0.1,0.01): `low <= high` must hold",  # Optuna 5's words
            ),
            (
                [*OPTUNA, "optimizer.lr=tag(log,interval(0,0.01))"],
                "`low > 0` must hold for `log=True`",
            ),
            (
                [*GRID, "trainer.seed=interval(0,1)"],
                "seed=interval(0,1): a grid sweep takes choice(...)",
            ),
        ],
    ),
    (
        SAMPLER,
        [
            (
                [*OPTUNA, "hydra.sweeper.sampler._target_=optuna.samplers.Nope"],
                "hydra.sweeper.sampler: Error loading 'optuna.samplers.Nope'",
            ),
        ],
    ),
    (
        [DRIVER, NO_PSYCOPG],
        [
            (
                [*OPTUNA, "hydra.sweeper.storage=postgresql://user:secret@127.0.0.1:1/optuna"],
                "storage=postgresql://user:***@127.0.0.1:1/optuna: its database driver psycopg "
                "is not installed (pip install 'normcoef[cluster]')",
            ),
        ],
    ),
    (
        STORAGE,
        [
            (
                [*OPTUNA, "hydra.sweeper.storage=sqlite:///a_file/optuna.db"],
                "hydra.sweeper.storage=sqlite:///a_file/optuna.db cannot be opened: [Errno",
            ),
            ([*OPTUNA, "hydra.sweeper.storage=optuna.db"], "storage=optuna.db: not a database URL"),
        ],
    ),
    (
        TRACKING,
        [
            (
                [*GRID, "activation=relu,elu", "logger.tracking_uri=sqlite:///a_file/mlflow.db"],
                "logger.tracking_uri=sqlite:///a_file/mlflow.db: cannot create a_file/mlflow.db",
            ),
        ],
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(overrides, message, marks=marks, id=overrides[-1])
        for marks, cases in CASES
        for overrides, message in cases
    ],
)
def test_a_sweep_that_cannot_run_is_refused_in_one_line_leaving_no_run(
    workdir: Path, tmp_path: Path, overrides: list[str], message: str
):
    uri = store_uri(workdir)
    before = store_contents(uri)
    if overrides[0] in OPTUNA and not any(
        o.startswith("hydra.sweeper.storage=") for o in overrides
    ):
        overrides = [*overrides, f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db"]
    command = [
        sys.executable,
        "-m",
        "normcoef.train",
        "-m",
        f"logger.tracking_uri={uri}",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == EXIT_USER_ERROR, done.stdout[-3000:] + done.stderr[-3000:]
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and message in line, line
    assert store_contents(uri) == before
    assert list((workdir / "multirun").iterdir()) == []  # no sweep folder, no job folder
