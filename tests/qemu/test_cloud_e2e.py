"""End to end through the CLI: the cloud side in moto, provisioning over SSH into a real VM.

moto runs in this process with its public-IP generator handing out loopback addresses (127.0.0.1,
then 127.0.0.2 after a stop/start); the test VM's SSH and engine ports are forwarded on both, so the
create provisions a real dockerd and the docker CLI talks to it. An audit hook refuses any connection
off loopback for the whole test: nothing ever dials an address moto would normally hand out.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_vm import VM
from storecheck import assert_store_is_private

pytestmark = [pytest.mark.qemu, pytest.mark.aws]


class _Guard:
    armed = False
    strays: list[str] = []

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:  # type: ignore[type-arg]
        if not cls.armed or event not in ("socket.connect", "socket.getaddrinfo"):
            return
        if event == "socket.connect":
            if not isinstance(args[1], tuple):
                return
            host = args[1][0]
        else:
            host = args[0]
        host = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
        if not ok:
            cls.strays.append(f"{event} {host}")
            raise OSError(f"test guard: {event} to {host!r} refused")


_installed: list[bool] = []


@pytest.fixture
def loopback_only() -> Iterator[None]:
    if not _installed:
        sys.addaudithook(_Guard.hook)
        _installed.append(True)
    _Guard.armed, _Guard.strays = True, []
    try:
        yield
    finally:
        _Guard.armed = False
    assert not _Guard.strays, _Guard.strays


def hmp(vm: VM, command: str) -> str:
    from provision_drivers import qemu

    return str(qemu.qmp(vm.driver._qmp_socket, "human-monitor-command", {"command-line": command}))


@pytest.fixture(scope="module")
def cloud_vm(docker_debian_vm: VM) -> VM:
    """The docker VM, also reachable at 127.0.0.2 and with its engine port on 2376 of both addresses."""
    for rule in (f"tcp:127.0.0.2:{docker_debian_vm.port}-:22", "tcp:127.0.0.1:2376-:2376",
                 "tcp:127.0.0.2:2376-:2376"):
        reply = hmp(docker_debian_vm, f"hostfwd_add net0 {rule}")
        assert "could not" not in reply.lower(), f"{rule}: {reply} (is port 2376 taken on this host?)"
    return docker_debian_vm


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from moto import mock_aws
    from moto.ec2.models import elastic_network_interfaces

    addresses = itertools.chain(["127.0.0.1", "127.0.0.2"], itertools.repeat("127.0.0.3"))
    monkeypatch.setattr(elastic_network_interfaces, "random_public_ip", lambda: next(addresses))
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with mock_aws():
        import boto3

        yield boto3.client("ec2", region_name="us-east-1")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from provision.cli.main import main

    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, f"provision {' '.join(args)} exited {code}: {captured.err}"
    return captured.out


def assert_stopped_hands_out_no_address(capsys: pytest.CaptureFixture[str], name: str) -> None:
    """The cloud gave the stopped instance's public IP back: url, ip, env and config must not print it."""
    from provision.cli.main import main

    for command in ("url", "ip", "env", "config"):
        code = main([command, name])
        captured = capsys.readouterr()
        assert (code, captured.out, captured.err) == (1, "", "Host is not running\n"), command


def docker_version(context: str) -> dict[str, object]:
    result = subprocess.run(["docker", "--context", context, "version", "--format", "{{json .}}"],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def tool_resources(ec2: object) -> dict[str, list[str]]:
    reservations = ec2.describe_instances()["Reservations"]  # type: ignore[attr-defined]
    live = [i["InstanceId"] for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]  # type: ignore[attr-defined]
    groups = [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]  # type: ignore[attr-defined]
              if g["GroupName"] != "default"]
    return {"instances": live, "key_pairs": keys, "security_groups": groups}


def test_create_stop_start_new_ip_rm(cloud_vm: VM, aws: object, loopback_only: None,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = aws
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]  # type: ignore[attr-defined]
    cli(capsys, "create", "-d", "amazonec2", "--amazonec2-ami", ami, "--amazonec2-instance-type", "t3.micro",
        "--amazonec2-ssh-keypath", str(cloud_vm.key_path), "--amazonec2-ssh-user", cloud_vm.user,
        "--amazonec2-ssh-port", str(cloud_vm.port), "web1")
    created = tool_resources(ec2)
    assert len(created["instances"]) == 1 and len(created["key_pairs"]) == 1
    assert len(created["security_groups"]) == 1
    assert cli(capsys, "url", "web1") == "tcp://127.0.0.1:2376\n"
    assert docker_version("web1")["Server"]
    assert_store_is_private(Path(os.environ["PROVISION_STORAGE_PATH"]), Path(os.environ["DOCKER_CONFIG"]))

    cli(capsys, "stop", "web1")
    assert cli(capsys, "status", "web1") == "Stopped\n"
    assert_stopped_hands_out_no_address(capsys, "web1")
    cli(capsys, "start", "web1")
    # EC2 handed out a new public IP: the certificate, the context and known_hosts followed it.
    assert cli(capsys, "url", "web1") == "tcp://127.0.0.2:2376\n"
    inspect = json.loads(cli(capsys, "inspect", "web1"))
    assert "127.0.0.2" in inspect["server_certificate"]["sans"]
    assert docker_version("web1")["Server"]
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    assert (store / "machines" / "web1" / "known_hosts").read_text().startswith(f"[127.0.0.2]:{cloud_vm.port} ")

    cli(capsys, "rm", "-y", "web1")
    assert tool_resources(ec2) == {"instances": [], "key_pairs": [], "security_groups": []}
    assert subprocess.run(["docker", "context", "inspect", "web1"], capture_output=True).returncode != 0


