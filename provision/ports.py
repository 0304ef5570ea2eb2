"""Published ports follow containers: what the engine publishes, and keeping forwards on this computer in
step with it.

The engine says what to forward: every port a running container publishes on all of the machine's
addresses, and every port a swarm service publishes through the ingress network (a manager knows those).
``Reconciler`` turns that set into forwards through a ``Forwarder`` (QEMU's user network for a local VM,
an SSH connection for any other machine) and keeps a table of what is forwarded, what failed and why,
which ``provision ports`` shows. ``follow`` watches the engine's ``/events`` stream and reconciles at each
container or service event, and every few seconds whatever happens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ProvisionError
from .fsutil import atomic_write

STATE_FILE = "ports.json"
# The engine's events stream is read in windows this long: each window's end reconciles too, so a missed
# event (a dockerd restart, a dropped connection) is mended within one window.
WINDOW_SECONDS = 5.0
FORWARDED = "forwarded"
FAILED = "failed"
# Addresses inside the machine that mean "every address", so a forward to the machine reaches the port.
ALL_ADDRESSES = ("", "0.0.0.0", "::")


@dataclass(frozen=True, order=True)
class Published:
    """One port the engine publishes: protocol and port number, with who publishes it."""

    protocol: str
    port: int


@dataclass
class Forward:
    protocol: str
    port: int
    state: str
    detail: str = ""
    sources: list[str] = field(default_factory=list)

    @property
    def key(self) -> Published:
        return Published(self.protocol, self.port)


class Forwarder(Protocol):
    """Makes 127.0.0.1:PORT on this computer reach PORT on the machine."""

    def add(self, protocol: str, port: int) -> None:
        """Raise ``ProvisionError`` with the reason when it cannot (the host port is taken, say)."""

    def remove(self, protocol: str, port: int) -> None:
        ...


def published(containers: Iterable[dict[str, Any]], services: Iterable[dict[str, Any]]
              ) -> tuple[dict[Published, list[str]], list[str]]:
    """What to forward, each with the containers or services that publish it, and a note for each port
    published on one address of the machine only (such a port cannot be reached through a forward)."""
    wanted: dict[Published, list[str]] = {}
    skipped: list[str] = []
    for container in containers:
        name = ((container.get("Names") or ["?"])[0]).lstrip("/")
        for port in container.get("Ports") or ():
            public, protocol = port.get("PublicPort"), str(port.get("Type") or "tcp")
            if not isinstance(public, int) or protocol not in ("tcp", "udp"):
                continue
            if str(port.get("IP") or "") not in ALL_ADDRESSES:
                skipped.append(f"{name}: {port.get('IP')}:{public}/{protocol} is bound to one address in the machine")
                continue
            sources = wanted.setdefault(Published(protocol, public), [])
            if name not in sources:
                sources.append(name)
    for service in services:
        name = str((service.get("Spec") or {}).get("Name") or service.get("ID") or "?")
        for port in ((service.get("Endpoint") or {}).get("Ports") or ()):
            public, protocol = port.get("PublishedPort"), str(port.get("Protocol") or "tcp")
            if port.get("PublishMode", "ingress") != "ingress" or not isinstance(public, int):
                continue
            if protocol in ("tcp", "udp"):
                sources = wanted.setdefault(Published(protocol, public), [])
                if f"service {name}" not in sources:
                    sources.append(f"service {name}")
    return wanted, skipped


class Reconciler:
    """Keeps forwards in step with what is published, and the table of them in ``state_path``."""

    def __init__(self, forwarder: Forwarder, state_path: Path | None, log: Callable[[str], None]) -> None:
        self.forwarder = forwarder
        self.state_path = state_path
        self.log = log
        self.forwards: dict[Published, Forward] = {}
        self.notes: list[str] = []

    def apply(self, wanted: dict[Published, list[str]], notes: list[str] | None = None) -> None:
        for key in sorted(set(self.forwards) - set(wanted)):
            forward = self.forwards.pop(key)
            if forward.state == FORWARDED:
                try:
                    self.forwarder.remove(key.protocol, key.port)
                    self.log(f"stopped forwarding 127.0.0.1:{key.port}/{key.protocol}")
                except ProvisionError as exc:
                    self.log(f"could not stop forwarding {key.port}/{key.protocol}: {exc.message}")
        for key in sorted(wanted):
            current = self.forwards.get(key)
            if current is not None and current.state == FORWARDED:
                current.sources = wanted[key]
                continue
            try:
                self.forwarder.add(key.protocol, key.port)
            except ProvisionError as exc:
                # A host port that is taken stays in the table and is tried again at the next reconcile;
                # the log gets one line when it first fails, not one every few seconds.
                if current is None or current.detail != exc.message:
                    self.log(f"cannot forward 127.0.0.1:{key.port}/{key.protocol} "
                             f"({', '.join(wanted[key])}): {exc.message}")
                self.forwards[key] = Forward(key.protocol, key.port, FAILED, exc.message, wanted[key])
                continue
            self.log(f"forwarding 127.0.0.1:{key.port}/{key.protocol} to {', '.join(wanted[key])}")
            self.forwards[key] = Forward(key.protocol, key.port, FORWARDED, "", wanted[key])
        for note in notes or ():
            if note not in self.notes:
                self.log(f"not forwarded: {note}")
        self.notes = list(notes or ())
        self.save()

    def clear(self) -> None:
        """Take every forward down (the agent stops, the engine went away)."""
        self.apply({})

    def save(self, **extra: Any) -> None:
        if self.state_path is None:
            return
        table = [asdict(f) for f in sorted(self.forwards.values(), key=lambda f: (f.port, f.protocol))]
        atomic_write(self.state_path, json.dumps({"updated": time.time(), "forwards": table,
                                                  "not_forwarded": self.notes, **extra}, indent=1) + "\n", 0o600)


def read_state(path: Path) -> dict[str, Any] | None:
    """The table an agent last wrote, or None when there is none (or it cannot be read)."""
    from . import filerules

    try:
        data = filerules.read_json(str(path), follow=False)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Engine(Protocol):
    """The part of the docker SDK's low-level client that ``follow`` uses."""

    def containers(self) -> list[dict[str, Any]]: ...
    def services(self) -> list[dict[str, Any]]: ...
    def events(self, *, since: float, until: float, decode: bool, filters: dict[str, Any]) -> Iterable[Any]: ...


def snapshot(engine: Engine) -> tuple[dict[Published, list[str]], list[str]]:
    containers = engine.containers()
    try:
        services = engine.services()
    except Exception:  # not a swarm manager (or no swarm): it has no services to tell
        services = []
    return published(containers, services)


def follow(engine: Engine, reconciler: Reconciler, *, keep_going: Callable[[], bool],
           window: float = WINDOW_SECONDS) -> None:
    """Reconcile now, then at every container or service event and at the end of every window, until
    ``keep_going`` says no. Errors of the engine's connection propagate: the caller reconnects."""
    reconciler.apply(*snapshot(engine))
    while keep_going():
        start = time.time()
        for _event in engine.events(since=start, until=start + window, decode=True,
                                    filters={"type": ["container", "service"]}):
            reconciler.apply(*snapshot(engine))
            if not keep_going():
                return
        reconciler.apply(*snapshot(engine))
