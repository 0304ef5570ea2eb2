"""Shared test set-up: every test gets its own HOME, DOCKER_CONFIG and store.

Fixtures for the real services live in the ``fixtures_*`` plugin modules below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The tests sit in a folder per real part they need; a module of one folder borrows helpers of another
# (every cloud's tests reuse the checkpoint and CLI helpers written for the first), so each folder is
# importable by module name, as the folder of the module being run already is.
_TESTS = Path(__file__).resolve().parent
sys.path[1:1] = [str(d) for d in sorted(_TESTS.iterdir()) if d.is_dir() and any(d.glob("test_*.py"))]

pytest_plugins = ["fixtures_dockerd", "fixtures_sshd", "fixtures_vm", "fixtures_moto", "fixtures_gce"]

REPO_ROOT = Path(__file__).resolve().parent.parent


# Resolved at import, before any test swaps HOME for a temporary one.
_SHARED_CACHE = Path(os.environ.get("PROVISION_TEST_CACHE", Path.home() / ".cache" / "provision-tests"))


def shared_cache_dir() -> Path:
    """Built VM images outlive one test: CI builds each base image once per run."""
    _SHARED_CACHE.mkdir(parents=True, exist_ok=True)
    return _SHARED_CACHE


@pytest.fixture(autouse=True)
def isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    cache = shared_cache_dir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("PROVISION_STORAGE_PATH", str(home / "store"))
    monkeypatch.setenv("PROVISION_CACHE_PATH", str(cache))
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
                "DOCKER_MACHINE_NAME", "NO_PROXY", "no_proxy", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return home
