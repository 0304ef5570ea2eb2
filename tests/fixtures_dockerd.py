"""A real ``dockerd`` on 127.0.0.1 with mutual TLS, trusting a CA that tests copy into their store.

One engine per test session (it takes seconds to start). It runs as root with its own data, exec and
pid paths, no iptables and no bridge, so it never touches the host's network or another engine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from netns_hosts import dockerd_argv
from provision import paths
from provision.probe import TLSFiles, ping
from provision.tls import CertificateAuthority, IssuedCert
from provision.fsutil import atomic_write


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Engine:
    url: str
    port: int
    socket: Path
    certs_dir: Path  # a store certs/ directory whose CA the engine trusts
    version: str

    def seed_store(self, store_root: Path) -> None:
        """Make a store trust this engine: give it the CA (and client cert) the engine was set up with."""
        target = store_root / paths.CERTS_DIR
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in (paths.CA_CERT, paths.CA_KEY, paths.CLIENT_CERT, paths.CLIENT_KEY):
            atomic_write(target / name, (self.certs_dir / name).read_bytes(),
                         0o600 if "key" in name else 0o644)


@contextmanager
def running_dockerd(work: Path, ca_file: Path, server: IssuedCert, client: TLSFiles) -> Iterator[str]:
    """dockerd on a free 127.0.0.1 port with its state under ``work``, trusting the clients ``ca_file``
    admits; yields its URL once it answers ``client`` over mutual TLS, and stops it on the way out."""
    binary = shutil.which("dockerd")
    if binary is None:
        pytest.fail("dockerd is not installed (Debian package docker.io); .ci/run installs it")
    atomic_write(work / "server.pem", server.cert_pem, 0o644)
    atomic_write(work / "server-key.pem", server.key_pem, 0o600)
    port = free_port()
    argv = dockerd_argv(work, f"127.0.0.1:{port}", ca_file, binary)
    log = open(work / "dockerd.log", "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"tcp://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if ping(url, client, timeout=2):
                    break
            except Exception:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("dockerd did not start:\n" + (work / "dockerd.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(work / "data")], capture_output=True)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Engine]:
    # Short paths: the exec root holds unix sockets, whose paths are limited to 108 bytes.
    work = Path(tempfile.mkdtemp(prefix="pvd-", dir="/tmp"))
    certs = work / "certs"
    ca = CertificateAuthority(certs)
    ca.ensure()
    server = ca.issue_server("test-engine", ["127.0.0.1", "localhost"])
    tls = TLSFiles(certs / paths.CA_CERT, certs / paths.CLIENT_CERT, certs / paths.CLIENT_KEY)
    try:
        with running_dockerd(work, certs / paths.CA_CERT, server, tls) as url:
            from provision.probe import version

            engine_version = str(version(url, tls)["Version"])
            yield Engine(url, int(url.rsplit(":", 1)[1]), work / "docker.sock", certs, engine_version)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def engine(dockerd: Engine, isolation: Path) -> Engine:
    """The session's engine, with this test's store seeded to trust it."""
    dockerd.seed_store(Path(os.environ["PROVISION_STORAGE_PATH"]))
    return dockerd
