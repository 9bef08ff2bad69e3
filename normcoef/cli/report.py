"""The report's command line: Hydra overrides of the training config, plus two of its own.

Parsed by Hydra's own override parser, so the arguments are the training command's and a
malformed one gets Hydra's message on one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from normcoef.console import exit_on_user_error
from normcoef.report.sweep_report import report
from normcoef.tracking import configured_tracking_uri

USAGE = """Ablation tables from MLflow:

    python -m normcoef.report experiment=<name> [sweep=<dir>] [log=false] [overrides...]

Reads the runs of one sweep (tag ``normcoef.sweep``; by default the latest sweep of the
experiment), groups them by what the sweep varied, seeds apart, and prints a Markdown table in
the layout of the report's Tables 2-8: ε_Q, ε_max, ε_mean per configuration, mean ± std over
seeds, failed runs listed. The best configuration is chosen on validation (the lowest mean
``best/val/eps_q``, the validation ε_Q of each run's best checkpoint); the test metrics are
reported and never choose. The table is also logged as ``ablation_table.md`` on the sweep's
parent run (opened by ``normcoef.sweeps.parent_run``; created here for older sweeps), with a
tag naming the best run.

``log=false`` prints the table without logging it. Other ``key=value`` arguments are Hydra
overrides of the training config (``experiment=``, ``hparams_search=``,
``logger.tracking_uri=``...): they name the experiment and the stores as the training command
did.
"""
REPORT_OPTIONS = ("sweep", "log")  # the report's own arguments; the rest are Hydra overrides


def split_arguments(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The report's own options (``sweep``: a path as typed, ``log``: a bool) and the Hydra
    overrides of the training config, each argument checked by Hydra's override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    options: dict[str, Any] = {}
    overrides = []
    for arg in args:
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException as error:
            raise ValueError(f"arguments are key=value; got {[arg]}: {error}") from None
        key, value = override.key_or_group, override.value()
        if key not in REPORT_OPTIONS:
            overrides.append(arg)
        elif key == "log" and not isinstance(value, bool):
            raise ValueError(f"log is true or false; got {arg!r} (log=false: print, log nothing)")
        else:  # a sweep folder named by digits stays a path
            options[key] = value if key == "log" or isinstance(value, str) else arg.split("=", 1)[1]
    return options, overrides


def compose_train_config(overrides: Sequence[str]) -> DictConfig:
    """The training config the sweep ran with (experiment name, tracking store, sweeper)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from normcoef.config import CONF_DIR, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        try:
            return compose("train", overrides=list(overrides), return_hydra_config=True)
        except HydraException as error:  # an unknown experiment, a misspelt key...
            raise ValueError(f"{' '.join(overrides)}: {error}") from error


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(USAGE)
        return
    options, overrides = split_arguments(args)
    cfg = compose_train_config(overrides)
    sweeper = cfg.hydra.sweeper
    print(
        report(
            cfg.experiment_name,
            configured_tracking_uri(cfg.logger),
            cfg.logger.get("experiment", "normcoef"),
            options.get("sweep", "latest"),
            (sweeper.get("storage"), sweeper.get("study_name")),
            log=options.get("log", True),
        )
    )
