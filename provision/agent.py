"""The host agent of one machine: a small process beside a running local VM that forwards the ports its
containers publish to the same ports on 127.0.0.1, as Lima's host agent does.

``create``, ``start`` and ``restart`` start it (``ensure``), ``stop``, ``kill`` and ``rm`` end it (``end``).
It is two processes: a supervisor that restarts its worker whenever the worker dies, and the worker that
follows the engine (``provision.ports.follow``) and changes the VM's forwards through its driver. Its log
is ``agent.log`` and its table ``ports.json``, both in the machine's directory; ``agent.pid`` names the
supervisor, whose process group holds both.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotSupported, ProvisionError, SSHError, UsageError

if TYPE_CHECKING:
    from .machines import Machines

PID_FILE = "agent.pid"
LOG_FILE = "agent.log"
MAX_LOG_BYTES = 1 << 20  # the log is cut in half beyond this: an agent runs for weeks
RESTART_DELAY = 1.0
RECONNECT_DELAY = 2.0
MARKER = "provision.agent"


@dataclass(frozen=True)
class AgentStatus:
    running: bool
    pid: int | None
    log: Path

    def to_dict(self) -> dict[str, object]:
        return {"running": self.running, "pid": self.pid, "log": str(self.log)}


def _alive(pid: int) -> bool:
    """True if ``pid`` is a live agent (its command line says so: a reused pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True  # no /proc (macOS): trust the signal check
    return MARKER.encode() in cmdline and b"\0" in cmdline


def status(machine_dir: Path) -> AgentStatus:
    log = machine_dir / LOG_FILE
    try:
        pid = int((machine_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return AgentStatus(False, None, log)
    return AgentStatus(_alive(pid), pid, log)


def ensure(root: Path, name: str, machine_dir: Path) -> AgentStatus:
    """Start the machine's agent unless one runs already; returns its status."""
    current = status(machine_dir)
    if current.running:
        return current
    from .run import spawn

    with open(machine_dir / LOG_FILE, "ab") as log:
        os.chmod(machine_dir / LOG_FILE, 0o600)
        process = spawn([sys.executable, "-m", MARKER, str(root), name], output=log, new_session=True,
                        cwd=str(machine_dir))
    from .fsutil import atomic_write

    atomic_write(machine_dir / PID_FILE, f"{process.pid}\n", 0o600)
    return AgentStatus(True, process.pid, machine_dir / LOG_FILE)


def end(machine_dir: Path, timeout: float = 10.0) -> None:
    """Stop the machine's agent (supervisor and worker) and forget it; quiet when none runs."""
    current = status(machine_dir)
    if current.running and current.pid is not None:
        try:
            os.killpg(current.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _alive(current.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(current.pid):
            try:
                os.killpg(current.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    (machine_dir / PID_FILE).unlink(missing_ok=True)
    (machine_dir / "ports.json").unlink(missing_ok=True)


# -- the agent's own processes ----------------------------------------------------------------------
def _log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
    sys.stdout.flush()


def _trim_log(path: Path) -> None:
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            tail = path.read_bytes()[-MAX_LOG_BYTES // 2:]
            path.write_bytes(tail[tail.find(b"\n") + 1:])
    except OSError:
        pass


def supervise(root: str, name: str) -> int:
    """Run the worker, and run it again each time it dies, until told to stop or the machine is gone."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from .run import spawn

    machine_dir = Path(root) / "machines" / name
    while not stopping and (machine_dir / PID_FILE).exists():
        _trim_log(machine_dir / LOG_FILE)
        worker = spawn([sys.executable, "-m", MARKER, "--worker", root, name], output=None)
        while worker.poll() is None and not stopping:
            time.sleep(0.2)
        if stopping:
            worker.terminate()
            worker.wait(timeout=10)
            break
        _log(f"the worker ended ({worker.returncode}); starting it again")
        time.sleep(RESTART_DELAY)
    return 0


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
    reconciler = Reconciler(forwarder, state_path, _log)
    _log(f"agent for {name} started (pid {os.getpid()})")
    while keep_going():
        try:
            engine = _engine(service, name)
            follow(engine, reconciler, keep_going=keep_going)
        except Exception as exc:  # the engine restarted, the VM is booting: try again shortly
            _log(f"lost the engine ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); reconnecting")
            time.sleep(RECONNECT_DELAY)
    reconciler.clear()
    _log("agent stopped")
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
    from .ports import read_state, snapshot

    record = service.get(name)
    directory = service.store.machine_dir(record.name)
    driver = service.driver_for(record)
    if service.agent_wanted(record, driver):
        current = status(directory)
        state = read_state(directory / "ports.json") if current.running else None
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
                    time.sleep(RECONNECT_DELAY)
                    engine = _engine(service, record.name)
        finally:
            if forwarder.alive():
                reconciler.clear()
    if not forwarder.alive() and keep_going():
        raise SSHError(f'the SSH connection to "{record.name}" closed')


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--worker":
        return work(argv[1], argv[2])
    return supervise(argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
