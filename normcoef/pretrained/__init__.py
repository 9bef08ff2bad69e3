"""Networks shipped with the package, so γ of a user's global fields needs no training.

Each name has three files here: ``<name>.pt``, a ``run_training`` checkpoint without its
optimizer state (read by ``load_checkpoint``: tensors and plain values only, like any
checkpoint), ``<name>.json``, its provenance (commit, data set, recipe, validation and test
metrics, hardware), and ``<name>-grid.npz``, the grid it was trained on (the mask
``normcoef-predict`` uses by default); a network on the geometry prior also ships its grid's
table (``prior-geometry-<key>.npz``, ``normcoef.data.priors``), so its grid needs no solve.
``write_pretrained`` makes them from a trained run;
``normcoef-predict --pretrained NAME`` and ``normcoef-evaluate --pretrained NAME`` use them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from normcoef.training.checkpoint import load_checkpoint, save_checkpoint_state

HERE = Path(__file__).resolve().parent
DROPPED_STATE = ("optimizer", "scheduler")
"""What resuming needs and inference does not: Adam's moments are twice the weights."""


def available() -> tuple[str, ...]:
    """The names of the shipped networks."""
    return tuple(sorted(path.stem for path in HERE.glob("*.pt")))


def check_name(name: str) -> None:
    if name not in available():
        raise FileNotFoundError(
            f"no pretrained network {name!r}; shipped: {', '.join(available()) or 'none'}"
        )


def checkpoint_path(name: str) -> Path:
    """The checkpoint file of the shipped network ``name``."""
    check_name(name)
    return HERE / f"{name}.pt"


def grid_path(name: str) -> Path:
    """The grid.npz (mask, coordinates) the network ``name`` was trained on."""
    check_name(name)
    return HERE / f"{name}-grid.npz"


def provenance(name: str) -> dict:
    """Where the network ``name`` comes from and how good it is (its ``<name>.json``)."""
    check_name(name)
    return json.loads((HERE / f"{name}.json").read_text())


def describe(name: str) -> str:
    """One line for a command's output: what was loaded, from which run, how good on test."""
    info = provenance(name)
    test = info.get("test", {})
    scores = ", ".join(f"{key} {test[key]:.3g}" for key in ("eps_max", "eps_mean") if key in test)
    return (
        f"pretrained network {name!r} ({info.get('recipe', '?')}; commit "
        f"{info.get('commit', '?')[:10]}; test {scores} on {test.get('samples', '?')} samples)"
    )


def write_pretrained(
    checkpoint: str | Path,
    grid: str | Path,
    name: str,
    details: dict,
    into: Path = HERE,
    tables: tuple[Path, ...] = (),
    input_range: dict | None = None,
) -> Path:
    """Ship a trained run's checkpoint as ``name``: weights and what inference needs, without
    the optimizer and scheduler state, and the geometry ``tables`` of its grid; ``details``
    (commit, data, metrics) become its provenance. Refuses to replace an existing network of
    that name. ``input_range``: the training inputs' range (``InputRange.to_dict``) for a
    checkpoint that records none."""
    into = Path(into)
    target = into / f"{name}.pt"
    if target.exists():
        raise FileExistsError(f"{target} exists: remove it first to replace pretrained {name!r}")
    state = load_checkpoint(Path(checkpoint))
    for key in DROPPED_STATE:
        state[key] = None
    if input_range is not None and not state.get("input_range"):
        state["input_range"] = input_range
    save_checkpoint_state(target, state)
    shutil.copyfile(grid, into / f"{name}-grid.npz")
    for table in tables:
        shutil.copyfile(table, into / Path(table).name)
    (into / f"{name}.json").write_text(json.dumps(details, indent=2, sort_keys=True) + "\n")
    return target
