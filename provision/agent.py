"""The host agent of one machine, as processes: a small process beside a running local VM that forwards
the ports its containers publish to the same ports on 127.0.0.1, as Lima's host agent does.

``create``, ``start`` and ``restart`` start it (``ensure``), ``stop``, ``kill`` and ``rm`` end it (``end``).
It is two processes: this module's supervisor, which restarts its worker whenever the worker dies, and the
worker (``provision.forwarding``), which follows the engine and changes the VM's forwards through its
driver. Its log is ``agent.log`` and its table ``ports.json``, both in the machine's directory;
``agent.pid`` names the supervisor, whose process group holds both.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import waiting
from .ports import STATE_FILE
from .run import pid_alive, read_pid, spawn

PID_FILE = "agent.pid"
LOG_FILE = "agent.log"
MAX_LOG_BYTES = 1 << 20  # the log is cut in half beyond this: an agent runs for weeks
RESTART_DELAY = 1.0
MARKER = "provision.agent"
# The worker's module, run by name: an import of it would tie this module to the machine service above it.
WORKER = "provision.forwarding"


@dataclass(frozen=True)
class AgentStatus:
    running: bool
    pid: int | None
    log: Path

    def to_dict(self) -> dict[str, object]:
        return {"running": self.running, "pid": self.pid, "log": str(self.log)}


def status(machine_dir: Path) -> AgentStatus:
    log = machine_dir / LOG_FILE
    pid = read_pid(machine_dir / PID_FILE)
    if pid is None:
        return AgentStatus(False, None, log)
    return AgentStatus(pid_alive(pid, MARKER), pid, log)


def ensure(root: Path, name: str, machine_dir: Path) -> AgentStatus:
    """Start the machine's agent unless one runs already; returns its status."""
    current = status(machine_dir)
    if current.running:
        return current
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
        gone = waiting.until(lambda: not pid_alive(current.pid, MARKER), timeout=timeout, interval=0.05)
        if not gone:
            try:
                os.killpg(current.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    (machine_dir / PID_FILE).unlink(missing_ok=True)
    (machine_dir / STATE_FILE).unlink(missing_ok=True)


# -- the agent's own processes ----------------------------------------------------------------------
def log_line(message: str) -> None:
    """One timestamped line of the agent's log (its processes' stdout is the log file)."""
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
    machine_dir = Path(root) / "machines" / name
    # ensure() writes the pid file after it has started this process, which can be here first.
    if not waiting.until(lambda: read_pid(machine_dir / PID_FILE) == os.getpid(), timeout=30, interval=0.05):
        return 0
    while not stopping and (machine_dir / PID_FILE).exists():
        _trim_log(machine_dir / LOG_FILE)
        worker = spawn([sys.executable, "-m", WORKER, root, name], output=None)
        while worker.poll() is None and not stopping:
            waiting.pause(0.2)
        if stopping:
            worker.terminate()
            worker.wait(timeout=10)
            break
        log_line(f"the worker ended ({worker.returncode}); starting it again")
        waiting.pause(RESTART_DELAY)
    return 0


def main(argv: list[str]) -> int:
    return supervise(argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
