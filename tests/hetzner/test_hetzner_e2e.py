"""End to end through the CLI: the cloud side in the fake Hetzner Cloud API, the server a real VM.

The fake hands out 127.0.0.8, then (a primary IP swapped while the server is off) 127.0.0.9, and the
test VM's SSH and engine ports are forwarded on both; so create provisions a real dockerd over SSH, the
docker CLI talks to it over mutual TLS, ``provision ssh`` runs a command, and stop/start moves the machine
to its new address. The fake's server create plays cloud-init too: the server's SSH keys go into root's
authorized_keys in the VM. An audit hook refuses any connection off loopback. The create and rm times are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_hetzner import FakeHetzner
from fixtures_hetzner import TOKEN_SOURCES, new_token
from fixtures_vm import VM, ssh_connect, ssh_run
from storecheck import assert_store_is_private
from test_cloud_e2e import assert_stopped_hands_out_no_address, cli, docker_version, hmp
from test_cloud_e2e import loopback_only  # noqa: F401 (this module's guard: any loopback address is fine)

pytestmark = [pytest.mark.qemu, pytest.mark.hetzner]
# Not the DigitalOcean test's 127.0.0.5 and .6: both forward to the same shared VM.
ADDRESSES = ("127.0.0.8", "127.0.0.9")


def authorize_root(vm: VM, keys: list[str]) -> None:
    """What cloud-init does at a Hetzner server's first boot with the keys given at create: root's
    authorized_keys."""
    client = ssh_connect(vm.host, vm.port, vm.user, vm.key_path, vm.known_hosts)
    try:
        lines = "\n".join(keys)
        rc, _, err = ssh_run(client, f"sudo install -d -m 700 /root/.ssh && printf '%s\\n' '{lines}' | "
                                     "sudo tee -a /root/.ssh/authorized_keys >/dev/null")
        assert rc == 0, err
    finally:
        client.close()


@pytest.fixture
def cloud(docker_debian_vm: VM, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHetzner]:
    for address in ADDRESSES:
        for port in (22, 2376):
            reply = hmp(docker_debian_vm, f"hostfwd_add net0 tcp:{address}:{port}-:{port}")
            assert "could not" not in reply.lower(), f"{address}:{port}: {reply} (is it taken on this host?)"
    token = new_token()
    for var in TOKEN_SOURCES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HCLOUD_TOKEN", token)
    with FakeHetzner(tokens=(token,), addresses=iter(ADDRESSES), action_polls=2) as fake:
        make = fake._server_create

        def make_and_boot(body: dict[str, Any]) -> dict[str, Any]:
            answer = make(body)
            authorize_root(docker_debian_vm, fake.account.servers[answer["server"]["id"]]["_ssh_keys"])
            return answer

        monkeypatch.setattr(fake, "_server_create", make_and_boot)
        yield fake
    for address in ADDRESSES:
        for port in (22, 2376):
            hmp(docker_debian_vm, f"hostfwd_remove net0 tcp:{address}:{port}")


def test_hetzner_create_ssh_stop_start_new_ip_rm(docker_debian_vm: VM, cloud: FakeHetzner, loopback_only: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake = cloud
    started = time.monotonic()
    cli(capsys, "create", "-d", "hetzner", "--hetzner-endpoint", fake.url, "--hetzner-server-location", "nbg1", "hz1")
    create_seconds = time.monotonic() - started
    made = fake.resources()
    assert made["servers"] == ["hz1"] and len(made["ssh_keys"]) == len(made["firewalls"]) == 1
    assert cli(capsys, "url", "hz1") == "tcp://127.0.0.8:2376\n"
    assert docker_version("hz1")["Server"]
    provision = Path(sys.executable).with_name("provision")
    ssh = subprocess.run([str(provision), "ssh", "hz1", "id", "-un"], capture_output=True, text=True, timeout=120)
    assert (ssh.returncode, ssh.stdout.strip()) == (0, "root"), ssh.stderr
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    assert_store_is_private(store, Path(os.environ["DOCKER_CONFIG"]))
    assert os.environ["HCLOUD_TOKEN"] not in (store / "machines" / "hz1" / "machine.json").read_text()

    cli(capsys, "stop", "hz1")
    assert cli(capsys, "status", "hz1") == "Stopped\n"
    assert_stopped_hands_out_no_address(capsys, "hz1")
    server_id = json.loads(cli(capsys, "inspect", "hz1"))["driver_data"]["server_id"]
    assert fake.swap_primary_ip(server_id) == "127.0.0.9"  # done in the console while it was off
    cli(capsys, "start", "hz1")
    assert cli(capsys, "url", "hz1") == "tcp://127.0.0.9:2376\n"
    assert "127.0.0.9" in json.loads(cli(capsys, "inspect", "hz1"))["server_certificate"]["sans"]
    assert docker_version("hz1")["Server"]
    assert (store / "machines" / "hz1" / "known_hosts").read_text().startswith("127.0.0.9 ")

    started = time.monotonic()
    cli(capsys, "rm", "-y", "hz1")
    rm_seconds = time.monotonic() - started
    assert fake.resources() == {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}
    assert subprocess.run(["docker", "context", "inspect", "hz1"], capture_output=True).returncode != 0
    assert {r["host"] for r in fake.requests} == {f"127.0.0.1:{fake.port}"}
    with capsys.disabled():
        print(f"\nhetzner against the fake with the test VM: create {create_seconds:.1f} s, rm {rm_seconds:.1f} s")
