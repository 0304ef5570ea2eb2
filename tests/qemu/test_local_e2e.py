"""The main job end to end through the CLI: a `local` QEMU machine under TCG, then the real docker CLI.

create -> docker over TLS -> an image imported into that engine runs -> ssh -> the home directory shared
into containers (`-v`) -> scp both ways -> stop/start (the same endpoint works again) -> restart (the share
is back) -> kill -> rm (no QEMU process, no file left).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from clirun import run
from fixtures_vm import qemu_running_for
from provision_drivers.shares import mount_unit_name
from storecheck import assert_store_is_private

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(3600)]

# One static program as the whole image: it greets, and reads, writes or lists files for the share checks.
HELLO_C = r"""
#include <dirent.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "cat") == 0) {
        FILE *f = fopen(argv[2], "r");
        int c;
        if (!f) { perror(argv[2]); return 1; }
        while ((c = fgetc(f)) != EOF) putchar(c);
        return fclose(f) != 0;
    }
    if (argc == 4 && strcmp(argv[1], "write") == 0) {
        FILE *f = fopen(argv[2], "w");
        if (!f) { perror(argv[2]); return 1; }
        fputs(argv[3], f);
        return fclose(f) != 0;
    }
    if (argc == 3 && strcmp(argv[1], "ls") == 0) {
        DIR *d = opendir(argv[2]);
        struct dirent *e;
        if (!d) { perror(argv[2]); return 1; }
        while ((e = readdir(d))) if (e->d_name[0] != '.') puts(e->d_name);
        return closedir(d) != 0;
    }
    puts("hello from provision");
    return 0;
}
"""


def docker(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", "--context", "dev", *args], capture_output=True, input=input, timeout=300,
                          env=os.environ.copy())


def server_version() -> str:
    result = docker("version", "--format", "{{json .}}")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["Server"]["Version"]


def image_tarball(tmp_path: Path) -> bytes:
    """A one-file image: no registry is reachable, so the test builds its own (docker import)."""
    source = tmp_path / "hello.c"
    source.write_text(HELLO_C)
    subprocess.run(["gcc", "-static", "-Os", "-o", str(tmp_path / "hello"), str(source)], check=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(tmp_path / "hello", arcname="hello")
    return buffer.getvalue()


def assert_engine_tls_is_strict(url: str, cert_dir: Path) -> None:
    """The engine answers mutual TLS 1.2 and refuses a client without a certificate, or one capped at 1.1."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port

    def handshake(*, client_cert: bool, max_version: ssl.TLSVersion) -> bytes:
        context = ssl.create_default_context(cafile=str(cert_dir / "ca.pem"))
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = max_version
        if max_version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this side offer TLS 1.1; the engine must refuse
        if client_cert:
            context.load_cert_chain(str(cert_dir / "cert.pem"), str(cert_dir / "key.pem"))
        with socket.create_connection((host, port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return tls.recv(4096)

    assert b" 200 OK" in handshake(client_cert=True, max_version=ssl.TLSVersion.TLSv1_2)
    for client_cert, version in ((False, ssl.TLSVersion.TLSv1_3), (True, ssl.TLSVersion.TLSv1_1)):
        try:
            answer = handshake(client_cert=client_cert, max_version=version)
        except (ssl.SSLError, ConnectionError):
            continue
        assert b" 200 OK" not in answer, (client_cert, version)


def share_image_cache(source: Path, target: Path) -> None:
    """The shared test images, hard-linked (else copied) into a cache of the test's own."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source / "local", target / "local", copy_function=link,
                    ignore=shutil.ignore_patterns("*.lock", "*.tmp"))


def docker_cat(folder: Path, name: str) -> str:
    read = docker("run", "--rm", "-v", f"{folder}:/data", "hello:1", "/hello", "cat", f"/data/{name}")
    assert read.returncode == 0, read.stderr.decode()
    return read.stdout.decode()


def assert_home_is_shared(tmp_path: Path) -> Path:
    """The home directory is in the machine at its own path: `docker run -v "$PWD":/data` reads the user's
    files, and what a container writes there (as root) is the host user's, the user QEMU runs as. A folder
    outside the shares is an empty folder of the machine's own. Returns the project folder used."""
    home = Path(os.environ["HOME"])
    shares = json.loads(run("inspect", "-f", "{{json .Driver.shares}}", "dev", check=True).stdout)
    assert shares == [{"host": str(home.resolve()), "guest": str(home), "tag": "provision0"}]
    # Mounted before dockerd starts, so a `--restart always` container's bind mount under it finds its files.
    unit = shlex.quote(mount_unit_name(str(home)))
    before = run("ssh", "dev", f"systemctl show -p Before --value {unit}", check=True).stdout.split()
    assert "docker.service" in before and "containerd.service" in before
    project = home / "project"
    project.mkdir()
    (project / "from-host.txt").write_text("written on the host\n")
    assert docker_cat(project, "from-host.txt") == "written on the host\n"
    wrote = docker("run", "--rm", "-v", f"{project}:/data", "hello:1", "/hello", "write", "/data/from-container.txt",
                   "written in a container\n")
    assert wrote.returncode == 0, wrote.stderr.decode()
    made = project / "from-container.txt"
    assert made.read_text() == "written in a container\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "not-shared.txt").write_text("stays on the host\n")
    listed = docker("run", "--rm", "-v", f"{outside}:/data", "hello:1", "/hello", "ls", "/data")
    assert (listed.returncode, listed.stdout) == (0, b""), listed.stderr.decode()
    return project


def test_local_machine_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's quick start as a user types it: no accelerator forced, whatever CI sets for other tests.
    # On a host whose KVM hangs guests or makes QEMU abort, `auto` must still end with a running engine.
    monkeypatch.delenv("PROVISION_LOCAL_ACCEL", raising=False)
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    store.mkdir(mode=0o700)  # made here, before provision would make it, to hold the cache below
    # The image cache inside the store, as a user's default is: moving the store below moves it too.
    share_image_cache(Path(os.environ["PROVISION_CACHE_PATH"]), store / "cache")
    monkeypatch.delenv("PROVISION_CACHE_PATH")
    machine_dir = store / "machines" / "dev"
    created = run("--debug", "create", "-d", "local", "--local-image", "debian-docker", "--local-memory", "1536", "dev",
                  timeout=1800)
    try:
        assert created.returncode == 0, created.stderr
        url = run("url", "dev", check=True).stdout.strip()
        assert url.startswith("tcp://127.0.0.1:")
        # Secure by default: nothing private printed under --debug, a private store, mutual TLS 1.2+ only,
        # and a server certificate for exactly the names the machine is reached at.
        printed = created.stdout + created.stderr
        assert "+ " in created.stderr and "PRIVATE KEY" not in printed  # --debug shows commands, never keys
        for key_file in ("key.pem", "server-key.pem", "id_ed25519"):
            secret = (machine_dir / key_file).read_bytes()
            assert secret.splitlines()[1].decode() not in printed
            assert base64.b64encode(secret).decode()[:60] not in printed
        assert_store_is_private(store, Path(os.environ["DOCKER_CONFIG"]))
        assert_engine_tls_is_strict(url, machine_dir)
        sans = json.loads(run("inspect", "dev", check=True).stdout)["server_certificate"]["sans"]
        assert sorted(sans) == ["127.0.0.1", "dev", "localhost"]
        # The certificates and drop-in came with the first boot: dockerd started once, with TLS already.
        assert run("inspect", "-f", "{{.Facts.restarted}}", "dev", check=True).stdout.strip() == "false"
        version = server_version()
        assert run("inspect", "-f", "{{.Driver.requested_accel}}", "dev", check=True).stdout.strip() == "auto"

        imported = docker("import", "-", "hello:1", input=image_tarball(tmp_path))
        assert imported.returncode == 0, imported.stderr.decode()
        ran = docker("run", "--rm", "hello:1", "/hello")
        assert ran.returncode == 0 and ran.stdout.decode() == "hello from provision\n", ran.stderr.decode()

        uname = run("ssh", "dev", "uname", "-a", check=True).stdout
        assert uname.startswith("Linux dev ")
        # Debian keeps dockerd in /usr/sbin, off a user's PATH over SSH: the machine puts it on, after the
        # user's own folders, for a command and for a login shell.
        assert run("ssh", "dev", "which dockerd", check=True).stdout == "/usr/sbin/dockerd\n"
        assert run("ssh", "dev", "bash -lc 'which dockerd'", check=True).stdout == "/usr/sbin/dockerd\n"

        project = assert_home_is_shared(tmp_path)

        sent = tmp_path / "sent.txt"
        sent.write_text("there and back\n")
        run("scp", str(sent), "dev:/tmp/sent.txt", check=True)
        assert run("ssh", "dev", "cat", "/tmp/sent.txt", check=True).stdout == "there and back\n"
        back = tmp_path / "back.txt"
        run("scp", "dev:/tmp/sent.txt", str(back), check=True)
        assert back.read_text() == "there and back\n"

        run("stop", "dev", check=True, timeout=600)
        assert run("status", "dev", check=True).stdout == "Stopped\n"
        assert not qemu_running_for(machine_dir / "disk.qcow2")
        for command in ("url", "ip", "env", "config"):  # Docker Machine's answer for a stopped host
            stopped = run(command, "dev")
            assert (stopped.returncode, stopped.stdout, stopped.stderr) == (1, "", "Host is not running\n")

        # A store moved (or restored from a backup) to another path keeps working, image cache and all.
        moved = tmp_path / "moved" / "store"
        moved.parent.mkdir()
        shutil.move(str(store), str(moved))
        monkeypatch.setenv("PROVISION_STORAGE_PATH", str(moved))
        machine_dir = moved / "machines" / "dev"
        assert run("status", "dev", check=True).stdout == "Stopped\n"
        run("start", "dev", check=True, timeout=1200)
        assert run("url", "dev", check=True).stdout.strip() == url  # same forwarded port, same certificate
        assert server_version() == version

        run("restart", "dev", check=True, timeout=1200)
        assert server_version() == version
        # The share is mounted again at every boot, before dockerd starts.
        assert docker_cat(project, "from-container.txt") == "written in a container\n"

        run("kill", "dev", check=True, timeout=300)
        assert run("status", "dev", check=True).stdout == "Stopped\n"
        assert not qemu_running_for(machine_dir / "disk.qcow2")
    finally:
        removed = run("rm", "-y", "-f", "dev", timeout=600)
    assert removed.returncode == 0, removed.stderr
    assert not machine_dir.exists()
    assert not qemu_running_for(machine_dir / "disk.qcow2")
    assert docker("version").returncode != 0  # the context is gone too
