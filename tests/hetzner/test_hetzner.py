"""The hetzner driver against the fake Hetzner Cloud API, through the real ``hcloud`` SDK.

Every test using ``hetzner`` fails if anything in the process resolved or connected off loopback, or if a
request reached the fake under another Host. Nothing connects to the addresses the fake hands out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fake_hetzner import Fault
from fixtures_hetzner import Hetzner, hetzner, new_token  # noqa: F401 (fixtures used by name)
from provision.driver import DriverContext, MachineState
from provision.errors import CredentialsError, DriverError, ProvisionError, UsageError
from provision_drivers.hetzner import OPTIONS, STATES, HetznerDriver, firewall_rules, parse_labels
from provision_drivers.hz_token import find_token
from test_google import Checkpoints, make_key, run_cli

pytestmark = pytest.mark.hetzner
REPO = Path(__file__).resolve().parents[2]
LABELS = {"provisioned-by": "provision"}


def make_driver(env: Hetzner, tmp_path: Path, name: str = "m1", interrupt_at: int | None = None,
                **options: Any) -> HetznerDriver:
    """A driver as the core builds it for create (the key pair made, every option resolved)."""
    where = tmp_path / "machines" / name
    if not where.joinpath("id_ed25519").exists():
        make_key(where)
    data: dict[str, Any] = {}
    return HetznerDriver(DriverContext(name, where, tmp_path / "cache", env.options(**options), data,
                                       Checkpoints(data, interrupt_at), environ=dict(os.environ)))


def reopen(driver: HetznerDriver) -> HetznerDriver:
    """The driver as a later command builds it: the persisted data and the stored (non-secret) options."""
    ctx = driver.ctx
    data = json.loads(json.dumps(ctx.data))
    options = {k: v for k, v in ctx.options.items() if k != "hetzner_api_token"}
    return HetznerDriver(DriverContext(machine_name=ctx.machine_name, machine_dir=ctx.machine_dir,
                                       cache_dir=ctx.cache_dir, options=options, data=data,
                                       checkpoint=Checkpoints(data), environ=dict(os.environ), cluster=ctx.cluster))


# -- declared data and pure helpers -------------------------------------------------------------------
def test_importing_the_driver_does_not_import_the_sdk() -> None:
    code = ("import sys, provision_drivers.hetzner, provision_drivers.hz_api, provision_drivers.hz_cluster; "
            "from provision import registry; registry.load('hetzner'); "
            "print(sorted(m for m in sys.modules if m.startswith(('hcloud', 'requests'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_flags_follow_the_docker_machine_driver_users_know() -> None:
    by_flag = {spec.flag: spec for spec in OPTIONS}
    # JonasProgrammer/docker-machine-driver-hetzner's names, and its environment variables where it had them.
    for flag, envvar in (("api-token", "HCLOUD_TOKEN"), ("image", "HETZNER_IMAGE"), ("server-type", "HETZNER_TYPE"),
                         ("server-location", "HETZNER_LOCATION"), ("networks", "HETZNER_NETWORKS"),
                         ("firewalls", "HETZNER_FIREWALLS"), ("user-data", "HETZNER_USER_DATA"),
                         ("user-data-file", "HETZNER_USER_DATA_FILE"), ("server-label", "HETZNER_SERVER_LABELS"),
                         ("use-private-network", "HETZNER_USE_PRIVATE_NETWORK"), ("ssh-user", "HETZNER_SSH_USER"),
                         ("endpoint", "HCLOUD_ENDPOINT")):
        assert by_flag[f"hetzner-{flag}"].envvar == envvar
    assert by_flag["hetzner-api-token"].secret and not by_flag["hetzner-api-token"].required
    assert by_flag["hetzner-ssh-user"].default == "root"
    assert {f for f, s in by_flag.items() if s.multiple} == {
        "hetzner-networks", "hetzner-firewalls", "hetzner-server-label", "hetzner-open-port", "hetzner-allowed-cidr"}


def test_state_map_covers_every_server_status() -> None:
    documented = {"running", "initializing", "starting", "stopping", "off", "deleting", "migrating", "rebuilding",
                  "unknown"}
    assert set(STATES) == documented and STATES["off"] is MachineState.STOPPED


def test_firewall_rules_and_labels() -> None:
    assert firewall_rules(["8080", "53/udp", "9000-9010", "8080/tcp"], 2376, ["198.51.100.7/24"]) == [
        {"direction": "in", "protocol": p, "port": port, "source_ips": ["198.51.100.0/24"], "description": d}
        for p, port, d in (("tcp", "22", "provision"), ("tcp", "2376", "provision"),
                           ("tcp", "8080", "--hetzner-open-port"), ("udp", "53", "--hetzner-open-port"),
                           ("tcp", "9000-9010", "--hetzner-open-port"))]
    assert [r["port"] for r in firewall_rules([], None, ["0.0.0.0/0"])] == ["22"]  # engine over SSH
    for bad in (["http"], ["70000"]):
        with pytest.raises(UsageError):
            firewall_rules(bad, 2376, ["0.0.0.0/0"])
    with pytest.raises(UsageError):
        firewall_rules([], 2376, ["not-a-cidr"])
    assert parse_labels(["team=web", "example.com/tier=db", "empty="]) == {
        "team": "web", "example.com/tier": "db", "empty": ""}
    for bad in ("novalue", "bad key=x", "k=" + "v" * 64, "provision-uid=x"):
        with pytest.raises(UsageError):
            parse_labels([bad])


def test_check_options_refuses_what_could_never_work() -> None:
    base = {spec.key: spec.default_value() for spec in OPTIONS}
    HetznerDriver.check_options(base)
    for bad in ({"hetzner_user_data": "#cloud-config", "hetzner_user_data_file": "/x"},
                {"hetzner_use_private_network": True}, {"hetzner_server_label": ["x"]},
                {"hetzner_open_port": ["99999"]}):
        with pytest.raises(UsageError):
            HetznerDriver.check_options({**base, **bad})


# -- the token ------------------------------------------------------------------------------------------
def write_cli_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_token_sources_in_order(tmp_path: Path) -> None:
    a, b, c, d = (new_token() for _ in range(4))
    config = write_cli_config(tmp_path / "cli.toml", f'active_context = "work"\n[[contexts]]\nname = "work"\n'
                              f'token = "{c}"\n[[contexts]]\nname = "home"\ntoken = "{d}"\n')
    env = {"HOME": str(tmp_path / "nohome"), "HCLOUD_CONFIG": str(config)}
    assert find_token(a, {**env, "HCLOUD_TOKEN": b}).value == a
    assert find_token(b, {**env, "HCLOUD_TOKEN": b}).source == "$HCLOUD_TOKEN"  # resolved by the core from it
    assert find_token(None, {**env, "HCLOUD_TOKEN": b, "HETZNER_API_TOKEN": c}).value == b
    assert find_token(None, {**env, "HETZNER_API_TOKEN": b}).source == "$HETZNER_API_TOKEN"
    assert find_token(None, env).value == c
    assert find_token(None, {**env, "HCLOUD_CONTEXT": "home"}).value == d
    # Without HCLOUD_CONFIG: the CLI's own place under HOME.
    write_cli_config(tmp_path / "h" / ".config" / "hcloud" / "cli.toml",
                     f'active_context = "x"\n[[contexts]]\nname = "x"\ntoken = "{a}"\n')
    assert find_token(None, {"HOME": str(tmp_path / "h")}).value == a
    assert a not in repr(find_token(a, {})) and a not in str(find_token(a, {}))


@pytest.mark.parametrize("content, message", [
    ('active_context = "x"\n[[contexts]]\nname = "x"\ntoken = "abc def\\nEvil: 1"\n', "is not a token"),
    ("active_context = [1]\n", "active_context is not a name"),
    ('active_context = "gone"\n', 'context "gone" is not in'),
    ("this is = not [toml", "is not valid TOML"),
    ('contexts = "x"\nactive_context = "x"\n', 'context "x" is not in'),
])
def test_a_hostile_cli_config_is_one_clear_refusal(tmp_path: Path, content: str, message: str) -> None:
    config = write_cli_config(tmp_path / "cli.toml", content)
    with pytest.raises(CredentialsError, match=message):
        find_token(None, {"HCLOUD_CONFIG": str(config)})


def test_cli_config_that_is_no_regular_file_or_too_big(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(CredentialsError, match="Cannot read the hcloud CLI configuration"):
        find_token(None, {"HCLOUD_CONFIG": str(fifo)})
    assert time.monotonic() - started < 5
    big = write_cli_config(tmp_path / "big.toml", "# " + "x" * (300 * 1024) + "\n")
    with pytest.raises(CredentialsError, match="Cannot read"):
        find_token(None, {"HCLOUD_CONFIG": str(big)})
    with pytest.raises(CredentialsError, match="No Hetzner Cloud API token found") as caught:
        find_token(None, {"HCLOUD_CONFIG": str(tmp_path / "absent.toml")})
    assert "HCLOUD_TOKEN" in (caught.value.hint or "")


# -- create and remove ------------------------------------------------------------------------------------
def test_create_then_remove_leaves_nothing(hetzner: Hetzner, tmp_path: Path) -> None:
    fake = hetzner.fake
    driver = make_driver(hetzner, tmp_path, "Web1", hetzner_open_port=["8080", "53/udp"],
                         hetzner_allowed_cidr=["198.51.100.0/24"], hetzner_server_label=["team=web"],
                         hetzner_user_data="#cloud-config\nruncmd: [[touch, /x]]\n", hetzner_server_location="hel1")
    driver.create()
    d = driver.ctx.data
    server = fake.account.servers[d["server_id"]]
    uid = d["uid"]
    own = {"provisioned-by": "provision", "provision-machine": "Web1", "provision-uid": uid}
    assert server["name"] == "web1" and server["status"] == "running" and server["labels"] == {**own, "team": "web"}
    assert server["location"]["name"] == "hel1" and server["server_type"]["name"] == "cx23"
    assert server["image"]["name"] == "debian-12" and server["_user_data"].startswith("#cloud-config")
    public_key = (driver.ctx.machine_dir / "id_ed25519.pub").read_text().strip()
    assert server["_ssh_keys"] == [public_key]
    key = fake.account.ssh_keys[d["ssh_key_id"]]
    assert key["labels"] == own and key["name"] == f"provision-Web1-{uid}"
    firewall = fake.account.firewalls[d["firewall_id"]]
    assert firewall["labels"] == own
    assert firewall["applied_to"] == [{"type": "server", "server": {"id": d["server_id"]}}]
    assert [(r["protocol"], r["port"], r["source_ips"]) for r in firewall["rules"]] == [
        ("tcp", "22", ["198.51.100.0/24"]), ("tcp", "2376", ["198.51.100.0/24"]),
        ("tcp", "8080", ["198.51.100.0/24"]), ("udp", "53", ["198.51.100.0/24"])]
    assert server["public_net"]["firewalls"] == [{"id": firewall["id"], "status": "applied"}]

    later = reopen(driver)
    ip = server["public_net"]["ipv4"]["ip"]
    assert later.engine_url() == f"tcp://{ip}:2376" and later.state() is MachineState.RUNNING
    endpoint = later.ssh_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.user) == (ip, 22, "root")
    assert later.addresses() == [ip]
    later.remove()
    assert fake.resources() == {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}
    assert later.state() is MachineState.NOT_FOUND
    later.remove()  # again: nothing left to do, nothing fails


def test_every_call_goes_to_the_endpoint_and_actions_are_polled(hetzner: Hetzner, tmp_path: Path) -> None:
    driver = make_driver(hetzner, tmp_path)
    driver.create()
    driver.remove()
    calls = [(r["method"], r["path"]) for r in hetzner.fake.requests]
    assert ("POST", "/v1/servers") in calls and ("POST", "/v1/ssh_keys") in calls
    assert any(m == "GET" and p.startswith("/v1/actions/") for m, p in calls)
    assert all(p.startswith("/v1/") for _, p in calls)
    # remove looked the machine's resources up by its uid label, not by name
    uid = driver.ctx.data["uid"]
    assert any(r["path"] == "/v1/servers" and f"provision-uid%3D{uid}" in r["query"] for r in hetzner.fake.requests)


def test_resources_of_others_are_never_touched_and_lookups_page(hetzner: Hetzner, tmp_path: Path) -> None:
    fake = hetzner.fake
    fake.limits["firewalls"] = 100
    with fake.lock:
        for n in range(60):  # more than one page of 50
            fake._firewall_create({"name": f"theirs-{n}", "labels": {"provision-machine": "m1"}, "rules": []})
    user_net = fake.add_network("office")
    user_fw = fake.add_firewall("office-fw")
    before = fake.resources()
    driver = make_driver(hetzner, tmp_path, hetzner_networks=["office"], hetzner_firewalls=[str(user_fw)],
                         hetzner_use_private_network=True)
    driver.create()
    server = fake.account.servers[driver.ctx.data["server_id"]]
    assert [p["network"] for p in server["private_net"]] == [user_net]
    assert driver.ip() == server["private_net"][0]["ip"] and driver.ip().startswith("10.0.")
    assert {f["id"] for f in server["public_net"]["firewalls"]} == {driver.ctx.data["firewall_id"], user_fw}
    driver.ctx.data.pop("firewall_id")  # lost: the label search (over two pages) must still find it
    reopen(driver).remove()
    assert fake.resources() == before
    assert fake.find("firewalls", "office-fw")["applied_to"] == []
    assert fake.find("networks", "office")["servers"] == []
    pages = [r["query"] for r in fake.requests if r["path"] == "/v1/firewalls" and "label_selector" in r["query"]]
    assert pages and all("per_page=50" in q for q in pages)


FAILURES = [
    # (what the fake is told, what the error says, the step it failed at)
    ("token refused", "the API refused the token from $HCLOUD_TOKEN", "plan"),
    ("token refused at the firewall step", "the API refused the token from $HCLOUD_TOKEN", "firewall"),
    ("ssh key quota exceeded", "ssh key limit exceeded (resource_limit_exceeded)", "ssh key"),
    ("firewall quota exceeded", "firewall limit exceeded (resource_limit_exceeded)", "firewall"),
    ("server quota exceeded", "server limit exceeded (resource_limit_exceeded)", "server"),
    ("server create refused", "an injected failure (server_error)", "server"),
    ("create_server action errors", "create_server failed: no capacity left in fsn1 (placement_error)", "action"),
    ("the create action never finishes", "", "action"),
]


def inject(fake: Any, hetzner: Hetzner, failure: str) -> None:
    if failure == "token refused":
        fake.revoke_token(hetzner.token)
    elif failure.endswith("quota exceeded"):
        fake.limits[{"ssh": "ssh_keys", "firewall": "firewalls", "server": "servers"}[failure.split()[0]]] = 0
    elif failure == "token refused at the firewall step":
        fake.inject(Fault("POST /firewalls", code="unauthorized", message="unable to authenticate"))
    elif failure == "server create refused":
        fake.inject(Fault("POST /servers"))
    elif failure == "create_server action errors":
        fake.inject(Fault("POST /servers", code="placement_error", message="no capacity left in fsn1",
                          action_error=True))


@pytest.mark.parametrize("failure, message, step", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failure_at_each_step_leaves_nothing(hetzner: Hetzner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               failure: str, message: str, step: str) -> None:
    fake = hetzner.fake
    before = fake.resources()
    inject(fake, hetzner, failure)
    if failure == "the create action never finishes":
        import provision_drivers.hetzner as module

        monkeypatch.setattr(module, "CREATE_TIMEOUT", 0.5)
        fake.action_polls, fake.action_seconds = 10**6, 3600.0
    driver = make_driver(hetzner, tmp_path)
    with pytest.raises(ProvisionError) as caught:
        driver.create()
    assert message in str(caught.value) if message else "still running after" in str(caught.value)
    if failure == "token refused":
        fake.add_token(hetzner.token)  # what rm would then meet
    with fake.lock:  # the cloud finishes a slow action in the end; the delete waits for its lock until then
        fake.action_polls, fake.action_seconds = 2, 1.0
        for action in fake.account.actions.values():
            action.deadline = time.monotonic() + 2
    reopen(driver).remove()  # the core's rollback
    assert fake.resources() == before, failure


def test_an_interrupt_at_every_checkpoint_leaves_nothing(hetzner: Hetzner, tmp_path: Path) -> None:
    """Ctrl-C at checkpoint n = 1, 2, ... until a create runs through; each time the core's rollback (a driver
    rebuilt from what was persisted) must leave the account as it was."""
    empty = {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}
    interrupted = 0
    while True:
        driver = make_driver(hetzner, tmp_path, f"int{interrupted + 1}", interrupt_at=interrupted + 1)
        try:
            driver.create()
            break
        except KeyboardInterrupt:
            interrupted += 1
            reopen(driver).remove()
            assert hetzner.fake.resources() == empty, f"interrupted at checkpoint {interrupted}"
    assert interrupted >= 5  # settings, key, firewall, server, addresses
    snapshots = driver.ctx.checkpoint.snapshots
    first = {key: next(i for i, s in enumerate(snapshots) if s.get(key)) for key in
             ("uid", "ssh_key_id", "firewall_id", "server_id")}
    assert first["uid"] < first["ssh_key_id"] < first["firewall_id"] < first["server_id"]
    driver.ctx.checkpoint.interrupt_at = None
    driver.remove()
    assert hetzner.fake.resources() == empty


@pytest.mark.parametrize("call", ["ssh_keys", "firewalls", "servers"])
def test_an_interrupt_after_the_api_made_it_but_before_the_id_was_kept(hetzner: Hetzner, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       call: str) -> None:
    """The API made the resource and answered; Ctrl-C came before the id was recorded: the uid label finds it."""
    import hcloud

    real = hcloud.Client.__init__

    def client_init(self: Any, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        sub = getattr(self, call)
        create = sub.create

        def create_then_interrupt(*a: Any, **k: Any) -> Any:
            create(*a, **k)
            raise KeyboardInterrupt

        sub.create = create_then_interrupt

    monkeypatch.setattr(hcloud.Client, "__init__", client_init)
    driver = make_driver(hetzner, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        driver.create()
    assert hetzner.fake.resources()[call]
    monkeypatch.setattr(hcloud.Client, "__init__", real)
    reopen(driver).remove()
    assert hetzner.fake.resources() == {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}


def test_a_name_taken_by_another_server_is_refused_and_theirs_kept(hetzner: Hetzner, tmp_path: Path) -> None:
    theirs = make_driver(hetzner, tmp_path / "elsewhere", "taken")
    theirs.create()
    snapshot = hetzner.fake.resources()
    with pytest.raises(DriverError, match="name is already used"):
        (ours := make_driver(hetzner, tmp_path, "taken")).create()
    ours.remove()
    assert hetzner.fake.resources() == snapshot and theirs.state() is MachineState.RUNNING
    theirs.remove()


@pytest.mark.parametrize("option, value, message", [
    ("hetzner_server_type", "cx9000", 'Server type "cx9000" does not exist'),
    ("hetzner_image", "plan9", 'Image "plan9" does not exist for x86'),
    ("hetzner_server_location", "mars1", 'Location "mars1" does not exist'),
    ("hetzner_networks", ["nowhere"], 'No network "nowhere"'),
    ("hetzner_firewalls", ["12345"], 'No firewall "12345"'),
])
def test_names_are_checked_before_anything_is_made(hetzner: Hetzner, tmp_path: Path, option: str, value: Any,
                                                    message: str) -> None:
    driver = make_driver(hetzner, tmp_path, **{option: value})
    with pytest.raises(DriverError, match=message):
        driver.create()
    assert "uid" not in driver.ctx.data
    assert not [r for r in hetzner.fake.requests if r["method"] != "GET"]


def test_the_rate_limit_is_waited_out(hetzner: Hetzner, tmp_path: Path) -> None:
    driver = make_driver(hetzner, tmp_path)
    hetzner.fake.drain_rate_limit()
    driver.create()  # the SDK backs off on 429 rate_limit_exceeded until the bucket refills
    assert driver.state() is MachineState.RUNNING
    driver.remove()


def test_missing_token_and_unreachable_endpoint(hetzner: Hetzner, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures_gce import _closed_loopback_port

    monkeypatch.delenv("HCLOUD_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    driver = make_driver(hetzner, tmp_path)
    with pytest.raises(CredentialsError, match="No Hetzner Cloud API token found"):
        driver.create()
    driver.remove()
    assert hetzner.fake.requests == []
    monkeypatch.setenv("HCLOUD_TOKEN", hetzner.token)
    dead = f"http://127.0.0.1:{_closed_loopback_port()}/v1"
    driver = make_driver(hetzner, tmp_path, hetzner_endpoint=dead)
    with pytest.raises(DriverError, match=f"cannot reach {dead}"):
        driver.create()


# -- lifecycle --------------------------------------------------------------------------------------------
def test_lifecycle_through_actions_and_a_new_address_noticed(hetzner: Hetzner, tmp_path: Path) -> None:
    fake = hetzner.fake
    driver = make_driver(hetzner, tmp_path)
    driver.create()
    first = driver.ip()
    driver.stop()
    assert driver.state() is MachineState.STOPPED
    commands = [a.body["command"] for a in fake.account.actions.values()]
    assert commands[-1] == "shutdown_server"
    new = fake.swap_primary_ip(driver.ctx.data["server_id"])
    driver.start()
    assert driver.state() is MachineState.RUNNING and driver.refresh() is True
    assert driver.ip() == new != first and driver.refresh() is False
    driver.restart()
    driver.kill()
    assert driver.state() is MachineState.STOPPED
    assert [a.body["command"] for a in fake.account.actions.values()][-2:] == ["reboot_server", "stop_server"]
    fake.inject(Fault("POST /servers/{id}/actions/poweron", code="placement_error",
                      message="host has no room to start it", action_error=True))
    with pytest.raises(DriverError, match="start_server failed: host has no room to start it"):
        driver.start()
    driver.remove()
    assert fake.resources()["servers"] == []


def test_state_of_a_server_deleted_out_of_band(hetzner: Hetzner, tmp_path: Path) -> None:
    driver = make_driver(hetzner, tmp_path)
    driver.create()
    with hetzner.fake.lock:
        del hetzner.fake.account.servers[driver.ctx.data["server_id"]]
        for firewall in hetzner.fake.account.firewalls.values():
            firewall["applied_to"] = []
    assert driver.state() is MachineState.NOT_FOUND
    driver.remove()
    assert hetzner.fake.resources() == {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}


# -- through the CLI (creates that fail before SSH: no address the fake hands out is ever dialled) ----------
def test_cli_lists_the_hetzner_flags(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "create", "-d", "hetzner", "--help")
    assert result.returncode == 0, result.stderr
    for spec in OPTIONS:
        assert f"--{spec.flag}" in result.stdout and spec.envvar in result.stdout
    drivers = run_cli(tmp_path, "drivers")
    assert "hetzner (built-in)" in drivers.stdout and "--hetzner-server-type" in drivers.stdout


@pytest.mark.parametrize("failure", ["server quota exceeded", "create_server action errors"])
def test_cli_create_failing_leaves_nothing_and_says_one_line(hetzner: Hetzner, tmp_path: Path, failure: str) -> None:
    inject(hetzner.fake, hetzner, failure)
    result = run_cli(tmp_path, "create", "-d", "hetzner", "--hetzner-endpoint", hetzner.endpoint, "hz1")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "limit exceeded" in last or "placement_error" in last, result.stderr
    assert hetzner.fake.resources() == {"servers": [], "ssh_keys": [], "firewalls": [], "networks": []}
    store = Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines"
    assert not store.exists() or not list(store.iterdir())


def test_cli_without_a_token_is_one_line(hetzner: Hetzner, tmp_path: Path) -> None:
    env = {"HCLOUD_TOKEN": "", "HOME": str(tmp_path / "empty")}
    result = run_cli(tmp_path, "create", "-d", "hetzner", "--hetzner-endpoint", hetzner.endpoint, "hz2", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "No Hetzner Cloud API token found" in result.stderr
    assert hetzner.fake.requests == []


def test_later_commands_read_the_hcloud_cli_context(hetzner: Hetzner, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    driver = make_driver(hetzner, tmp_path)
    driver.create()
    # A new shell: no HCLOUD_TOKEN, but the hcloud CLI has a context with the project's token.
    monkeypatch.delenv("HCLOUD_TOKEN")
    write_cli_config(tmp_path / "home" / ".config" / "hcloud" / "cli.toml",
                     f'active_context = "prod"\n[[contexts]]\nname = "prod"\ntoken = "{hetzner.token}"\n')
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    later = reopen(driver)
    assert "hetzner_api_token" not in json.dumps(later.ctx.data) and hetzner.token not in json.dumps(later.ctx.data)
    assert later.state() is MachineState.RUNNING
    later.remove()
    assert hetzner.fake.resources()["servers"] == []


def test_user_data_from_a_file_and_a_file_that_is_not_one(hetzner: Hetzner, tmp_path: Path) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text("#!/bin/sh\necho hello > /etc/motd\n")
    driver = make_driver(hetzner, tmp_path, hetzner_user_data_file=str(script))
    driver.create()
    assert hetzner.fake.account.servers[driver.ctx.data["server_id"]]["_user_data"] == script.read_text()
    driver.remove()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    too_big = tmp_path / "big"
    too_big.write_text("#cloud-config\n" + "#" * (33 * 1024))
    for path, message in ((fifo, "user-data-file"), (too_big, "larger than 32768 bytes"),
                          (tmp_path / "absent", "No such file")):
        with pytest.raises(UsageError, match=message):
            make_driver(hetzner, tmp_path, hetzner_user_data_file=str(path)).create()
    assert hetzner.fake.resources()["servers"] == []
    too_long = "#cloud-config\n" + "#" * (33 * 1024)
    with pytest.raises(UsageError, match="over the API's 32 KiB"):
        make_driver(hetzner, tmp_path, hetzner_user_data=too_long).create()
