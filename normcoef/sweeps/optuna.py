"""An Optuna sweep that several processes share and that resumes where it stopped.

hydra-optuna-sweeper's loop (``OptunaSweeperImpl.sweep``, 1.4.0rc3 as 1.2) assumes one process
per study: every process seeds its sampler alike (the same parameters in each), numbers its
jobs from 0 (one shared folder per job number), never marks the trial of a killed process as
failed, runs ``n_trials`` more trials on each start and writes its results file in place. This
loop keeps the plugin's configuration, search space parsing (``create_params_from_overrides``,
deletions ``~key`` included), trial configuration (``_configure_trials``) and grid choices,
and changes four things:

- trial n is drawn by a sampler seeded ``seed + n`` (``TrialSeededSampler``), so processes and
  resumed runs, which ask different trial numbers, draw different parameters;
- the Optuna trial number is the Hydra job number, hence the folder ``<number>_<overrides>``:
  unique across processes and resumes, and a resumed study continues its numbering;
- while its jobs run, a process records a heartbeat for their trials (RDB storage), and before
  each batch it marks FAIL the RUNNING trials whose heartbeat stopped for ``grace_period``
  seconds (a killed process), as ``optuna.storages.fail_stale_trials`` does in ``optimize``;
  a trial asked by a process of this host that is gone is marked FAIL at once, without
  waiting for its heartbeat to age (``normcoef.sweeps.trial_owner``); the trials of a batch
  interrupted by Ctrl-C are marked FAIL at once;
- ``n_trials`` is the study's target of COMPLETE trials: a process asks new trials until the
  study holds that many COMPLETE ones, counting those of earlier runs and other processes
  (and those running now). Each process asks at most ``n_trials`` trials, so a study whose
  every trial fails still ends. Counting and asking happen under a lock of the study
  (``study_lock``), so processes that finish trials at the same moment never both ask the
  last one: a study without failures ends with exactly ``n_trials`` COMPLETE trials.

``optimization_results.yaml`` is replaced whole (processes of one study write it in turn).

Registered for Hydra by hydra_plugins/normcoef_optuna_sweeper (a ``hydra.plugins`` entry point);
configured in conf/hparams_search/optuna.yaml.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

import optuna
from hydra.core.utils import JobReturn
from hydra.utils import get_object, instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, GridSampler, QMCSampler
from optuna.storages import RDBStorage
from optuna.study import Study
from optuna.trial import FrozenTrial, Trial, TrialState

from normcoef.sweeps.trial_owner import OWNER_ATTR, host_id, is_gone, this_process
from normcoef.tracking import sqlite_file_lock

log = logging.getLogger(__name__)

# Seconds a SQLite study waits on a file another process is writing before "database is
# locked" (Python's default is 5 s; a few processes finishing trials at once can exceed it).
SQLITE_BUSY_TIMEOUT_S = 60
SAMPLER_WHITELIST = ("optuna.samplers.*", "hydra_plugins.hydra_optuna_sweeper.*")
"""What a sampler config may build: hydra-optuna-sweeper's own execution whitelist."""
WAIT_POLL_S = 5
"""Seconds between looks at trials RUNNING elsewhere (at most the heartbeat interval)."""


class TrialSeededSampler(BaseSampler):
    """Trial n is drawn by a fresh sampler seeded ``seed + n``.

    Processes sharing a study ask different trial numbers, so they no longer replay one random
    stream, and a resumed study draws new values for its new trials instead of its first
    trials' values again. Reproducible: trial n of a study with the same history gets the same
    parameters. The samplers Optuna ships keep their state between trials in the study (or in
    caches they rebuild), not in the sampler; QMCSampler, whose sequence is its seed's, is
    built once (``ScalableOptunaSweeperImpl._make_sampler``).
    """

    def __init__(self, make: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._make = make
        self._seed = seed
        self._number: int | None = None
        self._sampler: BaseSampler = make(seed)

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number != self._number:
            self._number = trial.number
            self._sampler = self._make(None if self._seed is None else self._seed + trial.number)
        return self._sampler

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)


def consecutive_runs(trials: Sequence[Trial]) -> Iterator[list[Trial]]:
    """Trials split where their numbers stop being consecutive (other processes asked between).

    A launcher numbers the jobs of one call from ``initial_job_idx`` upwards, so each run of
    consecutive trial numbers is one launch.
    """
    run: list[Trial] = []
    for trial in trials:
        if run and trial.number != run[-1].number + 1:
            yield run
            run = []
        run.append(trial)
    if run:
        yield run


