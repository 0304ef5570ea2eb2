"""Fixtures for the fake Hetzner Cloud API (tests/fake_hetzner.py): the fake with a token of its own in
``HCLOUD_TOKEN``, every other source of a token cleared, and loopback enforced (``loopback_only`` of
fixtures_gce watches every connect and resolve of this process). Test modules import these names.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fake_hetzner import FakeHetzner

TOKEN_SOURCES = ("HCLOUD_TOKEN", "HETZNER_API_TOKEN", "HCLOUD_CONTEXT", "HCLOUD_CONFIG", "HCLOUD_ENDPOINT")


@dataclass
class Hetzner:
    fake: FakeHetzner
    token: str

    @property
    def endpoint(self) -> str:
        return self.fake.url

    def options(self, **overrides: Any) -> dict[str, Any]:
        """Driver option values as the core hands them over after create: every declared key, defaults
        applied, the token left out (a secret never reaches the record)."""
        from provision_drivers.hetzner import OPTIONS

        values = {spec.key: spec.default_value() for spec in OPTIONS}
        values.update(hetzner_endpoint=self.endpoint)
        values.update(overrides)
        return values

    def assert_only_loopback_requests(self) -> None:
        hosts = {r["host"] for r in self.fake.requests}
        assert hosts <= {f"127.0.0.1:{self.fake.port}"}, hosts


def new_token() -> str:
    return secrets.token_hex(32)  # 64 characters, as Hetzner's


@pytest.fixture
def hetzner(monkeypatch: pytest.MonkeyPatch, loopback_only: object) -> Iterator[Hetzner]:
    token = new_token()
    for var in TOKEN_SOURCES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HCLOUD_TOKEN", token)
    with FakeHetzner(tokens=(token,), action_polls=2, action_seconds=1.0) as fake:
        env = Hetzner(fake, token)
        yield env
        env.assert_only_loopback_requests()
