"""The port-forwarding tests' server image (tests/data/portsrv.c, built static, imported with `docker import`)
and the probes that ask whether a port on 127.0.0.1 answers."""

from __future__ import annotations

import socket
import subprocess
import tarfile
import time
from pathlib import Path

SOURCE = Path(__file__).parent / "data" / "portsrv.c"
IMAGE = "provision-portsrv:1"
TCP, UDP, BULK = 8000, 8001, 8002


def image_tar(directory: Path) -> Path:
    binary = directory / "portsrv"
    subprocess.run(["gcc", "-static", "-Os", "-o", str(binary), str(SOURCE)], check=True)
    tar = directory / "portsrv.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(binary, arcname="portsrv")
    return tar


def load(context: str, tar: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(["docker", "--context", context, "import", str(tar), IMAGE], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr


def tcp(port: int, timeout: float = 1.0) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            return conn.recv(16).decode().strip()
    except OSError as exc:
        return f"error: {exc}"


def udp(port: int, timeout: float = 1.0) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(b"?", ("127.0.0.1", port))
            return sock.recvfrom(64)[0].decode().strip()
        except OSError as exc:
            return f"error: {exc}"


def wait_for(check, expected: str, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``check()`` returns ``expected``; AssertionError with the last answer after ``timeout``."""
    started = time.monotonic()
    answer = ""
    while time.monotonic() - started < timeout:
        answer = check()
        if answer == expected:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"no {expected!r} within {timeout}s; last answer: {answer!r}")
