"""The google driver against the fake Compute Engine server, through the real client library and ADC.

Every test that uses the ``gce`` fixture also fails if anything in the process resolved or connected to
a non-loopback address (an audit hook watches socket.connect and getaddrinfo), and if any request reached
the fake under another Host than 127.0.0.1. Nothing ever connects to the addresses the fake hands out.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provision.driver import DriverContext, MachineState
from provision_drivers.google import OPTIONS, STATES, GoogleDriver, firewall_rules, gce_name, merge_ssh_keys
from fake_gce import Fault
from fixtures_gce import GCE
from provision.errors import CredentialsError, DriverError, UsageError

pytestmark = pytest.mark.gce
REPO = Path(__file__).resolve().parents[2]


def make_key(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision-test", "-f", str(key)],
                   check=True)
    return key


class Checkpoints:
    """A ``ctx.checkpoint`` that records what was persisted each time and can interrupt at call N."""

    def __init__(self, data: dict[str, Any], interrupt_at: int | None = None) -> None:
        self.data = data
        self.interrupt_at = interrupt_at
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self) -> None:
        self.snapshots.append(json.loads(json.dumps(self.data)))  # persisted data must be JSON
        if self.interrupt_at is not None and len(self.snapshots) == self.interrupt_at:
            raise KeyboardInterrupt


def make_driver(gce: GCE, tmp_path: Path, name: str = "m1", interrupt_at: int | None = None,
                **options: Any) -> GoogleDriver:
    machine_dir = tmp_path / "machines" / name
    if not (machine_dir / "id_ed25519").exists():
        make_key(machine_dir)
    data: dict[str, Any] = {}
    ctx = DriverContext(machine_name=name, machine_dir=machine_dir, cache_dir=tmp_path / "cache",
                        options=gce.options(**options), data=data,
                        checkpoint=Checkpoints(data, interrupt_at), environ=dict(__import__("os").environ))
    return GoogleDriver(ctx)


def reopen(driver: GoogleDriver) -> GoogleDriver:
    """The driver as a later command builds it: only the persisted data and options survive."""
    ctx = driver.ctx
    data = json.loads(json.dumps(ctx.data))
    return GoogleDriver(DriverContext(machine_name=ctx.machine_name, machine_dir=ctx.machine_dir,
                                      cache_dir=ctx.cache_dir, options=dict(ctx.options), data=data,
                                      checkpoint=Checkpoints(data), environ=dict(ctx.environ)))


# -- declared data and pure helpers -------------------------------------------------------------------
def test_importing_the_driver_does_not_import_compute_v1() -> None:
    code = ("import sys, provision_drivers.google, provision_drivers.gce_api; from provision import registry; "
            "registry.load('google'); print(sorted(m for m in sys.modules if m.startswith('google')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_options_are_declared_with_their_environment_variables() -> None:
    by_flag = {spec.flag: spec for spec in OPTIONS}
    expected = {"project", "zone", "machine-type", "machine-image", "username", "disk-size", "disk-type",
                "network", "subnetwork", "address", "preemptible", "spot", "tags", "use-internal-ip",
                "use-internal-ip-only", "open-port", "allowed-source-range", "service-account", "scopes",
                "endpoint"}
    assert set(by_flag) == {f"google-{flag}" for flag in expected}
    assert by_flag["google-project"].required and by_flag["google-project"].envvar == "GOOGLE_PROJECT"
    assert by_flag["google-zone"].default == "us-central1-a"
    assert by_flag["google-username"].default == "docker-user"
    assert by_flag["google-disk-type"].default == "pd-standard"
    assert by_flag["google-allowed-source-range"].default == ("0.0.0.0/0",)
    assert by_flag["google-disk-size"].type is int and by_flag["google-preemptible"].type is bool
    assert all(spec.envvar == "GOOGLE_" + spec.flag[len("google-"):].upper().replace("-", "_") for spec in OPTIONS)
    assert {f for f, s in by_flag.items() if s.multiple} == {
        "google-tags", "google-open-port", "google-allowed-source-range", "google-scopes"}


def test_state_map_covers_every_instance_status() -> None:
    documented = {"PROVISIONING", "STAGING", "RUNNING", "STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED",
                  "REPAIRING", "TERMINATED"}
    assert set(STATES) == documented
    assert STATES["TERMINATED"] is MachineState.STOPPED and STATES["SUSPENDED"] is MachineState.PAUSED


def test_firewall_rules_and_names() -> None:
    assert firewall_rules(["8080", "53/udp", "9000-9010/tcp", "8080/tcp"], 2376) == [
        {"I_p_protocol": "tcp", "ports": ["22", "2376", "8080", "9000-9010"]},
        {"I_p_protocol": "udp", "ports": ["53"]}]
    with pytest.raises(UsageError):
        firewall_rules(["http"], 2376)
    with pytest.raises(UsageError):
        firewall_rules(["70000"], 2376)
    assert gce_name("Web.Prod_1") == "web-prod-1"
    with pytest.raises(UsageError):
        gce_name("1abc")


def test_merge_ssh_keys_keeps_other_items_and_lines() -> None:
    items = [("startup-script", "echo hi"), ("ssh-keys", "alice:ssh-rsa AAA alice\nbob:ssh-ed25519 BBB bob")]
    merged, changed = merge_ssh_keys(items, "docker-user:ssh-ed25519 CCC x")
    assert changed and merged == [("startup-script", "echo hi"), (
        "ssh-keys", "alice:ssh-rsa AAA alice\nbob:ssh-ed25519 BBB bob\ndocker-user:ssh-ed25519 CCC x")]
    assert merge_ssh_keys(merged, "docker-user:ssh-ed25519 CCC x") == (merged, False)
    assert merge_ssh_keys([], "u:k") == ([("ssh-keys", "u:k")], True)


# -- create and remove -------------------------------------------------------------------------------
def test_create_then_remove_leaves_nothing(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    driver = make_driver(gce, tmp_path, "Web1", google_tags=["web,frontend"], google_open_port=["8080", "53/udp"],
                         google_allowed_source_range=["198.51.100.0/24"])
    driver.create()
    data = driver.ctx.data
    assert data["instance"] == "web1" and data["firewall"] == "provision-web1" and data["boot_disk"] == "web1"
    assert data["project"] == "test-project" and data["zone"] == "us-central1-a"
    assert data["image"] == "projects/debian-cloud/global/images/debian-12-bookworm-v20240910"

    instance = gce.fake.instance("test-project", "us-central1-a", "web1")
    assert instance is not None and instance["status"] == "RUNNING"
    assert instance["labels"] == {"provisioned-by": "provision", "provision-machine": "web1"}
    assert instance["tags"]["items"] == ["provision-web1", "web", "frontend"]
    assert instance["machineType"].endswith("/machineTypes/e2-medium")
    assert instance["disks"][0]["autoDelete"] is True and instance["disks"][0]["boot"] is True
    public_key = (driver.ctx.machine_dir / "id_ed25519.pub").read_text().strip()
    assert instance["metadata"]["items"] == [{"key": "ssh-keys", "value": f"docker-user:{public_key}"}]
    nic = instance["networkInterfaces"][0]
    assert data["external_ip"] == nic["accessConfigs"][0]["natIP"] and data["external_ip"].startswith("192.0.2.")
    assert data["internal_ip"] == nic["networkIP"] and data["internal_ip"].startswith("10.128.0.")

    rule = gce.fake.firewall("test-project", "provision-web1")
    assert rule is not None
    assert rule["targetTags"] == ["provision-web1"] and rule["sourceRanges"] == ["198.51.100.0/24"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["22", "2376", "8080"]},
                               {"IPProtocol": "udp", "ports": ["53"]}]
    assert rule["network"].endswith("/global/networks/default") and rule["direction"] == "INGRESS"

    # Everything a later command needs was persisted, checkpoint by checkpoint.
    later = reopen(driver)
    assert later.engine_url() == f"tcp://{data['external_ip']}:2376"
    assert later.state() is MachineState.RUNNING
    assert later.addresses() == [data["external_ip"], data["internal_ip"]]
    endpoint = later.ssh_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.user) == (data["external_ip"], 22, "docker-user")

    later.remove()
    assert gce.fake.resources() == baseline
    assert later.state() is MachineState.NOT_FOUND and later.addresses() == []
    later.remove()  # a second remove finds nothing to do


def test_every_call_and_every_poll_goes_to_the_endpoint(gce: GCE, tmp_path: Path) -> None:
    driver = make_driver(gce, tmp_path)
    driver.create()
    driver.remove()
    paths = [r["path"] for r in gce.fake.requests]
    # The driver waits on zone and global operations itself, through the same endpoint.
    assert any("/zones/us-central1-a/operations/" in p and p.endswith("/wait") for p in paths)
    assert any("/global/operations/" in p and p.endswith("/wait") for p in paths)
    assert not [p for p in paths if p == "/token"]  # a service account signs its own JWTs (AIP-4111)
    gce.assert_only_loopback_requests()


@pytest.mark.parametrize("fault, message", [
    (Fault("firewalls.insert", code="QUOTA_EXCEEDED", message="Quota 'FIREWALLS' exceeded. Limit: 100.0 globally."),
     "QUOTA_EXCEEDED"),
    (Fault("instances.insert"), "ZONE_RESOURCE_POOL_EXHAUSTED"),
    (Fault("instances.insert", operation_error=False, http_status=403, code="forbidden",
           message="Required 'compute.instances.create' permission"), "compute.instances.create"),
])
def test_a_failure_at_each_step_is_cleaned_up_by_remove(gce: GCE, tmp_path: Path, fault: Fault,
                                                       message: str) -> None:
    baseline = gce.fake.resources()
    gce.fake.inject(fault)
    driver = make_driver(gce, tmp_path)
    with pytest.raises(DriverError, match=message):
        driver.create()
    driver.remove()  # what the core does on failure
    assert gce.fake.resources() == baseline


def test_a_name_taken_by_someone_else_is_refused_and_their_resources_kept(gce: GCE, tmp_path: Path) -> None:
    other = make_driver(gce, tmp_path / "other-store", "taken")
    other.create()
    before = gce.fake.resources()
    ours = make_driver(gce, tmp_path, "taken")
    with pytest.raises(DriverError, match="already exists"):
        ours.create()  # the firewall rule name is taken first
    ours.remove()
    assert gce.fake.resources() == before
    with gce.fake.lock:  # now only the instance name is taken: our new rule must be rolled back
        del gce.fake.projects["test-project"].firewalls["provision-taken"]
    ours = make_driver(gce, tmp_path, "taken")
    with pytest.raises(DriverError, match="instances/taken' already exists"):
        ours.create()
    ours.remove()
    assert gce.fake.resources()["instances"] == ["us-central1-a/taken"]
    assert gce.fake.resources()["disks"] == ["us-central1-a/taken"]
    assert gce.fake.resources()["firewalls"] == ["default-allow-internal"]


def test_unknown_machine_type_is_a_clear_error_and_leaves_nothing(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    driver = make_driver(gce, tmp_path, google_machine_type="e2-gigantic")
    with pytest.raises(DriverError, match="Machine type with name 'e2-gigantic' does not exist"):
        driver.create()
    driver.remove()
    assert gce.fake.resources() == baseline


def interrupt_at_each_checkpoint(gce: GCE, build: Callable[[int], GoogleDriver],
                                 clean_up: Callable[[GoogleDriver], None]) -> tuple[GoogleDriver, int]:
    """Interrupt ``build(n).create()`` at its n-th checkpoint for n = 1, 2, ... until a create runs to the
    end; after each interrupt ``clean_up`` gets a driver rebuilt from what was persisted (as the core's
    rollback would) and must leave the project as it was. Returns the finished driver and its n."""
    baseline = gce.fake.resources()
    for n in itertools.count(1):
        driver = build(n)
        try:
            driver.create()
        except KeyboardInterrupt:
            clean_up(reopen(driver))
            assert gce.fake.resources() == baseline, f"interrupted at checkpoint {n}"
        else:
            return driver, n
    raise AssertionError("unreachable")


def test_an_interrupt_at_every_checkpoint_is_cleaned_up(gce: GCE, tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    driver, n = interrupt_at_each_checkpoint(
        gce, lambda n: make_driver(gce, tmp_path, f"int{n}", interrupt_at=n), lambda later: later.remove())
    assert n >= 4  # settings, image, firewall, instance, addresses: each checkpointed
    checkpoints = driver.ctx.checkpoint.snapshots
    firsts = {key: next(i for i, s in enumerate(checkpoints) if key in s) for key in ("firewall", "instance")}
    assert firsts["firewall"] < firsts["instance"]
    driver.ctx.checkpoint.interrupt_at = None
    driver.remove()
    assert gce.fake.resources() == baseline


def test_resources_are_recorded_before_their_operations_finish(gce: GCE, tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []
    driver = make_driver(gce, tmp_path)
    record = driver.ctx.checkpoint

    def checkpoint() -> None:
        record()
        if "instance" in driver.ctx.data and not seen:
            body = gce.fake.instance("test-project", "us-central1-a", "m1")
            seen.append(("instance", body["status"] if body else None))

    driver.ctx.checkpoint = checkpoint
    driver.create()
    assert seen == [("instance", "PROVISIONING")]
    driver.remove()


def test_disk_that_outlives_its_instance_is_removed(gce: GCE, tmp_path: Path) -> None:
    """An instance deleted out of band with its boot disk kept (autoDelete off): remove finds the disk."""
    driver = make_driver(gce, tmp_path)
    driver.create()
    with gce.fake.lock:
        instance = gce.fake.projects["test-project"].instances["us-central1-a"]["m1"]
        instance["disks"][0]["autoDelete"] = False
        disk = gce.fake.projects["test-project"].disks["us-central1-a"]["m1"]
        del gce.fake.projects["test-project"].instances["us-central1-a"]["m1"]
        disk["users"] = []
    assert driver.state() is MachineState.NOT_FOUND
    assert "us-central1-a/m1" in gce.fake.resources()["disks"]
    driver.remove()
    assert gce.fake.resources()["disks"] == []


# -- metadata -----------------------------------------------------------------------------------------
def test_metadata_of_others_is_kept(gce: GCE, tmp_path: Path) -> None:
    project_items = [{"key": "ssh-keys", "value": "alice:ssh-rsa AAAA alice"}, {"key": "enable-oslogin",
                                                                                 "value": "FALSE"}]
    gce.fake.set_project_metadata("test-project", project_items)
    driver = make_driver(gce, tmp_path)
    driver.create()
    driver.stop()
    # Another tool rewrote the instance metadata meanwhile and dropped our key.
    others = [{"key": "startup-script", "value": "#!/bin/sh\necho hello"},
              {"key": "ssh-keys", "value": "bob:ssh-ed25519 BBBB bob"}]
    gce.fake.set_instance_metadata("test-project", "us-central1-a", "m1", others)
    driver.start()
    items = gce.fake.instance("test-project", "us-central1-a", "m1")["metadata"]["items"]
    public_key = (driver.ctx.machine_dir / "id_ed25519.pub").read_text().strip()
    assert items == [others[0], {"key": "ssh-keys", "value": f"bob:ssh-ed25519 BBBB bob\ndocker-user:{public_key}"}]
    assert driver.ensure_ssh_key() is False  # already there: no write
    with gce.fake.lock:
        assert gce.fake.projects["test-project"].metadata["items"] == project_items
    assert not [r for r in gce.fake.requests if r["path"].endswith("setCommonInstanceMetadata")]
    driver.remove()


def test_a_concurrent_metadata_writer_is_not_overwritten(gce: GCE, tmp_path: Path) -> None:
    driver = make_driver(gce, tmp_path)
    driver.create()
    gce.fake.set_instance_metadata("test-project", "us-central1-a", "m1", [])
    # The first setMetadata is refused as if another writer got there first (412); the driver rereads.
    original = gce.fake.instances_set_metadata
    calls: list[int] = []

    def racing(project: Any, zone: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            gce.fake.projects["test-project"].instances[zone][name]["metadata"]["items"] = [
                {"key": "other", "value": "written meanwhile"}]
            gce.fake.projects["test-project"].instances[zone][name]["metadata"]["fingerprint"] = "changed"
        return original(project, zone, name, body)

    gce.fake.instances_set_metadata = racing  # type: ignore[method-assign]
    assert driver.ensure_ssh_key() is True
    items = gce.fake.instance("test-project", "us-central1-a", "m1")["metadata"]["items"]
    assert [i["key"] for i in items] == ["other", "ssh-keys"] and len(calls) == 2
    driver.remove()


# -- lifecycle ----------------------------------------------------------------------------------------
def test_stop_start_gives_a_new_ip_and_refresh_reports_it(gce: GCE, tmp_path: Path) -> None:
    driver = make_driver(gce, tmp_path)
    driver.create()
    first = driver.ip()
    requests_before = len(gce.fake.requests)
    assert driver.engine_url() == f"tcp://{first}:2376" and driver.ssh_endpoint().host == first
    assert driver.addresses() and driver.ip() == first
    assert len(gce.fake.requests) == requests_before  # engine_url, ip, ssh_endpoint: ctx.data only

    driver.stop()
    assert driver.state() is MachineState.STOPPED
    # The instance gave its external IP back: the driver must not hand it out any more.
    assert gce.fake.instance("test-project", "us-central1-a", "m1")["networkInterfaces"][0]["accessConfigs"][0].get(
        "natIP") is None
    assert driver.ctx.data["external_ip"] is None
    with pytest.raises(DriverError, match="no address recorded"):
        driver.engine_url()
    driver.start()
    assert driver.state() is MachineState.RUNNING
    assert driver.refresh() is True
    assert driver.ip() != first and driver.ip().startswith("192.0.2.")
    assert driver.engine_url() == f"tcp://{driver.ip()}:2376"
    assert driver.refresh() is False

    driver.restart()  # a reset keeps the address
    assert driver.refresh() is False
    driver.kill()
    assert driver.ctx.data["external_ip"] is None
    stops = [r for r in gce.fake.requests if r["path"].endswith("/instances/m1/stop")]
    assert "noGracefulShutdown=true" in stops[-1]["query"] and "noGracefulShutdown" not in stops[0]["query"]
    assert driver.state() is MachineState.STOPPED
    driver.remove()
    assert gce.fake.resources()["instances"] == []


def test_a_static_address_survives_stop_and_start(gce: GCE, tmp_path: Path) -> None:
    ip = gce.fake.add_static_address("test-project", "us-central1", "docker-ip")
    driver = make_driver(gce, tmp_path, google_address="docker-ip")
    driver.create()
    assert driver.ip() == ip
    driver.stop()
    driver.start()
    assert driver.refresh() is False and driver.ip() == ip
    driver.remove()


def test_internal_ip_only(gce: GCE, tmp_path: Path) -> None:
    driver = make_driver(gce, tmp_path, google_use_internal_ip_only=True, google_spot=True)
    driver.create()
    instance = gce.fake.instance("test-project", "us-central1-a", "m1")
    assert "accessConfigs" not in instance["networkInterfaces"][0]
    assert instance["scheduling"]["provisioningModel"] == "SPOT"
    assert driver.ip() == driver.ctx.data["internal_ip"] and driver.addresses() == [driver.ip()]
    driver.remove()


def test_state_of_a_machine_gone_out_of_band(gce: GCE, tmp_path: Path) -> None:
    driver = make_driver(gce, tmp_path)
    driver.create()
    with gce.fake.lock:
        gce.fake.instances_delete(gce.fake.projects["test-project"], "us-central1-a", "m1")
    assert driver.state() in (MachineState.STOPPING, MachineState.NOT_FOUND)  # the delete may be done
    deadline = time.monotonic() + 10
    while driver.state() is not MachineState.NOT_FOUND:
        assert time.monotonic() < deadline, "the out-of-band delete never finished"
        time.sleep(0.2)
    driver.remove()
    assert gce.fake.resources()["firewalls"] == ["default-allow-internal"]


# -- errors ---------------------------------------------------------------------------------------------
def test_missing_credentials_is_a_credentials_error(gce: GCE, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    driver = make_driver(gce, tmp_path)
    started = time.monotonic()
    with pytest.raises(CredentialsError, match="No usable Google credentials") as caught:
        driver.create()
    assert time.monotonic() - started < 10
    assert "application-default login" in (caught.value.hint or "")
    assert gce.fake.requests == [] and gce.fake.resources()["instances"] == []
    assert not any(key in driver.ctx.data for key in ("instance", "firewall"))
    driver.remove()  # the core's rollback: nothing was made, so nothing to ask (and no second error)


def test_the_metadata_server_probe_is_bounded_and_stays_on_loopback(tmp_path: Path) -> None:
    """With no key file and no gcloud ADC, google.auth probes the metadata server. Here it is a loopback
    socket that accepts and never answers: the probe must give up in bounded time with a CredentialsError."""
    import os
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("NO_GCE_CHECK", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")}
        env.update(GCE_METADATA_HOST=host, GCE_METADATA_IP=host, PROVISION_TEST_STRAY_LOG=str(tmp_path / "strays"))
        code = GUARDED_CLI.split("from provision.cli.main")[0] + (
            "from provision_drivers.gce_api import load_credentials\n"
            "from provision.errors import CredentialsError\n"
            "try:\n    load_credentials()\nexcept CredentialsError as exc:\n    print('CredentialsError:', exc)\n")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=60)
        elapsed = time.monotonic() - started
        silent.settimeout(1)
        probe, _ = silent.accept()  # the probe did come here, and only here
        probe.close()
    assert not (tmp_path / "strays").exists()
    assert result.stdout.startswith("CredentialsError: No usable Google credentials"), result.stderr
    assert elapsed < 20, f"the metadata probe took {elapsed:.1f} s"


def test_credentials_the_api_refuses(gce: GCE, tmp_path: Path) -> None:
    gce.fake.service_accounts.clear()  # the key is no longer valid on the server side
    driver = make_driver(gce, tmp_path)
    with pytest.raises(CredentialsError, match="invalid authentication credentials"):
        driver.create()
    driver.remove()


def test_gcloud_adc_file_is_used(gce: GCE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file is read. (A gcloud user login there would
    refresh at oauth2.googleapis.com, which google-auth hard-codes for that type, so the test puts a
    service-account key at that path instead.)"""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    adc = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    gce.credentials_file.rename(adc)
    driver = make_driver(gce, tmp_path, google_machine_image="projects/debian-cloud/global/images/family/debian-12")
    driver.create()
    assert "image" not in driver.ctx.data  # given, so not looked up
    assert driver.state() is MachineState.RUNNING
    driver.remove()


