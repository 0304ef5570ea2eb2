"""Every bounded wait in provision: one loop, one bound, and one explanation when the bound runs out.

``wait_for`` calls ``check`` until it returns something other than ``None`` or ``False`` and returns
that. Between attempts it pauses ``interval`` seconds, growing by ``backoff`` up to ``max_interval``,
never past the deadline: no attempt starts after it and the last one starts at it, so a wait lasts
``timeout`` plus at most one attempt. A check says why it is not done yet by raising ``NotYet(reason)``
or one of ``retry_on``; the last such reason goes into the error, which is ``TimeoutExpired`` unless
``error`` builds another from the ``Expired`` facts. Anything else a check raises ends the wait at once.
``until`` is the same loop for a caller that decides itself what running out means.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from provision.errors import TimeoutExpired

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a check: not done yet, and why (the reason shows in the timeout error)."""


class Deadline:
    """A point ``timeout`` seconds from now; a check that bounds its own attempt asks what is left."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.at = self.started + timeout

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Expired:
    """What a wait that ran out knows: what it waited for, how long, how often it looked, and why not."""

    what: str
    timeout: float
    attempts: int
    last: BaseException | None

    @property
    def reason(self) -> str:
        return str(self.last) if self.last is not None else "no answer"


def _timed_out(expired: Expired) -> Exception:
    return TimeoutExpired(f"Timed out after {expired.timeout:g}s waiting to {expired.what} "
                          f"(last seen: {expired.reason})")


def wait_for(what: str, check: Callable[[], T | None], *, timeout: float | Deadline, interval: float = 1.0,
             backoff: float = 1.0, max_interval: float | None = None,
             retry_on: tuple[type[BaseException], ...] = (), start_after: float = 0.0,
             error: Callable[[Expired], Exception] = _timed_out) -> T:
    """``check``'s first answer that is neither None nor False, within ``timeout`` seconds (or a
    ``Deadline`` the check also reads); ``start_after`` pauses before the first attempt."""
    deadline = timeout if isinstance(timeout, Deadline) else Deadline(timeout)
    pause, attempts, last = interval, 0, None
    if start_after > 0:
        time.sleep(min(start_after, deadline.remaining()))
    while True:
        attempts += 1
        try:
            result = check()
        except (NotYet, *retry_on) as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
        remaining = deadline.remaining()
        if remaining <= 0:
            raise error(Expired(what, deadline.timeout, attempts, last)) from last
        time.sleep(min(pause, remaining))
        pause = pause * backoff if max_interval is None else min(pause * backoff, max_interval)


def pause(seconds: float) -> None:
    """A pause between rounds of a loop that runs until it is told to stop (a supervisor restarting its
    worker, a follower reconnecting to an engine): no bound, so no deadline to explain."""
    time.sleep(seconds)


def until(condition: Callable[[], bool], *, timeout: float, interval: float = 1.0) -> bool:
    """True as soon as ``condition()`` is, False if it is still not after ``timeout`` seconds."""
    try:
        return wait_for("a condition", condition, timeout=timeout, interval=interval)
    except TimeoutExpired:
        return False
