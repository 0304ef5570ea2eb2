"""SIGKILL of the CLI at each step of `create`, then `rm -f NAME`: nothing is left behind.

The CLI runs as a real subprocess; the test reads its progress lines and kills it (SIGKILL, no clean-up
handler runs) as soon as the named step begins. Afterwards `ls` reports the interrupted create, and
`rm -f` must leave no QEMU process, forwarded port, overlay, docker context or record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from clirun import provision_bin, run
from fixtures_vm import qemu_running_for

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1800)]


def create_killed_at(step: str, *args: str, timeout: float = 900) -> str:
    """Run `provision create ARGS`, SIGKILL it when a progress line containing ``step`` appears; the output."""
    proc = subprocess.Popen([provision_bin(), "create", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if step in line:
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, f"no {step!r} within {timeout}s:\n{''.join(seen)}"
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, f"create ended before {step!r} ({proc.returncode}):\n{''.join(seen)}"
    return "".join(seen)


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("step", [
    "Creating the certificate authority",  # the record was just claimed
    "with the local driver",  # keys and the engine's certificate made
    "booting the virtual machine",  # overlay and seed written
    "Waiting for SSH",  # QEMU runs, ports forwarded
    "Waiting for Docker",  # the guest booted and was provisioned
])
def test_kill_during_local_create_then_rm_leaves_nothing(step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_LOCAL_ACCEL", "tcg")
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    machine_dir = store / "machines" / "killed"
    create_killed_at(step, "-d", "local", "--local-memory", "768", "killed")
    record = json.loads((machine_dir / "machine.json").read_text())
    ports = [record["driver_data"][k] for k in ("ssh_port", "engine_port") if k in record["driver_data"]]

    listed = run("ls", "--format", "{{.Name}} {{.State}} {{.Error}}", check=True).stdout
    assert listed.startswith("killed Error create was interrupted"), listed

    removed = run("rm", "-f", "-y", "killed", timeout=300)
    assert removed.returncode == 0, removed.stderr
    assert not machine_dir.exists()
    assert not qemu_running_for(machine_dir / "disk.qcow2")
    assert all(port_free(port) for port in ports), ports
    assert subprocess.run(["docker", "context", "inspect", "killed"], capture_output=True).returncode != 0
    assert run("ls", "-q", check=True).stdout == ""