@pytest.mark.parametrize("option, value, expected", [
    ("google_project", "no-such-project", 'Project "no-such-project" or zone "us-central1-a" does not exist'),
    ("google_zone", "us-central1-z", 'Project "test-project" or zone "us-central1-z" does not exist'),
])
def test_unknown_project_or_zone(gce: GCE, tmp_path: Path, option: str, value: str, expected: str) -> None:
    driver = make_driver(gce, tmp_path, **{option: value})
    with pytest.raises(DriverError, match=expected):
        driver.create()
    driver.remove()
    assert gce.fake.resources()["instances"] == [] and gce.fake.resources()["firewalls"] == [
        "default-allow-internal"]


def test_unreachable_endpoint_is_one_clear_error(gce: GCE, tmp_path: Path) -> None:
    from fixtures_gce import _closed_loopback_port

    driver = make_driver(gce, tmp_path, google_endpoint=f"http://127.0.0.1:{_closed_loopback_port()}")
    with pytest.raises(DriverError, match="cannot reach http://127.0.0.1"):
        driver.create()


# -- through the CLI (never reaching an instance address: only creates that fail before SSH) ------------
# The CLI runs in a child process; this audit hook there refuses any resolve or connect off loopback and
# notes it in a file, so the test sees it even if the CLI swallowed the error.
GUARDED_CLI = """
import os, sys
log = os.environ["PROVISION_TEST_STRAY_LOG"]
def guard(event, args):
    host = None
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    elif event == "socket.getaddrinfo":
        host = args[0]
    if host is not None and host not in ("127.0.0.1", "::1", "localhost", b"127.0.0.1", b"localhost"):
        with open(log, "a") as f:
            f.write(f"{event} {host!r}\\n")
        raise OSError(f"test guard: {event} to {host!r} refused")
sys.addaudithook(guard)
from provision.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    strays = tmp_path / "strays.log"
    result = subprocess.run([sys.executable, "-c", GUARDED_CLI, *args], capture_output=True, text=True,
                            timeout=180, env={**os.environ, "PROVISION_TEST_STRAY_LOG": str(strays), **(env or {})})
    assert not strays.exists(), f"the CLI tried to leave loopback: {strays.read_text()}"
    return result


def machines_in_store() -> list[str]:
    import os

    root = Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_cli_help_lists_the_google_flags(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "create", "-d", "google", "--help")
    assert result.returncode == 0, result.stderr
    for spec in OPTIONS:
        assert f"--{spec.flag}" in result.stdout
        assert spec.envvar in result.stdout


def test_cli_missing_project_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_PROJECT", raising=False)
    result = run_cli(tmp_path, "create", "-d", "google", "m1")
    assert result.returncode == 2
    assert "--google-project" in result.stderr and "Traceback" not in result.stderr
    assert machines_in_store() == []


@pytest.mark.parametrize("fault", [
    Fault("instances.insert"),
    Fault("instances.insert", operation_error=False, http_status=403, code="forbidden",
          message="Required 'compute.instances.create' permission"),
])
def test_cli_create_failing_at_instance_insert_leaves_nothing(gce: GCE, tmp_path: Path, fault: Fault) -> None:
    baseline = gce.fake.resources()
    gce.fake.inject(fault)
    result = run_cli(tmp_path, "create", "-d", "google", "--google-project", "test-project",
                     "--google-endpoint", gce.endpoint, "gm1")
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert fault.code in lines[-1] or fault.message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert gce.fake.resources() == baseline
    assert machines_in_store() == []
    # It got as far as the insert, and rolled back the firewall rule made before it.
    calls = [(r["method"], r["path"]) for r in gce.fake.requests]
    assert ("POST", "/compute/v1/projects/test-project/zones/us-central1-a/instances") in calls
    assert ("DELETE", "/compute/v1/projects/test-project/global/firewalls/provision-gm1") in calls
    gce.assert_only_loopback_requests()


def test_cli_unknown_zone_is_one_clear_line(gce: GCE, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "create", "-d", "google", "--google-project", "test-project",
                     "--google-zone", "mars-north1-a", "--google-endpoint", gce.endpoint, "gm2")
    assert result.returncode == 1
    assert 'Project "test-project" or zone "mars-north1-a" does not exist' in result.stderr.strip().splitlines()[-1]
    assert machines_in_store() == [] and gce.fake.resources()["instances"] == []


def test_engine_reached_over_ssh_opens_no_engine_port() -> None:
    assert firewall_rules(["8080"], None) == [{"I_p_protocol": "tcp", "ports": ["22", "8080"]}]
    assert firewall_rules([], 2376) == [{"I_p_protocol": "tcp", "ports": ["22", "2376"]}]
