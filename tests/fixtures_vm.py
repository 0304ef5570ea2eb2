"""Real QEMU virtual machines for tests, booted with the ``local`` driver under TCG.

``bare_debian_vm`` is a Debian bookworm VM without Docker (the provisioning tests install docker.io
into it over SSH through a ``generic`` machine); ``docker_debian_vm`` has docker.io preinstalled. Both
are session-scoped: one boot per test run. Their base images are built once into the shared test
cache (``PROVISION_TEST_CACHE``, else ``~/.cache/provision-tests``) and reused by later runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_cache_dir
from provision.driver import DriverContext
from provision_drivers.local import LocalDriver

# Resolved at import, before any test's isolation moves HOME: every test and fixture shares one image cache.
IMAGE_CACHE = Path(os.environ.get("PROVISION_CACHE_PATH") or shared_cache_dir())
# This host's /dev/kvm opens but its guests hang; tests use TCG unless told otherwise.
TEST_ACCEL = "tcg"
SSH_BOOT_TIMEOUT = 600.0  # TCG boot on a loaded host plus the first-boot step; a hung guest fails before CI's limit
# Done once cloud-init (cloud images) or provision's own first-boot step (its Debian image) has finished.
FIRST_BOOT_DONE = ("if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null; cloud-init status; "
                   "else test -e /var/lib/provision/firstboot-done && echo 'status: done'; fi")


@dataclass(frozen=True)
class VM:
    """How to reach a test VM: SSH to ``host:port`` as ``user`` with ``key_path`` (passwordless sudo)."""

    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    driver: LocalDriver
    boot_seconds: float


def driver_options(environ: Mapping[str, str], **overrides: Any) -> dict[str, Any]:
    """Option values as the core resolves them: the flag, else the env var, else the default."""
    from provision.options import resolve

    return resolve(LocalDriver, overrides, dict(environ))


def generate_ssh_key(private_path: Path) -> None:
    """An ed25519 pair in OpenSSH format, as the core makes before ``create``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
    private_path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    private_path.with_name(private_path.name + ".pub").write_bytes(public + b" provision-test\n")


def make_context(machine_dir: Path, name: str, *, environ: Mapping[str, str] | None = None,
                 cache_dir: Path | None = None, **overrides: Any) -> DriverContext:
    """A driver context for machine ``name`` with a fresh key pair, options resolved from ``environ``."""
    environ = dict(os.environ if environ is None else environ)
    machine_dir.mkdir(parents=True, exist_ok=True)
    ctx = DriverContext(machine_name=name, machine_dir=machine_dir, cache_dir=cache_dir or IMAGE_CACHE,
                        options=driver_options(environ, **overrides), environ=environ)
    generate_ssh_key(ctx.ssh_key_path)
    return ctx


def ssh_connect(host: str, port: int, user: str, key_path: Path, known_hosts: Path, *, timeout: float = 30.0):
    """A paramiko client; the first contact records the host key, every later one must match it."""
    import paramiko

    client = paramiko.SSHClient()
    if known_hosts.exists():
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(host, port=port, username=user, key_filename=str(key_path), timeout=timeout,
                   banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False, allow_agent=False)
    if not known_hosts.exists():
        client.save_host_keys(str(known_hosts))
    return client


def ssh_run(client: Any, command: str, *, timeout: float = 300.0) -> tuple[int, str, str]:
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err


def wait_for_ssh(driver: LocalDriver, known_hosts: Path, *, timeout: float = SSH_BOOT_TIMEOUT) -> float:
    """Seconds until SSH logs in with the machine key and first boot has finished; bounded by ``timeout``."""
    import paramiko

    endpoint = driver.ssh_endpoint()
    started = time.monotonic()
    deadline = started + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = ssh_connect(endpoint.host, endpoint.port, endpoint.user, endpoint.key_path, known_hosts,
                                 timeout=15)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            last_error = exc
            time.sleep(2)
            continue
        try:
            rc, out, err = ssh_run(client, FIRST_BOOT_DONE, timeout=max(10.0, deadline - time.monotonic()))
        finally:
            client.close()
        if "done" not in out:
            raise AssertionError(f"first boot did not finish cleanly ({rc}): {out} {err}\n"
                                 f"{_console_tail(driver)}")
        return time.monotonic() - started
    raise AssertionError(f"no SSH login to {endpoint.host}:{endpoint.port} within {int(timeout)} s "
                         f"(last error: {last_error!r})\n{_console_tail(driver)}")


def _console_tail(driver: LocalDriver) -> str:
    lines = (driver.boot_log() or "").strip().splitlines()[-30:]
    return "console tail:\n" + "\n".join(lines)


def _boot_vm(tmp_path_factory: pytest.TempPathFactory, name: str, image: str) -> Iterator[VM]:
    environ = dict(os.environ)
    environ.setdefault("PROVISION_LOCAL_ACCEL", TEST_ACCEL)
    base = tmp_path_factory.mktemp(name)
    # No shared folder: these VMs outlive any one test's HOME (tests/qemu/test_local_shares.py covers shares).
    ctx = make_context(base / "machine", name, environ=environ, local_image=image, local_memory=1536,
                       local_no_share=True)
    driver = LocalDriver(ctx)
    known_hosts = base / "known_hosts"
    started = time.monotonic()
    try:
        driver.create()
        wait_for_ssh(driver, known_hosts)
        endpoint = driver.ssh_endpoint()
        yield VM(host=endpoint.host, port=endpoint.port, user=endpoint.user, key_path=endpoint.key_path,
                 known_hosts=known_hosts, driver=driver, boot_seconds=time.monotonic() - started)
    finally:
        driver.remove()


@pytest.fixture(scope="session")
def bare_debian_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    """A running Debian bookworm VM without Docker, reachable over SSH on 127.0.0.1."""
    yield from _boot_vm(tmp_path_factory, "bare-debian", "debian")


@pytest.fixture(scope="session")
def docker_debian_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    """A running Debian bookworm VM with docker.io preinstalled, reachable over SSH on 127.0.0.1."""
    yield from _boot_vm(tmp_path_factory, "docker-debian", "debian-docker")


def qemu_running_for(path: Path) -> bool:
    """Any process whose command line names ``path`` (our QEMU names its overlay)."""
    needle = str(path).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def forward_same_port(vm: VM, port: int) -> None:
    """Forward host 127.0.0.1:PORT to the guest's PORT, so a generic machine's engine port (dockerd binds
    it inside the host, the client dials it) works through QEMU's user networking."""
    from provision_drivers import qemu

    qemu.qmp(Path(vm.driver.ctx.data["qmp_socket"]), "human-monitor-command",
             {"command-line": f"hostfwd_add net0 tcp:127.0.0.1:{port}-:{port}"})
