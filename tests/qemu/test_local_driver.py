"""The ``local`` driver against real QEMU (under TCG), plus its decisions and image paths on their own."""

from __future__ import annotations

import hashlib
import json
import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from provision_drivers import images, qemu
from provision.driver import MachineState
from provision_drivers.local import SSH_USER, LocalDriver
from provision_drivers.seed import VOLUME_LABEL, render_seed_files, write_seed_iso
from readback import read_seed_iso
from fixtures_vm import TEST_ACCEL, VM, make_context, qemu_running_for, ssh_connect, ssh_run, wait_for_ssh
from provision import waiting
from provision.errors import DriverError


# -- accelerator choice and the KVM fallback decision -----------------------------------------------

@pytest.mark.parametrize(("requested", "system", "kvm_ok", "expected"), [
    ("auto", "Linux", True, "kvm"),
    ("auto", "Linux", False, "tcg"),
    ("auto", "Darwin", False, "hvf"),
    ("auto", "Windows", False, "tcg"),
    ("tcg", "Linux", True, "tcg"),
    ("kvm", "Linux", False, "kvm"),
])
def test_choose_accelerator(requested: str, system: str, kvm_ok: bool, expected: str) -> None:
    assert qemu.choose_accelerator(requested, system=system, kvm_ok=kvm_ok) == expected


def test_choose_accelerator_rejects_unknown_name() -> None:
    with pytest.raises(DriverError, match="unknown accelerator"):
        qemu.choose_accelerator("xen", system="Linux", kvm_ok=True)


HUNG = "Probing EDD (edd=off to disable)... ok\r\n"  # what nested KVM on this host shows, then nothing
BOOTING = HUNG + "[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org)\r\n"


@pytest.mark.parametrize(("accel", "requested", "console", "verdict"), [
    ("kvm", "auto", "", qemu.ProbeVerdict.FALL_BACK_TO_TCG),  # silent under auto-chosen KVM: retry with TCG
    ("kvm", "auto", HUNG, qemu.ProbeVerdict.FALL_BACK_TO_TCG),  # the boot stub's line is not a running kernel
    ("hvf", "auto", "", qemu.ProbeVerdict.FALL_BACK_TO_TCG),
    ("kvm", "kvm", HUNG, qemu.ProbeVerdict.FAIL),  # asked for by name: explain, do not switch silently
    ("kvm", "auto", BOOTING, qemu.ProbeVerdict.OK),
    ("kvm", "kvm", BOOTING, qemu.ProbeVerdict.OK),
    ("tcg", "tcg", "", qemu.ProbeVerdict.OK),  # nothing slower to fall back to; the SSH wait bounds it
    ("tcg", "auto", "", qemu.ProbeVerdict.OK),
])
def test_probe_verdict(accel: str, requested: str, console: str, verdict: qemu.ProbeVerdict) -> None:
    assert qemu.probe_verdict(accel=accel, requested=requested, console=console) is verdict


@pytest.mark.parametrize(("requested", "console", "verdict"), [
    ("auto", "", qemu.ProbeVerdict.FALL_BACK_TO_TCG),  # QEMU aborted before the guest ran
    ("auto", BOOTING, qemu.ProbeVerdict.FALL_BACK_TO_TCG),  # died after the banner: KVM cannot keep it up
    ("kvm", "", qemu.ProbeVerdict.FAIL),
])
def test_probe_verdict_when_qemu_died(requested: str, console: str, verdict: qemu.ProbeVerdict) -> None:
    assert qemu.probe_verdict(accel="kvm", requested=requested, console=console, exited=True) is verdict


def test_kvm_usable_is_false_for_a_missing_device(tmp_path: Path) -> None:
    assert qemu.kvm_usable(str(tmp_path / "kvm")) is False


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = qemu.free_ports(4)
    assert len(set(ports)) == 4
    assert not any(qemu.port_in_use(p) for p in ports)


def test_port_in_use_sees_a_listener() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert qemu.port_in_use(listener.getsockname()[1])


