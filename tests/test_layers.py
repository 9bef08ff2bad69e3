"""Imports run downward only, and never in a circle. The table below is the one statement of
the layers (README, "Layout"): rooms in rows, lowest first, grouped by the issue's chain
physics → data → models → training → config → evaluation/tracking → pipeline → commands.

A module may import its own room and the rooms of rows below it, never one above: a lower room
stays usable (and testable) without what is built on it. Rooms that share a row (console and
conf_dir, the ``python -m`` aliases, the Hydra plugins) import nothing of each other. On top
of the rows, no chain of imports between normcoef's modules comes back to where it started.

Homes that are not in the issue's chain, and why:

- ``normcoef.console`` (one-line errors, warnings, argparse types) is the bottom row: it
  imports nothing of normcoef, and library code of every layer turns bad input into the
  one-line errors it defines. ``normcoef.conf_dir`` (where conf/ is) sits beside it, for the
  training layer's checkpoint allow-list.
- ``normcoef.config`` (the schemas) is its own row above training: it validates the settings
  of data generation and of training (it imports ``data`` and ``training.settings``), and what
  reads configs (the pipeline, the CLIs, reports) is above it.
- ``normcoef.tracking`` (the MLflow gateway) is the lowest row of evaluation/tracking:
  ``inference`` fetches a run's checkpoint through it.

Two modules sit in a room's folder but in a higher row, each because what runs it says where
the file is. Nothing in normcoef imports either (checked below), so the room around it stays
usable without it:

- ``normcoef.report.__main__``: ``python -m normcoef.report`` runs ``report/__main__.py``; it is
  an alias of the command ``normcoef.cli.report``, in the aliases' row.
- ``normcoef.tracking.network_model``: the network as an MLflow model, which MLflow loads from
  its file. It wraps ``inference``, so it is a row above it; it stays in ``tracking/``, the
  only folder that imports ``mlflow`` (tests/test_tracking_gateway.py). The tracker hands
  MLflow its path (``tracker.NETWORK_MODEL_CODE``) and does not import it.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ALIASES = ("train", "generate", "convert", "check", "evaluate", "predict")

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # physics
    ("console", ("normcoef.console", "normcoef.conf_dir")),
    ("physics", ("normcoef.physics",)),
    # data
    ("data", ("normcoef.data",)),
    # models
    ("models", ("normcoef.models",)),
    ("metrics", ("normcoef.metrics",)),
    ("losses", ("normcoef.losses",)),
    # training, config
    ("training", ("normcoef.training",)),
    ("config", ("normcoef.config",)),
    # evaluation/tracking
    ("tracking", ("normcoef.tracking",)),
    ("figures", ("normcoef.figures",)),
    ("pretrained", ("normcoef.pretrained",)),
    ("inference", ("normcoef.inference",)),
    ("MLflow model", ("normcoef.tracking.network_model",)),
    ("gamma files", ("normcoef.gamma_files",)),
    ("scoring", ("normcoef.scoring",)),
    ("report", ("normcoef.report",)),
    ("sweeps", ("normcoef.sweeps",)),
    # pipeline
    ("pipeline", ("normcoef.pipeline",)),
    # commands
    ("commands", ("normcoef.cli",)),
    # python -m aliases of the commands, kept for existing scripts
    ("aliases", (*(f"normcoef.{name}" for name in ALIASES), "normcoef.report.__main__")),
    (
        "Hydra plugins",
        ("hydra_plugins.normcoef_optuna_sweeper", "hydra_plugins.normcoef_slurm_launcher"),
    ),
)
"""(row, the module prefixes of its rooms), lowest first."""

PREFIXES = [prefix for _, prefixes in LAYERS for prefix in prefixes]


def room_of(module: str) -> str | None:
    """The longest prefix in ``LAYERS`` that names ``module`` (None: not ours)."""
    names = [p for p in PREFIXES if module == p or module.startswith(p + ".")]
    return max(names, key=len, default=None)


def layer_of(module: str) -> int | None:
    """Index in ``LAYERS`` of the row of ``module``'s room (None: not ours)."""
    room = room_of(module)
    if room is None:
        return None
    return next(i for i, (_, prefixes) in enumerate(LAYERS) if room in prefixes)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = sorted([*(REPO / "normcoef").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")])
MODULES = {module_name(path) for path in SOURCES}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``import x`` and ``from x import y`` in the file, at any
    depth (imports inside functions count too). ``from x import y`` names the module ``x.y``
    where there is one (``from normcoef.cli import evaluate``), and ``x`` where a ``y`` is a
    name defined in ``x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            submodules = [name for name in names if name in MODULES]
            if len(submodules) < len(names):
                found.append((node.lineno, node.module))
            found += [(node.lineno, name) for name in submodules]
    return found


def upward_imports(path: Path) -> list[str]:
    """One line per import of ``path`` that runs upward or into another room of its own row,
    naming both rooms."""
    module = module_name(path)
    own = layer_of(module)
    if own is None:
        return []
    problems = []
    for line, imported in imported_modules(path):
        target = layer_of(imported)
        sideways = target == own and room_of(imported) != room_of(module)
        if target is not None and (target > own or sideways):
            problems.append(
                f"{module} ({LAYERS[own][0]}) imports {imported} ({LAYERS[target][0]}) at "
                f"line {line}: move the shared code down to {LAYERS[own][0]} or below"
            )
    return problems


def import_graph(paths: list[Path]) -> dict[str, set[str]]:
    """Module → the normcoef modules its import statements run: the modules named, and the
    packages above them (Python runs ``a/__init__`` for ``import a.b``) but its own, which are
    running already."""
    graph: dict[str, set[str]] = {}
    for path in paths:
        module = module_name(path)
        ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = set()
        for _, imported in imported_modules(path):
            parts = imported.split(".")
            run = {".".join(parts[:i]) for i in range(1, len(parts))} - ancestors
            graph[module] |= (run | {imported}) & MODULES - {module}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A chain of imports that comes back to its first module ([] when there is none)."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return list(reversed(error.args[1]))
    return []


def test_every_module_has_a_layer():
    homeless = [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None]
    assert homeless == ["normcoef"], f"add these modules to LAYERS: {homeless}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_run_downward(path: Path):
    assert upward_imports(path) == []


def test_no_chain_of_imports_comes_back_to_where_it_started():
    assert " → ".join(import_cycle(import_graph(SOURCES))) == ""


def test_a_module_in_another_rooms_folder_is_imported_by_none():
    nested = {p for p in PREFIXES if room_of(p.rsplit(".", 1)[0]) not in (None, p)}
    assert nested == {"normcoef.report.__main__", "normcoef.tracking.network_model"}
    assert nested <= MODULES, "a row names a module that is not there"
    importers = {m: sorted(nested & set(graph)) for m, graph in import_graph(SOURCES).items()}
    assert {m: found for m, found in importers.items() if found} == {}


def test_an_upward_import_is_named_with_both_layers(monkeypatch: pytest.MonkeyPatch):
    fake = REPO / "normcoef" / "physics" / "diffusion.py"
    source = "from normcoef.training.loop import train_model\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    (problem,) = upward_imports(fake)
    assert problem.startswith(
        "normcoef.physics.diffusion (physics) imports normcoef.training.loop (training) at line 1"
    )


def test_a_room_that_imports_a_neighbour_of_its_row_is_named(monkeypatch: pytest.MonkeyPatch):
    fake = REPO / "normcoef" / "train.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "import normcoef.evaluate\n")
    (problem,) = upward_imports(fake)
    assert problem.startswith("normcoef.train (aliases) imports normcoef.evaluate (aliases)")


def test_a_circle_of_imports_is_named_module_by_module():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = import_cycle(graph)
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert all(after in graph[before] for before, after in zip(cycle[:-1], cycle[1:], strict=True))
