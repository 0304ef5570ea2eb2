"""``start``, ``stop``, ``restart``, ``kill`` (several names run concurrently) and ``rm``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import click

from provision.errors import ProvisionError

from .call import Call, out, warn


def for_each(names: list[str], action: Callable[[str], object], done: str) -> None:
    """Run ``action`` on every name at once; report each failure; fail if any did."""
    if len(names) == 1:
        action(names[0])
        out(f'{done} "{names[0]}".\n')
        return
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        futures = {name: pool.submit(action, name) for name in names}
        for name, future in futures.items():
            try:
                future.result()
                out(f'{done} "{name}".\n')
            except ProvisionError as exc:
                failures.append(name)
                warn(f'Error with "{name}": {exc.message}')
    if failures:
        raise ProvisionError(f"failed for {', '.join(failures)}")


def _lifecycle(call: Call, names: list[str], method: str, done: str) -> None:
    service = call.machines()
    targets = names or [service.resolve_name(None)]
    for_each(targets, getattr(service, method), done)


def start(call: Call, names: list[str]) -> None:
    _lifecycle(call, names, "start", "Started machine")


def stop(call: Call, names: list[str]) -> None:
    _lifecycle(call, names, "stop", "Stopped machine")


def restart(call: Call, names: list[str]) -> None:
    _lifecycle(call, names, "restart", "Restarted machine")


def kill(call: Call, names: list[str]) -> None:
    _lifecycle(call, names, "kill", "Killed machine")


def rm(call: Call, names: list[str], force: bool, yes: bool) -> None:
    service = call.machines()
    targets = names or [service.resolve_name(None)]
    for name in targets:
        if not service.store.exists(service.resolve_name(name)):
            service.store.load(name)  # raises Docker Machine's "does not exist" error
    if not (yes or force):  # -f implies -y, as Docker Machine's help says
        _confirm_removal(targets)
    if len(targets) == 1:
        _warn_left(service.remove(targets[0], force=force))
        out(f"Successfully removed {targets[0]}\n")
        return
    failures = []
    for name in targets:
        try:
            _warn_left(service.remove(name, force=force))
            out(f"Successfully removed {name}\n")
        except ProvisionError as exc:
            failures.append(name)
            warn(f'Error removing "{name}": {exc.message}')
    if failures:
        raise ProvisionError(f"could not remove {', '.join(failures)}")


def _warn_left(left: list[str]) -> None:
    """What ``rm -f`` could not read or fix, one line each."""
    for line in left:
        warn(f"Warning: {line}")


ANSWER_WAIT = 3.0  # seconds a script has to pipe in its answer when stdin is not a terminal


def _confirm_removal(targets: list[str]) -> None:
    """Ask before removing. At a terminal, wait for the answer. Without one, take an answer a script pipes
    in (``echo y | provision rm NAME``, as Docker Machine read it) but never wait long for it: no answer
    is a refusal in one line (exit 1, nothing removed), not a hang."""
    prompt = (f"About to remove {', '.join(targets)}\n"
              "WARNING: This action will delete both local reference and remote instance.\nAre you sure?")
    if sys.stdin is not None and sys.stdin.isatty():
        if not click.confirm(prompt):
            raise click.exceptions.Exit(1)
        return
    out(prompt + " [y/N]: ")
    answer = _piped_answer(ANSWER_WAIT)
    if answer is None:
        out("\n")
        raise ProvisionError(f"Not removing {', '.join(targets)}: no answer on stdin, which is not a terminal; "
                             "pass -y (or -f) to remove without asking")
    out(answer + "\n")
    if not answer.strip().lower().startswith("y"):
        raise click.exceptions.Exit(1)


def _piped_answer(wait: float) -> str | None:
    """The first line already written to a non-terminal stdin, or None at its end or after ``wait`` seconds."""
    import select

    try:
        fd = sys.stdin.fileno()
        ready, _, _ = select.select([fd], [], [], wait)
        data = os.read(fd, 4096) if ready else b""
    except (AttributeError, OSError, ValueError):  # no stdin, or one select cannot watch (Windows)
        return None
    if not data:
        return None
    return data.decode(errors="replace").splitlines()[0] if data.strip() else ""
