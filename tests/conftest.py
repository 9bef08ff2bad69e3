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


RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "A refusal leaves no trace",
        "Every check that can fail from the config or the environment (schema, data set "
        "facts, crop, padding, tracking store writable and reachable, its driver present, a "
        "sweep's counts, search space, sampler and Optuna storage) runs before any MLflow run, "
        "parent or child, is opened.",
        (
            "test_a_refused_run_leaves_the_store_as_it_was",
            "test_a_store_runs_cannot_be_written_to_is_named",
            "test_a_sweep_that_cannot_run_is_refused_in_one_line_leaving_no_run",
        ),
    ),
    (
        "What is asked is done, or refused with the reason",
        "A count below 1, an empty choice or range, a sweep that cannot run anything is "
        "refused in one line before anything starts. A key the config does not have is "
        "refused with the key meant, whatever its prefix: `+` and `++` add no key.",
        (
            "test_a_plus_does_not_open_a_way_around_the_schema",
            "test_a_sweep_that_cannot_run_is_refused_in_one_line_leaving_no_run",
        ),
    ),
    (
        "A killed search resumes at once on the same host",
        "A RUNNING trial records its owner (host, process id, the process's start time); on "
        "the same host a trial whose owner is gone is failed and run again at once; across "
        "hosts the heartbeat's grace period stays the rule. The study lock is tested by a "
        "forced interleaving, not by a race.",
        (
            "test_a_search_killed_and_run_again_at_once_on_the_same_host_goes_on_without_waiting",
            "test_a_running_trial_of_a_process_of_this_host_that_is_gone_is_marked_fail_at_once",
            "test_the_study_lock_keeps_a_second_taker_out_until_the_first_releases_it",
        ),
    ),
    (
        "A data set's facts match the network's",
        "M and periodicity define the operator a network learned: evaluate and resume refuse "
        "a data set of another (predict, which has no targets, warns on another periodicity "
        "and refuses another M); resume also refuses another grid, standardization or "
        "statistics; another resolution is warned with both sizes.",
        (
            "test_evaluate_refuses_a_data_set_of_another_operator",
            "test_predict_refuses_inputs_of_a_data_set_of_another_operator",
            "test_resume_refuses_data_its_weights_were_not_fit_to",
        ),
    ),
    (
        "Physical validity is one rule",
        "Fields no diffusion operator can have (non-finite, A_i or A_j < 0, W <= 0 on an ocean "
        "cell) are refused wherever a sample is read (`storage.read_sample`) and wherever a "
        "user's input is read (`gamma_files`), in the same words, whatever the target.",
        (
            "test_fields_no_operator_can_have_are_refused_for_every_target",
            "test_every_reader_of_a_split_applies_the_rule",
        ),
    ),
    (
        "`convert` checks every pairing it writes",
        "Exact Γ at 8 cells of every sample, coast to open ocean, must match its own targets "
        "and no other sample's better; whole samples are verified as the time budget allows; "
        "the output says how many.",
        (
            "test_targets_swapped_between_samples_are_refused_naming_both",
            "test_a_correct_data_set_says_how_many_pairings_and_whole_samples_were_verified",
        ),
    ),
    (
        "An interrupted command says one line",
        "Ctrl-C exits 130 and SIGTERM 143, with one `interrupted:` line: a training run names "
        "its KILLED MLflow run, its checkpoints and the command that resumes it.",
        (
            "test_an_interrupted_run_says_one_line_and_how_to_resume",
            "test_a_command_interrupted_says_one_line",
        ),
    ),
    (
        "The house keeps its floors",
        "Each room has its own row of `tests/test_layers.py`; imports run down the rows, never "
        "between rooms of one row, and no chain of imports comes back to where it started.",
        (
            "test_imports_run_downward",
            "test_no_chain_of_imports_comes_back_to_where_it_started",
        ),
    ),
    (
        "A test checks what its name says",
        '"One line" means stderr holds exactly one line and no traceback '
        "(`helpers.one_error_line`); a skipped test is listed with its reason in every run.",
        ("test_a_test_run_names_each_skipped_test_and_why",),
    ),
)
"""The rules of issue 26 (docs/reliability.md, "Rules"): (name, rule, tests enforcing it)."""


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
        "",
        "## Rules",
        "",
        "Each rule holds for every command; the tests named enforce it.",
        "",
    ]
    for number, (name, rule, tests) in enumerate(RULES, 1):
        enforced = ", ".join(f"`{test}`" for test in tests)
        lines.append(f"{number}. **{name}.** {rule} Tests: {enforced}.")
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
    if config.stash[_COMPLETE]:  # a rule names tests that exist
        names = {item.originalname for item in items if isinstance(item, pytest.Function)}
        missing = [test for *_, tests in RULES for test in tests if test not in names]
        if missing:
            raise pytest.UsageError(f"RULES name tests that do not exist: {missing}")
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
