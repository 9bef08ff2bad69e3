"""Specification of Optuna studies shared by processes, resumed after a kill, and of SQLite
stores (MLflow's, Optuna's) that several processes create at once.

The end-to-end tests run ``python -m normcoef.train -m hparams_search=optuna_smoke`` as
subprocesses on a 16x24 python grid with 4-channel networks and 6 steps, each test with its
own new SQLite study and MLflow store.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import TinyDataset
from hydra.errors import InstantiationException
from mlflow import MlflowClient
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution
from optuna.samplers import GridSampler, NSGAIISampler, QMCSampler, TPESampler
from optuna.trial import TrialState

from normcoef.sweeps.optuna import (
    ScalableOptunaSweeperImpl,
    TrialSeededSampler,
    ask,
    consecutive_runs,
    fail_stale_trials,
    heartbeats,
    open_storage,
    study_lock,
)
from normcoef.sweeps.trial_owner import OWNER_ATTR, this_process
from normcoef.tracking.store import prepare_tracking_store, sqlite_path

PLUGIN = "hydra_plugins.hydra_optuna_sweeper"

REPO = Path(__file__).resolve().parents[1]
STUDY_DIR = Path("multirun") / "optuna_smoke"
PG_URI_ENV = "NORMCOEF_PG_URI"
"""A PostgreSQL server (``postgresql://user@host:port``, a database ``optuna`` on it), as
tests/cluster/ takes it."""
NO_POSTGRESQL = pytest.mark.skipif(
    PG_URI_ENV not in os.environ or importlib.util.find_spec("psycopg") is None,
    reason=f"no PostgreSQL server: set {PG_URI_ENV} and install normcoef[cluster]",
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """A working directory holding the tiny data set at the smoke presets' root."""
    root = tmp_path_factory.mktemp("optuna_parallel")
    tiny_dataset(test=1, into=root / "data" / "python-16x24-seed0")
    (root / "multirun").mkdir()
    return root


def search(workdir: Path, name: str, n_trials: int, *overrides: str) -> subprocess.Popen:
    """Start ``normcoef.train -m hparams_search=optuna_smoke`` on study ``name`` in ``workdir``.

    The study lives in ``<name>.db`` and the MLflow runs in ``<name>_mlflow.db``, both new.
    """
    command = [
        sys.executable,
        "-m",
        "normcoef.train",
        "-m",
        "hparams_search=optuna_smoke",
        f"hydra.sweeper.storage=sqlite:///{workdir}/{name}.db",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"logger.tracking_uri=sqlite:///{workdir}/{name}_mlflow.db",
        *overrides,
    ]
    # PYTHONPATH: the sweeper's hydra_plugins package sits at the repository root.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(process: subprocess.Popen) -> None:
    """Wait for a search; fail the test with its output if it failed."""
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-4000:]


def trial_folders(workdir: Path, name: str) -> dict[int, list[Path]]:
    """Job folders of a study by their leading number."""
    folders: dict[int, list[Path]] = {}
    study_dir = workdir / STUDY_DIR / name
    for path in study_dir.iterdir() if study_dir.is_dir() else []:
        if path.is_dir() and path.name.split("_")[0].isdigit():
            folders.setdefault(int(path.name.split("_")[0]), []).append(path)
    return folders


def job_runs(workdir: Path, name: str) -> list:
    """The MLflow runs of a study's jobs (not the sweep's summary runs)."""
    client = MlflowClient(f"sqlite:///{workdir}/{name}_mlflow.db")
    experiment = client.get_experiment_by_name("normcoef")
    runs = client.search_runs([experiment.experiment_id])
    return [run for run in runs if "normcoef.overrides" in run.data.tags]


def assert_distinct_params(trials: list) -> None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({tuple(sorted(t.params.items())) for t in complete}) == len(complete)


# --- the pieces --------------------------------------------------------------------------


def sample_lr(sampler: TPESampler, number: int) -> float:
    study = optuna.create_study(sampler=sampler)
    for _ in range(number):  # trials before `number`, left running: no history to learn from
        study.ask()
    return study.ask().suggest_float("lr", 1e-4, 1e-2, log=True)