@contextmanager
def heartbeats(storage: RDBStorage | None, trials: Sequence[Trial], interval: int) -> Iterator:
    """Record a heartbeat for ``trials`` now and every ``interval`` seconds until the block ends.

    ``Study.optimize`` does this for its trials; an ask-and-tell loop must do it itself.
    """
    if storage is None:
        yield
        return
    # Trial exposes no public id; Optuna's own optimize loop uses this attribute.
    trial_ids = [trial._trial_id for trial in trials]
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            for trial_id in trial_ids:
                storage.record_heartbeat(trial_id)

    for trial_id in trial_ids:
        storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def open_storage(storage: Any, heartbeat_interval: int, grace_period: int | None) -> Any:
    """An RDB storage URL becomes an ``RDBStorage`` with heartbeats; anything else is kept."""
    if not isinstance(storage, str):
        return storage
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if storage.startswith("sqlite") else {}
    )
    with warnings.catch_warnings():  # heartbeats are still "experimental" in Optuna 5
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(
            storage,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )


def effective_grace_period(storage: RDBStorage) -> int:
    """Seconds without a heartbeat after which Optuna takes a trial's process for dead: the
    storage's ``grace_period``, by default twice its heartbeat interval (as Optuna does)."""
    interval = storage.get_heartbeat_interval() or 0
    return storage.grace_period or 2 * interval


@contextmanager
def study_lock(storage: Any, study_name: str) -> Iterator[None]:
    """Held while a process counts a study's trials and asks new ones.

    A PostgreSQL study (processes on many hosts) takes a session advisory lock keyed by the
    study's name, on a connection of its own; a SQLite one the file lock beside the database
    (one host). Other storages (in memory: one process) need none.
    """
    url = storage if isinstance(storage, str) else ""
    if not url.startswith("postgresql"):
        with sqlite_file_lock(url):
            yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    key = {"key": zlib.crc32(f"normcoef.optuna:{study_name}".encode()) - 2**31}  # a bigint
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()


def ask(study: Study, count: int) -> list[Trial]:
    """``count`` new trials, each recorded with this process as its owner (trial_owner);
    without Optuna's warning that heartbeats belong to ``optimize``: this loop records them
    itself (``heartbeats``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
        trials = [study.ask() for _ in range(count)]
    owner = this_process()
    for trial in trials if owner is not None else ():
        trial.storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner)
    return trials


def fail_stale_trials(study: Study) -> None:
    """Mark FAIL the trials of processes that stopped: at once those of a process of this host
    that is gone (killed), the others (another host's, or a lost host's) once their heartbeat
    is older than the grace period."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    here = host_id()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(OWNER_ATTR)
        if owner is not None and is_gone(owner, here):
            with contextlib.suppress(RuntimeError):  # another process marked it first
                study.tell(trial.number, state=TrialState.FAIL)
    with warnings.catch_warnings(), contextlib.suppress(RuntimeError):
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    for trial in failed:
        if trial.number not in before:
            log.warning("trial %d stopped without a result (killed?): marked FAIL", trial.number)


def trial_values(ret: JobReturn, n_objectives: int) -> list[float]:
    """The objective values a job returned; raises its error if it failed."""
    value = ret.return_value  # JobReturn raises the job's exception here
    values = [float(v) for v in value] if n_objectives > 1 else [float(value)]
    if len(values) != n_objectives:
        raise ValueError(f"the job returned {len(values)} values for {n_objectives} objectives")
    return values


