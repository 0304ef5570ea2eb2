"""Fixtures for the fake Compute Engine server (tests/fake_gce.py) and the real ADC flow against it.

google.auth reads GCE_METADATA_HOST and NO_GCE_CHECK once, when it is first imported, so they are set
here at plugin load, before any test can import it: the metadata-server probe then either does not run
or goes to a closed loopback port, never to 169.254.169.254.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fake_gce import FakeGCE


def _closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_DEAD_METADATA = f"127.0.0.1:{_closed_loopback_port()}"
os.environ["GCE_METADATA_HOST"] = _DEAD_METADATA
os.environ["GCE_METADATA_IP"] = _DEAD_METADATA
os.environ["NO_GCE_CHECK"] = "true"  # google.auth compares with the lower-case string "true"


# -- every outbound connection is watched while a gce test runs ---------------------------------------
class _ConnectionLog:
    """An audit hook sees every socket.connect and getaddrinfo of this process, whatever library made it."""

    def __init__(self) -> None:
        self.active = False
        self.seen: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple):  # AF_INET/AF_INET6; a unix socket path stays on this host
                with self.lock:
                    self.seen.append(("connect", address[0]))
        elif event == "socket.getaddrinfo":
            with self.lock:
                self.seen.append(("resolve", args[0]))


CONNECTIONS = _ConnectionLog()
sys.addaudithook(CONNECTIONS)
LOOPBACK = {"127.0.0.1", "::1", "localhost", b"127.0.0.1", b"localhost"}


@pytest.fixture
def loopback_only() -> Iterator[_ConnectionLog]:
    """Fail the test if anything in this process resolved or connected to a non-loopback address."""
    CONNECTIONS.seen.clear()
    CONNECTIONS.active = True
    try:
        yield CONNECTIONS
    finally:
        CONNECTIONS.active = False
    strays = [(kind, host) for kind, host in CONNECTIONS.seen if host not in LOOPBACK]
    assert not strays, f"traffic left loopback: {strays}"


# -- the fake server and credentials for it ---------------------------------------------------------
@dataclass
class GCE:
    """The fake, its endpoint and the credential file the test's ADC flow reads."""

    fake: FakeGCE
    credentials_file: Path
    project: str = "test-project"
    zone: str = "us-central1-a"

    @property
    def endpoint(self) -> str:
        return self.fake.url

    def options(self, **overrides: Any) -> dict[str, Any]:
        """Driver option values as the core hands them over: every declared key, defaults applied."""
        from provision_drivers.google import OPTIONS

        values: dict[str, Any] = {spec.key: (list(spec.default) if spec.multiple and spec.default is not None
                                             else spec.default) for spec in OPTIONS}
        values.update(google_project=self.project, google_zone=self.zone, google_endpoint=self.endpoint)
        values.update(overrides)
        return values

    def assert_only_loopback_requests(self) -> None:
        hosts = {r["host"] for r in self.fake.requests}
        assert hosts <= {f"127.0.0.1:{self.fake.port}"}, hosts


def write_service_account(path: Path, fake: FakeGCE, project: str) -> Path:
    """A service-account key file with a fresh RSA key, its token_uri at the fake's /token."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"provision-test@{project}.iam.gserviceaccount.com"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": "0123456789abcdef",
        "private_key": pem, "client_email": email, "client_id": "100000000000000000001",
        "auth_uri": f"{fake.url}/auth", "token_uri": f"{fake.url}/token",
    }))
    path.chmod(0o600)
    fake.register_service_account(email, key.public_key())
    return path


@pytest.fixture
def fake_gce() -> Iterator[FakeGCE]:
    with FakeGCE(op_polls=3) as fake:
        yield fake


@pytest.fixture
def gce(fake_gce: FakeGCE, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        loopback_only: _ConnectionLog) -> Iterator[GCE]:
    """The fake plus a service-account ADC file in GOOGLE_APPLICATION_CREDENTIALS; loopback enforced."""
    creds = write_service_account(tmp_path / "sa.json", fake_gce, "test-project")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
    monkeypatch.delenv("GOOGLE_PROJECT", raising=False)
    monkeypatch.delenv("CLOUDSDK_CONFIG", raising=False)
    for var in ("GOOGLE_AUTH_TRUST_BOUNDARY_ENABLED",
                "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    env = GCE(fake=fake_gce, credentials_file=creds)
    yield env
    env.assert_only_loopback_requests()
