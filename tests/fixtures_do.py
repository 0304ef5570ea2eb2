"""Fixtures for the fake DigitalOcean server (tests/fake_do.py), driven through the real ``pydo`` SDK.

The fake serves HTTPS with its own certificate; ``REQUESTS_CA_BUNDLE`` makes the SDK's transport (requests)
trust it, as a user behind a TLS-inspecting proxy would configure it. Every test using ``do`` also fails if
anything in this process resolved or connected off loopback (the audit hook of fixtures_gce).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fake_do import FakeDigitalOcean
from fixtures_gce import _ConnectionLog

TOKEN = "dop_v1_test"


@dataclass
class DO:
    fake: FakeDigitalOcean

    @property
    def endpoint(self) -> str:
        return self.fake.url

    def options(self, **overrides: Any) -> dict[str, Any]:
        """Driver option values as the core hands them over: every declared key, defaults applied."""
        from provision_drivers.digitalocean import OPTIONS

        values: dict[str, Any] = {spec.key: spec.default_value() for spec in OPTIONS}
        values.update(digitalocean_endpoint=self.endpoint)
        values.update(overrides)
        return values

    def assert_only_loopback_requests(self) -> None:
        hosts = {r["host"] for r in self.fake.requests}
        assert hosts <= {f"127.0.0.1:{self.fake.port}"}, hosts


def trust_fake(monkeypatch: pytest.MonkeyPatch, fake: FakeDigitalOcean, token: str | None = TOKEN) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_file))
    for var in ("DIGITALOCEAN_ENDPOINT", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    if token:
        monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", token)
    else:
        monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN", raising=False)


@pytest.fixture
def fake_do() -> Iterator[FakeDigitalOcean]:
    with FakeDigitalOcean(action_polls=2) as fake:
        yield fake


@pytest.fixture
def do(fake_do: FakeDigitalOcean, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
       loopback_only: _ConnectionLog) -> Iterator[DO]:
    """The fake, trusted, with the token in DIGITALOCEAN_ACCESS_TOKEN; loopback enforced."""
    trust_fake(monkeypatch, fake_do)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no doctl config of the developer's
    env = DO(fake=fake_do)
    yield env
    env.assert_only_loopback_requests()
