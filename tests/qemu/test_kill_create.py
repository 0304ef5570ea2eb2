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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clirun import provision_bin, run
from fixtures_vm import VM, forward_same_port, qemu_running_for, ssh_connect, ssh_run

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1800)]


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
    killed_at(step, "create", "-d", "local", "--local-memory", "768", "killed")
    record = json.loads((machine_dir / "machine.json").read_text())
    ports = [record["driver_data"][k] for k in ("ssh_port", "host_engine_port") if k in record["driver_data"]]

    listed = run("ls", "--format", "{{.Name}} {{.State}} {{.Error}}", check=True).stdout
    assert listed.startswith("killed Error create was interrupted"), listed

    removed = run("rm", "-f", "-y", "killed", timeout=300)
    assert removed.returncode == 0, removed.stderr
    assert not machine_dir.exists()
    assert not qemu_running_for(machine_dir / "disk.qcow2")
    assert all(port_free(port) for port in ports), ports
    assert subprocess.run(["docker", "context", "inspect", "killed"], capture_output=True).returncode != 0
    assert run("ls", "-q", check=True).stdout == ""


def killed_at(step: str, *args: str, timeout: float = 900) -> str:
    """Run `provision ARGS`, SIGKILL it when a progress line containing ``step`` appears; its output so far."""
    proc = subprocess.Popen([provision_bin(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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
    assert proc.returncode == -signal.SIGKILL, f"{args} ended before {step!r} ({proc.returncode}):\n{''.join(seen)}"
    return "".join(seen)


def engine_answers(name: str) -> bool:
    return subprocess.run(["docker", "--context", name, "version"], capture_output=True, timeout=120).returncode == 0


def test_kills_and_races_of_lifecycle_commands_end_in_a_defined_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL during stop, start and regenerate-certs, then the next command; two starts at once; a stop
    during a restart; ls during rm: each ends in a defined state, never a traceback."""
    monkeypatch.setenv("PROVISION_LOCAL_ACCEL", "tcg")
    machine_dir = Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "busy"
    created = run("create", "-d", "local", "--local-memory", "768", "busy", timeout=1500)
    try:
        assert created.returncode == 0, created.stderr
        killed_at("Stopping busy", "stop", "busy")
        run("stop", "busy", check=True, timeout=600)  # the next stop finishes the job
        assert run("status", "busy", check=True).stdout == "Stopped\n"

        killed_at("Waiting for Docker", "start", "busy")  # QEMU runs on, its address already recorded
        assert run("status", "busy", check=True).stdout in ("Running\n", "Starting\n")
        with ThreadPoolExecutor(2) as pool:  # two starts at once: one waits for the other's lock
            starts = list(pool.map(lambda _: run("start", "busy", timeout=1200), range(2)))
        assert [s.returncode for s in starts] == [0, 0], [s.stderr for s in starts]
        assert engine_answers("busy")

        killed_at("Waiting for Docker", "regenerate-certs", "-f", "busy")
        run("regenerate-certs", "-f", "busy", check=True, timeout=900)
        assert engine_answers("busy")

        restart = subprocess.Popen([provision_bin(), "restart", "busy"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
        assert restart.stdout is not None
        for line in restart.stdout:
            if "Waiting for" in line:
                break
        stop = run("stop", "busy", timeout=1200)  # waits for the restart's lock, then stops
        assert restart.wait(1200) == 0 and stop.returncode == 0, stop.stderr
        assert run("status", "busy", check=True).stdout == "Stopped\n"
    finally:
        listings: list[subprocess.CompletedProcess[str]] = []
        with ThreadPoolExecutor(2) as pool:
            removing = pool.submit(run, "rm", "-f", "-y", "busy", timeout=600)
            while not removing.done():
                listings.append(run("ls", "--timeout", "5"))
        assert removing.result().returncode == 0, removing.result().stderr
    assert all(ls.returncode == 0 and "Traceback" not in ls.stderr for ls in listings), listings
    assert not machine_dir.exists() and not qemu_running_for(machine_dir / "disk.qcow2")


@pytest.mark.parametrize("step", ["Inspecting the host", "Waiting for Docker"])
def test_kill_during_generic_create_then_rm_keeps_the_hosts_engine(step: str, docker_debian_vm: VM) -> None:
    """A generic host is the user's: after a killed create and `rm -f`, its Docker Engine still runs."""
    from fixtures_sshd import free_port

    vm = docker_debian_vm
    engine_port = free_port()
    forward_same_port(vm, engine_port)
    killed_at(step, "create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port",
              str(vm.port), "--generic-ssh-user", vm.user, "--generic-ssh-key", str(vm.key_path),
              "--generic-engine-port", str(engine_port), "halfgen")
    listed = run("ls", "--format", "{{.Name}} {{.State}} {{.Error}}", check=True).stdout
    assert listed.startswith("halfgen Error create was interrupted"), listed
    assert run("rm", "-f", "-y", "halfgen", timeout=300).returncode == 0
    assert not (Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "halfgen").exists()
    assert subprocess.run(["docker", "context", "inspect", "halfgen"], capture_output=True).returncode != 0
    client = ssh_connect(vm.host, vm.port, vm.user, vm.key_path, vm.known_hosts)
    try:
        active = ssh_run(client, "systemctl is-active docker")
        deadline = time.monotonic() + 300  # a restart the killed create began may still be under way
        while active[1].strip() != "active" and time.monotonic() < deadline:
            time.sleep(2)
            active = ssh_run(client, "systemctl is-active docker")
        assert active[1].strip() == "active"
    finally:
        client.close()