def test_trial_n_is_drawn_with_seed_plus_n_so_processes_and_resumes_differ():
    def seeded() -> TrialSeededSampler:
        return TrialSeededSampler(lambda seed: TPESampler(seed=seed), 42)

    # Two processes with the same configured seed asking trials 0 and 1 of one study.
    assert sample_lr(seeded(), 0) != sample_lr(seeded(), 1)
    # Reproducible: trial 1 of the same history gets the same value in any process.
    assert sample_lr(seeded(), 1) == sample_lr(seeded(), 1)
    # Trial n is drawn like a sampler seeded seed + n.
    assert sample_lr(seeded(), 1) == sample_lr(TPESampler(seed=43), 1)


def sweeper_with(sampler: dict) -> ScalableOptunaSweeperImpl:
    return ScalableOptunaSweeperImpl(
        sampler=OmegaConf.create(sampler),
        direction="minimize",
        storage=None,
        study_name=None,
        n_trials=10,
        n_jobs=1,
        max_failure_rate=0.0,
        custom_search_space=None,
        params=None,
    )


def test_configured_samplers_get_a_seed_per_trial_and_a_grid_caps_the_trials():
    space = {"loss": CategoricalDistribution(["mse", "rel_sq"])}
    tpe = sweeper_with({"_target_": "optuna.samplers.TPESampler", "seed": 42})
    assert isinstance(tpe._make_sampler(space), TrialSeededSampler)
    grid = sweeper_with({"_target_": "optuna.samplers.GridSampler", "_partial_": True})
    assert isinstance(grid._make_sampler(space), GridSampler)
    assert grid.n_trials == 2
    # hydra-optuna-sweeper 1.4 builds NSGA-II through a function, not a class.
    nsga = sweeper_with({"_target_": f"{PLUGIN}._impl.create_nsgaii_sampler", "seed": 1})
    made = nsga._make_sampler(space)
    assert isinstance(made, TrialSeededSampler) and isinstance(made._make(3), NSGAIISampler)
    # A quasi-random sequence is its seed's: one sampler for every trial.
    qmc = sweeper_with({"_target_": "optuna.samplers.QMCSampler", "seed": 1})
    assert isinstance(qmc._make_sampler(space), QMCSampler)


def test_a_sampler_config_may_build_only_samplers():
    with pytest.raises(InstantiationException, match="not in the Hydra execution whitelist"):
        sweeper_with({"_target_": "os.getcwd", "seed": 1})._make_sampler({})


def test_trials_launch_in_runs_of_consecutive_numbers_so_job_number_is_trial_number():
    study = optuna.create_study()
    trials = [study.ask() for _ in range(6)]
    mine = [trials[i] for i in (0, 1, 3, 4, 5)]  # trial 2 was asked by another process
    assert [[t.number for t in run] for run in consecutive_runs(mine)] == [[0, 1], [3, 4, 5]]


@pytest.mark.reliability(
    "sweep",
    "the process running a trial is killed",
    "handled",
    "its RUNNING trial is marked FAIL once its heartbeat stops for the grace period",
)
def test_a_running_trial_without_heartbeat_beyond_the_grace_period_is_marked_fail(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/study.db", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    alive, dead = study.ask(), study.ask()
    with heartbeats(storage, [dead], interval=1):
        pass  # one heartbeat, then the process "dies"
    with heartbeats(storage, [alive], interval=1):
        time.sleep(3)
        fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {alive.number: TrialState.RUNNING, dead.number: TrialState.FAIL}


@pytest.mark.reliability(
    "sweep",
    "a RUNNING trial whose process on this host is gone (killed; its pid free or reused)",
    "handled",
    "marked FAIL at once; a trial asked on another host is left to its heartbeat",
)
def test_a_running_trial_of_a_process_of_this_host_that_is_gone_is_marked_fail_at_once(tmp_path):
    # Heartbeats fresh and a grace period of 600 s: only the trials' owners tell them apart.
    storage = open_storage(
        f"sqlite:///{tmp_path}/study.db", heartbeat_interval=60, grace_period=600
    )
    study = optuna.create_study(storage=storage)
    me = this_process()
    assert me is not None
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    owners = {
        "killed": {**me, "pid": int(ended.stdout)},
        "pid reused": {**me, "started": int(me["started"]) - 1},
        "on another host": {**me, "host": "another-host", "pid": int(ended.stdout)},
    }
    alive = ask(study, 1)[0]  # recorded as this process's
    numbers = {"alive": alive.number}
    for name, owner in owners.items():
        trial = study.ask()
        trial.storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner)
        numbers[name] = trial.number
    with heartbeats(storage, [alive, *study.get_trials(deepcopy=False)[1:]], interval=60):
        fail_stale_trials(study)

    states = {name: study.trials[number].state for name, number in numbers.items()}
    assert study.trials[alive.number].system_attrs[OWNER_ATTR] == me
    assert states == {
        "alive": TrialState.RUNNING,
        "killed": TrialState.FAIL,
        "pid reused": TrialState.FAIL,
        "on another host": TrialState.RUNNING,
    }


