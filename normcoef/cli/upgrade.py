"""Bring a store made by an older MLflow or Optuna to the installed release's schema.

    normcoef-upgrade mlflow [URI]   # default sqlite:///mlflow.db; or python -m normcoef.cli.upgrade
    normcoef-upgrade optuna URL     # a study's storage, e.g. sqlite:///optuna.db

A SQLite store is copied beside itself (``<file>.bak-<schema>``) and upgraded in place; a
database server's store is refused with the upgrade command to run after its backup
(``normcoef.tracking.upgrade``). Training, sweeps and ``make ui`` run this check themselves;
this command runs it alone.
"""

from __future__ import annotations

import argparse
import logging

from normcoef.console import exit_on_user_error
from normcoef.tracking.store import DEFAULT_TRACKING_URI
from normcoef.tracking.upgrade import mlflow_store_problem, optuna_storage_problem

CHECKS = {"mlflow": mlflow_store_problem, "optuna": optuna_storage_problem}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="normcoef-upgrade", description=__doc__.split("\n")[0])
    p.add_argument("library", choices=sorted(CHECKS), help="whose store")
    p.add_argument("uri", nargs="?", help=f"the store (mlflow: {DEFAULT_TRACKING_URI})")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.uri is None and args.library == "optuna":
        raise ValueError("optuna needs the study's storage URL, e.g. sqlite:///optuna.db")
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    if (problem := CHECKS[args.library](args.uri or DEFAULT_TRACKING_URI)) is not None:
        raise ValueError(problem)


if __name__ == "__main__":
    main()
