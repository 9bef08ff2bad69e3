"""Shared test machinery: the reliability table (docs/reliability.md) built from markers.

A test that tries a bad input or a fault carries

    @pytest.mark.reliability("predict", "a negative W field", "error", "refused, names the file")

with the entry point, the fault, the kind of outcome (one of ``OUTCOMES``) and what the user
sees. ``tests/test_reliability_doc.py`` checks that docs/reliability.md is the table of every
marked test; ``pytest --write-reliability`` rewrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from normcoef.config import register_configs
from normcoef.data.generation import GenerationSpec, generate_dataset
from normcoef.pipeline import run_training

REPO = Path(__file__).resolve().parents[1]
RELIABILITY_DOC = REPO / "docs" / "reliability.md"
OUTCOMES = {
    "error": "one-line error naming the problem and the fix",
    "warning": "proceeds, with a one-line warning",
    "handled": "does the right thing without a word",
    "traceback": "a Python traceback (left to fix)",
}
ENTRY_ORDER = (
    "generate",
    "convert",
    "check",
    "train",
    "checkpoint",
    "evaluate",
    "predict",
    "sweep",
    "report",
)


@dataclass(frozen=True, order=True)
class ReliabilityCase:
    entry: str
    fault: str
    outcome: str
    detail: str
    test: str


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--write-reliability",
        action="store_true",
        help="rewrite docs/reliability.md from the reliability markers",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability(entry, fault, outcome, detail): a row of docs/reliability.md"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def reliability_cases(items: list[pytest.Item]) -> list[ReliabilityCase]:
    cases = set()
    for item in items:
        for mark in item.iter_markers("reliability"):
            entry, fault, outcome, detail = mark.args
            if entry not in ENTRY_ORDER:
                raise pytest.UsageError(f"{item.nodeid}: unknown reliability entry {entry!r}")
            if outcome not in OUTCOMES:
                raise pytest.UsageError(f"{item.nodeid}: unknown reliability outcome {outcome!r}")
            test = item.nodeid.split("[")[0]
            cases.add(ReliabilityCase(entry, fault, outcome, detail, test))
    return sorted(cases, key=lambda c: (ENTRY_ORDER.index(c.entry), c.test, c.fault))


def render_reliability(cases: list[ReliabilityCase]) -> str:
    counts = {kind: sum(c.outcome == kind for c in cases) for kind in OUTCOMES}
    lines = [
        "# Reliability: bad inputs and faults the tests try",
        "",
        "Generated from the `@pytest.mark.reliability` markers of the test suite "
        "(`python -m pytest --write-reliability`); `tests/test_reliability_doc.py` fails when "
        "this file and the tests disagree. Outcomes:",
        "",
    ]
    lines += [f"- **{kind}**: {text}" for kind, text in OUTCOMES.items()]
    lines += [
        "",
        f"{len(cases)} cases: " + ", ".join(f"{counts[kind]} {kind}" for kind in OUTCOMES) + ".",
    ]
    for entry in ENTRY_ORDER:
        rows = [c for c in cases if c.entry == entry]
        if not rows:
            continue
        lines += ["", f"## {entry}", "", "| Fault | Outcome | What the user sees | Test |"]
        lines.append("|---|---|---|---|")
        lines += [
            f"| {c.fault} | {c.outcome} | {c.detail} | `{c.test.split('::')[-1]}` |" for c in rows
        ]
    return "\n".join(lines) + "\n"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    cases = reliability_cases(items)
    config.stash[_CASES] = cases
    collected = {Path(str(item.fspath)).name for item in items}
    every_file = {path.name for path in (REPO / "tests").glob("test_*.py")}
    config.stash[_COMPLETE] = every_file <= collected
    if config.getoption("--write-reliability"):
        RELIABILITY_DOC.parent.mkdir(parents=True, exist_ok=True)
        RELIABILITY_DOC.write_text(render_reliability(cases))


_CASES = pytest.StashKey[list]()
_COMPLETE = pytest.StashKey[bool]()


@pytest.fixture
def reliability_table(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """(the rendered table, whether every test file was collected to build it)."""
    config = request.config
    return render_reliability(config.stash[_CASES]), config.stash[_COMPLETE]


# --- shared test data -------------------------------------------------------------------


def train_tiny(tmp: Path, test_samples: int = 2) -> tuple[Path, Path]:
    """Generate a 16x24 python set (3/1/``test_samples``) and train a 2-layer 4-channel CNN
    for 3 steps without tracking; return (data set root, run directory)."""
    root = tmp / "data"
    splits = {"train": 3, "valid": 1, "test": test_samples}
    spec = GenerationSpec(grid="python", height=16, width=24, splits=splits)
    generate_dataset(root, spec, progress=False)
    register_configs()
    overrides = [
        f"dataset.root={root}",
        "dataset.height=16",
        "dataset.width=24",
        f"dataset.splits={{train: 3, valid: 1, test: {test_samples}}}",
        "dataset.standardization=partial",
        "model.layers=2",
        "model.channels=4",
        "trainer.steps=3",
        "trainer.eval_every=1",
        "trainer.checkpoint_every=3",
        "trainer.progress=false",
        "trainer.device=cpu",
        f"trainer.output_dir={tmp / 'checkpoints'}",
        "logger=none",
        "evaluation.randomization_samples=5",
    ]
    run_dir = tmp / "checkpoints" / "run"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        run_training(compose("train", overrides=overrides), run_dir=run_dir)
    return root, run_dir
