"""Shared test machinery: the tiny data set and a tiny run on it as session fixtures, and the
reliability table (docs/reliability.md) built from markers. Plain helpers (the tiny spec and
overrides, the compose call) are in helpers.py.

A test that tries a bad input or a fault carries

    @pytest.mark.reliability("predict", "a negative W field", "error", "refused, names the file")

with the entry point, the fault, the kind of outcome (one of ``OUTCOMES``) and what the user
sees. ``tests/test_reliability_doc.py`` checks that docs/reliability.md is the table of every
marked test; ``pytest --write-reliability`` rewrites it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import compose_config, tiny_overrides, tiny_spec

from normcoef.data.generation import generate_dataset
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

TinyDataset = Callable[..., Path]
TrainTiny = Callable[..., tuple[Path, Path]]


@pytest.fixture(autouse=True, scope="session")
def private_table_cache(tmp_path_factory: pytest.TempPathFactory):
    """Geometry tables of grids outside a data set go to a folder of the test session, not
    the user's ~/.cache (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NORMCOEF_CACHE_DIR", str(tmp_path_factory.mktemp("normcoef-cache")))
        yield


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> TinyDataset:
    """``tiny_dataset(test=2, steps=None, into=None)``: the data set of
    ``helpers.tiny_spec(test, steps)``, generated once a session and shared, so read it only.
    A test that needs it at a given path (beside a run, at a preset's default root) or
    changes it gets a copy ``into`` that path."""
    made: dict[tuple[int | None, int | None], Path] = {}

    def get(test: int | None = 2, steps: int | None = None, into: Path | None = None) -> Path:
        if (test, steps) not in made:
            root = tmp_path_factory.mktemp(f"tiny-test{test}-steps{steps}") / "data"
            generate_dataset(root, tiny_spec(test, steps), progress=False)
            made[test, steps] = root
        if into is None:
            return made[test, steps]
        shutil.copytree(made[test, steps], into)
        return into

    return get


@pytest.fixture(scope="session")
def train_tiny(tiny_dataset: TinyDataset) -> TrainTiny:
    """``train_tiny(tmp, test_samples=2)``: train a 2-layer 4-channel CNN for 3 steps without
    tracking on the tiny data set with ``test_samples`` test samples, into ``tmp``; return
    (data set root, run directory)."""

    def train(tmp: Path, test_samples: int = 2) -> tuple[Path, Path]:
        root = tiny_dataset(test_samples)
        overrides = [
            f"dataset.root={root}",
            *tiny_overrides(test=test_samples),
            "dataset.standardization=partial",
            "trainer.checkpoint_every=3",
            f"trainer.output_dir={tmp / 'checkpoints'}",
            "logger=none",
            "evaluation.randomization_samples=5",
        ]
        run_dir = tmp / "checkpoints" / "run"
        run_training(compose_config("train", *overrides), run_dir=run_dir)
        return root, run_dir

    return train
