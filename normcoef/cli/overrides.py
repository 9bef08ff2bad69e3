"""Every key a command line sets exists in the config, whatever its prefix.

Hydra refuses ``trainer.stesp=5`` with the hint ``+trainer.stesp=5``, and following the hint
adds a key nothing reads: the run trains with its default, silently. Here a key the composed
config does not have is refused with the key meant (``trainer.steps``), and ``+`` / ``++`` do
not open a way around the schema: conf/ and its schemas list every setting there is.
Hydra's own settings (``hydra.*``) and config group choices (``model=skip_add``,
``+experiment=global``) are Hydra's to judge.
"""

from __future__ import annotations

import difflib

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from normcoef.config import CONF_DIR

_ABSENT = object()


def override_key(override: str) -> str:
    """``+trainer.stesp=5`` → ``trainer.stesp``; ``~trainer.crop`` → ``trainer.crop``."""
    return override.partition("=")[0].lstrip("+~").strip()


def is_group_choice(key: str) -> bool:
    """``model``, ``hydra/launcher``, ``smoke/activation``: the option of a config group."""
    return ("." not in key and (CONF_DIR / key.split("/")[0]).is_dir()) or key.startswith("hydra/")


def unknown_key_problem(config_name: str, overrides: list[str]) -> str | None:
    """The first override of ``overrides`` whose key the config composed from the same group
    choices does not have, on one line with the closest key there is; None when all exist."""
    keyed = [o for o in overrides if "=" in o or o.startswith("~")]
    choices = [o for o in keyed if is_group_choice(override_key(o))]
    settings = [
        o
        for o in keyed
        if not is_group_choice(override_key(o)) and not override_key(o).startswith("hydra.")
    ]
    if not settings:
        return None
    try:
        with initialize_config_dir(str(CONF_DIR)):
            base = compose(config_name, overrides=choices)
    except Exception:  # a bad group choice: Hydra's own refusal names it
        return None
    for override in settings:
        key = override_key(override)
        if OmegaConf.select(base, key, default=_ABSENT) is _ABSENT:
            plus = " (a + adds no key: conf/ lists every setting)" if override[0] == "+" else ""
            return f"{override}: {no_such_key(base, key)}{plus}"
    return None


def no_such_key(config: DictConfig, key: str) -> str:
    """ "trainer has no key stesp; did you mean trainer.steps?" (or the keys there are)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(config, parent, default=None) if parent else config
    where = parent or "the config"
    if not isinstance(node, DictConfig):
        return f"{where} is not a section of the config (there is no key {key})"
    known = [str(name) for name in node.keys()]
    close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.7)
    hint = (
        f"did you mean {parent + '.' if parent else ''}{close[0]}?"
        if close
        else f"its keys are {', '.join(known)}"
    )
    return f"{where} has no key {leaf!r}; {hint}"
