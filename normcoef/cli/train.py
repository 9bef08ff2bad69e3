"""Train a network: ``python -m normcoef.train [overrides]``; ``-m`` for sweeps.

Returns the best value of ``trainer.monitor`` so the Optuna sweeper can minimise it. A single
run that fails on a user mistake prints one line and exits with 2; in a sweep a failed job
raises, and normcoef.sweeps.failures lists it when the sweep ends and exits non-zero.
"""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from hydra.utils import execution_whitelist
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from normcoef.cli.overrides import unknown_key_problem
from normcoef.config import CONF_DIR, callback_targets, group_options, register_configs, validate
from normcoef.console import (
    EXIT_USER_ERROR,
    exit_on_user_error,
    interrupt_on_sigterm,
    interrupted_status,
)
from normcoef.pipeline import run_training
from normcoef.sweeps.naming import register_resolvers
from normcoef.tracking import flatten, job_context

register_configs()
register_resolvers()


MULTIRUN_FLAGS = ("-m", "--multirun")


def jobs_to_check(arguments: list[str]) -> list[list[str]]:
    """Override lists that together try every value a sweep names once: the first job (each
    list or range at its first value), then each other value with the rest at their first.
    Optuna's intervals and tags, which no job takes as written, are left out."""
    fixed: list[str] = []
    swept: list[tuple[str, list[str]]] = []
    for override in OverridesParser.create().parse_overrides(arguments):
        if not override.is_sweep_override():
            fixed.append(str(override.input_line))
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:
            continue
        if values:
            swept.append((override.get_key_element(), values))
    first = [f"{key}={values[0]}" for key, values in swept]
    jobs = [fixed + first]
    for index, (key, values) in enumerate(swept):
        for value in values[1:]:
            job = list(first)
            job[index] = f"{key}={value}"
            jobs.append(fixed + job)
    return jobs


def composition_error(arguments: list[str]) -> str | None:
    """Why Hydra cannot compose the training config from ``arguments`` (a misspelt option or
    key, a value of the wrong type, bad syntax), on one line; None when it can."""
    from hydra import compose, initialize_config_dir

    overrides = [a for a in arguments if a not in MULTIRUN_FLAGS]
    try:
        jobs = jobs_to_check(overrides)
        for override in (o for job in jobs for o in job):
            key, _, value = override.partition("=")
            group = key.lstrip("+~")
            if value == "schema" and (CONF_DIR / group).is_dir():
                return (
                    f"{group}=schema: the schema checks the options of conf/{group}, it is not "
                    f"one; choose one of {', '.join(group_options(group))}"
                )
        for job in jobs:
            if (problem := unknown_key_problem("train", job)) is not None:
                return problem
        with initialize_config_dir(str(CONF_DIR)):
            composed = [compose("train", overrides=job, return_hydra_config=True) for job in jobs]
            for cfg in composed:  # values out of range first, then data sets that are missing
                validate(OmegaConf.masked_copy(cfg, [str(key) for key in cfg if key != "hydra"]))
            for cfg in composed:
                problem = missing_data(cfg)
                if problem is not None:
                    return problem
    except MissingConfigException as error:
        group, _, name = (error.missing_cfg_file or "").rpartition("/")
        top, _, nested = group.partition("/")
        if top and (CONF_DIR / top).is_dir():
            wrong = f"{top}={nested + '/' if nested else ''}{name}"
            return f"{wrong}: conf/{top} has no such option; choose one of " + ", ".join(
                group_options(top)
            )
        return one_line_hydra(error)
    except (HydraException, OmegaConfBaseException) as error:
        return one_line_hydra(error)
    except ValueError as error:  # validate: a value out of range, named with its key
        return str(error)
    return None


def missing_data(cfg: DictConfig) -> str | None:
    """The data set a command would train on, when it is not there: the command that
    generates it, with every dataset key that differs from its option's defaults (a sweep's
    jobs all fail on it, and the loader's hint cannot know the sizes). None: it is there."""
    from hydra import compose

    root = Path(cfg.dataset.root)
    if root.exists():
        return None
    choice = cfg.hydra.runtime.choices.get("dataset")
    wanted = OmegaConf.to_container(cfg.dataset, resolve=True)
    defaults = OmegaConf.to_container(
        compose("generate", overrides=[f"dataset={choice}"]).dataset, resolve=True
    )
    assert isinstance(wanted, dict) and isinstance(defaults, dict)
    changed = [
        f"dataset.{key}={value}".replace(" ", "")
        for key, value in flatten(wanted).items()
        if key != "standardization" and flatten(defaults).get(key) != value
    ]
    command = " ".join(["python -m normcoef.generate", f"dataset={choice}", *changed])
    return f"dataset.root={root} does not exist; generate it first: {command}"


def one_line_hydra(error: BaseException) -> str:
    """Hydra's message and its cause's, without indented details and pointers to stack
    traces and docs."""
    parts = []
    for exception in (error, error.__cause__):
        if exception is None:
            continue
        for line in str(exception).splitlines():
            if line and not line[0].isspace() and not line.startswith(("Set the env", "See http")):
                parts.append(line.strip().rstrip("."))
    return "; ".join(dict.fromkeys(parts)) or type(error).__name__


def main() -> None:
    """normcoef-train: a command line Hydra cannot compose (``experiment=quickstrat``,
    ``trainer.stepz=3``) is one ``error:`` line and exit 2, before anything runs; everything
    else (``--help``, ``--cfg``, sweeps) goes to Hydra as it is."""
    arguments = sys.argv[1:]
    if all(a in MULTIRUN_FLAGS or not a.startswith("-") for a in arguments):
        if (problem := composition_error(arguments)) is not None:
            print(f"error: {problem}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR)
    with execution_whitelist(callback_targets("train")):  # Hydra builds conf/train.yaml's
        hydra_main()


@hydra.main(config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    interrupt_on_sigterm()  # a killed or timed-out run ends KILLED in MLflow, not RUNNING
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    train = functools.partial(
        run_training,
        cfg,
        overrides=hydra_cfg.job.override_dirname,
        sweep_dir=hydra_cfg.sweep.dir if multirun else None,
        run_dir=Path(hydra_cfg.runtime.output_dir) / cfg.trainer.output_dir,
        job=job_context(cast(DictConfig, hydra_cfg)),  # typed HydraConf, a DictConfig at run time
    )
    if multirun:
        return train()
    try:
        return exit_on_user_error(train)()
    except KeyboardInterrupt as error:
        print(f"\ninterrupted: {interrupted_line(error)}", file=sys.stderr)
        raise SystemExit(interrupted_status(error)) from None


def interrupted_line(error: KeyboardInterrupt) -> str:
    """What an interrupted run kept, and the command that resumes it (the same command line
    with ``trainer.resume`` set to its last checkpoint)."""
    said = str(error) or "stopped before its run opened; nothing was recorded"
    resume_from = getattr(error, "resume_from", None)
    if resume_from is None:
        return said
    arguments = [a for a in sys.argv[1:] if not a.lstrip("+").startswith("trainer.resume=")]
    command = ["python", "-m", "normcoef.train", *arguments, f"trainer.resume={resume_from}"]
    return f"{said}; resume with: {shlex.join(command)}"


if __name__ == "__main__":
    main()
