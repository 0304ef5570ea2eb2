"""A real OpenSSH sshd on 127.0.0.1 for the SSH layer's tests.

Each ``SSHD`` runs ``/usr/sbin/sshd -D -f <generated config>`` with its own host key and an
``AuthorizedKeysFile`` in a temp directory, so nothing of this machine's own SSH set-up is used or
changed. Tests run as root; ``sshd_user`` adds a throwaway system user without sudo rights.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD_BINARY = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, key_type: str = "ed25519") -> str:
    """Generate a key pair with ssh-keygen; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "provision-test", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class SSHD:
    """One sshd process. ``restart(new_host_key=True)`` brings it back on the same port with another key."""

    workdir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None
    extra_config: str = ""  # appended to sshd_config at the next start (e.g. more HostKey lines)

    def __post_init__(self) -> None:
        # World-readable directory: sshd reads authorized_keys with the logging-in user's rights.
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.authorized_keys = self.workdir / "authorized_keys"
        self.authorized_keys.touch()
        os.chmod(self.authorized_keys, 0o644)
        self.host_key_path = self.workdir / "ssh_host_ed25519_key"
        self.config_path = self.workdir / "sshd_config"
        self.log_path = self.workdir / "sshd.log"
        self.new_host_key()

    def new_host_key(self) -> None:
        for p in (self.host_key_path, Path(f"{self.host_key_path}.pub")):
            p.unlink(missing_ok=True)
        keygen(self.host_key_path)

    @property
    def host_key(self) -> str:
        """The server's public host key as an OpenSSH line without comment."""
        return " ".join(Path(f"{self.host_key_path}.pub").read_text().split()[:2])

    def authorize(self, public_key_line: str) -> None:
        with self.authorized_keys.open("a") as f:
            f.write(public_key_line.strip() + "\n")

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        self.config_path.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {self.host}\n"
            f"HostKey {self.host_key_path}\n"
            f"PidFile {self.workdir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
            "MaxStartups 100\n"
            "MaxSessions 100\n"
            + self.extra_config
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([SSHD_BINARY, "-D", "-e", "-f", str(self.config_path)],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log_path.read_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port} within 10s: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, *, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            self.new_host_key()
        self.start()


@dataclass(frozen=True)
class SSHLogin:
    """What a test needs to log in: the server, the user and a private key that is authorized."""

    sshd: SSHD
    user: str
    key_path: Path

    def endpoint(self):  # type: ignore[no-untyped-def]
        from provision.driver import SSHEndpoint

        return SSHEndpoint(self.sshd.host, self.sshd.port, self.user, self.key_path)


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHD]:
    if not os.path.exists(SSHD_BINARY) or os.geteuid() != 0:
        pytest.skip("needs OpenSSH's sshd and root")
    # Not under pytest's 0700 tmp tree: a non-root user must reach authorized_keys.
    workdir = Path(tempfile.mkdtemp(prefix="provision-sshd-"))
    server = SSHD(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    path = tmp_path / "client" / "id_ed25519"
    path.parent.mkdir()
    keygen(path)
    return path


@pytest.fixture
def sshd_root(sshd: SSHD, client_key: Path) -> SSHLogin:
    """Root login with ``client_key`` authorized."""
    sshd.authorize(Path(f"{client_key}.pub").read_text())
    return SSHLogin(sshd, "root", client_key)


@pytest.fixture
def sshd_user(sshd: SSHD, client_key: Path) -> Iterator[SSHLogin]:
    """A fresh unprivileged user (no sudo rights at all) with ``client_key`` authorized."""
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd")
    name = "provt" + secrets.token_hex(4)
    # '*' rather than useradd's default '!': sshd without PAM refuses accounts marked locked.
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", name], check=True)
    try:
        sshd.authorize(Path(f"{client_key}.pub").read_text())
        yield SSHLogin(sshd, name, client_key)
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, stderr=subprocess.DEVNULL)
