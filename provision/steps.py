"""Where the seconds of a long command go: each progress message starts a step and ends the one before.

The core wraps its progress callback in a ``StepClock``. A step's time is reported as a line through
the clock's ``log`` callback when the step ends (the CLI shows those lines under ``--debug``), and
``finish`` hands back every step for the record (``create_steps`` in a machine's facts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[str], None]


def _ignore(line: str) -> None:
    return None


@dataclass(frozen=True)
class Step:
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.message, "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class Timing:
    """Every step of one command, in order, and the command's whole time (which also counts the work
    done before its first progress message)."""

    steps: tuple[Step, ...]
    seconds: float

    def facts(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}_steps": [step.to_dict() for step in self.steps],
                f"{prefix}_seconds": round(self.seconds, 1)}


def took_line(seconds: float, what: str) -> str:
    return f"  took {seconds:.1f} s: {what}"


class StepClock:
    """Times the steps of one command. ``what`` names it in the last line (``create web``)."""

    def __init__(self, what: str, log: Progress = _ignore, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self._log = log
        self._clock = clock
        self._started = clock()
        self._current: tuple[str, float] | None = None
        self._steps: list[Step] = []
        self._timing: Timing | None = None
        # A driver may report progress from a helper thread while the command's own thread reports too.
        self._lock = threading.Lock()

    def begin(self, message: str) -> None:
        """Start the step ``message``, ending the one before. After ``finish`` nothing more is timed."""
        with self._lock:
            if self._timing is not None:
                return
            now = self._clock()
            ended = self._end(now)
            self._current = (message, now)
        if ended is not None:
            self._log(took_line(ended.seconds, ended.message))

    def wrap(self, progress: Progress) -> Progress:
        """``progress`` with every message also starting a step."""

        def timed(message: str) -> None:
            self.begin(message)
            progress(message)

        return timed

    def finish(self) -> Timing:
        """End the last step and the command's time; a second call returns the same timing."""
        with self._lock:
            if self._timing is not None:
                return self._timing
            now = self._clock()
            ended = self._end(now)
            self._timing = Timing(tuple(self._steps), now - self._started)
        if ended is not None:
            self._log(took_line(ended.seconds, ended.message))
        if self._timing.steps:  # a command refused before its first step has no time worth a line
            self._log(took_line(self._timing.seconds, f"{self.what}, in all"))
        return self._timing

    def _end(self, now: float) -> Step | None:
        if self._current is None:
            return None
        message, began = self._current
        step = Step(message, now - began)
        self._steps.append(step)
        self._current = None
        return step


__all__ = ["Step", "StepClock", "Timing", "took_line"]
