"""The `none` driver against a real dockerd: every path the tool offers must work with the real docker CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from clirun import run, shell_env
from fixtures_dockerd import Engine, free_port

pytestmark = pytest.mark.dockerd


def docker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def server_version(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["Server"]["Version"]


@pytest.fixture
def machine(engine: Engine) -> str:
    run("create", "-d", "none", "--url", engine.url, "live", check=True)
    return "live"


def test_docker_context_flag(machine: str, engine: Engine) -> None:
    result = docker("--context", machine, "version", "--format", "{{json .}}")
    assert server_version(result) == engine.version


def test_docker_context_env(machine: str, engine: Engine) -> None:
    result = docker("version", "--format", "{{json .}}", env={"DOCKER_CONTEXT": machine})
    assert server_version(result) == engine.version


def test_use_then_plain_docker(machine: str, engine: Engine) -> None:
    docker_config = Path(os.environ["DOCKER_CONFIG"])
    docker_config.mkdir(parents=True, exist_ok=True)
    (docker_config / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": "eA=="}},
                                                           "psFormat": "{{.ID}}"}))
    result = run("use", machine, check=True)
    assert result.stdout == f'Current context is now "{machine}"\n'
    assert server_version(docker("version", "--format", "{{json .}}")) == engine.version
    config = json.loads((docker_config / "config.json").read_text())
    assert config == {"auths": {"r.example": {"auth": "eA=="}}, "psFormat": "{{.ID}}", "currentContext": machine}
    assert run("active").stdout == f"{machine}\n"
    run("use", "--unset", check=True)
    config = json.loads((docker_config / "config.json").read_text())
    assert "currentContext" not in config and config["psFormat"] == "{{.ID}}"
    assert docker("--context", machine, "version").returncode == 0


def test_use_warns_when_docker_host_set(machine: str) -> None:
    result = run("use", machine, env={"DOCKER_HOST": "tcp://127.0.0.1:9"}, check=True)
    assert "DOCKER_HOST is set" in result.stderr


def test_eval_env_in_bash(machine: str, engine: Engine) -> None:
    script = f'eval "$(provision env {machine})" && docker version --format "{{{{json .}}}}"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            env=shell_env(SHELL="/bin/bash"))
    assert server_version(result) == engine.version
    unset = subprocess.run(["bash", "-c", f'eval "$(provision env {machine})"; eval "$(provision env -u)"; '
                            'echo "${DOCKER_HOST:-unset}"'], capture_output=True, text=True, timeout=60,
                           env=shell_env())
    assert unset.stdout.strip() == "unset"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (.ci/run installs it)")
def test_eval_env_in_fish(machine: str, engine: Engine) -> None:
    script = f"provision env --shell fish {machine} | source; and docker version --format '{{{{json .}}}}'"
    result = subprocess.run(["fish", "-c", script], capture_output=True, text=True, timeout=60, env=shell_env())
    assert server_version(result) == engine.version


@pytest.mark.skipif(shutil.which("tcsh") is None, reason="tcsh is not installed (.ci/run installs it)")
def test_eval_env_in_tcsh(machine: str, engine: Engine) -> None:
    script = f"eval `provision env --shell tcsh {machine}`; docker version --format '{{{{json .}}}}'"
    result = subprocess.run(["tcsh", "-c", script], capture_output=True, text=True, timeout=60, env=shell_env())
    assert server_version(result) == engine.version


def test_config_flags_work_with_docker(machine: str, engine: Engine) -> None:
    flags = run("config", machine, check=True).stdout.split()
    result = subprocess.run(["bash", "-c", "docker " + " ".join(flags) + " version --format '{{json .}}'"],
                            capture_output=True, text=True, timeout=60)
    assert server_version(result) == engine.version


def test_ls_shows_engine_version_and_dead_machine_error(machine: str, engine: Engine) -> None:
    dead_port = free_port()
    run("create", "-d", "none", "--url", f"tcp://127.0.0.1:{dead_port}", "dead", check=True)
    started = time.monotonic()
    result = run("ls", "--timeout", "5", check=True)
    elapsed = time.monotonic() - started
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM", "DOCKER", "ERRORS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert f"v{engine.version}" in rows["live"].split()
    assert "Unknown" in rows["dead"].split() and "connection refused" in rows["dead"]
    assert elapsed < 5
    as_json = {r["Name"]: r for r in json.loads(run("ls", "--json", check=True).stdout)}
    assert as_json["live"]["DockerVersion"] == f"v{engine.version}"
    assert as_json["dead"]["Error"].endswith("connection refused")


def test_ls_bounds_a_silent_endpoint(machine: str, engine: Engine) -> None:
    import socket

    # A listener that accepts and never answers: the probe must give up at --timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        run("create", "-d", "none", "--url", f"tcp://127.0.0.1:{silent.getsockname()[1]}", "silent", check=True)
        started = time.monotonic()
        result = run("ls", "--timeout", "2", check=True)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert f"v{engine.version}" in rows["live"]
    assert "no answer within 2s" in rows["silent"]
    assert elapsed < 8  # the probe's 2 s and a CLI's start on a busy machine; the default would wait 10 s


def test_version_of_machine(machine: str, engine: Engine) -> None:
    assert run("version", machine, check=True).stdout.strip() == engine.version


def test_rm_removes_context_and_resets_current(machine: str) -> None:
    docker_config = Path(os.environ["DOCKER_CONFIG"])
    run("use", machine, check=True)
    assert docker("context", "inspect", machine).returncode == 0
    result = run("rm", "-y", machine, check=True)
    assert f"Successfully removed {machine}" in result.stdout
    assert docker("context", "inspect", machine).returncode != 0
    assert "currentContext" not in json.loads((docker_config / "config.json").read_text())
    assert run("ls", "-q", check=True).stdout == ""