def test_kill_returns_once_the_process_let_go_of_its_files() -> None:
    # An unreaped child turns zombie, as a daemonized QEMU does under an init that does not reap.
    child = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        # Popen returns once exec has closed the child's close-on-exec pipe, a moment before the kernel
        # fills in the new program's arguments: until then its command line reads empty, not ours.
        assert waiting.until(lambda: qemu.pid_alive(child.pid, "60"), timeout=10, interval=0.01)
        started = time.monotonic()
        qemu.kill(child.pid, "60")
        assert time.monotonic() - started < 5
        assert not qemu.pid_alive(child.pid, "60")
        assert child.wait(timeout=5) == -9
    finally:
        child.kill()
        child.wait()


def test_wait_ports_free_sees_a_port_released_later() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert qemu.wait_ports_free((port,), 0.3) is False
    threading.Timer(0.5, listener.close).start()
    assert qemu.wait_ports_free((port,), 10) is True


def test_long_machine_dirs_get_a_short_qmp_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    path = qemu.socket_path_for(deep)
    assert len(str(path)) <= qemu.MAX_SOCKET_PATH
    assert path == qemu.socket_path_for(deep)  # stable: start after stop finds the same socket
    assert qemu.socket_path_for(tmp_path) == tmp_path / "qmp.sock"


