"""A sweep that cannot run what it asks is refused in one line, before any of it starts.

Hydra opens the sweep's MLflow parent run (``ParentRun.on_multirun_start``) before it builds the
sweeper, and the sweepers read their counts, search space, sampler and storage only once they
run: a mistake in any of them left a parent run RUNNING beside a traceback, and a count of 0
or an empty range ran nothing and exited 0. ``sweep_problem`` reads all of them from the
composed config first, and opens the Optuna storage (its driver, its server or file);
``ParentRun`` refuses the sweep with its answer before it opens a run.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from normcoef.console import EXIT_USER_ERROR, one_line
from normcoef.sweeps.failures import BASIC_SWEEPER
from normcoef.tracking import sqlite_file_lock

if TYPE_CHECKING:
    from normcoef.sweeps.optuna import ScalableOptunaSweeperImpl

OPTUNA_SWEEPER = "hydra_plugins.normcoef_optuna_sweeper.NormcoefOptunaSweeper"
COUNTS = ("n_trials", "n_jobs", "heartbeat_interval", "grace_period", "max_batch_size")
"""Counts of the sweepers' configs; null, where a sweeper allows it, is its default."""
CLUSTER_EXTRA = "pip install 'normcoef[cluster]'"
"""What brings the PostgreSQL driver (psycopg 3) of a shared study (pyproject.toml)."""


def refuse(problem: str) -> NoReturn:
    """End the command with ``problem`` on one line, exit 2.

    SystemExit passes Hydra's callback guard, which turns any other exception into a warning
    and goes on with the sweep."""
    print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def sweep_problem(config: DictConfig) -> str | None:
    """Why the multirun ``config`` (composed with its ``hydra`` node) cannot run what it asks,
    on one line naming the key; None when it can."""
    sweeper = config.hydra.sweeper
    if (problem := count_problem(config)) is not None:
        return problem
    try:
        overrides = swept_overrides(config)
    except HydraException as error:  # Hydra's message ends with a pointer to its grammar
        return one_line(error).split(" See https://")[0]
    if (problem := empty_sweep(overrides)) is not None:
        return problem
    if sweeper._target_ == BASIC_SWEEPER:
        return grid_problem(overrides)
    if sweeper._target_ == OPTUNA_SWEEPER:
        return optuna_problem(sweeper, list(config.hydra.overrides.task))
    return None


def swept_overrides(config: DictConfig) -> list[Override]:
    """The sweeper's ``params`` and the command line's overrides, parsed; the config loader of
    the running Hydra (if any) expands ``glob(...)`` over a group's options, as the sweep will."""
    hydra = GlobalHydra.instance()
    loader = hydra.config_loader() if hydra.is_initialized() else None
    params = config.hydra.sweeper.get("params") or {}
    return OverridesParser.create(loader).parse_overrides(
        [*(f"{key}={value}" for key, value in params.items()), *config.hydra.overrides.task]
    )


def count_problem(config: DictConfig) -> str | None:
    """A count of the sweeper below 1 (a sweep of nothing, a loop that never starts), or a
    parallel launcher of no worker."""
    for key in COUNTS:
        value = config.hydra.sweeper.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            return f"hydra.sweeper.{key}={value}: must be a positive integer"
    launcher = config.hydra.get("launcher") or {}
    if launcher.get("n_jobs") == 0:  # joblib's; below 0 it counts back from the cores
        return "hydra.launcher.n_jobs=0 runs no job: give a number of workers (-1: one per core)"
    return None


def empty_sweep(overrides: list[Override]) -> str | None:
    """The first override that sweeps over no value (``trainer.seed=range(5,1)``, a glob
    matching no option): a grid of it runs nothing, an Optuna search cannot draw from it."""
    for override in overrides:
        if not override.is_sweep_override() or override.is_interval_sweep():
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:  # a glob outside a config group: left to the sweeper
            continue
        if not values:
            return f"{override.input_line}: sweeps over no value"
    return None


def grid_problem(overrides: list[Override]) -> str | None:
    """An interval, which Hydra's grid sweeper cannot enumerate (it raises once the parent
    run is open)."""
    for override in overrides:
        if override.is_interval_sweep():
            return (
                f"{override.input_line}: a grid sweep takes choice(...) or range(...); "
                "intervals are for an Optuna search (hparams_search=optuna)"
            )
    return None


