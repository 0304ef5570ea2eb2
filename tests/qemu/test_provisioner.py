"""The engine provisioner: OS detection, dockerd's command line, and the host scripts.

Parts that would reconfigure a host (systemd, dockerd) run only against the QEMU VMs in
``test_provisioner_vm.py``-style tests below (marker ``qemu``); against this machine's own sshd we run
the read-only probe and the hostname logic on a scratch tree (``root=`` prefixes every path it writes),
never this machine's /etc.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures_sshd import SSHLogin
from readback import read_remote
from provision.errors import ProvisioningError, UsageError
from provision.provisioner import engine
from provision.provisioner import _probe  # noqa: PLC2701 - exercised directly with an injected root
from provision.provisioner.osinfo import detect, parse_os_release
from provision.provisioner.scripts import parse_output, render_script, run_script
from provision.record import EngineSettings
from provision.ssh import RemoteSession

DEBIAN_12 = '''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
'''
UBUNTU_2204 = '''PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
ID=ubuntu
ID_LIKE=debian
'''
FEDORA_40 = 'NAME="Fedora Linux"\nVERSION_ID=40\nID=fedora\nPRETTY_NAME="Fedora Linux 40 (Cloud Edition)"\n'
AMAZON_2023 = 'NAME="Amazon Linux"\nVERSION_ID="2023"\nID="amzn"\nID_LIKE="fedora"\nPRETTY_NAME="Amazon Linux 2023"\n'
ROCKY_9 = 'NAME="Rocky Linux"\nVERSION_ID="9.3"\nID="rocky"\nID_LIKE="rhel centos fedora"\nPRETTY_NAME="Rocky Linux 9.3"\n'
ALPINE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'


@pytest.mark.parametrize(("text", "family", "os_id", "version", "package"), [
    (DEBIAN_12, "debian", "debian", "12", "docker.io"),
    (UBUNTU_2204, "debian", "ubuntu", "22.04", "docker.io"),
    (FEDORA_40, "fedora", "fedora", "40", "moby-engine"),
    (AMAZON_2023, "amazon", "amzn", "2023", "docker"),
    (ROCKY_9, "rhel", "rocky", "9.3", "docker-ce"),
])
def test_supported_systems_are_classified(text: str, family: str, os_id: str, version: str, package: str) -> None:
    info = detect(text)
    assert (info.family, info.id, info.version, info.distro_package) == (family, os_id, version, package)


def test_os_release_quoting() -> None:
    fields = parse_os_release("# comment\nA='single quoted'\nB=\"with \\\"escape\\\"\"\nC=plain\n\nbroken line\n")
    assert fields == {"A": "single quoted", "B": 'with "escape"', "C": "plain"}


def test_unsupported_system_is_a_clear_error() -> None:
    with pytest.raises(ProvisioningError, match="unsupported operating system 'Alpine Linux v3.19'") as info:
        detect(ALPINE, machine="m")
    assert "--engine-install-url" in (info.value.hint or "")
    with pytest.raises(ProvisioningError, match="no ID"):
        detect("NAME=Nothing\n")


def test_engine_opts_follow_docker_machine() -> None:
    assert engine.opt_to_args("dns=8.8.8.8") == ("dns", ("--dns=8.8.8.8",))
    assert engine.opt_to_args("--debug") == ("debug", ("--debug",))
    with pytest.raises(UsageError):
        engine.opt_to_args("  ")


def _flags(engine_port: int = 2376, **settings: Any) -> list[engine.Flag]:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return engine.dockerd_flags("generic", engine_port, EngineSettings(**values), live_restore=True)


def test_dropin_golden() -> None:
    flags = _flags(labels=["env=prod", "team=a b"], storage_driver="overlay2",
                   registry_mirrors=["https://mirror.example:5000"], insecure_registries=["10.0.0.2:5000"],
                   opts=["log-level=debug", "default-ulimit=nofile=1024:2048"], engine_port=3376)
    text = engine.render_dropin(machine="web-1", dockerd="/usr/sbin/dockerd", flags=flags,
                                env=["HTTP_PROXY=http://proxy:3128", "PCT=100%", "GREETING=hello world"])
    assert text == '''# Written by provision for machine "web-1". `provision provision web-1` rewrites this file;
# local edits are lost then. The empty ExecStart= clears the packaged command line.
[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd \\
    -H unix:///var/run/docker.sock \\
    -H tcp://0.0.0.0:3376 \\
    --tlsverify \\
    --tlscacert /etc/docker/ca.pem \\
    --tlscert /etc/docker/server.pem \\
    --tlskey /etc/docker/server-key.pem \\
    --label provider=generic \\
    --label env=prod \\
    --label "team=a b" \\
    --storage-driver overlay2 \\
    --registry-mirror https://mirror.example:5000 \\
    --insecure-registry 10.0.0.2:5000 \\
    --log-level=debug \\
    --default-ulimit=nofile=1024:2048 \\
    --live-restore
Environment=HTTP_PROXY=http://proxy:3128
Environment=PCT=100%%
Environment="GREETING=hello world"
'''


def test_systemd_quoting_of_specials() -> None:
    assert engine.systemd_quote("a$b") == '"a$$b"'
    assert engine.systemd_quote('say "hi"\\') == '"say \\"hi\\"\\\\"'
    with pytest.raises(UsageError):
        engine.systemd_quote("two\nlines")
    with pytest.raises(UsageError):
        engine.environment_line("NOEQUALS")


def test_user_can_turn_live_restore_off() -> None:
    args = [a for f in _flags(opts=["live-restore=false"]) for a in f.args]
    assert "--live-restore=false" in args and "--live-restore" not in args


def test_daemon_json_reconciliation() -> None:
    flags = _flags(labels=["x=1"])
    assert engine.reconcile_with_daemon_json(flags, "\n") == flags
    # The host owner's own live-restore and labels win over our defaults...
    kept = engine.reconcile_with_daemon_json(_flags(), json.dumps({"live-restore": False, "labels": ["a=b"]}))
    args = [a for f in kept for a in f.args]
    assert "--live-restore" not in args and "provider=generic" not in args and "--tlsverify" in args
    # ...but a setting the user asked for on our side, or one we must own, is a clear error.
    with pytest.raises(ProvisioningError, match='already sets "labels"'):
        engine.reconcile_with_daemon_json(flags, json.dumps({"labels": ["a=b"]}))
    with pytest.raises(ProvisioningError, match="sets hosts"):
        engine.reconcile_with_daemon_json(_flags(), json.dumps({"hosts": ["fd://"]}))
    with pytest.raises(ProvisioningError, match="not valid JSON"):
        engine.reconcile_with_daemon_json(_flags(), "{oops")


def test_script_output_protocol() -> None:
    out = parse_output("noise\n@@fact a=1\n@@fact b=x=y\n@@begin blk\nl1\n@@fact inside=no\n@@end blk\n@@fact c=\n")
    assert out.facts == {"a": "1", "b": "x=y", "c": ""}
    assert out.blocks == {"blk": "l1\n@@fact inside=no"}


def test_every_install_recipe_renders_valid_shell(tmp_path: Path) -> None:
    import subprocess

    recipes = [dict(method="apt", package="docker.io"), dict(method="dnf", package="moby-engine"),
               dict(method="docker-ce-repo", repo_url="https://download.docker.com/linux/centos/docker-ce.repo"),
               dict(method="script", url="https://get.docker.com")]
    for recipe in recipes:
        text = render_script("engine/install.sh.j2", lock_timeout=300,
                             **{"package": "", "url": "", "repo_url": "", **recipe})
        path = tmp_path / f"{recipe['method']}.sh"
        path.write_text(text)
        subprocess.run(["sh", "-n", str(path)], check=True)  # syntax check only: nothing is executed
    for family in ("debian", "fedora"):
        for method in ("packages", "script"):
            text = render_script("engine/upgrade.sh.j2", method=method, url="https://get.docker.com", family=family,
                                 packages=["docker.io"], lock_timeout=1, ready_polls=1)
            path = tmp_path / f"upgrade-{family}-{method}.sh"
            path.write_text(text)
            subprocess.run(["sh", "-n", str(path)], check=True)


@pytest.mark.sshd
def test_probe_reads_the_real_host_over_ssh(sshd_root: SSHLogin) -> None:
    """The read-only probe against this machine (Debian 12 with Docker): OS, dockerd and systemd facts."""
    messages: list[str] = []
    with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="m", timeout=10) as s:
        probe = _probe(s, messages.append)
        assert s.commands_run == 1, "the probe is one round trip"
    local = detect(Path("/etc/os-release").read_text())
    assert probe.os == local
    assert probe.dockerd == (shutil.which("dockerd") or "")


@pytest.mark.sshd
def test_unsupported_os_fails_cleanly_end_to_end(sshd_root: SSHLogin) -> None:
    """The same probe, over real SSH, on a scratch root holding an Alpine os-release."""
    root = Path(tempfile.mkdtemp(prefix="provision-root-"))
    try:
        (root / "etc").mkdir()
        (root / "etc" / "os-release").write_text(ALPINE)
        with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="alp", timeout=10) as s:
            with pytest.raises(ProvisioningError, match="unsupported operating system 'Alpine Linux v3.19'"):
                _probe(s, lambda m: None, root=str(root))
    finally:
        shutil.rmtree(root)


@pytest.mark.sshd
def test_hostname_logic_on_a_scratch_tree(sshd_root: SSHLogin) -> None:
    root = Path(tempfile.mkdtemp(prefix="provision-root-"))
    try:
        etc = root / "etc"
        (etc / "cloud" / "cloud.cfg.d").mkdir(parents=True)
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdebian.example debian\n::1 localhost\n")
        messages: list[str] = []

        def run(name: str) -> None:
            script = render_script("engine/common.sh.j2") + render_script(
                "engine/hostname.sh.j2", hostname=name, set_runtime=False, root=str(root))
            run_script(s, script, what="hostname", progress=messages.append, timeout=30)

        with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="m", timeout=10) as s:
            run("web-1")
            assert (etc / "hostname").read_text() == "web-1\n"
            assert (etc / "hosts").read_text() == "127.0.0.1\tlocalhost\n127.0.1.1 web-1\n::1 localhost\n"
            assert (etc / "cloud" / "cloud.cfg.d" / "99-provision-hostname.cfg").read_text() == \
                "preserve_hostname: true\n"
            (etc / "hosts").write_text("127.0.0.1 localhost\n")
            run("web-2")
            run("web-2")  # idempotent: one line, not two
            assert (etc / "hosts").read_text() == "127.0.0.1 localhost\n127.0.1.1 web-2\n"
        assert messages == ["Setting the hostname to web-1"] + ["Setting the hostname to web-2"] * 2
    finally:
        shutil.rmtree(root)


def test_bad_hostname_and_install_url_are_usage_errors() -> None:
    from provision.provisioner import EngineConfig, _check_hostname, _install_plan

    with pytest.raises(UsageError):
        _check_hostname("bad_name")
    with pytest.raises(UsageError):
        _install_plan(EngineConfig("generic", "h", EngineSettings(install_url="ftp://x")), detect(DEBIAN_12))
    assert _install_plan(EngineConfig("generic", "h"), detect(DEBIAN_12)) == {"method": "apt", "package": "docker.io"}
    assert _install_plan(EngineConfig("generic", "h", EngineSettings(install_url="https://get.docker.com")),
                         detect(FEDORA_40)) == {"method": "script", "url": "https://get.docker.com"}


# -- against real QEMU VMs (Debian 12 under TCG) ------------------------------------------------------------

TINY_IMAGE_FILES = ("usr/bin/sleep", "usr/lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6",
                    "lib64/ld-linux-x86-64.so.2")


@pytest.fixture(autouse=True)
def _requests_uses_our_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these variables override a session's own CA file, which docker-py's TLSConfig sets.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


class EngineSetup:
    """A store CA, the server and client certificates it issues, and a TLS docker client for a VM."""

    def __init__(self, tmp_path: Path, machine: str, engine_url: str) -> None:
        from provision.provisioner import ServerCerts
        from provision.tls import CertificateAuthority

        self.ca = CertificateAuthority(tmp_path / "certs")
        self.ca.ensure()
        self.machine = machine
        self.engine_url = engine_url
        issued = self.ca.issue_server(machine, ["127.0.0.1", "localhost", machine])
        self.certs = ServerCerts(self.ca.ca_pem(), issued.cert_pem, issued.key_pem)

    def new_server_certs(self):  # type: ignore[no-untyped-def]
        from provision.provisioner import ServerCerts

        issued = self.ca.issue_server(self.machine, ["127.0.0.1", "localhost", self.machine])
        return ServerCerts(self.ca.ca_pem(), issued.cert_pem, issued.key_pem)

    def client(self):  # type: ignore[no-untyped-def]
        """docker-py over mutual TLS, verifying the server against the store CA (as the core's ping does)."""
        import docker
        from docker.tls import TLSConfig

        tls = TLSConfig(client_cert=(str(self.ca.client_cert_path), str(self.ca.client_key_path)),
                        ca_cert=str(self.ca.ca_cert_path), verify=True)
        return docker.DockerClient(base_url=self.engine_url.replace("tcp://", "https://"), tls=tls, timeout=60)

    def served_certificate(self) -> bytes:
        """The DER certificate dockerd presents now."""
        import socket as socket_module
        import ssl
        from urllib.parse import urlsplit

        parts = urlsplit(self.engine_url)
        context = ssl.create_default_context(cafile=str(self.ca.ca_cert_path))
        context.load_cert_chain(str(self.ca.client_cert_path), str(self.ca.client_key_path))
        with socket_module.create_connection((parts.hostname, parts.port), timeout=30) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                return tls.getpeercert(binary_form=True)


def vm_session(vm):  # type: ignore[no-untyped-def]
    from provision.driver import SSHEndpoint

    return RemoteSession.connect(SSHEndpoint(vm.host, vm.port, vm.user, vm.key_path), known_host_key=None,
                                 machine="vm", timeout=120)


def ping(setup: EngineSetup) -> dict:
    client = setup.client()
    try:
        assert client.ping() is True
        return client.info()
    finally:
        client.close()


def _wait_tls(setup: EngineSetup, timeout: float = 60) -> dict:
    """dockerd answers on TCP a moment after systemd calls it started; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ping(setup)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.qemu
def test_configures_preinstalled_docker_without_reinstalling(docker_debian_vm, tmp_path: Path) -> None:
    from provision.provisioner import EngineConfig, provision_engine

    vm = docker_debian_vm
    setup = EngineSetup(tmp_path, "vm-docker", vm.driver.engine_url())
    config = EngineConfig("local", "vm-docker", EngineSettings(labels=("team=qa",)),
                          engine_port=vm.driver.engine_port())
    messages: list[str] = []
    started = time.monotonic()
    with vm_session(vm) as s:
        connected = time.monotonic()
        facts = provision_engine(s, config, setup.certs, messages.append)
        round_trips = s.commands_run
    elapsed = time.monotonic() - started
    print(f"\nprovision_engine on preinstalled docker: {elapsed:.1f}s total, "
          f"{time.monotonic() - connected:.1f}s after connect, {round_trips} SSH round trips")
    assert round_trips == 2, "probe + configure"
    assert not facts.installed and facts.restarted
    assert (facts.os_id, facts.os_version) == ("debian", "12")
    assert any("already installed" in m for m in messages)
    info = _wait_tls(setup)
    assert facts.storage_driver == info["Driver"] and facts.docker_version == info["ServerVersion"]
    assert "provider=local" in info["Labels"] and "team=qa" in info["Labels"]
    assert info["Name"] == "vm-docker", "the hostname was set"
    assert info.get("LiveRestoreEnabled") is True

    # A second run with the same settings changes nothing and restarts nothing.
    with vm_session(vm) as s:
        again = provision_engine(s, config, setup.certs, messages.append)
        assert s.commands_run == 2
        dropin = read_remote(s, "/etc/systemd/system/docker.service.d/10-provision.conf", sudo=True).decode()
        key_mode = s.run(["stat", "-c", "%a", "/etc/docker/server-key.pem"], sudo=True).out.strip()
        hosts = read_remote(s, "/etc/hosts").decode()
        socket_unit = s.run(["systemctl", "is-active", "docker.socket"], check=False).out.strip()
        local_ok = s.run(["docker", "version", "--format", "{{.Server.Version}}"], sudo=True).out.strip()
    assert not again.restarted and again.storage_driver == facts.storage_driver
    assert key_mode == "600"
    assert hosts.count("127.0.1.1") == 1 and "127.0.1.1 vm-docker" in hosts
    assert "-H unix:///var/run/docker.sock" in dropin and "--tlsverify" in dropin and "fd://" not in dropin
    assert local_ok == facts.docker_version, "the unix socket still works beside TCP"
    print(f"docker.socket after provisioning: {socket_unit}")
    _wait_tls(setup)


@pytest.mark.qemu
def test_new_certificates_keep_a_running_container_running(docker_debian_vm, tmp_path: Path) -> None:
    from provision.provisioner import EngineConfig, install_certs, provision_engine

    vm = docker_debian_vm
    setup = EngineSetup(tmp_path, "vm-certs", vm.driver.engine_url())
    with vm_session(vm) as s:
        provision_engine(s, EngineConfig("local", "vm-certs", engine_port=vm.driver.engine_port()),
                         setup.certs, lambda m: None)
        # A tiny image from the guest's own files: no registry is reachable from here.
        s.run("tar -C / -ch " + " ".join(TINY_IMAGE_FILES) + " | docker import - provision-tiny:1", sudo=True)
    _wait_tls(setup)
    client = setup.client()
    try:
        container = client.containers.run("provision-tiny:1", ["/usr/bin/sleep", "100000"], detach=True,
                                          restart_policy={"Name": "unless-stopped"})
        container.reload()
        before = (container.attrs["State"]["Pid"], container.attrs["State"]["StartedAt"])
        assert container.status == "running"
    finally:
        client.close()
    old_cert = setup.served_certificate()
    fresh = setup.new_server_certs()
    setup.certs = fresh
    messages: list[str] = []
    started = time.monotonic()
    with vm_session(vm) as s:
        install_certs(s, fresh, messages.append)
        round_trips = s.commands_run
    elapsed = time.monotonic() - started
    print(f"\ninstall_certs: {elapsed:.1f}s, {round_trips} SSH round trip(s)")
    assert round_trips == 1
    assert "Restarting Docker" in messages
    _wait_tls(setup)
    assert setup.served_certificate() != old_cert, "dockerd serves the new certificate"
    from cryptography import x509

    assert x509.load_der_x509_certificate(setup.served_certificate()) == x509.load_pem_x509_certificate(fresh.cert_pem)
    client = setup.client()
    try:
        container = client.containers.get(container.id)
        assert container.status == "running"
        assert (container.attrs["State"]["Pid"], container.attrs["State"]["StartedAt"]) == before, \
            "the same process kept running through the restart"
        container.remove(force=True)
    finally:
        client.close()


@pytest.mark.qemu
def test_installs_docker_io_on_a_bare_debian(bare_debian_vm, tmp_path: Path) -> None:
    from provision.provisioner import EngineConfig, provision_engine

    vm = bare_debian_vm
    with vm_session(vm) as s:
        # As root: dockerd lives in /usr/sbin, outside an ordinary user's PATH.
        assert s.run("command -v dockerd", sudo=True, check=False).rc != 0, "the bare VM has no Docker yet"
        reachable = s.run("LC_ALL=C apt-get -q update -o Acquire::Retries=0 >/dev/null 2>&1", sudo=True,
                          check=False, timeout=300).rc == 0
    if not reachable:
        pytest.skip("the guest cannot reach the Debian mirror through QEMU user networking")
    setup = EngineSetup(tmp_path, "vm-bare", vm.driver.engine_url())
    messages: list[str] = []
    started = time.monotonic()
    with vm_session(vm) as s:
        facts = provision_engine(s, EngineConfig("generic", "vm-bare", engine_port=vm.driver.engine_port()),
                                 setup.certs, messages.append)
        round_trips = s.commands_run
    print(f"\nprovision_engine with install on bare Debian: {time.monotonic() - started:.1f}s, "
          f"{round_trips} SSH round trips")
    assert facts.installed and round_trips == 3
    assert any("Installing docker.io" in m for m in messages)
    assert not any("Updating the package lists" in m for m in messages), "lists were fresh: no second update"
    info = _wait_tls(setup)
    assert info["ServerVersion"] == facts.docker_version and "provider=generic" in info["Labels"]
    # Installed once, then only configured.
    with vm_session(vm) as s:
        again = provision_engine(s, EngineConfig("generic", "vm-bare", engine_port=vm.driver.engine_port()),
                                 setup.certs, messages.append)
        assert s.commands_run == 2
    assert not again.installed and not again.restarted


@pytest.mark.qemu
def test_upgrade_in_place_keeps_the_engine_configured(docker_debian_vm, tmp_path: Path) -> None:
    """docker.io came from the distribution's packages: upgrade them from the mirror, in place."""
    from provision.provisioner import EngineConfig, provision_engine, upgrade_engine

    vm = docker_debian_vm
    setup = EngineSetup(tmp_path, "vm-upgrade", vm.driver.engine_url())
    config = EngineConfig("local", "vm-upgrade", engine_port=vm.driver.engine_port())
    with vm_session(vm) as s:
        provision_engine(s, config, setup.certs, lambda m: None)
        before = read_remote(s, "/etc/systemd/system/docker.service.d/10-provision.conf", sudo=True)
        if s.run("apt-get -q update -o Acquire::Retries=0 >/dev/null 2>&1", sudo=True, check=False,
                 timeout=300).rc != 0:
            pytest.skip("the guest cannot reach the Debian mirror through QEMU user networking")
        messages: list[str] = []
        started = time.monotonic()
        facts = upgrade_engine(s, config, messages.append)
        print(f"\nupgrade_engine: {time.monotonic() - started:.1f}s")
        after = read_remote(s, "/etc/systemd/system/docker.service.d/10-provision.conf", sudo=True)
        version = s.run(["docker", "version", "--format", "{{.Server.Version}}"], sudo=True).out.strip()
    assert any(m.startswith("Upgrading") and "docker.io" in m for m in messages)
    assert facts.docker_version == version and facts.storage_driver and not facts.installed
    assert before == after, "the drop-in survives the upgrade"
    assert _wait_tls(setup)["ServerVersion"] == version, "still served over TLS"


def test_boot_files_are_what_configure_would_upload_to_a_fresh_debian_host() -> None:
    from provision.provisioner import EngineConfig, ServerCerts, boot_files

    config = EngineConfig(driver_name="local", hostname="m1", settings=EngineSettings(labels=("team=a",)),
                          engine_port=2376)
    files = {f.path: (f.mode, f.content) for f in boot_files(config, ServerCerts(b"CA", b"CERT", b"KEY"), machine="m1")}
    assert files[engine.CA_PATH] == (0o644, b"CA")
    assert files[engine.CERT_PATH] == (0o644, b"CERT")
    assert files[engine.KEY_PATH] == (0o600, b"KEY")
    mode, dropin = files[engine.DROPIN_PATH]
    text = dropin.decode()
    assert mode == 0o644 and f"ExecStart={engine.DISTRO_DOCKERD}" in text.replace("ExecStart=\n", "")
    assert "--tlsverify" in text and "tcp://0.0.0.0:2376" in text and "team=a" in text
    with pytest.raises(UsageError):
        boot_files(EngineConfig(driver_name="local", hostname="bad_name"), ServerCerts(b"", b"", b""), machine="x")
