"""The generic driver: against a real sshd for SSH, state and key handling."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fixtures_sshd import SSHLogin, free_port, keygen
from fixtures_vm import forward_same_port
from storecheck import assert_store_is_private
from provision.driver import DriverContext, MachineState
from provision_drivers.generic import COPIED_KEY, GenericDriver
from provision.errors import DriverError, NotSupported, SSHError, UsageError
from provision.ssh import RemoteSession


def make_ctx(tmp_path: Path, home: Path | None = None, **values: Any) -> DriverContext:
    options = {spec.key: spec.default for spec in GenericDriver.options}
    options.update(values)
    machine_dir = tmp_path / "machines" / "g1"
    machine_dir.mkdir(parents=True)
    keygen(machine_dir / "id_ed25519")  # the core makes the machine's own pair before create()
    environ = {"HOME": str(home or tmp_path / "emptyhome")}
    return DriverContext(machine_name="g1", machine_dir=machine_dir, cache_dir=tmp_path / "cache",
                         options=options, environ=environ)


def test_options_follow_docker_machine() -> None:
    specs = {s.flag: s for s in GenericDriver.options}
    assert set(specs) == {"generic-ip-address", "generic-ssh-user", "generic-ssh-key", "generic-ssh-port",
                          "generic-engine-port"}
    assert specs["generic-ip-address"].required and specs["generic-ip-address"].envvar == "GENERIC_IP_ADDRESS"
    assert (specs["generic-ssh-user"].default, specs["generic-ssh-port"].default,
            specs["generic-engine-port"].default) == ("root", 22, 2376)
    assert specs["generic-ssh-port"].type is int
    caps = GenericDriver.capabilities
    assert caps.restart and caps.ssh and caps.provisions_engine and not (caps.start or caps.stop or caps.kill)


def test_create_copies_the_given_key_and_records_the_host(tmp_path: Path) -> None:
    key = tmp_path / "mykey"
    keygen(key)
    ctx = make_ctx(tmp_path, generic_ip_address="192.0.2.10", generic_ssh_key=str(key), generic_ssh_user="admin",
                   generic_ssh_port=2222, generic_engine_port=3376)
    checkpoints = []
    ctx.checkpoint = lambda: checkpoints.append(dict(ctx.data))
    driver = GenericDriver(ctx)
    driver.create()
    copied = ctx.machine_dir / COPIED_KEY
    assert copied.read_bytes() == key.read_bytes() and copied.stat().st_mode & 0o777 == 0o600
    assert Path(f"{copied}.pub").read_text() == Path(f"{key}.pub").read_text()
    assert checkpoints and checkpoints[-1]["ip"] == "192.0.2.10"
    assert driver.engine_url() == "tcp://192.0.2.10:3376"
    assert driver.engine_port() == 3376
    assert driver.addresses() == ["192.0.2.10"] and driver.ip() == "192.0.2.10"
    endpoint = driver.ssh_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.user, endpoint.key_path) == ("192.0.2.10", 2222, "admin", copied)
    # The driver reads only its data once created: a fresh instance over the same data agrees.
    again = GenericDriver(DriverContext("g1", ctx.machine_dir, ctx.cache_dir, options={}, data=dict(ctx.data)))
    assert again.engine_url() == "tcp://192.0.2.10:3376" and again.ssh_endpoint() == endpoint
    driver.remove()
    driver.remove()  # already gone is done
    assert not copied.exists() and not Path(f"{copied}.pub").exists()
    assert (ctx.machine_dir / "id_ed25519").exists(), "remove leaves the core's files to the core"


def test_default_key_comes_from_home_then_the_generated_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    keygen(home / ".ssh" / "id_rsa", "rsa")
    ctx = make_ctx(tmp_path, home=home, generic_ip_address="2001:db8::5")
    driver = GenericDriver(ctx)
    driver.create()
    assert driver.ssh_endpoint().key_path.read_bytes() == (home / ".ssh" / "id_rsa").read_bytes()
    assert driver.engine_url() == "tcp://[2001:db8::5]:2376"

    messages: list[str] = []
    ctx2 = make_ctx(tmp_path / "two", generic_ip_address="192.0.2.11")
    ctx2.progress = messages.append
    driver2 = GenericDriver(ctx2)
    driver2.create()
    assert driver2.ssh_endpoint().key_path == ctx2.ssh_key_path
    assert "authorized_keys" in messages[-1]


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a file"):
        GenericDriver(make_ctx(tmp_path, generic_ip_address="h", generic_ssh_key=str(tmp_path / "nope"))).create()
    with pytest.raises(UsageError, match="between 1 and 65535"):
        GenericDriver(make_ctx(tmp_path / "b", generic_ip_address="h", generic_ssh_port=70000)).create()
    with pytest.raises(UsageError, match="required"):
        GenericDriver(make_ctx(tmp_path / "c", generic_ip_address="")).create()


def test_power_operations_are_refused_by_the_core_with_the_drivers_hint(tmp_path: Path) -> None:
    from provision.machines import Machines
    from provision.record import Lifecycle, MachineRecord

    service = Machines.open(tmp_path / "store")
    record = MachineRecord(name="box", driver="generic", lifecycle=Lifecycle.READY,
                           driver_data={"ip": "192.0.2.1", "ssh_user": "root", "ssh_port": 22, "engine_port": 2376},
                           url="tcp://192.0.2.1:2376")
    service.store.claim(record)
    service.store.save(record)
    hints = {"start": "power the host on yourself", "stop": "shut the host down yourself",
             "kill": "power the host off yourself"}
    for action, hint in hints.items():
        with pytest.raises(NotSupported) as refused:
            getattr(service, action)("box")  # refused before the driver is reached: nothing dials 192.0.2.1
        assert refused.value.message == f'the generic driver cannot {action} machine "box"'
        assert refused.value.hint == hint
    assert service.store.load("box") == record


@pytest.mark.sshd
def test_state_and_ssh_through_the_copied_key(sshd_root: SSHLogin, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, generic_ip_address="127.0.0.1", generic_ssh_port=sshd_root.sshd.port,
                   generic_ssh_key=str(sshd_root.key_path))
    driver = GenericDriver(ctx)
    driver.create()
    assert driver.state() == MachineState.RUNNING
    with RemoteSession.connect(driver.ssh_endpoint(), known_host_key=None, machine="g1", timeout=10) as s:
        assert s.run(["echo", "via copied key"]).out == "via copied key\n"
    sshd_root.sshd.stop()
    started = time.monotonic()
    assert driver.state() == MachineState.STOPPED
    assert time.monotonic() - started < 4


def test_state_of_an_unused_port_is_stopped_quickly(tmp_path: Path) -> None:
    driver = GenericDriver(make_ctx(tmp_path, generic_ip_address="127.0.0.1", generic_ssh_port=free_port()))
    driver.create()
    started = time.monotonic()
    assert driver.state() == MachineState.STOPPED
    assert time.monotonic() - started < 1


class _RebootingHost:
    """``ctx.remote`` for a host that refuses SSH ``down_for`` times after its reboot, then has a new boot id."""

    def __init__(self, down_for: int, comes_back: bool = True) -> None:
        self.boot_id, self.down_for, self.comes_back = "boot-1", down_for, comes_back
        self.rebooting, self.connects_after = False, 0

    @contextmanager
    def remote(self) -> Iterator[_RebootingHost]:
        if self.rebooting:
            self.connects_after += 1
            if self.connects_after <= self.down_for or not self.comes_back:
                raise SSHError("cannot reach SSH: connection refused")
            self.boot_id = "boot-2"
        yield self

    def run(self, command: Any, sudo: bool = False) -> Any:
        if "reboot" in str(command):
            self.rebooting = True
        return SimpleNamespace(out=f"{self.boot_id}\n")


def test_restart_waits_for_a_new_boot_id(tmp_path: Path) -> None:
    host = _RebootingHost(down_for=1)
    ctx = make_ctx(tmp_path, generic_ip_address="192.0.2.10")
    ctx.remote = host.remote
    started = time.monotonic()
    GenericDriver(ctx).restart()
    assert host.boot_id == "boot-2" and host.connects_after == 2  # refused once, then back
    assert time.monotonic() - started >= 4  # lets the host go down first, then looks every 2 s


def test_restart_of_a_host_that_never_comes_back_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from provision_drivers import generic

    monkeypatch.setattr(generic, "REBOOT_TIMEOUT", 3.0)
    ctx = make_ctx(tmp_path, generic_ip_address="192.0.2.10")
    ctx.remote = _RebootingHost(down_for=0, comes_back=False).remote
    started = time.monotonic()
    with pytest.raises(DriverError, match="did not come back from its reboot within 3s: cannot reach SSH"):
        GenericDriver(ctx).restart()
    assert time.monotonic() - started < 8


# -- end to end through the CLI, against a real VM --------------------------------------------------------

def _cli(*args: str, timeout: float = 600) -> tuple[float, str]:
    import subprocess
    import sys

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "provision.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"provision {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return elapsed, done.stdout


@pytest.mark.qemu
def test_create_regenerate_and_rm_a_generic_machine(docker_debian_vm, tmp_path: Path) -> None:

    vm = docker_debian_vm
    engine_port = free_port()
    forward_same_port(vm, engine_port)
    create_s, _ = _cli("create", "-d", "generic", "--generic-ip-address", "127.0.0.1",
                       "--generic-ssh-port", str(vm.port), "--generic-ssh-user", vm.user,
                       "--generic-ssh-key", str(vm.key_path), "--generic-engine-port", str(engine_port), "gen1")
    _, url = _cli("url", "gen1")
    assert url.strip() == f"tcp://127.0.0.1:{engine_port}"
    assert_store_is_private(Path(os.environ["PROVISION_STORAGE_PATH"]), Path(os.environ["DOCKER_CONFIG"]))
    _, ls = _cli("ls")
    assert "gen1" in ls and "generic" in ls and "Running" in ls

    import subprocess

    def docker_cli(*args: str) -> str:
        done = subprocess.run(["docker", "--context", "gen1", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert docker_cli("info", "--format", "{{.Name}}").strip() == "gen1"
    with RemoteSession.connect(GenericDriver(_record_ctx(tmp_path, vm)).ssh_endpoint(), known_host_key=None,
                               machine="gen1", timeout=60) as s:
        s.run("tar -C / -ch usr/bin/sleep usr/lib/x86_64-linux-gnu/libc.so.6 lib/x86_64-linux-gnu/libc.so.6 "
              "lib64/ld-linux-x86-64.so.2 | docker import - provision-tiny:1", sudo=True)
    cid = docker_cli("run", "-d", "--restart", "unless-stopped", "provision-tiny:1", "/usr/bin/sleep", "100000").strip()
    pid = docker_cli("inspect", "--format", "{{.State.Pid}}", cid).strip()
    regen_s, _ = _cli("regenerate-certs", "-f", "gen1")
    assert docker_cli("inspect", "--format", "{{.State.Running}} {{.State.Pid}}", cid).split() == ["true", pid]
    docker_cli("rm", "-f", cid)
    print(f"\ncreate -d generic: {create_s:.1f}s; regenerate-certs: {regen_s:.1f}s")
    # restart = a reboot over SSH; it returns once the host is back with a new boot id and Docker answers.
    with RemoteSession.connect(GenericDriver(_record_ctx(tmp_path, vm)).ssh_endpoint(), known_host_key=None,
                               machine="gen1", timeout=60) as s:
        boot_before = s.run(["cat", "/proc/sys/kernel/random/boot_id"]).out
    restart_cli_s, _ = _cli("restart", "gen1", timeout=900)
    with RemoteSession.connect(GenericDriver(_record_ctx(tmp_path, vm)).ssh_endpoint(), known_host_key=None,
                               machine="gen1", timeout=60) as s:
        assert s.run(["cat", "/proc/sys/kernel/random/boot_id"]).out != boot_before, "the host rebooted"
    assert docker_cli("info", "--format", "{{.Name}}").strip() == "gen1", "Docker is back with its TLS setup"
    print(f"restart (reboot) of a generic machine: {restart_cli_s:.1f}s")
    _cli("rm", "-f", "-y", "gen1")
    # The host is left alone: Docker still runs there.
    with RemoteSession.connect(GenericDriver(_record_ctx(tmp_path, vm)).ssh_endpoint(), known_host_key=None,
                               machine="gen1", timeout=60) as s:
        assert s.run(["systemctl", "is-active", "docker"]).out.strip() == "active"


def _record_ctx(tmp_path: Path, vm) -> DriverContext:  # type: ignore[no-untyped-def]
    ctx = make_ctx(tmp_path / f"direct{time.monotonic_ns()}", generic_ip_address="127.0.0.1",
                   generic_ssh_port=vm.port, generic_ssh_user=vm.user, generic_ssh_key=str(vm.key_path))
    GenericDriver(ctx).create()
    return ctx
