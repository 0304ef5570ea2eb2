"""Show long work: a spinner with the current step on a terminal, plain lines otherwise."""

from __future__ import annotations

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
