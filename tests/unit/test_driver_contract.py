"""The driver contract, checked on every registered driver: the built-ins and a third party's.

``TestDriverContract`` runs once per driver: the built-ins found through this distribution's own
``provision.drivers`` entry points, and ``fake``, a minimal driver of another distribution (only
create/remove/state/engine_url) installed the way pip would leave it: a ``*.dist-info`` with an
``entry_points.txt`` beside its module, found through ``importlib.metadata``. Nothing here creates a
cloud resource: capabilities are checked as declarations, and the ones a driver does not declare as
refusals of the core service. The end-to-end tests run the real ``provision`` command with that
directory on ``PYTHONPATH``, as a user with the third-party package installed would.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import fields
from importlib.metadata import distribution
from pathlib import Path

import pytest

from clirun import run
from provision import registry
from provision.driver import CAPABILITY_METHODS, Capabilities, Driver, MachineState
from provision.errors import NotSupported, UnknownDriver
from provision.machines import Machines
from provision.record import Lifecycle, MachineRecord

BUILTINS = sorted(ep.name for ep in distribution(registry.DISTRIBUTION).entry_points
                  if ep.group == registry.GROUP)
THIRD_PARTY = "fake"
LIFECYCLE = ("start", "stop", "restart", "kill")

FAKE_MODULE = '''
"""A third-party driver as small as the contract allows: a file in --fake-cloud stands for the machine."""

import os
from pathlib import Path

from provision.driver import Capabilities, Driver, MachineState, OptionSpec

if os.environ.get("FAKE_DRIVER_BROKEN"):
    raise ImportError("the fake cloud SDK is not installed")


class FakeDriver(Driver):
    name = "fake"
    description = "A third-party test driver"
    options = (
        OptionSpec("fake-cloud", "directory standing in for the cloud", envvar="FAKE_CLOUD", required=True),
        OptionSpec("fake-size", "size of the machine", type=int, default=1, envvar="FAKE_SIZE"),
        OptionSpec("fake-tier", "tier of the machine", default="basic", envvar="FAKE_TIER",
                   choices=("basic", "premium")),
    )

    def _resource(self):
        return Path(self.ctx.data.get("resource") or Path(self.ctx.option("fake_cloud")) / self.ctx.machine_name)

    def create(self):
        self.ctx.data["resource"] = str(self._resource())
        self.ctx.checkpoint()
        self._resource().write_text(f"size={self.ctx.option('fake_size')}")

    def remove(self):
        self._resource().unlink(missing_ok=True)

    def state(self):
        return MachineState.RUNNING if self._resource().exists() else MachineState.NOT_FOUND

    def engine_url(self):
        return "tcp://127.0.0.1:1"


class ImpostorNone(FakeDriver):
    """Claims a built-in's name: the built-in must win."""

    name = "none"
    options = ()

    def create(self):
        raise RuntimeError("the impostor none driver ran")


class UnbackedStart(FakeDriver):
    """Declares start without implementing it: the registry must refuse it."""

    name = "fakestart"
    capabilities = Capabilities(start=True)


class NeedsSDK(FakeDriver):
    """Needs a distribution that is not installed."""

    name = "fakesdk"
    requires = ("provision-test-absent-sdk",)
