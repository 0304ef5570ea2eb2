"""Small pieces on their own: record round trip, names, templates, option resolution, formatting."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from provision.driver import Driver, MachineState, OptionSpec
from provision import formatting
from provision.errors import BrokenRecord, InvalidNameError, UsageError
from provision.names import context_name, validate_machine_name
from provision.options import resolve
from provision.record import CertInfo, EngineSettings, Lifecycle, MachineRecord
from provision.store import BrokenEntry, Store


def sample_record() -> MachineRecord:
    return MachineRecord(
        name="web-1", driver="amazonec2", lifecycle=Lifecycle.READY,
        driver_options={"amazonec2_region": "eu-west-1", "amazonec2_open_port": ["80", "443"]},
        driver_data={"instance_id": "i-0123", "security_group_id": "sg-1"},
        engine=EngineSettings(install_url="none", opts=("log-level=debug",), labels=("env=prod",),
                              storage_driver="overlay2", tls_san=("web.example",)),
        url="tcp://192.0.2.10:2376", host_key="ssh-ed25519 AAAA",
        server_cert=CertInfo("2026-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00",
                             ("192.0.2.10", "localhost"), "abc"),
        facts={"os_id": "debian"},
    )


def test_record_json_round_trip() -> None:
    record = sample_record()
    again = MachineRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record


def test_cluster_membership_round_trips_and_is_omitted_when_unset() -> None:
    record = sample_record()
    assert not {"cluster", "swarm_role", "swarm_manager"} & set(record.to_dict())
    member = record.evolve(cluster="default", swarm_role="worker", swarm_manager="web-1")
    data = member.to_dict()
    assert (data["cluster"], data["swarm_role"], data["swarm_manager"]) == ("default", "worker", "web-1")
    assert MachineRecord.from_dict(json.loads(json.dumps(data))) == member


# machine.json as provision wrote it before engine settings became one frozen type end to end.
OLD_RECORD = """{"schema_version": 1, "provision_version": "0.1.0", "name": "old", "driver": "generic",
 "lifecycle": "ready", "created_at": "2026-01-01T00:00:00+00:00",
 "driver_options": {"generic_ip_address": "192.0.2.7", "generic_ssh_port": 22}, "driver_data": {"ip": "192.0.2.7"},
 "engine": {"install_url": "https://get.docker.com", "opts": ["log-level=debug"], "labels": ["env=prod"],
            "insecure_registries": ["10.0.0.2:5000"], "registry_mirrors": ["https://mirror.example"],
            "storage_driver": "overlay2", "env": ["HTTP_PROXY=http://proxy:3128"], "tls_san": ["web.example"]},
 "url": "tcp://192.0.2.7:2376", "host_key": null, "server_cert": null, "facts": {}, "error": null}"""


def test_engine_settings_keep_their_json_and_travel_as_one_type() -> None:
    from provision.provisioner import EngineConfig

    old = json.loads(OLD_RECORD)
    record = MachineRecord.from_dict(old)
    assert record.engine == EngineSettings(
        install_url="https://get.docker.com", opts=("log-level=debug",), labels=("env=prod",),
        insecure_registries=("10.0.0.2:5000",), registry_mirrors=("https://mirror.example",),
        storage_driver="overlay2", env=("HTTP_PROXY=http://proxy:3128",), tls_san=("web.example",))
    assert record.to_dict() == old  # the same JSON on disk, byte for byte once dumped alike
    assert MachineRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    # An older record without some keys (or no engine at all) gets the defaults.
    assert MachineRecord.from_dict({**old, "engine": {"labels": ["a=b"]}}).engine == EngineSettings(labels=("a=b",))
    assert MachineRecord.from_dict({k: v for k, v in old.items() if k != "engine"}).engine == EngineSettings()
    # What the provisioner gets is the record's own settings, not a copy field by field.
    assert EngineConfig(record.driver, record.name, record.engine).settings is record.engine


def test_shared_create_flags_resolve_like_driver_options() -> None:
    from provision.createflags import SHARED_CREATE_OPTIONS, engine_settings
    from provision.options import resolve_options

    env = {"MACHINE_DOCKER_INSTALL_URL": "none", "MACHINE_DRIVER": "generic"}
    shared = resolve_options(SHARED_CREATE_OPTIONS, {"engine_label": ["a=b"], "keep_on_failure": "false"}, env,
                             "provision create")
    assert (shared["driver"], shared["keep_on_failure"]) == ("generic", False)
    assert engine_settings(shared) == EngineSettings(install_url="none", labels=("a=b",))
    assert engine_settings(resolve_options(SHARED_CREATE_OPTIONS, {}, {}, "provision create")) == EngineSettings()


def test_a_driver_finds_every_option_resolved(tmp_path: Path) -> None:
    from provision.driver import DriverContext

    # A record written before an option existed lacks it: the driver still sees the declared default.
    driver = _Demo(DriverContext("m", tmp_path, tmp_path, options={"demo_need": "x", "demo_count": 5}))
    assert driver.ctx.options == {"demo_count": 5, "demo_flag": False, "demo_tag": [], "demo_need": "x"}


@pytest.mark.parametrize("data, message", [([], "not a JSON object"), ({"name": "x"}, "no schema_version"),
                                           ({"schema_version": 2, "name": "x", "driver": "none"}, "newer"),
                                           ({"schema_version": 1, "driver": "none"}, "malformed")])
def test_record_rejects_bad_data(data: object, message: str) -> None:
    with pytest.raises(BrokenRecord, match=message):
        MachineRecord.from_dict(data)


def test_store_writes_atomically_with_modes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    record = sample_record()
    store.claim(record)
    path = store.record_path("web-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.machine_dir("web-1").stat().st_mode) == 0o700
    assert store.load("web-1") == record
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    # stored paths are relative: the record names no absolute path of this store
    assert str(tmp_path) not in path.read_text()


def test_store_moved_keeps_working(tmp_path: Path) -> None:
    store = Store(tmp_path / "a")
    store.claim(sample_record())
    (tmp_path / "a").rename(tmp_path / "b")
    assert Store(tmp_path / "b").load("web-1").url == "tcp://192.0.2.10:2376"


def test_store_entries_report_broken(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.claim(sample_record())
    (store.machines_dir / "junk").mkdir()
    entries = {e.name: e for e in store.entries()}
    assert isinstance(entries["junk"], BrokenEntry) and "missing" in entries["junk"].error
    assert isinstance(entries["web-1"], MachineRecord)


def test_names() -> None:
    assert validate_machine_name("a.b-c1") == "a.b-c1"
    for bad in ("", "-a", "a_b", "a b", "é"):
        with pytest.raises(InvalidNameError):
            validate_machine_name(bad)
    assert context_name("dev") == "dev"
    assert context_name("a") == "provision-a"
    assert context_name("default") == "provision-default"


class _Demo(Driver):
    name = "demo"
    options = (OptionSpec("demo-count", "n", type=int, default=2, envvar="DEMO_COUNT"),
               OptionSpec("demo-flag", "b", type=bool, default=False, envvar="DEMO_FLAG"),
               OptionSpec("demo-tag", "t", multiple=True, envvar="DEMO_TAGS"),
               OptionSpec("demo-need", "r", required=True, envvar="DEMO_NEED"))

    def create(self) -> None: ...
    def remove(self) -> None: ...
    def state(self) -> MachineState: return MachineState.RUNNING
    def engine_url(self) -> str: return "tcp://127.0.0.1:1"


def test_option_precedence_flag_env_default() -> None:
    env = {"DEMO_COUNT": "5", "DEMO_FLAG": "yes", "DEMO_TAGS": "a,b", "DEMO_NEED": "x"}
    assert resolve(_Demo, {}, env) == {"demo_count": 5, "demo_flag": True, "demo_tag": ["a", "b"], "demo_need": "x"}
    assert resolve(_Demo, {"demo_count": "7", "demo_tag": ["z"]}, env)["demo_count"] == 7
    assert resolve(_Demo, {"demo_need": "y"}, {}) == {"demo_count": 2, "demo_flag": False, "demo_tag": [],
                                                      "demo_need": "y"}
    with pytest.raises(UsageError, match="needs --demo-need"):
        resolve(_Demo, {}, {})
    with pytest.raises(UsageError, match="whole number"):
        resolve(_Demo, {"demo_count": "many", "demo_need": "x"}, {})


def test_templates_format() -> None:
    row = {"Name": "dev", "URL": "tcp://1.2.3.4:2376", "Driver": {"IPAddress": "1.2.3.4"}}
    assert formatting.render("{{.Name}}: {{.URL}}", row) == "dev: tcp://1.2.3.4:2376"
    assert formatting.render("{{.Driver.IPAddress}}", row) == "1.2.3.4"
    assert formatting.render("{{json .Driver}}", row) == '{"IPAddress": "1.2.3.4"}'
    assert formatting.table_header("{{.Name}}\\t{{.DockerVersion}}") == "NAME\tDOCKER"
    with pytest.raises(UsageError):
        formatting.render("{{.Nope}}", row)


def test_url_host() -> None:
    from provision.addresses import BadAddress, url_host

    assert url_host("tcp://192.0.2.1:2376") == "192.0.2.1"
    assert url_host("tcp://[::1]:2376") == "::1"
    assert url_host("tcp://docker.example:2376") == "docker.example"
    with pytest.raises(BadAddress):  # an engine URL names its port
        url_host("tcp://docker.example")