@pytest.mark.reliability(
    "sweep",
    "two processes count and ask a study's trials at the same moment",
    "handled",
    "the second waits on the study's lock until the first has asked its trials",
)
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=NO_POSTGRESQL)])
def test_the_study_lock_keeps_a_second_taker_out_until_the_first_releases_it(engine, tmp_path):
    if engine == "sqlite":  # a file lock beside the database: processes of one host
        storage = f"sqlite:///{tmp_path}/study.db"
    else:  # an advisory lock of the server: processes of many hosts
        storage = f"{os.environ[PG_URI_ENV]}/optuna"
    study, order = f"lock-{tmp_path.name}", []
    held, release = threading.Event(), threading.Event()

    def first() -> None:
        with study_lock(storage, study):
            order.append("first takes it")
            held.set()
            release.wait(timeout=30)
            order.append("first releases it")

    def second() -> None:
        held.wait(timeout=30)
        with study_lock(storage, study):
            order.append("second takes it")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    held.wait(timeout=30)
    time.sleep(0.5)  # the second, started, would take a lock that held nothing by now
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert order == ["first takes it", "first releases it", "second takes it"]


def test_sqlite_lock_file_sits_beside_the_database_and_servers_get_none():
    assert sqlite_path("sqlite:///multirun/optuna.db") == Path("multirun/optuna.db")
    assert sqlite_path("sqlite:////abs/mlflow.db") == Path("/abs/mlflow.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("http://mlflow-host:5000") is None
    assert sqlite_path("postgresql://user:pw@db/optuna") is None


def prepare_together(uri: str, barrier, results) -> None:
    import mlflow  # noqa: F401 (imported before the barrier, so that the processes start together)

    barrier.wait()
    try:
        results.put(prepare_tracking_store(uri, "normcoef"))
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")


@pytest.mark.slow
@pytest.mark.reliability(
    "train",
    "several runs start at once on a new SQLite MLflow store",
    "handled",
    "one creates the schema and the experiment under a file lock, the others wait",
)
def test_processes_starting_together_on_a_new_mlflow_store_all_get_the_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    processes = [
        context.Process(target=prepare_together, args=(uri, barrier, results)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    ids = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    assert len(set(ids)) == 1, ids
    assert MlflowClient(uri).get_experiment_by_name("normcoef").experiment_id == ids[0]


# --- end to end --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "two processes run one Optuna study on a new SQLite study and MLflow store",
    "handled",
    "both succeed, distinct parameters, one folder and one MLflow run per trial",
)
def test_two_processes_on_one_study_run_distinct_trials_each_in_its_own_folder(workdir: Path):
    first, second = (search(workdir, "shared", 4) for _ in range(2))
    finished(first)
    finished(second)

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{workdir}/shared.db")
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # n_trials is the study's target: both processes together reach it, and counting and
    # asking happen under the study's lock, so neither overshoots it.
    assert len(complete) == len(trials) == 4
    assert_distinct_params(trials)
    folders = trial_folders(workdir, "shared")
    assert {n: len(paths) for n, paths in folders.items()} == {t.number: 1 for t in trials}
    runs = job_runs(workdir, "shared")
    assert sorted(run.data.tags["normcoef.override.optimizer.lr"] for run in runs) == sorted(
        str(t.params["optimizer.lr"]) for t in trials
    )


def running_trial(workdir: Path, name: str, process: subprocess.Popen) -> int:
    """Wait until the search runs the job of a trial after a COMPLETE one; that trial's number."""
    storage = f"sqlite:///{workdir}/{name}.db"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except KeyError:  # the study is not created yet
            trials = []
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        # Its folder exists: the job of the trial started.
        if running and running[0] in trial_folders(workdir, name):
            if any(t.state == TrialState.COMPLETE for t in trials):
                return running[0]
        time.sleep(0.2)
    raise AssertionError(f"search {name} ended before it could be stopped in its second trial")


LONG_TRIAL = ("trainer.steps=600", "trainer.eval_every=300", "trainer.checkpoint_every=300")
"""Each trial trains for seconds on the tiny set, so a signal sent as it starts lands in it."""


def stopped_in_a_trial(
    workdir: Path, name: str, n_trials: int, stop: signal.Signals, *overrides: str
) -> int:
    """Start a search, send it ``stop`` while it runs a trial after a COMPLETE one, wait for
    it to end; that trial's number.

    The trials train for seconds (``LONG_TRIAL``), not the smoke preset's 6 steps: a job that
    short could end between the poll that sees it run and the signal, and its trial would
    rightly be COMPLETE (CI saw it once on a loaded machine)."""
    process = search(workdir, name, n_trials, *LONG_TRIAL, *overrides)
    trial = running_trial(workdir, name, process)
    process.send_signal(stop)
    process.communicate(timeout=120)
    return trial


def snapshot(folders: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for folder in folders for p in folder.rglob("*")}


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "an Optuna search killed during a trial, then run again",
    "handled",
    "the killed trial ends FAIL, numbering goes on, no COMPLETE trial runs again",
)
def test_a_killed_study_resumes_with_its_killed_trial_failed_and_no_trial_run_twice(
    workdir: Path,
):
    heartbeat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    storage = f"sqlite:///{workdir}/killed.db"
    killed = stopped_in_a_trial(workdir, "killed", 3, signal.SIGKILL, *heartbeat)
    before = optuna.load_study(study_name="killed", storage=storage).get_trials()
    done = [t.number for t in before if t.state == TrialState.COMPLETE]
    folders = trial_folders(workdir, "killed")
    untouched = snapshot([folders[n][0] for n in done])

    time.sleep(3)  # past the grace period: the killed process's heartbeat has stopped
    finished(search(workdir, "killed", 3, *heartbeat))

    after = optuna.load_study(study_name="killed", storage=storage).get_trials()
    states = {t.number: t.state for t in after}
    assert states[killed] == TrialState.FAIL
    assert sum(state == TrialState.COMPLETE for state in states.values()) == 3
    assert sorted(states) == list(range(len(after)))  # numbering went on after the kill
    assert all(n > killed for n in states if n not in done and n != killed)
    assert_distinct_params(after)
    folders = trial_folders(workdir, "killed")
    assert all(len(paths) == 1 for paths in folders.values())
    assert snapshot([folders[n][0] for n in done]) == untouched


GRACE_PERIOD_S = 600
"""conf/hparams_search/optuna.yaml's: a trial's heartbeat this old belongs to a dead process."""


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "an Optuna search killed (kill -9) during a trial, then run again at once on the same host",
    "handled",
    "the killed process is gone: its trial is marked FAIL at once, not after the 600 s grace "
    "period, and the search reaches n_trials COMPLETE",
)
def test_a_search_killed_and_run_again_at_once_on_the_same_host_goes_on_without_waiting(
    workdir: Path,
):
    """The killed trial's heartbeat is fresh, and a process of another host could be running
    it; but its owner was a process of this host, which is gone."""
    storage = f"sqlite:///{workdir}/at_once.db"
    killed = stopped_in_a_trial(workdir, "at_once", 2, signal.SIGKILL)  # default heartbeats

    started = time.monotonic()
    resumed = search(workdir, "at_once", 2)
    try:  # one trial of seconds to run; a wait for the heartbeat to age would take 600 s
        out, _ = resumed.communicate(timeout=GRACE_PERIOD_S / 4)
    except subprocess.TimeoutExpired:
        resumed.kill()
        out, _ = resumed.communicate()
    elapsed = time.monotonic() - started

    assert resumed.returncode == 0 and elapsed < GRACE_PERIOD_S / 4, out[-4000:]
    assert "waiting for trial" not in out
    states = {
        t.number: t.state
        for t in optuna.load_study(study_name="at_once", storage=storage).get_trials()
    }
    assert states[killed] == TrialState.FAIL
    assert TrialState.RUNNING not in states.values()
    assert sum(state == TrialState.COMPLETE for state in states.values()) == 2


@pytest.mark.slow
@pytest.mark.reliability(
    "sweep",
    "Ctrl-C during a trial of an Optuna search",
    "handled",
    "the interrupted trial is marked FAIL at once",
)
def test_an_interrupted_trial_is_marked_fail_at_once(workdir: Path):
    interrupted = stopped_in_a_trial(workdir, "interrupted", 3, signal.SIGINT)

    study = optuna.load_study(
        study_name="interrupted", storage=f"sqlite:///{workdir}/interrupted.db"
    )
    states = {t.number: t.state for t in study.get_trials()}
    assert states[interrupted] == TrialState.FAIL
    assert TrialState.RUNNING not in states.values()