'''


def write_distribution(target: Path, entry_points: dict[str, str]) -> Path:
    """Install the fake driver's distribution into ``target`` as pip would: module plus dist-info."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "provision_fake_driver.py").write_text(FAKE_MODULE)
    info = target / "provision_fake_driver-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: provision-fake-driver\nVersion: 1.0\n")
    lines = "".join(f"{name} = provision_fake_driver:{cls}\n" for name, cls in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}")
    return target


GOOD = {"fake": "FakeDriver", "none": "ImpostorNone"}
BAD = {**GOOD, "fakestart": "UnbackedStart", "fakesdk": "NeedsSDK"}


def _forget_drivers() -> None:
    registry.available.cache_clear()
    registry._load_class.cache_clear()
    sys.modules.pop("provision_fake_driver", None)


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fake distribution on ``sys.path`` of this process, for the per-driver checks."""
    site = write_distribution(tmp_path_factory.mktemp("site"), GOOD)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        _forget_drivers()
        yield site
    _forget_drivers()


@pytest.mark.parametrize("name", [*BUILTINS, THIRD_PARTY])
@pytest.mark.usefixtures("third_party")
class TestDriverContract:
    def test_registered_by_entry_point_under_its_name(self, name: str) -> None:
        entry = registry.available()[name]
        assert entry.builtin == (name in BUILTINS)
        cls = registry.load(name)
        assert isinstance(cls, type) and issubclass(cls, Driver)
        assert cls.name == name
        assert entry.entry_point.load() is cls

    def test_options_are_well_formed(self, name: str) -> None:
        cls = registry.load(name)
        assert len({spec.key for spec in cls.options}) == len(cls.options), "two options share a flag"
        envvars = [spec.envvar for spec in cls.options]
        assert len(set(envvars)) == len(envvars), "two options share an environment variable"
        for spec in cls.options:
            where = f"{name}: --{spec.flag}"
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", spec.flag), where
            if (name, spec.flag) != ("none", "url"):  # Docker Machine's --url, kept as it was
                assert spec.flag.startswith(f"{name}-"), f"{where} is not prefixed with the driver name"
            assert spec.envvar and re.fullmatch(r"[A-Z][A-Z0-9_]*", spec.envvar), f"{where}: no environment variable"
            assert spec.help.strip(), f"{where}: no help"
            assert spec.type in (str, int, bool), where
            defaults = spec.default if spec.multiple and spec.default is not None else [spec.default]
            if spec.multiple:
                assert isinstance(defaults, (list, tuple)), f"{where}: a repeated flag's default is a sequence"
            for default in defaults:
                assert default is None or type(default) is spec.type, f"{where}: default {default!r}"
            if spec.required:
                assert spec.default is None, f"{where}: required, yet has a default"
            if spec.choices is not None:
                assert spec.choices and all(isinstance(c, spec.type) for c in spec.choices), where
                assert spec.default is None or spec.default in spec.choices, f"{where}: default not a choice"

    def test_declared_capabilities_are_implemented(self, name: str) -> None:
        cls = registry.load(name)
        assert isinstance(cls.capabilities, Capabilities)
        assert registry.unimplemented_capabilities(cls) == []
        for capability, method in CAPABILITY_METHODS.items():
            if getattr(cls.capabilities, capability):
                assert getattr(cls, method) is not getattr(Driver, method), f"{name} declares {capability}"

    def test_capabilities_hang_together(self, name: str) -> None:
        caps = registry.load(name).capabilities
        if caps.ssh:
            assert registry.load(name).ssh_endpoint is not Driver.ssh_endpoint
        if caps.provisions_engine:
            assert caps.ssh, "the engine is provisioned over SSH"
        if caps.keys_at_boot:
            assert caps.ssh, "keys reach the machine at boot for SSH"
        if caps.engine_files_at_boot:
            assert caps.provisions_engine, "engine files at boot are the provisioner's"

    def test_requires_names_installed_distributions(self, name: str) -> None:
        cls = registry.load(name)
        assert all(isinstance(package, str) and package for package in cls.requires)
        registry.require_packages(cls)

    def test_undeclared_capabilities_are_refused_by_the_core(self, name: str, tmp_path: Path) -> None:
        """What a driver does not declare, the core refuses before it calls the driver."""
        cls = registry.load(name)
        service = Machines.open(tmp_path / "store")
        service.store.claim(MachineRecord(name="m1", driver=name, lifecycle=Lifecycle.READY,
                                          url="tcp://127.0.0.1:1"))
        for action in LIFECYCLE:
            if not getattr(cls.capabilities, action):
                with pytest.raises(NotSupported, match=f'the {name} driver cannot {action} machine "m1"'):
                    getattr(service, action)("m1")
        if not cls.capabilities.ssh:
            with pytest.raises(NotSupported, match="offers no SSH access"):
                service.ssh_target("m1")
        if not cls.capabilities.provisions_engine:
            for action in (service.reprovision, service.upgrade, service.regenerate_certs):
                with pytest.raises(NotSupported, match="does not provision its engine"):
                    action("m1")
        declared = {f.name for f in fields(Capabilities) if getattr(cls.capabilities, f.name)}
        assert declared or name in ("none", THIRD_PARTY), f"{name} declares no capability at all"


def test_builtins_are_registered_through_the_same_door() -> None:
    assert {"none", "generic", "local", "amazonec2", "google", "hetzner", "digitalocean"} <= set(BUILTINS)
    for name in BUILTINS:
        assert registry.available()[name].builtin


@pytest.mark.usefixtures("third_party")
def test_a_builtin_wins_a_name_clash() -> None:
    from provision_drivers.none import NoneDriver

    assert registry.available()["none"].builtin
    assert registry.load("none") is NoneDriver


@pytest.mark.usefixtures("third_party")
def test_the_registry_refuses_a_capability_declared_but_not_implemented(tmp_path: Path) -> None:
    write_distribution(tmp_path / "bad", BAD)
    sys.path.insert(0, str(tmp_path / "bad"))
    try:
        _forget_drivers()
        with pytest.raises(UnknownDriver, match='^Driver "fakestart" declares start but does not implement start$'):
            registry.load("fakestart")
    finally:
        sys.path.remove(str(tmp_path / "bad"))
        _forget_drivers()


# -- the real command with the third-party distribution installed ------------------------------------

def _env(site: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(site), **extra}


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_minimal_third_party_driver_creates_lists_and_removes(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", GOOD)
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    env = _env(site)

    drivers = run("drivers", env=env, check=True)
    assert "fake (provision_fake_driver:FakeDriver): A third-party test driver" in drivers.stdout
    assert "--fake-cloud" in drivers.stdout and "FAKE_CLOUD" in drivers.stdout
    assert "none (built-in)" in drivers.stdout  # not the impostor

    run("create", "-d", "fake", "--fake-cloud", str(cloud), "--fake-size", "3", "box", env=env, check=True)
    assert (cloud / "box").read_text() == "size=3"

    listed = run("ls", env=env, check=True)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("box "))
    assert row.split()[1:4] == ["-", "fake", str(MachineState.RUNNING)]
    assert "tcp://127.0.0.1:1" in row
    assert run("ls", "-q", env=env, check=True).stdout == "box\n"
    assert run("url", "box", env=env, check=True).stdout == "tcp://127.0.0.1:1\n"
    assert run("status", "box", env=env, check=True).stdout.strip() == "Running"

    run("rm", "-y", "box", env=env, check=True)
    assert not (cloud / "box").exists()
    assert run("ls", "-q", env=env, check=True).stdout == ""


def test_an_action_the_driver_does_not_declare_is_one_line(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", GOOD)
    env = _env(site, FAKE_CLOUD=str(tmp_path))
    run("create", "-d", "fake", "box", env=env, check=True)
    for action in LIFECYCLE:
        result = run(action, "box", env=env)
        assert result.returncode == 1, result.stderr
        assert _one_line(result.stderr) == f'the fake driver cannot {action} machine "box"'
    result = run("ssh", "box", env=env)
    assert result.returncode == 1
    assert _one_line(result.stderr) == 'the fake driver offers no SSH access to "box"'
    result = run("regenerate-certs", "-f", "box", env=env)
    assert result.returncode == 1
    assert "does not provision its engine" in _one_line(result.stderr)


def test_a_declared_but_unimplemented_capability_is_refused_in_one_line(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", BAD)
    result = run("create", "-d", "fakestart", "box", env=_env(site, FAKE_CLOUD=str(tmp_path)))
    assert result.returncode != 0
    assert _one_line(result.stderr) == 'Driver "fakestart" declares start but does not implement start'
    assert not (tmp_path / "box").exists()


def test_a_missing_sdk_is_named_in_one_line(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", BAD)
    result = run("create", "-d", "fakesdk", "box", env=_env(site, FAKE_CLOUD=str(tmp_path)))
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert '"provision-test-absent-sdk"' in line and "pip install provision-test-absent-sdk" in line


def test_drivers_lists_the_rest_when_one_cannot_load(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", BAD)
    result = run("drivers", env=_env(site))
    assert result.returncode == 0, result.stderr
    assert "fake (provision_fake_driver:FakeDriver)" in result.stdout
    assert all(f"{name} (built-in)" in result.stdout for name in BUILTINS)
    assert sorted(result.stderr.splitlines()) == [
        'Warning: Driver "fakestart" declares start but does not implement start',
        'Warning: the fakesdk driver needs the Python package "provision-test-absent-sdk", which is not '
        'installed (pip install provision-test-absent-sdk)']


def test_a_driver_that_fails_to_import_warns_and_ls_keeps_working(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", GOOD)
    env = _env(site, FAKE_CLOUD=str(tmp_path))
    run("create", "-d", "fake", "box", env=env, check=True)
    # The impostor "none" of the same distribution would fail this create: the built-in wins.
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "other", env=env, check=True)

    broken = {**env, "FAKE_DRIVER_BROKEN": "1"}
    listed = run("ls", env=broken)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(rows) == {"box", "other"}
    assert " Error " in rows["box"]
    assert 'Driver "fake" failed to load: the fake cloud SDK is not installed' in rows["box"]
    assert rows["other"].split()[2:4] == ["none", "Running"]

    drivers = run("drivers", env=broken)
    assert drivers.returncode == 0, drivers.stderr
    assert _one_line(drivers.stderr) == 'Warning: Driver "fake" failed to load: the fake cloud SDK is not installed'
    assert "none (built-in)" in drivers.stdout
