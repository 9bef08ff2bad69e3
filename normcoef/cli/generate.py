"""Generate a data set: ``python -m normcoef.generate dataset=python``.

A bad value fails before anything is written, with one line naming its key; Ctrl-C or a
``kill`` stops the workers too and keeps every finished sample (rerun the same command to
finish).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from normcoef.cli.overrides import unknown_key_problem
from normcoef.config import CONF_DIR, generation_spec, register_configs, validate
from normcoef.console import (
    EXIT_USER_ERROR,
    exit_on_user_error,
    interrupt_on_sigterm,
    interrupted_status,
)
from normcoef.data.generation import generate_dataset, summary

register_configs()


def main() -> None:
    """normcoef-generate: a key the config does not have (``+dataset.heigth=32``) is one
    ``error:`` line and exit 2 before anything is written; the rest goes to Hydra."""
    arguments = [a for a in sys.argv[1:] if not a.startswith("-")]
    if (problem := unknown_key_problem("generate", arguments)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)
    hydra_main()


@hydra.main(config_path=str(CONF_DIR), config_name="generate")
@exit_on_user_error
def hydra_main(cfg: DictConfig) -> None:
    validate(cfg)
    root = cfg.dataset.root
    interrupt_on_sigterm()  # the default action would leave the workers computing
    try:
        generate_dataset(
            root,
            generation_spec(cfg.dataset),
            progress=cfg.progress,
            workers=cfg.workers,
            device=cfg.device,
        )
    except KeyboardInterrupt as error:
        print(
            f"\ninterrupted: the samples finished so far are kept in {root}; "
            "run the same command again to finish",
            file=sys.stderr,
        )
        raise SystemExit(interrupted_status(error)) from None
    print(summary(root))


if __name__ == "__main__":
    main()
