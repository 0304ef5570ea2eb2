"""moto in server mode on 127.0.0.1, and an AWS environment for each test that points at it.

The server runs as a subprocess because moto reads its validation switches and ``MOTO_AMIS_PATH`` from
its own environment at import time; a subprocess gets exactly those and nothing from the test process.
Every test starts from an empty account (``POST /moto-api/reset``), so a test that leaks is caught by
the next assertion on the account, not by a neighbour.

The subprocess runs this file (see ``serve`` at the bottom): moto 5.2's ``AmiBackend._load_amis``
rewrites the ``creation_date`` strings of ``MOTO_AMIS_PATH`` records into datetimes in place, so the
second region backend, and every ``/moto-api/reset``, fails to parse them again. ``serve`` hands each
load a fresh copy of the records and then runs moto's own server unchanged. Without dates the images
could not be ordered, and "newest first" could not be tested.

Safety: the endpoint is always ``http://127.0.0.1:PORT``. Tests must never connect to an address moto
hands out (instances' public or private IPs); nothing listens there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parent / "data" / "aws"
AMIS_PATH = DATA_DIR / "amis.json"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class MotoServer:
    endpoint: str  # http://127.0.0.1:PORT

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as response:
                response.read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {START_TIMEOUT:.0f}s: "
                       f"{log.read_text()[-2000:]}")


def start_moto_server(log_dir: Path, extra_env: dict[str, str] | None = None) -> tuple[MotoServer, subprocess.Popen[bytes]]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(log_dir),
        "MOTO_AMIS_PATH": str(AMIS_PATH),
        "MOTO_ENABLE_AMI_VALIDATION": "1",
        "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1",
        "MOTO_ENABLE_KEYPAIR_VALIDATION": "1",
        # The server itself must never reach out (no instance metadata, no real AWS).
        "AWS_EC2_METADATA_DISABLED": "true",
        **(extra_env or {}),
    }
    log = log_dir / f"moto-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        _wait_until_serving(endpoint, process, log)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return MotoServer(endpoint), process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", b"127.0.0.1", b"localhost"})


class LoopbackGuard:
    """A process audit hook that, while armed, refuses any resolve or connect off loopback and notes it.

    Audit hooks cannot be removed, so one is installed once and armed only during AWS tests. It proves
    the driver never dials an address moto hands out, instead of trusting that it does not.
    """

    def __init__(self) -> None:
        self.armed = False
        self.strays: list[str] = []
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            sys.addaudithook(self._hook)
            self.installed = True

    def _hook(self, event: str, args: tuple) -> None:  # type: ignore[type-arg]
        if not self.armed or event not in ("socket.connect", "socket.getaddrinfo"):
            return
        if event == "socket.connect":
            address = args[1]
            if not isinstance(address, tuple):
                return  # a unix socket
            host = address[0]
        else:
            host = args[0]
        if host not in LOOPBACK:
            self.strays.append(f"{event} {host!r}")
            raise OSError(f"test guard: {event} to {host!r} refused (only loopback is allowed)")


GUARD = LoopbackGuard()

# The same guard for a CLI run in a child process: prepended to ``provision.cli.main``.
GUARDED_CLI = """
import os, sys
log = os.environ["PROVISION_TEST_STRAY_LOG"]
def guard(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if host not in ("127.0.0.1", "::1", "localhost", b"127.0.0.1", b"localhost"):
        with open(log, "a") as f:
            f.write(f"{event} {host!r}\\n")
        raise OSError(f"test guard: {event} to {host!r} refused")
sys.addaudithook(guard)
sys.argv[0] = "provision"
from provision.cli.main import main
sys.exit(main())
"""


def run_guarded_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                    timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``provision ARGS`` in a child process that may not leave loopback (asserted)."""
    strays = tmp_path / "strays.log"
    result = subprocess.run([sys.executable, "-c", GUARDED_CLI, *args], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PROVISION_TEST_STRAY_LOG": str(strays), **(env or {})})
    assert not strays.exists(), f"the CLI tried to leave loopback: {strays.read_text()}"
    return result


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server, process = start_moto_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        _stop(process)


def point_boto_at(monkeypatch: pytest.MonkeyPatch, home: Path, endpoint: str, region: str = "us-east-1") -> None:
    """Environment for boto3 in this process: fake keys, moto's endpoint, no real config, no IMDS."""
    assert endpoint.startswith("http://127.0.0.1:"), endpoint
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_REGION", "AWS_ENDPOINT",
                "AWS_ZONE", "AWS_AMI", "AWS_INSTANCE_TYPE", "AWS_SUBNET_ID", "AWS_VPC_ID",
                "AWS_SECURITY_GROUP", "AWS_KEYPAIR_NAME", "AWS_SSH_KEYPATH", "AWS_USERDATA"):
        monkeypatch.delenv(var, raising=False)
    aws_dir = home / ".aws"
    aws_dir.mkdir(exist_ok=True)
    (aws_dir / "config").write_text("")
    (aws_dir / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_dir / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_dir / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    # Every client, ours or a test's, goes to moto: the EC2-specific and the global override.
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    # boto3's credential chain would otherwise try 169.254.169.254 when the environment has no keys.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws(moto_server: MotoServer, isolation: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A fresh moto account and this process's environment pointed at it; off-loopback traffic fails
    the test."""
    moto_server.reset()
    point_boto_at(monkeypatch, isolation, moto_server.endpoint)
    GUARD.install()
    GUARD.strays.clear()
    GUARD.armed = True
    try:
        yield moto_server
    finally:
        GUARD.armed = False
    assert not GUARD.strays, f"the test tried to leave loopback: {GUARD.strays}"


@pytest.fixture
def ec2_client(aws: MotoServer):  # type: ignore[no-untyped-def]
    """A boto3 client of the test's own, to look at the account independently of the driver."""
    import boto3

    return boto3.client("ec2", region_name="us-east-1", endpoint_url=aws.endpoint)


def serve(argv: list[str]) -> None:
    """Run moto's server with the AMI-record fix described in the module docstring."""
    import copy

    from moto.ec2.models import amis
    from moto.server import main

    pristine = copy.deepcopy(amis.AMIS)
    original_load = amis.AmiBackend._load_amis

    def load_from_a_fresh_copy(self):  # type: ignore[no-untyped-def]
        amis.AMIS[:] = copy.deepcopy(pristine)
        original_load(self)

    amis.AmiBackend._load_amis = load_from_a_fresh_copy
    main(argv)


if __name__ == "__main__":
    serve(sys.argv[1:])
