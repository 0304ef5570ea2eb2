"""A full disk (ENOSPC) while a record, a certificate or docker's config.json is written: the previous
file stays intact and the command says so in one line, exit 1, no traceback.

The store and DOCKER_CONFIG live on a small tmpfs that the test fills up (needs root to mount)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clirun import run


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    monkeypatch.setenv("PROVISION_STORAGE_PATH", str(mount / "store"))
    monkeypatch.setenv("DOCKER_CONFIG", str(mount / "docker"))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> None:
    """Take every free block, so the next write fails with ENOSPC."""
    with open(mount / "filler", "wb", buffering=0) as filler:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    filler.write(b"\0" * chunk)
            except OSError:
                continue


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "No space left on device" in result.stderr
    return result.stderr


def test_full_disk_keeps_docker_config_and_records(small_disk: Path) -> None:
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:23761", "first", check=True)
    run("use", "first", check=True)
    config = small_disk / "docker" / "config.json"
    record = small_disk / "store" / "machines" / "first" / "machine.json"
    config_before, record_before = config.read_bytes(), record.read_bytes()
    fill(small_disk)

    # config.json: `use --unset` must rewrite it, and cannot.
    message = one_line_failure(run("use", "--unset"))
    assert "config.json" in message and "previous version is kept" in message
    assert config.read_bytes() == config_before and json.loads(config_before)["currentContext"] == "first"

    # A new record cannot be written: no half-made machine is left, the others are untouched.
    one_line_failure(run("create", "-d", "none", "--url", "tcp://127.0.0.1:23762", "second"))
    assert not (small_disk / "store" / "machines" / "second").exists()
    assert record.read_bytes() == record_before
    (small_disk / "filler").unlink()
    assert run("ls", "-q", check=True).stdout == "first\n"
    assert run("url", "first", check=True).stdout == "tcp://127.0.0.1:23761\n"


def test_full_disk_while_the_certificate_authority_is_made(small_disk: Path) -> None:
    fill(small_disk)
    one_line_failure(run("create", "-d", "none", "--url", "tcp://127.0.0.1:23763", "first"))
    (small_disk / "filler").unlink()
    assert run("ls", "-q", check=True).stdout == ""
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:23763", "first", check=True)  # nothing half-made in the way
