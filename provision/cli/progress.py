"""Show long work: a spinner with the current step on a terminal, plain lines otherwise.

Under ``--debug`` the reporter also shows what the core logs at DEBUG level through the stdlib
``logging`` module (``+ command`` for every local program, from ``provision.run``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


class Reporter:
    def __init__(self, debug: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.debug = debug
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._status: Any = None
        self._started = time.monotonic()
        self._last, self._last_at = "", 0.0
        self._handler: logging.Handler | None = None
        if debug:
            core = logging.getLogger("provision")
            self._handler, self._level = _DebugLines(self), core.level
            core.addHandler(self._handler)
            core.setLevel(logging.DEBUG)

    def step(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        if self.tty and not self.debug:
            if self._status is None:
                from rich.console import Console

                self._status = Console(file=self.stream).status(message)
                self._status.start()
            else:
                # Keep finished steps on screen, with the time they started at.
                self._status.console.print(f"[{self._last_at:6.1f}s] {self._last}", highlight=False)
                self._status.update(message)
            self._last, self._last_at = message, elapsed
            return
        print(f"[{elapsed:6.1f}s] {message}", file=self.stream, flush=True)

    def debug_line(self, message: str) -> None:
        if self.debug:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._handler is not None:
            core = logging.getLogger("provision")
            core.removeHandler(self._handler)
            core.setLevel(self._level)
            self._handler = None


class _DebugLines(logging.Handler):
    """The core's log records, as the reporter's debug lines."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.DEBUG)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.debug_line(record.getMessage())
