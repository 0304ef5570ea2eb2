"""The main job end to end through the CLI: a `local` QEMU machine under TCG, then the real docker CLI.

create -> docker over TLS -> an image imported into that engine runs -> ssh -> scp both ways ->
stop/start (the same endpoint works again) -> restart -> kill -> rm (no QEMU process, no file left).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from clirun import run
from fixtures_vm import qemu_running_for

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(3600)]

HELLO_C = '#include <stdio.h>\nint main(void){puts("hello from provision");return 0;}\n'


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


def share_image_cache(source: Path, target: Path) -> None:
    """The shared test images, hard-linked (else copied) into a cache of the test's own."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source / "local", target / "local", copy_function=link,
                    ignore=shutil.ignore_patterns("*.lock", "*.tmp"))


def test_local_machine_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's quick start as a user types it: no accelerator forced, whatever CI sets for other tests.
    # On a host whose KVM hangs guests or makes QEMU abort, `auto` must still end with a running engine.
    monkeypatch.delenv("PROVISION_LOCAL_ACCEL", raising=False)
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    # The image cache inside the store, as a user's default is: moving the store below moves it too.
    share_image_cache(Path(os.environ["PROVISION_CACHE_PATH"]), store / "cache")
    monkeypatch.delenv("PROVISION_CACHE_PATH")
    machine_dir = store / "machines" / "dev"
    created = run("create", "-d", "local", "--local-image", "debian-docker", "--local-memory", "1536", "dev",
                  timeout=1800)
    try:
        assert created.returncode == 0, created.stderr
        url = run("url", "dev", check=True).stdout.strip()
        assert url.startswith("tcp://127.0.0.1:")
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

        run("kill", "dev", check=True, timeout=300)
        assert run("status", "dev", check=True).stdout == "Stopped\n"
        assert not qemu_running_for(machine_dir / "disk.qcow2")
    finally:
        removed = run("rm", "-y", "-f", "dev", timeout=600)
    assert removed.returncode == 0, removed.stderr
    assert not machine_dir.exists()
    assert not qemu_running_for(machine_dir / "disk.qcow2")
    assert docker("version").returncode != 0  # the context is gone too
