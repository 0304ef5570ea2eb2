"""A project's swarm and stack on a real engine (the session's dockerd, recorded as a `none` machine): the
stack is deployed once, again only when its compose file changes, a drifted manager is replaced with
--recreate (out of the swarm first, a new swarm and the stack again), and down removes the stack, leaves the
swarm and removes the machine."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clirun import run
from fixtures_dockerd import Engine

pytestmark = pytest.mark.dockerd

FILE = """\
name: solo
machines:
  boss:
    driver: none
    swarm: manager
    options:
      url: ${{ENGINE_URL}}
      engine-label: [version={version}]
stacks:
  app: ./app.yml
"""

APP = """version: "3.8"
services:
  web:
    image: provision-test-absent:{tag}
    command: ["true"]
"""


def engine_api(engine: Engine) -> Any:
    import docker
    from docker.tls import TLSConfig

    certs = engine.certs_dir
    tls = TLSConfig(client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")), ca_cert=str(certs / "ca.pem"),
                    verify=True)
    return docker.DockerClient(base_url=engine.url.replace("tcp://", "https://"), tls=tls, timeout=30)


@pytest.fixture
def api(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they would override the store CA docker-py is given
        monkeypatch.delenv(var, raising=False)
    client = engine_api(engine)
    yield client
    try:  # the session's engine serves other tests: never leave it in a swarm
        client.swarm.leave(force=True)
    except Exception:  # noqa: BLE001 - not in a swarm: nothing to undo
        pass
    client.close()


def services(api: Any) -> dict[str, str]:
    return {s.name: s.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] for s in api.services.list()}


def test_stack_deploys_once_redeploys_on_change_and_survives_a_recreate(engine: Engine, api: Any,
                                                                          tmp_path: Path) -> None:
    env = {"ENGINE_URL": engine.url}
    (tmp_path / "provision.yml").write_text(FILE.format(version=1))
    (tmp_path / "app.yml").write_text(APP.format(tag=1))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run(*args, cwd=tmp_path, env=env, timeout=300)

    first = cli("up")
    assert first.returncode == 0, first.stderr
    assert first.stdout == 'Project "solo": 1 made, 1 joined the swarm, 0 removed, 1 stack(s) deployed.\n'
    assert api.info()["Swarm"]["LocalNodeState"] == "active"
    assert services(api) == {"app_web": "provision-test-absent:1"}
    assert cli("up").stdout == 'Project "solo" is up to date: nothing to do (1 machine(s), 1 stack(s)).\n'

    (tmp_path / "app.yml").write_text(APP.format(tag=2))
    planned = json.loads(cli("plan", "--json").stdout)
    assert planned["stacks"] == [{"stack": "app", "action": "deploy", "reason": "its compose file changed"}]
    assert [a["action"] for a in planned["machines"]] == ["leave"] and planned["swarm"] == []
    changed = cli("up")
    assert changed.returncode == 0, changed.stderr
    assert "0 made, 0 joined the swarm, 0 removed, 1 stack(s) deployed" in changed.stdout
    assert services(api) == {"app_web": "provision-test-absent:2"}

    (tmp_path / "provision.yml").write_text(FILE.format(version=2))
    drift = cli("up")
    assert drift.returncode == 0 and "up to date" in drift.stdout and "drift" in drift.stderr
    api.swarm.reload()
    swarm_id = api.swarm.attrs["ID"]
    planned = json.loads(cli("plan", "--json", "--recreate").stdout)
    assert [(a["action"]) for a in planned["machines"]] == ["replace"]
    assert planned["swarm"] == [{"machine": "solo-boss-1", "action": "init", "role": "manager"}]
    assert planned["stacks"] == [{"stack": "app", "action": "deploy", "reason": "the swarm is new"}]
    recreated = cli("up", "--recreate")
    assert recreated.returncode == 0, recreated.stderr
    assert "solo-boss-1 leaves the swarm" in recreated.stderr  # out of the swarm before it is removed
    api.swarm.reload()
    assert api.swarm.attrs["ID"] != swarm_id  # a new swarm, with the stack deployed on it again
    assert services(api) == {"app_web": "provision-test-absent:2"}
    assert "version=2" in json.dumps(json.loads(run("inspect", "solo-boss-1", check=True).stdout))

    down = cli("down", "-y")
    assert down.returncode == 0, down.stderr
    assert "stack app: removed" in down.stderr
    assert api.info()["Swarm"]["LocalNodeState"] == "inactive"
    assert run("ls", "-q", check=True).stdout == ""
    contexts = subprocess.run(["docker", "context", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              env=os.environ.copy(), check=True).stdout.split()
    assert contexts == ["default"]
