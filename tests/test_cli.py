"""The conventions every entry point shares (normcoef.cli)."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import one_error_line

from normcoef.console import exit_on_user_error, interrupt_on_sigterm


def test_a_user_error_is_one_line_on_stderr_and_exit_code_2(capsys):
    @exit_on_user_error
    def main() -> None:
        raise FileNotFoundError("no data set at data/x;\n  generate it first")

    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: no data set at data/x; generate it first\n"


@pytest.mark.parametrize(
    "stderr",
    [
        "Traceback (most recent call last):\n  File ...\nerror: bad\n",
        "warning: slow\nerror: bad\n",
        "error: bad\nerror: worse\n",
        "",
    ],
    ids=["traceback", "warning", "two errors", "nothing"],
)
def test_the_tests_one_error_line_check_refuses_anything_besides_the_line(stderr: str):
    """The check every "one line, exit 2" test runs on a refused command's stderr."""
    assert one_error_line("error: bad\n") == "error: bad"
    with pytest.raises(AssertionError):
        one_error_line(stderr)


def test_the_one_error_line_check_lets_argparse_print_its_usage_first():
    usage = "usage: prog [-h]\n            [--x X]\nprog: error: argument --x: bad\n"
    assert one_error_line(usage, "prog: error: ", usage=True) == "prog: error: argument --x: bad"
    with pytest.raises(AssertionError):
        one_error_line(usage.replace("usage: prog [-h]\n", ""), "prog: error: ", usage=True)


def test_a_bug_keeps_its_traceback():
    @exit_on_user_error
    def main() -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        main()


def test_debug_switch_shows_the_traceback_of_a_user_error(monkeypatch):
    monkeypatch.setenv("NORMCOEF_DEBUG", "1")

    @exit_on_user_error
    def main() -> None:
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        main()


def test_sigterm_interrupts_like_ctrl_c_so_clean_up_runs():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        interrupt_on_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 1)  # let the handler run
    finally:
        signal.signal(signal.SIGTERM, previous)
