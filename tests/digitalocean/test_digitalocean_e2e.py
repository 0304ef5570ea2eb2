"""End to end through the CLI: the cloud side in the fake DigitalOcean API, the Droplet a real VM.

The fake hands out 127.0.0.5 as the Droplet's public address, then 127.0.0.6 after a stop/start; the test
VM's SSH and engine ports are forwarded on both, so the create provisions a real dockerd, the docker CLI
talks to it over mutual TLS and ``provision ssh`` reaches it. An audit hook refuses any connection off
loopback for the whole test. The create and rm times are printed for the note.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clirun import run
from fake_do import FakeDigitalOcean
from fixtures_do import trust_fake
from fixtures_vm import VM
from storecheck import assert_store_is_private
from test_cloud_e2e import cli, docker_version, hmp, loopback_only  # noqa: F401 - a fixture used by name

pytestmark = [pytest.mark.qemu, pytest.mark.do]
ADDRESSES = ("127.0.0.5", "127.0.0.6")


@pytest.fixture
def droplet_vm(docker_debian_vm: VM) -> Iterator[VM]:
    """The docker VM reachable at both addresses the fake hands out: SSH on the VM's port, the engine on 2376;
    the forwards go with the test (the VM is shared with the other clouds' tests)."""
    rules = [rule for address in ADDRESSES
             for rule in (f"tcp:{address}:{docker_debian_vm.port}-:22", f"tcp:{address}:2376-:2376")]
    for rule in rules:
        reply = hmp(docker_debian_vm, f"hostfwd_add net0 {rule}")
        assert "could not" not in reply.lower(), f"{rule}: {reply} (is the port taken on this host?)"
    yield docker_debian_vm
    for rule in rules:
        hmp(docker_debian_vm, f"hostfwd_remove net0 {rule.rsplit('-', 1)[0]}")


@pytest.fixture
def fake_on_vm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDigitalOcean]:
    addresses = iter([*ADDRESSES, "127.0.0.7", "127.0.0.7"])
    with FakeDigitalOcean(action_polls=2, public_addresses=addresses, readdress_on_start=True) as fake:
        trust_fake(monkeypatch, fake)
        yield fake


def test_digitalocean_create_ssh_stop_start_new_ip_rm(droplet_vm: VM, fake_on_vm: FakeDigitalOcean,
                                                      loopback_only: None, capsys: pytest.CaptureFixture[str]) -> None:
    fake, vm = fake_on_vm, droplet_vm
    started = time.monotonic()
    cli(capsys, "create", "-d", "digitalocean", "--digitalocean-endpoint", fake.url, "--digitalocean-tags", "e2e",
        "--digitalocean-ssh-key-path", str(vm.key_path), "--digitalocean-ssh-user", vm.user,
        "--digitalocean-ssh-port", str(vm.port), "sea1")
    create_seconds = time.monotonic() - started
    made = fake.resources()
    assert len(made["droplets"]) == len(made["ssh_keys"]) == len(made["firewalls"]) == 1, made
    assert cli(capsys, "url", "sea1") == "tcp://127.0.0.5:2376\n"
    assert docker_version("sea1")["Server"]
    ssh = run("ssh", "sea1", "echo", "droplet-ok", timeout=120)
    assert ssh.returncode == 0 and ssh.stdout.strip() == "droplet-ok", ssh.stderr
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    assert_store_is_private(store, Path(os.environ["DOCKER_CONFIG"]))
    assert not [p for p in store.rglob("*") if p.is_file() and b"dop_v1_test" in p.read_bytes()]

    cli(capsys, "stop", "sea1")
    assert cli(capsys, "status", "sea1") == "Stopped\n"
    cli(capsys, "start", "sea1")
    # The Droplet came back at a new public address: the certificate, the context and known_hosts followed it.
    assert cli(capsys, "url", "sea1") == "tcp://127.0.0.6:2376\n"
    assert "127.0.0.6" in json.loads(cli(capsys, "inspect", "sea1"))["server_certificate"]["sans"]
    assert docker_version("sea1")["Server"]
    assert (store / "machines" / "sea1" / "known_hosts").read_text().startswith(f"[127.0.0.6]:{vm.port} ")

    started = time.monotonic()
    cli(capsys, "rm", "-y", "sea1")
    rm_seconds = time.monotonic() - started
    assert fake.resources() == {"droplets": [], "ssh_keys": [], "firewalls": [], "tags": ["e2e", "provision"]}
    assert subprocess.run(["docker", "context", "inspect", "sea1"], capture_output=True).returncode != 0
    assert {r["host"] for r in fake.requests} == {f"127.0.0.1:{fake.port}"}
    with capsys.disabled():
        print(f"\nFIGURES digitalocean fake + test VM: create {create_seconds:.1f} s, rm {rm_seconds:.1f} s")
