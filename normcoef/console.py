"""What the user sees on the console: a mistake as one line naming it, no traceback;
warnings; argparse types; SIGTERM as an interrupt.

At the bottom of the layers: library code of every layer raises or prints what the commands
(``normcoef.cli``) show.

User mistakes surface as ``OSError`` (missing, unreadable or existing files), ``ValueError``
(bad values; ``DatasetError`` and ``CheckpointError`` derive from it) and ``LookupError``
(unknown runs, sweeps, studies). Anything else is a bug and keeps its traceback. Set
``NORMCOEF_DEBUG=1`` to see the traceback of a user error too.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

DEBUG_ENV = "NORMCOEF_DEBUG"
USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, LookupError)
EXIT_USER_ERROR = 2

T = TypeVar("T")


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(error: BaseException) -> str:
    """The error's message on one line (``KeyError`` quotes dropped, newlines folded)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(text.split())
    return text or type(error).__name__


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
    """Wrap an entry point: a user error prints ``error: <message>`` and exits with 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as error:
            if debug_enabled():
                raise
            print(f"error: {one_line(error)}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper


def console_main(run: Callable[[list[str] | None], object]) -> Callable[..., None]:
    """The console script's ``main`` of a command whose ``run(argv)`` returns its result (for
    tests and callers): exit 0 when it succeeds (pip's wrapper would take a returned value for
    an exit status), 2 with one ``error:`` line on a user error, 130 with one
    ``interrupted:`` line on Ctrl-C."""

    @exit_on_user_error
    def main(argv: list[str] | None = None) -> None:
        try:
            run(argv)
        except KeyboardInterrupt as error:  # Ctrl-C: one line, not a traceback
            print("\ninterrupted: stopped before it finished; run it again", file=sys.stderr)
            raise SystemExit(interrupted_status(error)) from None

    return main


def warn(message: str) -> None:
    """A one-line warning on stderr: the run goes on, the user is told."""
    print(f"warning: {message}", file=sys.stderr)


def bounded_int(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum``: a bad value is argparse's one-line
    usage error, before anything is read."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}; got {value}")
        return value

    return parse


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt (``interrupt_on_sigterm``) so that Ctrl-C's clean-up
    runs; only the exit status tells the two apart."""


def interrupted_status(error: KeyboardInterrupt) -> int:
    """The shell's status of a process a signal stopped, 128 + the signal: 130 for Ctrl-C
    (SIGINT), 143 for ``kill`` or a batch system's time limit (SIGTERM)."""
    stopped_by = signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT
    return 128 + int(stopped_by)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise Terminated


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM (``kill``, a batch system's time limit) as Ctrl-C, so the clean-up that
    Ctrl-C runs happens too: generate stops its workers, a tracked run ends KILLED with its
    metrics written. Signals can be set from the main thread only (not in a joblib worker)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
