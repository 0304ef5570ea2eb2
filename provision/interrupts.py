"""Holding a Ctrl-C back across a few statements that must not be split, then raising it where the
caller can clean up after it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def held() -> Iterator[Callable[[], None]]:
    """Within the block, SIGINT is noted instead of raised; the function it yields lets it go: from then
    on Ctrl-C raises again, and one that came while held is raised right there, as ``KeyboardInterrupt``.
    Leaving the block lets it go too. Only the main thread receives signals; elsewhere this holds nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    pending: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt

    try:
        yield release
    finally:
        if not released:
            released = True
            signal.signal(signal.SIGINT, previous)
