"""What a run records of its Hydra job: overrides, config group choices, name and params."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig

# Config groups that choose a whole preset: a tag, not the lead of every run name of a sweep.
PRESET_GROUPS = ("experiment", "hparams_search")


@dataclass
class JobContext:
    """What Hydra knows of a job and the tracker records: its overrides and group choices."""

    overrides: dict[str, str] = field(default_factory=dict)  # key -> value, as typed
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option
    parallel_jobs: int = 1  # jobs of its sweep running at once on this host (joblib's n_jobs)
    trial: int | None = None  # the Optuna trial number of a search's job (its Hydra job number)


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
    return JobContext(overrides, choices, parallel_jobs(hydra_cfg), optuna_trial(hydra_cfg))


def optuna_trial(hydra_cfg: DictConfig) -> int | None:
    """The trial number of a job of an Optuna search: normcoef's sweeper numbers its Hydra
    jobs by trial (normcoef/sweeps/optuna.py); None outside a search."""
    if hydra_cfg.get("mode") != RunMode.MULTIRUN:
        return None
    if "optuna" not in str(hydra_cfg.get("sweeper", {}).get("_target_", "")).lower():
        return None
    number = hydra_cfg.get("job", {}).get("num")
    return None if number is None else int(number)


def parallel_jobs(hydra_cfg: DictConfig) -> int:
    """How many jobs of a sweep run at once on this host: a local parallel launcher's
    ``n_jobs`` (joblib's -1, all cores, counts as one job per core); 1 for a single run, a
    sequential launcher or SLURM (whose job has its own cores)."""
    if hydra_cfg.get("mode") != RunMode.MULTIRUN:
        return 1
    n_jobs = hydra_cfg.get("launcher", {}).get("n_jobs")
    if n_jobs is None:
        return 1
    return int(n_jobs) if int(n_jobs) > 0 else os.cpu_count() or 1


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


def short_value(value: str) -> str:
    """Sampled floats such as 0.0015930522616241021 print as 0.00159."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.3g}" if "." in value and len(value) > 8 else value


def name_part(key: str, value: str) -> str:
    """One choice as a run name shows it: a config group's option alone (``skip_add``), a
    value with the last part of its key (``lr=0.00159``)."""
    value = short_value(value)
    return value if "." not in key else f"{key.rsplit('.', 1)[-1]}={value}"


def run_name(
    overrides: dict[str, str], leading: Sequence[str] = (), trial: int | None = None
) -> str | None:
    """The overrides as short as they stay clear, the ``leading`` keys (what a sweep varies)
    first, presets left out: the UI's runs table cuts names at ~15-20 characters, so a
    sweep's runs must differ in their first ones (``skip_add`` and ``skip_concat``, not
    ``model=skip_ad…`` twice). An Optuna trial leads with its number (``#2 skip_add,…``):
    trials share most choices. The exact keys and values are tags."""
    keys = [k for k in leading if k in overrides]
    keys += [k for k in overrides if k not in keys and k not in PRESET_GROUPS]
    name = ",".join(name_part(k, overrides[k]) for k in keys)
    if trial is not None:
        return f"#{trial} {name}".strip()
    return name or None


def sweep_run_name(experiment: str, started: datetime | None = None) -> str:
    """The parent run of a sweep: its start time first, so that sweeps of one experiment
    differ in what the runs table shows (``14:05 activation_smoke``, not ``activation_smoke
    s…`` three times); the experiment and the sweep folder are tags."""
    return f"{(started or datetime.now()):%H:%M} {experiment}"