class ScalableOptunaSweeperImpl(OptunaSweeperImpl):
    """``OptunaSweeperImpl`` with the loop of this module's docstring.

    ``sampler`` arrives as its config (the plugin config sets ``_recursive_: false``) so that
    each trial can get its own seed.
    """

    def __init__(
        self, *args: Any, heartbeat_interval: int = 60, grace_period: int | None = None, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period

    def _make_sampler(self, space: dict[str, BaseDistribution]) -> BaseSampler:
        config = self.sampler
        if not isinstance(config, DictConfig):  # an instantiated sampler: used as it is
            return config
        build = functools.partial(instantiate, _execution_whitelist_=SAMPLER_WHITELIST)
        target = get_object(config._target_)  # a class, or a function (NSGA-II's)
        if target is GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.n_trials = min(
                self.n_trials, functools.reduce(lambda n, c: n * len(c), grid.values(), 1)
            )
            return build(config, _partial_=True)(grid)
        if config.get("seed") is None:
            log.warning("sampler %s has no seed: parallel processes may repeat trials", config)
            return build(config)
        if target is QMCSampler:  # its low-discrepancy sequence is its seed's: one for all
            return build(config)
        return TrialSeededSampler(lambda seed: build(config, seed=seed), config.seed)

    def distributions(
        self, arguments: list[str]
    ) -> tuple[dict[str, BaseDistribution], dict[str, Any], list[str]]:
        """The search space (``params``, then the command line's sweeps), the fixed values and
        the deletions (``~key``) of the sweep's command line ``arguments``."""
        self._process_searchspace_config()
        space, fixed, deletions = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments]
        )
        for name in fixed:
            space.pop(name, None)
        return space, fixed, deletions

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        space, fixed, deletions = self.distributions(arguments)
        directions = self._get_directions()
        # Under the lock: a new SQLite study's tables are created by its first connection.
        with sqlite_file_lock(self.storage if isinstance(self.storage, str) else ""):
            storage = open_storage(self.storage, self.heartbeat_interval, self.grace_period)
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self._make_sampler(space),
                directions=cast(list[Literal["minimize", "maximize"]], directions),
                load_if_exists=True,
            )
        log.info("Study %s in %s, %s", study.study_name, self.storage, type(study.sampler).__name__)
        beating = storage if isinstance(storage, RDBStorage) else None

        asked, waited = 0, False
        while True:
            fail_stale_trials(study)
            with study_lock(self.storage, study.study_name):
                counted = study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
                )
                batch = min(self.n_jobs, self.n_trials - len(counted), self.n_trials - asked)
                trials = ask(study, max(batch, 0))
            if batch <= 0 and beating is not None and asked < self.n_trials:
                running = [t.number for t in counted if t.state == TrialState.RUNNING]
                if running:
                    waited = self._wait_for(running, beating, waited)
                    continue
            if batch <= 0:
                break
            asked += batch
            returns: list[JobReturn] = []
            try:
                with heartbeats(beating, trials, self.heartbeat_interval):
                    overrides = self._configure_trials(trials, space, fixed, deletions)
                    by_number = dict(zip((t.number for t in trials), overrides, strict=True))
                    for run in consecutive_runs(trials):
                        returns += self.launcher.launch(
                            [by_number[t.number] for t in run], initial_job_idx=run[0].number
                        )
            except BaseException:
                # Interrupted (Ctrl-C): the trials without a result end FAIL now, not after
                # the grace period. A SIGKILL or SIGTERM leaves that to the heartbeats.
                for trial, ret in zip(trials, returns, strict=False):  # those that ran
                    self._tell(study, trial, ret, len(directions))
                for trial in trials[len(returns) :]:
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d interrupted: marked FAIL", trial.number)
                raise
            failures = [
                error
                for trial, ret in zip(trials, returns, strict=True)
                if (error := self._tell(study, trial, ret, len(directions))) is not None
            ]
            if len(failures) / len(returns) > self.max_failure_rate:
                log.error(
                    "%d of %d trials failed, max_failure_rate=%s",
                    len(failures),
                    len(returns),
                    self.max_failure_rate,
                )
                raise failures[0]
        self._save_results(study, len(directions))

    def _wait_for(self, running: list[int], storage: RDBStorage, told: bool) -> bool:
        """Trials RUNNING in another process, or in one killed on another host whose heartbeat
        has not yet outlived the grace period: wait a while for their end (done, or marked
        FAIL and replaced) rather than leave the study short of its target; says so once."""
        if not told:
            log.info(
                "waiting for trial(s) %s: RUNNING in another process, or killed on another host"
                " (then marked FAIL once their heartbeat is %s s old, and run again here)",
                running,
                effective_grace_period(storage),
            )
        time.sleep(min(self.heartbeat_interval, WAIT_POLL_S))
        return True

    @staticmethod
    def _tell(study: Study, trial: Trial, ret: JobReturn, n_objectives: int) -> Exception | None:
        """Record a job's result on its trial; the job's error if it failed."""
        try:
            values = trial_values(ret, n_objectives)
        except Exception as error:
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, error)
            return error
        try:
            study.tell(trial, values=values)
        except RuntimeError as error:  # GridSampler stops the study when the grid is done
            if "Study.stop" not in str(error):
                raise
        return None

    def _save_results(self, study: Study, n_objectives: int) -> None:
        """The study's best so far in ``<sweep dir>/optimization_results.yaml``, as the plugin."""
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            log.warning("study %s has no COMPLETE trial yet", study.study_name)
            return
        assert self.config is not None
        results: dict[str, Any]
        if n_objectives == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info("Best parameters: %s, value %s", best.params, best.value)
        else:
            front = [{"params": t.params, "values": t.values} for t in study.best_trials]
            results = {"name": "optuna", "solutions": front}
        path = Path(str(self.config.hydra.sweep.dir)) / "optimization_results.yaml"
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # processes write in turn
        OmegaConf.save(OmegaConf.create(results), partial)
        os.replace(partial, path)