def test_qemu_argv_forwards_ports_on_loopback_only(tmp_path: Path) -> None:
    image = images.BaseImage(kind="debian", disk=tmp_path / "base.qcow2", disk_format="qcow2",
                             kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img", cmdline="root=/dev/vda")
    config = qemu.QemuConfig(name="m,1", cpus=2, memory_mib=1024, accel="tcg", image=image,
                             overlay=tmp_path / "disk.qcow2", seed=tmp_path / "seed.iso", ssh_port=40022,
                             host_engine_port=42376, guest_engine_port=2376, console_log=tmp_path / "console.log",
                             qmp_socket=tmp_path / "qmp.sock", pidfile=tmp_path / "qemu.pid")
    argv = config.argv()
    netdev = argv[argv.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev
    assert "hostfwd=tcp:127.0.0.1:42376-:2376" in netdev
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-kernel") + 1] == str(tmp_path / "vmlinuz")
    assert "m,,1" in argv[argv.index("-name") + 1]  # a comma in a value is doubled, not a separator
    assert "-daemonize" in argv


# -- the NoCloud seed ------------------------------------------------------------------------------

def test_seed_iso_carries_the_machine_key(tmp_path: Path) -> None:
    import pycdlib

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk8 someone@host"
    files = render_seed_files(instance_id="provision-m-1", hostname="m1", user=SSH_USER, ssh_public_key=key,
                              with_network_config=True)
    iso_path = tmp_path / "seed.iso"
    write_seed_iso(iso_path, files)
    assert read_seed_iso(iso_path) == files
    user_data = files["user-data"]
    assert user_data.startswith("#cloud-config\n")
    parsed = yaml.safe_load(user_data)
    assert parsed["users"][0]["name"] == SSH_USER
    assert parsed["users"][0]["ssh_authorized_keys"] == [key]
    assert parsed["users"][0]["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "provision-m-1", "local-hostname": "m1"}
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:  # cloud-init finds the seed by this label
        assert iso.pvd.volume_identifier.decode().strip() == VOLUME_LABEL
    finally:
        iso.close()


def _archive(data: bytes) -> dict[str, tuple[int, int, bytes]]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: (m.mode, m.uid, archive.extractfile(m).read()) for m in archive.getmembers()}  # type: ignore[union-attr]


def test_seed_carries_engine_files_readable_by_its_owner_only(tmp_path: Path) -> None:
    from provision.driver import HostFile

    engine_files = (HostFile("/etc/docker/server-key.pem", 0o600, b"-----BEGIN PRIVATE KEY-----\nx\n"),
                    HostFile("/etc/systemd/system/docker.service.d/10-provision.conf", 0o644, b"[Service]\n"))
    files = render_seed_files(instance_id="i", hostname="m1", user=SSH_USER, ssh_public_key="ssh-ed25519 AAAA k",
                              with_network_config=False, engine_files=engine_files)
    iso_path = tmp_path / "seed.iso"
    write_seed_iso(iso_path, files)
    assert iso_path.stat().st_mode & 0o777 == 0o600
    archive = read_seed_iso(iso_path)["provision-files.tar"]
    assert isinstance(archive, bytes)
    # One archive, unpacked at first boot by one tar: names relative to /, owned by root, with their modes.
    assert _archive(archive) == {f.path.lstrip("/"): (f.mode, 0, f.content) for f in engine_files}
    with pytest.raises(ValueError, match="absolute"):
        render_seed_files(instance_id="i", hostname="m1", user=SSH_USER, ssh_public_key="k",
                          with_network_config=False, engine_files=(HostFile("etc/a", 0o644, b""),))
    with pytest.raises(ValueError, match="absolute"):
        render_seed_files(instance_id="i", hostname="m1", user=SSH_USER, ssh_public_key="k",
                          with_network_config=False, engine_files=(HostFile("/etc/../root/a", 0o644, b""),))


def test_each_machine_gets_its_own_host_key_known_before_first_contact(tmp_path: Path) -> None:
    """provision's image takes its SSH host key from the seed: the driver knows it (host_key()) before the
    first login, and two machines never share one."""
    from provision_drivers.local import HOST_KEY_PATH

    cache = tmp_path / "cache"
    image_dir = cache / "local" / "img"
    image_dir.mkdir(parents=True)
    image = images.BaseImage(kind="debian-docker", disk=image_dir / "disk.qcow2", disk_format="qcow2")
    seen: dict[str, tuple[str, bytes]] = {}
    for name in ("m1", "m2"):
        ctx = make_context(tmp_path / name, name, cache_dir=cache)
        ctx.data["instance_id"] = f"provision-{name}"
        driver = LocalDriver(ctx)
        driver._write_seed(image)
        files = _archive(read_seed_iso(tmp_path / name / "seed.iso")["provision-files.tar"])  # type: ignore[arg-type]
        mode, _, private = files[HOST_KEY_PATH.lstrip("/")]
        public = files[HOST_KEY_PATH.lstrip("/") + ".pub"][2].decode().strip()
        assert mode == 0o600 and public == driver.host_key() == ctx.data["host_key"]
        from provision.sshkeys import public_line

        assert public_line(private, f"root@{name}") == public  # the pair matches
        seen[name] = (public, private)
    assert seen["m1"][0] != seen["m2"][0] and seen["m1"][1] != seen["m2"][1]
    # A cloud image reads the seed with cloud-init, which ignores the archive: no key is promised for it.
    ctx = make_context(tmp_path / "c1", "c1", cache_dir=cache)
    ctx.data["instance_id"] = "provision-c1"
    cloud = LocalDriver(ctx)
    cloud._write_seed(images.BaseImage(kind="url", disk=image_dir / "x.qcow2", disk_format="qcow2"))
    assert cloud.host_key() is None


# -- the Debian mirror -----------------------------------------------------------------------------

def test_mirror_comes_from_host_deb822_sources(tmp_path: Path) -> None:
    sources = tmp_path / "etc" / "apt" / "sources.list.d"
    sources.mkdir(parents=True)
    (sources / "nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n")
    (sources / "debian.sources").write_text(
        "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert images.host_debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_comes_from_one_line_sources(tmp_path: Path) -> None:
    apt = tmp_path / "etc" / "apt"
    apt.mkdir(parents=True)
    (apt / "sources.list").write_text("# deb http://old/debian bookworm main\n"
                                      "deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian trixie main\n")
    assert images.host_debian_mirror(tmp_path) == "https://m.example/debian"


def test_mirror_defaults_to_deb_debian_org(tmp_path: Path) -> None:
    apt = tmp_path / "etc" / "apt"
    apt.mkdir(parents=True)
    (apt / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu noble main\n")
    assert images.host_debian_mirror(tmp_path) == images.DEFAULT_MIRROR


def test_unknown_image_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="unknown local image"):
        images.ensure_image("ubuntu", cache_dir=tmp_path, mirror=images.DEFAULT_MIRROR, progress=print)


def test_building_the_debian_image_as_non_root_says_what_it_needs(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(DriverError, match="needs root") as caught:
        images.ensure_image("debian", cache_dir=tmp_path, mirror=images.DEFAULT_MIRROR, progress=lambda m: None)
    assert "--local-image" in (caught.value.hint or "")
    assert not list((tmp_path / "local").glob("debian-*/manifest.json"))


def test_a_silent_hung_build_step_is_ended_at_its_bound() -> None:
    from provision.errors import TimeoutExpired

    started = time.monotonic()
    with pytest.raises(TimeoutExpired, match="did not finish within 1 s"):
        images._run(["sleep", "30"], what="sleep", progress=None, timeout=1)
    assert time.monotonic() - started < 10


def test_image_recipe_names_its_cache_entry() -> None:
    digests = {variant: images.recipe_digest(variant) for variant in images.VARIANTS}
    assert len(set(digests.values())) == len(digests)  # docker.io changes the recipe
    assert images.recipe_digest("debian") == digests["debian"]  # and it is stable


# -- cloud images by URL, from a local HTTP server -------------------------------------------------

class _Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "www" / "images" / "bookworm"
    root.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root / "tiny-generic.qcow2"), "64M"],
                   check=True)
    server = _Server(root.parent.parent)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _publish_sums(server: _Server, digest: str, name: str = "tiny-generic.qcow2") -> None:
    (server.root / "images" / "bookworm" / "SHA512SUMS").write_text(f"{'0' * 128}  other.raw\n{digest}  {name}\n")



def test_a_moved_image_and_overlay_are_found_again(tmp_path: Path) -> None:
    """The record names the image relative to the cache and the overlay's backing file follows a move."""
    cache = tmp_path / "store" / "cache"
    (cache / "local" / "img").mkdir(parents=True)
    disk = cache / "local" / "img" / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    image = images.BaseImage(kind="debian", disk=disk, disk_format="qcow2", kernel=disk.with_name("vmlinuz"))
    data = image.to_data(cache)
    assert (data["disk"], data["kernel"]) == ("local/img/disk.qcow2", "local/img/vmlinuz")
    overlay = tmp_path / "store" / "machines" / "m" / "disk.qcow2"
    overlay.parent.mkdir(parents=True)
    qemu.create_overlay(overlay, image, 1)

    moved = tmp_path / "elsewhere"
    (tmp_path / "store").rename(moved)
    again = images.BaseImage.from_data(data, moved / "cache")
    assert again.disk == moved / "cache" / "local" / "img" / "disk.qcow2" and not again.missing()[:-1]
    overlay = moved / "machines" / "m" / "disk.qcow2"
    qemu.ensure_backing_file(overlay, again)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["full-backing-filename"] == str(again.disk)
    assert images.BaseImage.from_data({**data, "disk": str(disk)}, moved / "cache").disk == disk  # older records


def test_cloud_image_is_verified_cached_and_usable(image_server: _Server, tmp_path: Path) -> None:
    image_file = image_server.root / "images" / "bookworm" / "tiny-generic.qcow2"
    _publish_sums(image_server, hashlib.sha512(image_file.read_bytes()).hexdigest())
    url = f"{image_server.url}/images/bookworm/tiny-generic.qcow2"
    cache = tmp_path / "cache"
    messages: list[str] = []

    image = images.ensure_image(url, cache_dir=cache, mirror=images.DEFAULT_MIRROR, progress=messages.append)
    assert image.kind == "url" and image.disk_format == "qcow2" and image.kernel is None
    assert image.disk.read_bytes() == image_file.read_bytes()
    assert image.disk.is_relative_to(cache)
    assert any("downloading" in m for m in messages)
    fetched = len(image_server.requests)
    assert images.ensure_image(url, cache_dir=cache, mirror="", progress=messages.append) == image
    assert len(image_server.requests) == fetched  # the second create reuses the cache: no traffic

    overlay = tmp_path / "disk.qcow2"
    qemu.create_overlay(overlay, image, 2)
    info = subprocess.run(["qemu-img", "info", str(overlay)], capture_output=True, text=True, check=True).stdout
    assert str(image.disk) in info


def test_concurrent_creates_download_a_cloud_image_once(image_server: _Server, tmp_path: Path) -> None:
    image_file = image_server.root / "images" / "bookworm" / "tiny-generic.qcow2"
    _publish_sums(image_server, hashlib.sha512(image_file.read_bytes()).hexdigest())
    url = f"{image_server.url}/images/bookworm/tiny-generic.qcow2"
    results: list[images.BaseImage] = []
    messages: list[str] = []

    def fetch() -> None:
        results.append(images.ensure_image(url, cache_dir=tmp_path / "cache", mirror="", progress=messages.append))

    workers = [threading.Thread(target=fetch) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(results) == 3 and len(set(results)) == 1
    assert image_server.requests.count("/images/bookworm/tiny-generic.qcow2") == 1


def test_overlay_smaller_than_its_base_is_refused(tmp_path: Path) -> None:
    from provision.errors import UsageError

    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "5G"], check=True)
    image = images.BaseImage(kind="url", disk=base, disk_format="qcow2")
    with pytest.raises(UsageError, match="smaller than the url base image"):
        qemu.create_overlay(tmp_path / "disk.qcow2", image, 2)
    assert not (tmp_path / "disk.qcow2").exists()


