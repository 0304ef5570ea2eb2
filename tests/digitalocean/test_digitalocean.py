"""The digitalocean driver against the fake DigitalOcean API (tests/fake_do.py), through the real ``pydo`` SDK.

Every test using the ``do`` fixture also fails if anything in this process resolved or connected off
loopback, and if any request reached the fake under another Host than 127.0.0.1. Nothing ever connects
to the addresses the fake hands out.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fake_do import FAILURES, Fault
from fixtures_do import DO, TOKEN, do, fake_do, trust_fake  # noqa: F401 - fixtures used by name
from provision.driver import DriverContext, MachineState
from provision.errors import CredentialsError, DriverError, UsageError
from provision_drivers.digitalocean import OPTIONS, STATES, DigitalOceanDriver, firewall_rules, parse_tags
from provision_drivers.do_api import Token, doctl_config_path, find_token, read_doctl_token
from test_google import Checkpoints, machines_in_store, make_key, run_cli

pytestmark = pytest.mark.do
REPO = Path(__file__).resolve().parents[2]
EMPTY = {"droplets": [], "ssh_keys": [], "firewalls": [], "tags": []}


def make_driver(do: DO, tmp_path: Path, name: str = "m1", interrupt_at: int | None = None, cluster: str | None = None,
                engine_port_exposed: bool = True, **options: Any) -> DigitalOceanDriver:
    machine_dir = tmp_path / "machines" / name
    if not (machine_dir / "id_ed25519").exists():
        make_key(machine_dir)
    data: dict[str, Any] = {}
    import os

    ctx = DriverContext(machine_name=name, machine_dir=machine_dir, cache_dir=tmp_path / "cache",
                        options=do.options(**options), data=data, checkpoint=Checkpoints(data, interrupt_at),
                        environ=dict(os.environ), cluster=cluster, engine_port_exposed=engine_port_exposed)
    return DigitalOceanDriver(ctx)


def reopen(driver: DigitalOceanDriver, **options: Any) -> DigitalOceanDriver:
    """The driver as a later command builds it: the persisted data, the stored (public) options."""
    ctx = driver.ctx
    data = json.loads(json.dumps(ctx.data))
    stored = {k: v for k, v in ctx.options.items() if k != "digitalocean_access_token"}
    return DigitalOceanDriver(DriverContext(machine_name=ctx.machine_name, machine_dir=ctx.machine_dir,
                                            cache_dir=ctx.cache_dir, options={**stored, **options}, data=data,
                                            checkpoint=Checkpoints(data), environ=dict(ctx.environ)))


# -- declared data and pure helpers -------------------------------------------------------------------
SLOW_IMPORTS = ("pydo", "azure")


def test_loading_the_driver_leaves_the_sdk_unimported() -> None:
    """``ls``, ``env`` and ``use`` load drivers by name; pydo (and azure-core under it) wait for an API call."""
    probe = "; ".join(["import sys", "from provision import registry", "registry.load('digitalocean')",
                       "import provision_drivers.do_api",
                       f"print(','.join(m for m in sys.modules if m.split('.')[0] in {SLOW_IMPORTS!r}))"])
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True)
    assert loaded.stdout.split() == []


def test_docker_machine_flags_are_kept_by_name() -> None:
    by_flag = {spec.flag: spec for spec in OPTIONS}
    kept = {"access-token", "image", "region", "size", "ipv6", "private-networking", "backups", "userdata",
            "ssh-user", "ssh-port", "ssh-key-path", "ssh-key-fingerprint", "monitoring", "tags", "endpoint"}
    assert set(by_flag) == {f"digitalocean-{flag}" for flag in kept}
    assert all(spec.envvar == "DIGITALOCEAN_" + spec.flag[len("digitalocean-"):].upper().replace("-", "_")
               for spec in OPTIONS)
    assert by_flag["digitalocean-access-token"].secret
    assert by_flag["digitalocean-image"].default == "ubuntu-24-04-x64"  # not Docker Machine's ubuntu-16-04-x64
    assert by_flag["digitalocean-region"].default == "nyc3" and by_flag["digitalocean-ssh-user"].default == "root"


def test_states_firewall_rules_and_tags() -> None:
    assert set(STATES) == {"new", "active", "off", "archive"}
    assert firewall_rules(22, 2376) == [
        {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}},
        {"protocol": "tcp", "ports": "2376", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}}]
    assert [r["ports"] for r in firewall_rules(2222, None)] == ["2222"]  # --engine-endpoint ssh: SSH alone
    assert parse_tags("web, env:prod,web") == ["web", "env:prod"]
    with pytest.raises(UsageError):
        parse_tags("bad tag")


@pytest.mark.parametrize("options, message", [
    ({"digitalocean_ssh_key_fingerprint": "nope"}, "not an MD5 fingerprint"),
    ({"digitalocean_ssh_key_fingerprint": ":".join(["ab"] * 16)}, "needs --digitalocean-ssh-key-path"),
    ({"digitalocean_ssh_key_path": "/nonexistent/key"}, "no such file"),
    ({"digitalocean_userdata": "/nonexistent/ud"}, "no such file"),
    ({"digitalocean_endpoint": "ftp://x"}, "not an http"),
    ({"digitalocean_tags": "a b"}, "letters, digits"),
])
def test_check_options_refuses_what_could_never_work(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DigitalOceanDriver.check_options(options)


def test_token_from_flag_then_environment_then_doctl(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    with pytest.raises(CredentialsError, match="No DigitalOcean access token"):
        find_token(None, env)
    path = doctl_config_path(env)
    path.parent.mkdir(parents=True)
    path.write_text("access-token: from-doctl\ncontext: default\n")
    assert find_token(None, env).value == "from-doctl" and "doctl" in find_token(None, env).source
    path.write_text("access-token: default-one\ncontext: work\nauth-contexts:\n  work: work-one\n")
    assert find_token(None, env).value == "work-one"
    assert find_token(None, {**env, "DIGITALOCEAN_ACCESS_TOKEN": "env-one"}).value == "env-one"
    assert find_token("flag-one", {**env, "DIGITALOCEAN_ACCESS_TOKEN": "env-one"}) == \
        Token("flag-one", "--digitalocean-access-token")
    # The core hands the variable's value over as the option's: the variable is named as the source.
    assert find_token("env-one", {**env, "DIGITALOCEAN_ACCESS_TOKEN": "env-one"}).source == "DIGITALOCEAN_ACCESS_TOKEN"
    for hostile in ("- a list\n", "access-token: [1, 2]\n", "{{{", "\x00\xff"):
        path.write_text(hostile, errors="surrogateescape")
        assert read_doctl_token(path) is None


# -- create and remove -------------------------------------------------------------------------------
def test_create_then_remove_leaves_nothing(do: DO, tmp_path: Path) -> None:
    driver = make_driver(do, tmp_path, "web1", digitalocean_tags="team:web,blue", digitalocean_ipv6=True,
                         digitalocean_monitoring=True, digitalocean_size="s-2vcpu-2gb", digitalocean_region="fra1")
    driver.create()
    d = driver.ctx.data
    droplet = do.fake.droplet(d["droplet_id"])
    request = droplet["_request"]
    assert droplet["status"] == "active" and droplet["name"] == "web1"
    assert (request["region"], request["size"], request["image"]) == ("fra1", "s-2vcpu-2gb", "ubuntu-24-04-x64")
    assert request["ipv6"] and request["monitoring"] and not request["backups"]
    assert request["ssh_keys"] == [d["key_id"]] and request["user_data"].startswith("#cloud-config")
    assert set(droplet["tags"]) == {d["tag"], "provision", "team:web", "blue"}
    firewall = do.fake.account.firewalls[d["firewall_id"]]
    assert firewall["tags"] == [d["tag"]] and [r["ports"] for r in firewall["inbound_rules"]] == ["22", "2376"]
    key = do.fake.account.keys[d["key_id"]]
    assert key["public_key"] == (driver.ctx.machine_dir / "id_ed25519.pub").read_text().strip()
    assert driver.ip() == d["public_ip"] and driver.ip().startswith("203.0.113.")
    assert d["private_ip"].startswith("10.110.0.") and d["public_ipv6"].startswith("2001:db8::")
    assert driver.engine_url() == f"tcp://{d['public_ip']}:2376"
    assert set(driver.addresses()) == {d["public_ip"], d["private_ip"], d["public_ipv6"]}
    assert driver.state() is MachineState.RUNNING
    assert "digitalocean_access_token" not in json.dumps(driver.ctx.checkpoint.snapshots)
    assert TOKEN not in json.dumps(driver.ctx.checkpoint.snapshots)

    reopen(driver).remove()
    assert do.fake.resources() == {**EMPTY, "tags": ["blue", "provision", "team:web"]}  # the user's and common tags


def test_every_call_and_poll_goes_to_the_endpoint_and_actions_are_polled(do: DO, tmp_path: Path) -> None:
    driver = make_driver(do, tmp_path)
    driver.create()
    calls = [(r["method"], r["path"]) for r in do.fake.requests]
    assert calls[:5] == [("GET", "/v2/account"), ("POST", "/v2/tags"), ("POST", "/v2/account/keys"),
                         ("POST", "/v2/firewalls"), ("POST", "/v2/droplets")]
    polls = [p for m, p in calls if p.startswith("/v2/actions/")]
    assert len(polls) == 2 and len(set(polls)) == 1  # in-progress once, then completed


def test_without_a_linked_action_the_droplet_status_is_awaited(do: DO, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    answer = do.fake._create_droplet

    def unlinked(body: dict[str, Any]) -> tuple[int, Any]:
        status, reply = answer(body)
        reply["links"].pop("actions")
        return status, reply

    monkeypatch.setattr(do.fake, "_create_droplet", unlinked)
    driver = make_driver(do, tmp_path)
    driver.create()
    assert do.fake.droplet(driver.ctx.data["droplet_id"])["status"] == "active" and driver.ip()


def test_listings_are_followed_page_by_page(do: DO, tmp_path: Path) -> None:
    for n in range(205):  # more keys than one page of 200
        make_key(tmp_path / "keys" / str(n))
        do.fake.add_key(f"user-{n}", (tmp_path / "keys" / str(n) / "id_ed25519.pub").read_text())
    driver = make_driver(do, tmp_path, interrupt_at=3)  # after the key name is recorded, before its id
    with pytest.raises(KeyboardInterrupt):
        driver.create()
    assert "key_id" not in driver.ctx.data
    # The key's name was recorded, its id never came back: remove() looks for it by name on every page.
    reopen(driver).remove()
    pages = [r["query"] for r in do.fake.requests if r["path"] == "/v2/account/keys" and r["method"] == "GET"]
    assert pages == ["per_page=200&page=1", "per_page=200&page=2"]
    assert len(do.fake.account.keys) == 205


def test_an_interrupt_at_every_checkpoint_is_cleaned_up(do: DO, tmp_path: Path) -> None:
    """Interrupt create at its 1st, 2nd, ... checkpoint until one runs to the end; after each, a driver rebuilt
    from what was persisted (as the core's rollback builds it) must leave the account as it was."""
    do.fake.account.tags["provision"] = set()  # the common tag exists already, as after a first machine
    baseline = do.fake.resources()
    interrupted: list[int] = []
    while True:
        driver = make_driver(do, tmp_path, f"int{len(interrupted) + 1}", interrupt_at=len(interrupted) + 1)
        try:
            driver.create()
            break
        except KeyboardInterrupt:
            reopen(driver).remove()
            left = do.fake.resources()
            interrupted.append(len(interrupted) + 1)
            assert left == baseline, f"interrupted at checkpoint {interrupted[-1]}: {left}"
    # settings, tag, key name and id, firewall name and id, droplet name and id, addresses
    assert len(interrupted) == 9
    snapshots = driver.ctx.checkpoint.snapshots
    first = {key: next(i for i, s in enumerate(snapshots) if key in s)
             for key in ("tag", "key_name", "key_id", "firewall_name", "firewall_id", "droplet_name", "droplet_id")}
    assert first["tag"] < first["key_name"] < first["key_id"] < first["firewall_name"] < first["firewall_id"] \
        < first["droplet_name"] < first["droplet_id"]
    reopen(driver).remove()
    assert do.fake.resources() == baseline


def test_a_droplet_whose_answer_was_lost_is_found_by_its_tag(do: DO, tmp_path: Path) -> None:
    driver = make_driver(do, tmp_path)
    driver.create()
    lost = reopen(driver)
    lost.ctx.data.pop("droplet_id")  # as if the create's answer never arrived
    lost.ctx.data.pop("firewall_id")
    lost.ctx.data.pop("key_id")
    lost.remove()
    assert do.fake.resources() == {**EMPTY, "tags": ["provision"]}


@pytest.mark.parametrize("label, fault, message", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failure_at_each_step_leaves_nothing(do: DO, tmp_path: Path, label: str, fault: Fault, message: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import provision_drivers.do_api as do_api

    monkeypatch.setattr(do_api, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(do_api, "RETRY_TOTAL", 2)
    do.fake.faults.append(dataclasses.replace(fault))  # the table's faults count down: use a copy
    driver = make_driver(do, tmp_path)
    with pytest.raises(DriverError, match=message):
        driver.create()
    reopen(driver).remove()  # what the core does on failure
    left = do.fake.resources()
    assert left["droplets"] == left["ssh_keys"] == left["firewalls"] == [], left
    assert set(left["tags"]) <= {"provision"}, left


def test_a_token_revoked_mid_create_leaves_what_it_cannot_delete_until_rm_runs_again(do: DO, tmp_path: Path) -> None:
    do.fake.faults.append(Fault("POST", "/v2/droplets", 401, "unauthorized", "Unable to authenticate you"))
    driver = make_driver(do, tmp_path)
    with pytest.raises(CredentialsError, match="refused the token"):
        driver.create()
    do.fake.tokens.clear()  # revoked for good: the rollback cannot delete anything
    with pytest.raises(DriverError, match="Could not remove everything") as refused:
        reopen(driver).remove()
    assert f"carries the tag {driver.ctx.data['tag']}" in refused.value.hint
    left = do.fake.resources()
    assert (len(left["ssh_keys"]), len(left["firewalls"]), left["droplets"]) == (1, 1, [])
    do.fake.tokens.add(TOKEN)  # a valid token again: `provision rm` finishes the job
    reopen(driver).remove()
    assert do.fake.resources() == EMPTY


def test_answers_lost_after_the_work_was_done_leave_nothing(do: DO, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A 504 after the API made the Droplet: the SDK retries the POST and a second Droplet is made, then the
    retries run out. Neither id came back; both carry the machine's tag, so the rollback deletes both; the
    same for a key and a firewall whose answers were lost."""
    import provision_drivers.do_api as do_api

    monkeypatch.setattr(do_api, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(do_api, "RETRY_TOTAL", 1)
    for path in ("/v2/droplets", "/v2/firewalls", "/v2/account/keys"):
        do.fake.faults = [Fault("POST", path, 504, "gateway_timeout", "upstream timed out", times=2, after=True)]
        driver = make_driver(do, tmp_path, f"lost{len(path)}")
        if path == "/v2/account/keys":
            # The retry is refused as a second copy of the key the first attempt made: that key is adopted.
            driver.create()
            assert do.fake.account.keys[driver.ctx.data["key_id"]]["name"] == driver.ctx.data["key_name"]
        else:
            with pytest.raises(DriverError, match="upstream timed out"):
                driver.create()
            made = do.fake.resources()["droplets" if path == "/v2/droplets" else "firewalls"]
            assert len(made) == 2  # the retried POST made a second one
        reopen(driver).remove()
        left = do.fake.resources()
        assert left["droplets"] == left["ssh_keys"] == left["firewalls"] == [], (path, left)


def test_a_fingerprint_key_is_used_and_never_deleted(do: DO, tmp_path: Path) -> None:
    make_key(tmp_path / "mine")
    key = do.fake.add_key("my laptop", (tmp_path / "mine" / "id_ed25519.pub").read_text())
    driver = make_driver(do, tmp_path, digitalocean_ssh_key_path=str(tmp_path / "mine" / "id_ed25519"),
                         digitalocean_ssh_key_fingerprint=key["fingerprint"])
    driver.create()
    assert do.fake.droplet(driver.ctx.data["droplet_id"])["_request"]["ssh_keys"] == [key["id"]]
    assert driver.ssh_endpoint().key_path == tmp_path / "mine" / "id_ed25519"
    reopen(driver).remove()
    assert do.fake.resources()["ssh_keys"] == ["my laptop"]


def test_a_key_path_whose_key_is_in_the_account_already_uses_that_key(do: DO, tmp_path: Path) -> None:
    make_key(tmp_path / "mine")
    key = do.fake.add_key("uploaded long ago", (tmp_path / "mine" / "id_ed25519.pub").read_text())
    driver = make_driver(do, tmp_path, digitalocean_ssh_key_path=str(tmp_path / "mine" / "id_ed25519"))
    driver.create()
    assert do.fake.droplet(driver.ctx.data["droplet_id"])["_request"]["ssh_keys"] == [key["id"]]
    assert driver.ctx.data["key_owned"] is False
    reopen(driver).remove()
    assert do.fake.resources()["ssh_keys"] == ["uploaded long ago"]


def test_user_data_is_merged_and_may_pass_ec2s_limit(do: DO, tmp_path: Path) -> None:
    from readback import parse_user_data

    script = tmp_path / "ud.sh"
    script.write_text("#!/bin/sh\necho hello > /tmp/hello\n# " + "x" * 30000 + "\n")
    driver = make_driver(do, tmp_path, digitalocean_userdata=str(script))
    driver.create()
    sent = do.fake.droplet(driver.ctx.data["droplet_id"])["_request"]["user_data"]
    parts = parse_user_data(sent.encode())
    assert parts["user-data"][0] == "text/x-shellscript" and "echo hello" in parts["user-data"][1]
    assert "hostname: m1" in parts["provision.cfg"][1]
    script.write_text("#!/bin/sh\n# " + "x" * 70000 + "\n")
    with pytest.raises(UsageError, match="too large"):
        make_driver(do, tmp_path, "m2", digitalocean_userdata=str(script)).create()


def test_others_resources_are_never_touched(do: DO, tmp_path: Path) -> None:
    other = make_driver(do, tmp_path / "other", "shared-name")
    other.create()
    before = do.fake.resources()
    ours = make_driver(do, tmp_path, "shared-name")
    ours.create()
    reopen(ours).remove()
    assert do.fake.resources() == before


def test_lifecycle_through_droplet_actions_and_a_new_address(do: DO, tmp_path: Path) -> None:
    do.fake.readdress_on_start = True
    driver = make_driver(do, tmp_path)
    driver.create()
    first = driver.ip()
    later = reopen(driver)
    later.stop()
    assert later.state() is MachineState.STOPPED
    later.start()
    assert later.state() is MachineState.RUNNING
    assert later.refresh() is True and later.ip() != first and later.refresh() is False
    later.restart()
    later.kill()
    assert later.state() is MachineState.STOPPED
    kinds = [a["type"] for a in do.fake.account.actions.values()]
    assert kinds == ["create", "shutdown", "power_on", "reboot", "power_off"]
    assert all(a["status"] == "completed" for a in do.fake.account.actions.values())


def test_an_action_that_errors_is_one_clear_error(do: DO, tmp_path: Path) -> None:
    driver = make_driver(do, tmp_path)
    driver.create()
    do.fake.faults.append(Fault(action="power_off"))
    with pytest.raises(DriverError, match=r"Powering off Droplet \d+: action \d+ \(power_off\) errored"):
        reopen(driver).kill()


def test_a_droplet_gone_out_of_band(do: DO, tmp_path: Path) -> None:
    driver = make_driver(do, tmp_path)
    driver.create()
    with do.fake.lock:
        do.fake.account.droplets.clear()
    assert reopen(driver).state() is MachineState.NOT_FOUND
    reopen(driver).remove()
    assert do.fake.resources() == {**EMPTY, "tags": ["provision"]}


def test_later_commands_need_a_token_and_say_so(do: DO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = make_driver(do, tmp_path)
    driver.create()
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    later = reopen(driver)
    later.ctx.environ = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    with pytest.raises(CredentialsError, match="No DigitalOcean access token found"):
        later.state()
    later.ctx.environ = {"DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_revoked"}
    with pytest.raises(CredentialsError, match="refused the token from DIGITALOCEAN_ACCESS_TOKEN"):
        later.state()


def test_unreachable_endpoint_is_one_clear_error(do: DO, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = make_driver(do, tmp_path, digitalocean_endpoint=f"https://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(DriverError, match="cannot reach https://127.0.0.1"):
        driver.create()
    assert time.monotonic() - started < 60


# -- clusters --------------------------------------------------------------------------------------
def test_cluster_doors_between_members_only(do: DO, tmp_path: Path) -> None:
    a = make_driver(do, tmp_path, "a", cluster="blue")
    a.create()
    assert "provision-cluster-blue" in do.fake.droplet(a.ctx.data["droplet_id"])["tags"]  # a member from birth
    b = make_driver(do, tmp_path, "b")
    b.create()
    for member in (a, b):
        member.join_cluster("blue")
    tag = "provision-cluster-blue"
    firewalls = [f for f in do.fake.account.firewalls.values() if f["name"] == tag]
    assert len(firewalls) == 1 and firewalls[0]["tags"] == [tag]
    rules = {(r["protocol"], r["ports"]) for r in firewalls[0]["inbound_rules"]}
    assert rules == {("tcp", "2377"), ("tcp", "7946"), ("udp", "7946"), ("udp", "4789")}
    assert all(r["sources"] == {"tags": [tag]} for r in firewalls[0]["inbound_rules"])
    assert all(tag in do.fake.droplet(m.ctx.data["droplet_id"])["tags"] for m in (a, b))
    assert a.cluster_address().startswith("10.110.0.") and a.cluster_address() != b.cluster_address()

    a.leave_cluster("blue", last=False)
    assert tag not in do.fake.droplet(a.ctx.data["droplet_id"])["tags"]
    assert [f["name"] for f in do.fake.account.firewalls.values()].count(tag) == 1
    b.leave_cluster("blue", last=True)
    assert tag not in do.fake.resources()["firewalls"] and tag not in do.fake.resources()["tags"]
    for member in (a, b):
        reopen(member).remove()
    assert do.fake.resources() == {**EMPTY, "tags": ["provision"]}


def test_a_foreign_firewall_of_the_cluster_name_is_not_adopted(do: DO, tmp_path: Path) -> None:
    do.fake.account.tags["provision-cluster-red"] = set()
    do.fake._create_firewall({"name": "provision-cluster-red", "tags": ["provision-cluster-red"], "inbound_rules": [
        {"protocol": "tcp", "ports": "2377", "sources": {"addresses": ["0.0.0.0/0"]}}]})
    driver = make_driver(do, tmp_path)
    driver.create()
    with pytest.raises(DriverError, match="is not cluster red's"):
        driver.join_cluster("red")


# -- through the CLI (only creates that fail before SSH: never an address the fake hands out) --------------
def test_cli_help_and_drivers_list_the_flags(tmp_path: Path) -> None:
    for args in (("create", "-d", "digitalocean", "--help"), ("drivers",)):
        result = run_cli(tmp_path, *args)
        assert result.returncode == 0, result.stderr
        for spec in OPTIONS:
            assert f"--{spec.flag}" in result.stdout and spec.envvar in result.stdout


@pytest.mark.parametrize("label, fault, message", [FAILURES[0], FAILURES[4], FAILURES[5]],
                         ids=[FAILURES[i][0] for i in (0, 4, 5)])
def test_cli_create_failing_leaves_nothing(do: DO, tmp_path: Path, label: str, fault: Fault, message: str) -> None:
    do.fake.faults.append(dataclasses.replace(fault))
    result = run_cli(tmp_path, "create", "-d", "digitalocean", "--digitalocean-endpoint", do.endpoint, "dm1")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1] or message in result.stderr
    left = do.fake.resources()
    assert left["droplets"] == left["ssh_keys"] == left["firewalls"] == [] and set(left["tags"]) <= {"provision"}
    assert machines_in_store() == []
    do.assert_only_loopback_requests()


def test_cli_token_on_the_command_line_is_never_stored(do: DO, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    do.fake.faults.append(Fault(action="create"))
    result = run_cli(tmp_path, "create", "-d", "digitalocean", "--digitalocean-endpoint", do.endpoint,
                     "--digitalocean-access-token", TOKEN, "dm2")
    assert result.returncode == 1 and "errored" in result.stderr
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    assert not [p for p in store.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert do.fake.resources()["droplets"] == []


def test_cli_without_a_token_is_one_line_and_leaves_nothing(do: DO, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    result = run_cli(tmp_path, "create", "-d", "digitalocean", "--digitalocean-endpoint", do.endpoint, "dm3")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "No DigitalOcean access token found" in result.stderr and "Traceback" not in result.stderr, last
    assert machines_in_store() == [] and do.fake.requests == []
