"""Imports run downward only: physics → data → models → training → config →
evaluation/tracking → pipeline → commands (normcoef.cli). The table below is the one
statement of the layers (README, "Layout").

A module may import its own layer and those below it, never one above: a lower layer stays
usable (and testable) without what is built on it.

Two homes that are not in the issue's chain, and why:

- ``normcoef.console`` (one-line errors, warnings, argparse types) sits at the bottom with
  physics: it imports nothing of normcoef, and library code of every layer turns bad input
  into the one-line errors it defines.
- ``normcoef.config`` (the schemas) is its own row above training: it validates the settings
  of data generation and of training (it imports ``data`` and ``training.settings``), and what
  reads configs (the pipeline, the CLIs, reports) is above it. ``normcoef.conf_dir`` (where
  conf/ is) sits at the bottom, for the training layer's checkpoint allow-list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("physics", ("normcoef.physics", "normcoef.console", "normcoef.conf_dir")),
    ("data", ("normcoef.data",)),
    ("models", ("normcoef.models", "normcoef.metrics", "normcoef.losses")),
    ("training", ("normcoef.training",)),
    ("config", ("normcoef.config",)),
    (
        "evaluation/tracking",
        (
            "normcoef.scoring",
            "normcoef.inference",
            "normcoef.gamma_files",
            "normcoef.pretrained",
            "normcoef.figures",
            "normcoef.tracking",
            "normcoef.report",
            "normcoef.sweeps",
        ),
    ),
    ("pipeline", ("normcoef.pipeline",)),
    (
        "CLIs",
        (
            "normcoef.cli",
            # python -m aliases of the commands, kept for existing scripts
            "normcoef.train",
            "normcoef.generate",
            "normcoef.convert",
            "normcoef.check",
            "normcoef.evaluate",
            "normcoef.predict",
            "normcoef.report.__main__",
            "hydra_plugins.normcoef_optuna_sweeper",
            "hydra_plugins.normcoef_slurm_launcher",
        ),
    ),
)
"""(layer, module prefixes), lowest first."""


def layer_of(module: str) -> int | None:
    """Index in ``LAYERS`` of the longest prefix that names ``module`` (None: not ours)."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``import x`` and ``from x import y`` in the file, at any
    depth (imports inside functions count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # ``from normcoef.cli import evaluate`` imports the module normcoef.cli.evaluate
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(node.lineno, n) for n in names if layer_of(n) != layer_of(node.module)]
    return found


SOURCES = sorted([*(REPO / "normcoef").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")])


def upward_imports(path: Path) -> list[str]:
    """One line per import of ``path`` that runs upward, naming both layers."""
    module = module_name(path)
    own = layer_of(module)
    if own is None:
        return []
    problems = []
    for line, imported in imported_modules(path):
        target = layer_of(imported)
        if target is not None and target > own:
            problems.append(
                f"{module} ({LAYERS[own][0]}) imports {imported} ({LAYERS[target][0]}) at "
                f"line {line}: move the shared code down to {LAYERS[own][0]} or below"
            )
    return problems


def test_every_module_has_a_layer():
    homeless = [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None]
    assert homeless == ["normcoef"], f"add these modules to LAYERS: {homeless}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_run_downward(path: Path):
    assert upward_imports(path) == []


def test_an_upward_import_is_named_with_both_layers(tmp_path: Path, monkeypatch):
    fake = REPO / "normcoef" / "physics" / "diffusion.py"
    source = "from normcoef.training.loop import train_model\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    (problem,) = upward_imports(fake)
    assert problem.startswith(
        "normcoef.physics.diffusion (physics) imports normcoef.training.loop (training) at line 1"
    )