def optuna_problem(sweeper: DictConfig, arguments: list[str]) -> str | None:
    """What normcoef's Optuna sweeper (``hydra.sweeper``) would fail on once the parent run
    is open: its heartbeat settings, a search space Optuna refuses, a sampler or direction it
    cannot build, a grid of no point, a storage it cannot open."""
    from normcoef.sweeps.optuna import ScalableOptunaSweeperImpl

    grace, interval = sweeper.get("grace_period"), sweeper.get("heartbeat_interval")
    if grace is not None and interval is not None and grace <= interval:
        return (
            f"hydra.sweeper.grace_period={grace} must exceed heartbeat_interval={interval}: "
            "trials still running would be taken for dead between two heartbeats"
        )
    rate = sweeper.get("max_failure_rate")
    if rate is not None and not 0 <= rate <= 1:
        return f"hydra.sweeper.max_failure_rate={rate}: must be between 0 and 1"
    try:
        # As Hydra will (a custom_search_space imported), allowed to build the sweeper only.
        impl = instantiate(sweeper, _execution_whitelist_=OPTUNA_SWEEPER).sweeper
    except (InstantiationException, ImportError) as error:
        return f"hydra.sweeper: {one_line(error)}"
    assert isinstance(impl, ScalableOptunaSweeperImpl)
    if (problem := search_space_problem(impl, arguments)) is not None:
        return problem
    return storage_problem(impl.storage, impl.heartbeat_interval, impl.grace_period)


def search_space_problem(impl: ScalableOptunaSweeperImpl, arguments: list[str]) -> str | None:
    """A parameter Optuna cannot draw (``interval(1, 0)``, ``tag(log, interval(0, 1))``), a
    sampler or direction it cannot build, a grid of no point; naming the key."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    mistakes = (ValueError, TypeError, AssertionError, NotImplementedError, HydraException)
    for override in [*impl._parse_sweeper_params_config(), *arguments]:
        try:
            create_params_from_overrides([override])
        except mistakes as error:
            return f"{override}: {one_line(error)}"
    try:
        space, _, _ = impl.distributions(arguments)
        impl._make_sampler(space)
    except (*mistakes, InstantiationException, ImportError) as error:
        return f"hydra.sweeper.sampler: {one_line(error)}"
    if impl.n_trials < 1:  # the grid sampler caps it at the size of the grid
        return f"hydra.sweeper.sampler: the grid of {', '.join(space)} holds no point"
    directions = impl._get_directions()
    if len(directions) != 1:
        return f"hydra.sweeper.direction={directions}: normcoef.train returns one value to optimize"
    if directions[0] not in ("minimize", "maximize"):
        return f"hydra.sweeper.direction={directions[0]}: must be minimize or maximize"
    return None


def storage_problem(storage: Any, heartbeat_interval: int, grace_period: int | None) -> str | None:
    """Why the study's storage cannot be opened: its database driver is not installed, its
    server or file is out of reach, its schema is a newer Optuna's, or an older one's on a
    server (an older SQLite study is upgraded here, after a backup). Opening it creates a new
    SQLite study's tables, as the sweep's first connection would."""
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    from normcoef.sweeps.optuna import open_storage
    from normcoef.tracking.upgrade import optuna_storage_problem

    if not isinstance(storage, str):
        return None  # in memory: one process, nothing to reach
    try:
        url = sqlalchemy.engine.make_url(storage)
    except SQLAlchemyError as error:
        return f"hydra.sweeper.storage={storage}: not a database URL ({one_line(error)})"
    shown = url.render_as_string(hide_password=True)
    try:
        # An older Optuna's study: upgraded after a backup (SQLite) or refused (a server).
        if (problem := optuna_storage_problem(storage)) is not None:
            return f"hydra.sweeper.storage={shown}: {problem}"
        with sqlite_file_lock(storage):
            opened = open_storage(storage, heartbeat_interval, grace_period)
        opened.engine.dispose()
    except ImportError as error:
        driver = getattr(error.__cause__, "name", None) or error.name or "module"
        hint = f" ({CLUSTER_EXTRA})" if driver in ("psycopg", "psycopg2") else ""
        return f"hydra.sweeper.storage={shown}: its database driver {driver} is not installed{hint}"
    except (SQLAlchemyError, OSError, RuntimeError, ValueError) as error:
        reason = getattr(error, "orig", None) or error  # the driver's own words
        return f"hydra.sweeper.storage={shown} cannot be opened: {one_line(reason)}"
    return None