# -- Google Compute Engine ---------------------------------------------------------------------------

class GuestAgent:
    """Plays Google's guest agent inside the VM: users and keys from the instance's ``ssh-keys``
    metadata become accounts with passwordless sudo, as on a real Compute Engine image."""

    def __init__(self, fake: object, vm: VM, instance: str) -> None:
        import threading

        self.fake, self.vm, self.instance = fake, vm, instance
        self.installed: set[str] = set()
        self.last_error: Exception | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _keys(self) -> list[str]:
        for zones in self.fake.projects["test-project"].instances.values():  # type: ignore[attr-defined]
            body = zones.get(self.instance)
            if body:
                items = body.get("metadata", {}).get("items", [])
                return [line for item in items if item["key"] == "ssh-keys" for line in item["value"].splitlines()]
        return []

    def _run(self) -> None:
        from fixtures_vm import ssh_connect, ssh_run

        while not self.stop.wait(0.5):
            for line in self._keys():
                if line in self.installed or ":" not in line:
                    continue
                user, key = line.split(":", 1)
                try:
                    client = ssh_connect(self.vm.host, self.vm.port, self.vm.user, self.vm.key_path,
                                         self.vm.known_hosts)
                except Exception as exc:  # noqa: BLE001 - a busy guest; the next pass tries again
                    self.last_error = exc
                    continue
                try:
                    script = (f"id {user} >/dev/null 2>&1 || sudo useradd -m -s /bin/bash {user}; "
                              f"echo '{user} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/90-{user} >/dev/null; "
                              f"sudo install -d -m 700 -o {user} -g {user} /home/{user}/.ssh; "
                              f"sudo grep -qxF '{key.strip()}' /home/{user}/.ssh/authorized_keys 2>/dev/null || "
                              f"echo '{key.strip()}' | sudo tee -a /home/{user}/.ssh/authorized_keys >/dev/null; "
                              f"sudo chown {user}: /home/{user}/.ssh/authorized_keys")
                    rc, _, err = ssh_run(client, script)
                    if rc == 0:
                        self.installed.add(line)
                    else:
                        self.last_error = RuntimeError(err)
                except Exception as exc:  # noqa: BLE001 - kept for the test's failure message; tried again
                    self.last_error = exc
                finally:
                    client.close()

    def __enter__(self) -> GuestAgent:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        if exc[0] is not None and self.last_error is not None:
            print(f"the guest agent's last error: {self.last_error!r}")  # shown with the failure


@pytest.fixture
def gce_on_vm(cloud_vm: VM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from fake_gce import FakeGCE
    from fixtures_gce import write_service_account

    for address in ("127.0.0.3", "127.0.0.4"):
        for rule in (f"tcp:{address}:22-:22", f"tcp:{address}:2376-:2376"):
            reply = hmp(cloud_vm, f"hostfwd_add net0 {rule}")
            assert "could not" not in reply.lower(), f"{rule}: {reply} (is the port taken on this host?)"
    with FakeGCE(op_polls=2) as fake:
        # The fake's addresses for this test are the VM's: 127.0.0.3, then 127.0.0.4 after a stop/start.
        fake._external = iter(["127.0.0.3", "127.0.0.4", "127.0.0.4"])  # type: ignore[attr-defined]
        creds = write_service_account(tmp_path / "sa.json", fake, "test-project")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
        monkeypatch.delenv("GOOGLE_PROJECT", raising=False)
        yield fake


def gce_leftovers(fake: object) -> dict[str, list[str]]:
    project = fake.projects["test-project"]  # type: ignore[attr-defined]
    return {"instances": [n for z in project.instances.values() for n in z],
            "disks": [n for z in project.disks.values() for n in z],
            "firewalls": [n for n in project.firewalls if n.startswith("provision-")]}


def test_google_create_stop_start_new_ip_rm(cloud_vm: VM, gce_on_vm: object, loopback_only: None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    fake = gce_on_vm
    with GuestAgent(fake, cloud_vm, "db1"):
        cli(capsys, "create", "-d", "google", "--google-project", "test-project",
            "--google-endpoint", fake.url, "db1")  # type: ignore[attr-defined]
        assert gce_leftovers(fake) == {"instances": ["db1"], "disks": ["db1"], "firewalls": ["provision-db1"]}
        assert cli(capsys, "url", "db1") == "tcp://127.0.0.3:2376\n"
        assert docker_version("db1")["Server"]
        assert_store_is_private(Path(os.environ["PROVISION_STORAGE_PATH"]), Path(os.environ["DOCKER_CONFIG"]))

        cli(capsys, "stop", "db1")
        assert cli(capsys, "status", "db1") == "Stopped\n"
        assert_stopped_hands_out_no_address(capsys, "db1")
        cli(capsys, "start", "db1")
    assert cli(capsys, "url", "db1") == "tcp://127.0.0.4:2376\n"
    assert "127.0.0.4" in json.loads(cli(capsys, "inspect", "db1"))["server_certificate"]["sans"]
    assert docker_version("db1")["Server"]

    cli(capsys, "rm", "-y", "db1")
    assert gce_leftovers(fake) == {"instances": [], "disks": [], "firewalls": []}
    hosts = {r["host"] for r in fake.requests}  # type: ignore[attr-defined]
    assert hosts == {f"127.0.0.1:{fake.port}"}  # type: ignore[attr-defined]
