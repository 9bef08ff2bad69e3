"""The conventions every entry point shares (normcoef.cli)."""

from __future__ import annotations

import os
import signal

import pytest

from normcoef.console import exit_on_user_error, interrupt_on_sigterm


def test_a_user_error_is_one_line_on_stderr_and_exit_code_2(capsys):
    @exit_on_user_error
    def main() -> None:
        raise FileNotFoundError("no data set at data/x;\n  generate it first")

    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: no data set at data/x; generate it first\n"


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