def test_cloud_image_with_wrong_checksum_is_rejected(image_server: _Server, tmp_path: Path) -> None:
    _publish_sums(image_server, hashlib.sha512(b"something else").hexdigest())
    url = f"{image_server.url}/images/bookworm/tiny-generic.qcow2"
    cache = tmp_path / "cache"
    with pytest.raises(DriverError, match="checksum mismatch"):
        images.ensure_image(url, cache_dir=cache, mirror="", progress=lambda m: None)
    leftovers = [p for p in (cache / "local").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []  # nothing corrupt stays in the cache


def test_cloud_image_without_published_checksum_is_refused(image_server: _Server, tmp_path: Path) -> None:
    url = f"{image_server.url}/images/bookworm/tiny-generic.qcow2"
    with pytest.raises(DriverError, match="no published checksum"):
        images.ensure_image(url, cache_dir=tmp_path / "cache", mirror="", progress=lambda m: None)
    assert "/images/bookworm/tiny-generic.qcow2" not in image_server.requests  # never downloaded unverified


def test_debug_echoes_every_local_command_line(image_server: _Server, tmp_path: Path) -> None:
    """``--debug`` shows ``+ command`` for each program the local driver runs, up to a QEMU that refuses."""
    from clirun import run as cli

    image_file = image_server.root / "images" / "bookworm" / "tiny-generic.qcow2"
    _publish_sums(image_server, hashlib.sha512(image_file.read_bytes()).hexdigest())
    refusing = tmp_path / "bin" / qemu.QEMU_BINARY
    refusing.parent.mkdir()
    refusing.write_text("#!/bin/sh\necho 'qemu-system-x86_64: refusing on purpose' >&2\nexit 1\n")
    refusing.chmod(0o755)
    url = f"{image_server.url}/images/bookworm/tiny-generic.qcow2"
    env = {"PATH": f"{refusing.parent}:{os.environ['PATH']}", "PROVISION_CACHE_PATH": str(tmp_path / "cache")}

    result = cli("--debug", "create", "-d", "local", "--local-image", url, "--local-accel", "tcg",
                 "--local-disk-size", "2", "dbg", env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("+ qemu-img info --output=json ") and line.endswith("tiny-generic.qcow2")
               for line in lines), result.stderr
    overlay = next(line for line in lines if line.startswith("+ qemu-img create -q -f qcow2 -b "))
    assert overlay.endswith("/disk.qcow2 2G")
    assert any(line.startswith("+ qemu-system-x86_64 -name dbg,process=provision-dbg ") for line in lines)
    assert "qemu-system-x86_64 failed (1): qemu-system-x86_64: refusing on purpose" in result.stderr

    quiet = cli("create", "-d", "local", "--local-image", url, "--local-accel", "tcg", "--local-disk-size", "2",
                "dbg2", env=env)
    assert quiet.returncode == 1 and "+ qemu" not in quiet.stderr


# -- real machines under TCG -----------------------------------------------------------------------

@pytest.fixture
def tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_LOCAL_ACCEL", TEST_ACCEL)


@pytest.mark.qemu
@pytest.mark.timeout(1800)
def test_lifecycle_under_tcg(tcg: None, tmp_path: Path) -> None:
    machine_dir = tmp_path / "machines" / "lifecycle"
    ctx = make_context(machine_dir, "lifecycle", local_memory=1024)
    assert ctx.options["local_accel"] == "tcg"
    driver = LocalDriver(ctx)
    known_hosts = tmp_path / "known_hosts"
    own_files = set(os.listdir(machine_dir))  # the key pair the core made: not the driver's to delete
    try:
        driver.create()
        assert ctx.data["accel"] == "tcg"
        assert driver.state() in (MachineState.RUNNING, MachineState.STARTING)
        boot_seconds = wait_for_ssh(driver, known_hosts)
        assert driver.state() is MachineState.RUNNING
        ports = (ctx.data["ssh_port"], ctx.data["host_engine_port"])
        assert driver.engine_url() == f"tcp://127.0.0.1:{ports[1]}"
        endpoint = driver.ssh_endpoint()
        assert (endpoint.host, endpoint.port, endpoint.user) == ("127.0.0.1", ports[0], SSH_USER)
        assert driver.addresses() == ["127.0.0.1", "localhost"]
        assert "Linux version" in (driver.boot_log() or "")

        client = ssh_connect(endpoint.host, endpoint.port, endpoint.user, endpoint.key_path, known_hosts)
        try:
            rc, out, _ = ssh_run(client, "sudo -n id -u && hostname && cat /etc/os-release")
            assert rc == 0
            assert out.splitlines()[:2] == ["0", "lifecycle"]
            assert 'VERSION_CODENAME=bookworm' in out
            rc, out, _ = ssh_run(client, "df --output=size -BG / | tail -1")
            assert int(out.strip().rstrip("G")) >= 15  # the root grew to the 20 GB disk at first boot
        finally:
            client.close()
        print(f"\nboot to SSH under TCG (first boot done): {boot_seconds:.1f} s")

        driver.stop()
        assert driver.state() is MachineState.STOPPED
        assert not qemu_running_for(machine_dir / "disk.qcow2")

        driver.start()
        assert (ctx.data["ssh_port"], ctx.data["host_engine_port"]) == ports
        assert driver.state() in (MachineState.RUNNING, MachineState.STARTING)
        wait_for_ssh(driver, known_hosts)  # the pinned host key still matches: same machine, same identity
        assert driver.state() is MachineState.RUNNING

        driver.restart()
        assert driver.state() in (MachineState.RUNNING, MachineState.STARTING)
        wait_for_ssh(driver, known_hosts)
        assert (ctx.data["ssh_port"], ctx.data["host_engine_port"]) == ports

        started = time.monotonic()
        driver.kill()
        assert time.monotonic() - started < 15
        assert driver.state() is MachineState.STOPPED
        assert not qemu_running_for(machine_dir / "disk.qcow2")
    finally:
        driver.remove()
    assert not qemu_running_for(machine_dir / "disk.qcow2")
    assert set(os.listdir(machine_dir)) == own_files
    assert not Path(ctx.data["qmp_socket"]).exists()
    assert driver.state() is MachineState.NOT_FOUND


@pytest.mark.qemu
@pytest.mark.timeout(1800)
def test_two_machines_get_different_ports(tcg: None, tmp_path: Path) -> None:
    drivers = [LocalDriver(make_context(tmp_path / name, name, local_memory=512)) for name in ("one", "two")]
    try:
        for driver in drivers:
            driver.create()
        ports = [(d.ctx.data["ssh_port"], d.ctx.data["host_engine_port"]) for d in drivers]
        assert len({p for pair in ports for p in pair}) == 4
        assert all(d.state() in (MachineState.RUNNING, MachineState.STARTING) for d in drivers)
        assert drivers[0].engine_url() != drivers[1].engine_url()
    finally:
        for driver in drivers:
            driver.remove()
    assert not any(qemu_running_for(d.ctx.machine_dir / "disk.qcow2") for d in drivers)


@pytest.mark.qemu
@pytest.mark.timeout(600)
def test_create_swaps_a_port_taken_since_it_was_picked(tcg: None, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports picked early in create may be taken by the time QEMU starts; create picks new ones."""
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([[taken, qemu.free_ports(1)[0]]])
        real_free_ports = qemu.free_ports
        monkeypatch.setattr(qemu, "free_ports", lambda count: next(picks, None) or real_free_ports(count))
        driver = LocalDriver(make_context(tmp_path / "swap", "swap", local_memory=512))
        try:
            driver.create()
            assert driver.ctx.data["ssh_port"] != taken
            assert driver.state() in (MachineState.RUNNING, MachineState.STARTING)
        finally:
            driver.remove()


@pytest.mark.qemu
def test_remove_of_a_half_created_machine(tcg: None, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "half", "half")
    ctx.data.update({"ssh_port": 1, "host_engine_port": 2})  # create died right after recording its ports
    driver = LocalDriver(ctx)
    driver.remove()
    driver.remove()  # already gone is done
    assert driver.state() is MachineState.NOT_FOUND
    with pytest.raises(DriverError, match="never fully created"):
        driver.start()


@pytest.mark.qemu
def test_auto_accelerator_ends_with_a_guest_that_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``auto`` a host whose KVM hangs guests must end up on TCG with the reason recorded."""
    if not qemu.kvm_usable():
        pytest.skip("no usable /dev/kvm: auto chooses tcg directly (covered by test_choose_accelerator)")
    monkeypatch.setenv("PROVISION_LOCAL_ACCEL", "auto")
    ctx = make_context(tmp_path / "auto", "auto", local_memory=512)
    driver = LocalDriver(ctx)
    try:
        driver.create()
        if ctx.data["accel"] == "tcg":  # this host: KVM hangs the guest or makes QEMU abort
            assert any(why in ctx.data["accel_fallback"] for why in ("serial console", "failed to start", "exited"))
        assert_guest_kernel_runs(driver)
    finally:
        driver.remove()


def assert_guest_kernel_runs(driver: LocalDriver, within: float = 180.0) -> None:
    from provision.waiting import until

    assert until(lambda: qemu.KERNEL_BANNER in (driver.boot_log() or ""), timeout=within), driver.boot_log()


# A real QEMU first on PATH that fails under -accel kvm as QEMU does on some nested hosts, and runs the
# real binary otherwise: "abort" dies before detaching (kvm_buf_set_msrs' assertion, exit 134),
# "dies-booting" detaches under TCG with its vCPUs held (-S), so the guest prints nothing, and is killed a
# moment later, as a QEMU that dies while its guest boots. (Held, because the guest kernel now prints its
# banner a fraction of a second after QEMU starts: a running guest would beat the kill.)
KVM_FAILING_QEMU = r"""#!/usr/bin/env bash
real=$(PATH=${PATH#*:} command -v qemu-system-x86_64)
args=("$@"); kvm=0; pidfile=
for i in "${!args[@]}"; do
  [ "${args[$i]}" = kvm ] && [ "${args[$i-1]}" = -accel ] && { kvm=1; args[$i]=tcg; }
  [ "${args[$i]}" = host ] && [ "${args[$i-1]}" = -cpu ] && args[$i]=max
  [ "${args[$i-1]}" = -pidfile ] && pidfile=${args[$i]}
done
[ "$kvm" = 1 ] || exec "$real" "$@"
if [ "$MODE" = abort ]; then
  echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed." >&2
  kill -ABRT $$
fi
"$real" -S "${args[@]}" || exit $?
( sleep 0.5; kill -9 "$(cat "$pidfile")" ) >/dev/null 2>&1 &
"""


@pytest.mark.qemu
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("mode", "reason"), [("abort", "failed to start under kvm (killed by SIGABRT"),
                                              ("dies-booting", "exited while the guest booted under kvm")])
def test_auto_falls_back_to_tcg_when_qemu_dies_under_kvm(mode: str, reason: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / qemu.QEMU_BINARY
    wrapper.write_text(KVM_FAILING_QEMU)
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("MODE", mode)
    monkeypatch.setenv("PROVISION_LOCAL_ACCEL", "auto")
    monkeypatch.setattr(qemu, "kvm_usable", lambda device="/dev/kvm": True)  # auto picks KVM first everywhere
    progress: list[str] = []
    ctx = make_context(tmp_path / mode, mode, local_memory=512)
    ctx.progress = progress.append
    driver = LocalDriver(ctx)
    try:
        driver.create()
        assert (ctx.data["requested_accel"], ctx.data["accel"]) == ("auto", "tcg")
        assert reason in ctx.data["accel_fallback"]
        assert any(reason in line and "falling back to tcg" in line for line in progress)
        assert driver.state() in (MachineState.RUNNING, MachineState.STARTING)
        assert_guest_kernel_runs(driver)
    finally:
        driver.remove()
    assert not qemu_running_for(tmp_path / mode / "disk.qcow2")


@pytest.mark.qemu
@pytest.mark.timeout(300)
def test_kvm_asked_for_by_name_fails_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    (wrapper_dir / qemu.QEMU_BINARY).write_text(KVM_FAILING_QEMU)
    (wrapper_dir / qemu.QEMU_BINARY).chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("MODE", "abort")
    driver = LocalDriver(make_context(tmp_path / "named", "named", local_memory=512, local_accel="kvm"))
    try:
        with pytest.raises(DriverError, match=r"failed to start under kvm .*does not run guests") as caught:
            driver.create()
        assert "--local-accel tcg" in (caught.value.hint or "")
    finally:
        driver.remove()


@pytest.mark.qemu
@pytest.mark.timeout(3600)
def test_bare_vm_fixture_has_no_docker(bare_debian_vm: VM) -> None:
    client = ssh_connect(bare_debian_vm.host, bare_debian_vm.port, bare_debian_vm.user, bare_debian_vm.key_path,
                         bare_debian_vm.known_hosts)
    try:
        rc, _, _ = ssh_run(client, "command -v dockerd")
        assert rc != 0
        assert ssh_run(client, "sudo -n true")[0] == 0
    finally:
        client.close()


@pytest.mark.qemu
@pytest.mark.timeout(3600)
def test_docker_vm_fixture_runs_dockerd(docker_debian_vm: VM) -> None:
    client = ssh_connect(docker_debian_vm.host, docker_debian_vm.port, docker_debian_vm.user,
                         docker_debian_vm.key_path, docker_debian_vm.known_hosts)
    try:
        rc, out, err = ssh_run(client, "sudo -n docker version --format '{{.Server.Version}}'")
        assert rc == 0, err
        assert out.strip()
    finally:
        client.close()


def test_a_machine_recorded_before_host_engine_port_keeps_its_engine_url_and_forward(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "old", "old")
    ctx.data.update({"ssh_port": 40022, "engine_port": 42376})  # the key local machines used to record
    driver = LocalDriver(ctx)
    assert driver.engine_url() == "tcp://127.0.0.1:42376"
    assert driver.engine_port() == 2376  # the engine's own port in the guest
    assert driver.extra()["engine_port"] == 42376
