"""Specification of the project's tooling: one console script per entry point, each working
from any directory, and a ``make`` that lists its targets rather than installing."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import one_error_line

from normcoef.data.storage import METADATA, read_json

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
REPO = Path(__file__).resolve().parents[1]
SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
# What each command's --help shows when it works; Hydra's lists conf/'s groups, so it proves
# that conf/ was found.
HELP = {
    "normcoef-train": "== Configuration groups ==",
    "normcoef-generate": "== Configuration groups ==",
    "normcoef-evaluate": "usage:",
    "normcoef-predict": "usage:",
    "normcoef-report": "experiment=",
    "normcoef-convert": "usage:",
    "normcoef-check": "usage:",
    "normcoef-upgrade": "usage:",
}
# pip's console-script wrapper: the module is imported by name, not run as __main__.
WRAPPER = "import sys; from {module} import {name}; sys.argv[0] = {script!r}; sys.exit({name}())"


def repo_env() -> dict[str, str]:
    """The environment with this checkout importable from any working directory."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def test_every_entry_point_has_a_console_script():
    assert set(SCRIPTS) == set(HELP)


@pytest.mark.parametrize("script", sorted(HELP))
def test_a_console_script_names_a_callable_main(script: str):
    module, _, name = SCRIPTS[script].partition(":")
    assert name == "main"
    assert callable(getattr(importlib.import_module(module), name))


def assert_shows_its_help(script: str, command: list[str], cwd: Path) -> None:
    """``command --help`` run in ``cwd`` exits 0 and shows what ``script``'s help shows."""
    done = subprocess.run(
        [*command, "--help"], cwd=cwd, env=repo_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert HELP[script] in done.stdout


@pytest.mark.parametrize("script", sorted(HELP))
def test_a_console_script_runs_from_any_directory(script: str, tmp_path: Path):
    module, _, name = SCRIPTS[script].partition(":")
    wrapper = WRAPPER.format(module=module, name=name, script=script)
    assert_shows_its_help(script, [sys.executable, "-c", wrapper], tmp_path)


def test_every_command_lives_in_the_cli_package_and_every_cli_module_is_a_command():
    modules = {SCRIPTS[script].partition(":")[0] for script in SCRIPTS}
    assert all(module.startswith("normcoef.cli.") for module in modules), modules
    # shared argument parsing and command-line checks, not commands
    helpers = {"__init__", "checkpoint_options", "overrides"}
    in_package = {
        f"normcoef.cli.{path.stem}"
        for path in (REPO / "normcoef" / "cli").glob("*.py")
        if path.stem not in helpers
    }
    assert in_package == modules


NEWER = {"normcoef-upgrade"}
"""Commands that came after normcoef.cli: they have no old ``python -m`` form."""


@pytest.mark.parametrize("script", sorted(set(HELP) - NEWER))
def test_the_old_python_m_form_of_a_command_still_runs_it(script: str, tmp_path: Path):
    """``python -m normcoef.train`` etc., as the docs and users' scripts write them, run the
    command of ``normcoef.cli`` (the old module paths are aliases)."""
    command = script.removeprefix("normcoef-")
    assert_shows_its_help(script, [sys.executable, "-m", f"normcoef.{command}"], tmp_path)


def test_a_test_run_names_each_skipped_test_and_why(tmp_path: Path):
    """``make test`` (CI) runs pytest with pyproject.toml's options, which end the run with one
    line per skip and its reason: a test that stopped running is seen, not just counted."""
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n\n@pytest.mark.skip(reason='no engine here')\ndef test_engine():\n"
        "    pass\n"
    )
    options = ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path)]
    command = [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider", "test_sample.py"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "SKIPPED [1] test_sample.py:4: no engine here" in done.stdout, done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_without_a_target_lists_every_target_and_installs_nothing():
    make = ["make", "--no-print-directory", "-C", str(REPO)]
    planned = subprocess.run([*make, "-n"], capture_output=True, text=True, timeout=60)
    assert "pip" not in planned.stdout and "venv" not in planned.stdout, planned.stdout
    done = subprocess.run([*make, "-s"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0]: line for line in done.stdout.splitlines()}
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M)
    assert phony is not None
    assert set(listed) == set(phony.group(1).split())
    assert all(len(line.split()) > 1 for line in listed.values()), "a target lacks its ## line"


def run_console_script(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` as pip's console-script wrapper runs it (``sys.exit(main())``)."""
    module, _, name = SCRIPTS[script].partition(":")
    env = repo_env()
    wrapper = WRAPPER.format(module=module, name=name, script=script)
    return subprocess.run(
        [sys.executable, "-c", wrapper, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_evaluate_and_predict_console_scripts_exit_0_when_they_succeed(train_tiny, tmp_path):
    root, run_dir = train_tiny(tmp_path)

    evaluated = run_console_script(
        "normcoef-evaluate", str(run_dir), "-n", "0", "--no-log", cwd=tmp_path
    )
    predicted = run_console_script(
        "normcoef-predict", str(run_dir), str(root / "test" / "X"), "-o", "out", cwd=tmp_path
    )

    for done in (evaluated, predicted):
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stderr == "", "a returned value was printed as the exit status"
    assert "| CNN |" in evaluated.stdout
    assert len(list((tmp_path / "out").glob("*.npz"))) == 2


@pytest.mark.slow
def test_the_data_and_report_console_scripts_exit_0_on_success_and_2_on_a_user_error(
    train_tiny, tmp_path
):
    """convert, check and report as installed (the wrapper's ``sys.exit(main())``): a real
    run on the tiny data set exits 0, a bad argument 2 with one ``error:`` line."""
    from test_convert import write_original

    root, run_dir = train_tiny(tmp_path)
    steps = str(read_json(root / METADATA)["steps"])
    original = write_original(root, tmp_path / "original", "standardize")
    done = {
        "check": run_console_script("normcoef-check", str(root), "--samples", "1", cwd=tmp_path),
        "convert": run_console_script(
            "normcoef-convert", str(original), "converted", "--steps", steps, cwd=tmp_path
        ),
    }
    for name, result in done.items():
        assert result.returncode == 0, (name, result.stderr[-2000:])
    assert (tmp_path / "converted" / METADATA).is_file()

    missing = str(tmp_path / "nowhere")
    refused = {
        "check": run_console_script("normcoef-check", missing, cwd=tmp_path),
        "convert": run_console_script(  # the destination is not empty now
            "normcoef-convert", str(original), "converted", "--steps", steps, cwd=tmp_path
        ),
        "report": run_console_script(
            "normcoef-report",
            "experiment=smoke",
            f"logger.tracking_uri=sqlite:///{missing}/m.db",
            cwd=tmp_path,
        ),
        "evaluate": run_console_script("normcoef-evaluate", missing, cwd=tmp_path),
        "predict": run_console_script(
            "normcoef-predict", str(run_dir), missing, "-o", "out2", cwd=tmp_path
        ),
    }
    for name, result in refused.items():
        assert result.returncode == 2, (name, result.stderr[-2000:])
        one_error_line(result.stderr)


def test_the_library_passes_ruff_with_its_complexity_and_argument_rules():
    """``make lint``'s check as part of ``make test``: a function over 12 branches or 8
    parameters (C901, PLR0913; pyproject.toml) fails here, not in review."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "normcoef", "hydra_plugins", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
