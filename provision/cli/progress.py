"""Show long work: a spinner with the current step on a terminal, plain lines otherwise.

Under ``--debug`` the reporter also shows what the core logs at DEBUG level through the stdlib
``logging`` module (``+ command`` for every local program, from ``provision.run``), and the lines the core
hands to its ``log`` callback (commands run on a machine, ``took 3.4 s: STEP`` as each step ends).
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


class MachineLines:
    """Progress of several machines at once: a live table, one row per machine, on a terminal; plain
    lines prefixed with the machine's name otherwise. ``step`` may be called from any thread."""

    def __init__(self, names: list[str], stream: Any = None) -> None:
        import threading

        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._started = time.monotonic()
        self._rows = {name: "waiting" for name in names}
        self._lock = threading.Lock()
        self._live: Any = None

    def __enter__(self) -> MachineLines:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(file=self.stream), refresh_per_second=4,
                              transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, pad_edge=False)
        table.add_column("MACHINE")
        table.add_column("STEP", overflow="ellipsis", no_wrap=True)
        for name, message in self._rows.items():
            table.add_row(name, message)
        return table

    def step(self, machine: str, message: str) -> None:
        elapsed = time.monotonic() - self._started
        with self._lock:
            self._rows[machine] = f"[{elapsed:6.1f}s] {message}"
            if self._live is not None:
                self._live.update(self._table())
            else:
                print(f"[{elapsed:6.1f}s] {machine}: {message}", file=self.stream, flush=True)
