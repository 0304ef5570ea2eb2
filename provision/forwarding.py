"""Forwarding a machine's published ports: the host agent's worker (run as ``python -m provision.forwarding
ROOT NAME`` by the supervisor in ``provision.agent``), what ``provision ports`` shows, and
``provision ports NAME --forward`` over SSH."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import agent, waiting
from .errors import NotSupported, ProvisionError, SSHError, UsageError

if TYPE_CHECKING:
    from .machines import Machines

RECONNECT_DELAY = 2.0


def work(root: str, name: str) -> int:
    """Follow the machine's engine and keep its forwards in step, reconnecting when the engine goes away."""
    from .machines import Machines
    from .ports import FORWARDED, STATE_FILE, Reconciler, follow, read_state

    service = Machines.open(Path(root))
    supervisor = os.getppid()

    def keep_going() -> bool:
        # An orphaned worker ends itself. SIGTERM (from `end`) ends it at once: the VM is going away with
        # its forwards, so there is nothing to take down first.
        return os.getppid() == supervisor

    record = service.store.load(name)
    driver = service.driver_for(record)
    state_path = service.store.machine_dir(name) / STATE_FILE
    forwarder = _DriverForwarder(driver)
    # A worker that died (killed, crashed) left its forwards in QEMU: take them down, so this one can add
    # them again and knows them as its own.
    for entry in (read_state(state_path) or {}).get("forwards", []):
        if isinstance(entry, dict) and entry.get("state") == FORWARDED:
            try:
                forwarder.remove(str(entry.get("protocol")), int(entry.get("port")))
            except (ProvisionError, TypeError, ValueError):
                pass
    reconciler = Reconciler(forwarder, state_path, agent.log_line)
    agent.log_line(f"agent for {name} started (pid {os.getpid()})")
    while keep_going():
        try:
            engine = _engine(service, name)
            follow(engine, reconciler, keep_going=keep_going)
        except Exception as exc:  # the engine restarted, the VM is booting: try again shortly
            reason = " ".join(str(exc).split())[:200]
            agent.log_line(f"lost the engine ({type(exc).__name__}: {reason}); reconnecting")
            waiting.pause(RECONNECT_DELAY)
    reconciler.clear()
    agent.log_line("agent stopped")
    return 0


class _DriverForwarder:
    def __init__(self, driver: object) -> None:
        self.driver = driver

    def add(self, protocol: str, port: int) -> None:
        self.driver.forward_port(protocol, port)  # type: ignore[attr-defined]

    def remove(self, protocol: str, port: int) -> None:
        self.driver.unforward_port(protocol, port)  # type: ignore[attr-defined]


def _engine(service: Machines, name: str) -> Any:
    """The docker SDK's low-level client for the machine's engine over its mutual-TLS endpoint."""
    from .swarm import client

    record = service.store.load(name)
    if record.engine.over_ssh:
        raise NotSupported(f'"{name}" has no engine TCP port (--engine-endpoint ssh): provision cannot follow '
                           "its containers' ports")
    return client(service, record).api


# -- what `provision ports` shows and does -------------------------------------------------------------
def table(service: Machines, name: str) -> dict[str, Any]:
    """The forwards of ``name`` now: the agent's own table for a machine that has one, else what the
    engine publishes, none of it forwarded."""
    from .ports import STATE_FILE, read_state, snapshot

    record = service.get(name)
    directory = service.store.machine_dir(record.name)
    driver = service.driver_for(record)
    if service.agent_wanted(record, driver):
        current = agent.status(directory)
        state = read_state(directory / STATE_FILE) if current.running else None
        return {"machine": record.name, "agent": current.to_dict(), "forwards": (state or {}).get("forwards", []),
                "not_forwarded": (state or {}).get("not_forwarded", [])}
    wanted, notes = snapshot(_engine(service, record.name))
    hint = f"provision ports {record.name} --forward"
    return {"machine": record.name, "agent": None,
            "forwards": [{"protocol": key.protocol, "port": key.port, "state": "not forwarded", "detail": hint,
                          "sources": sources} for key, sources in sorted(wanted.items())],
            "not_forwarded": notes}


def forward_in_foreground(service: Machines, name: str, log: Callable[[str], None],
                          keep_going: Callable[[], bool]) -> None:
    """``provision ports NAME --forward``: forward the machine's published ports over its SSH connection
    until ``keep_going`` says no (Ctrl-C), following containers as they come and go."""
    from .ports import Reconciler, follow
    from .sshforward import SSHForwarder

    record = service.get(name)
    driver = service.driver_for(record)
    if service.agent_wanted(record, driver):
        raise UsageError(f'"{record.name}" has a port agent that forwards its ports already; '
                         f"see `provision ports {record.name}`")
    endpoint, known_hosts = service.ssh_target(record.name)  # first: a machine without SSH says so
    engine = _engine(service, record.name)
    with SSHForwarder(endpoint, known_hosts, record.name) as forwarder:
        log(f"Forwarding the ports {record.name} publishes to 127.0.0.1 over SSH; Ctrl-C stops")
        reconciler = Reconciler(forwarder, None, log)

        def going() -> bool:
            return keep_going() and forwarder.alive()

        try:
            while going():
                try:
                    follow(engine, reconciler, keep_going=going)
                except ProvisionError:
                    raise
                except Exception as exc:  # the engine restarted: follow it again
                    log(f"lost the engine ({type(exc).__name__}); reconnecting")
                    waiting.pause(RECONNECT_DELAY)
                    engine = _engine(service, record.name)
        finally:
            if forwarder.alive():
                reconciler.clear()
    if not forwarder.alive() and keep_going():
        raise SSHError(f'the SSH connection to "{record.name}" closed')


if __name__ == "__main__":
    sys.exit(work(sys.argv[1], sys.argv[2]))
