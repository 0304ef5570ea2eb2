"""A project file of two `local` VMs (a manager and a worker) and a stack of two services, end to end through
the CLI, under TCG: plan -> up (both made, the swarm formed, the stack deployed) -> a service answers another
over the overlay -> a second up changes nothing -> rm of the worker by hand, up brings it back into the swarm
-> down leaves no VM, record or context.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from clirun import run
from fixtures_vm import qemu_running_for
from test_swarm_e2e import docker, echo_image, nodes, wait_until

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(5400)]

PROJECT = """name: shop
machines:
  manager:
    driver: local
    swarm: manager
    options: {local-memory: "${MEMORY:-1024}"}
  worker:
    driver: local
    count: 1
    swarm: worker
    options: {local-memory: "${MEMORY:-1024}", engine-label: [tier=back]}
stacks:
  app: ./app.yml
"""

APP = """version: "3.8"
services:
  web:
    image: echo:1
    command: ["/echo", "serve", "8080"]
    hostname: "{{.Node.Hostname}}"
    networks: [mesh]
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
  api:
    image: echo:1
    command: ["/echo", "serve", "9090"]
    networks: [mesh]
    deploy:
      placement:
        constraints: ["node.role == manager"]
networks:
  mesh:
    driver: overlay
"""

MANAGER, WORKER = "shop-manager-1", "shop-worker-1"


def transcript(path: Path, title: str, result: subprocess.CompletedProcess[str]) -> None:
    """Kept for the note: what a user sees, command by command."""
    with path.open("a") as out:
        out.write(f"$ provision {title}\n{result.stdout}{result.stderr}(exit {result.returncode})\n\n")


def test_up_makes_the_project_keeps_it_and_down_removes_it(tmp_path: Path) -> None:
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    log = Path(os.environ.get("PROJECT_TRANSCRIPT", tmp_path / "transcript.txt"))
    (tmp_path / "provision.yml").write_text(PROJECT)
    (tmp_path / "app.yml").write_text(APP)
    (tmp_path / ".env").write_text("MEMORY=1024\n")

    def cli(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
        result = run(*args, cwd=tmp_path, timeout=timeout)
        transcript(log, " ".join(args), result)
        return result

    planned = cli("plan", "--json")
    assert planned.returncode == 0, planned.stderr
    kinds = {a["machine"]: a["action"] for a in json.loads(planned.stdout)["machines"]}
    assert kinds == {MANAGER: "make", WORKER: "make"}
    try:
        up = cli("up")
        assert up.returncode == 0, up.stderr
        assert f"{MANAGER}: " in up.stderr and f"{WORKER}: " in up.stderr  # a progress line per machine
        assert wait_until("two Ready nodes", lambda: nodes(MANAGER) == [f"{MANAGER} Ready Active",
                                                                        f"{WORKER} Ready Active"] or None, timeout=120)
        services = docker(MANAGER, "stack", "services", "app", "--format", "{{.Name}}")
        assert sorted(services.stdout.split()) == ["app_api", "app_web"], services.stderr

        # The machines have no registry to pull from: the image is loaded on each node; swarm retries the tasks.
        image = echo_image(tmp_path)
        for context in (MANAGER, WORKER):
            imported = docker(context, "import", "-", "echo:1", input=image)
            assert imported.returncode == 0, imported.stderr

        def web_task_on_worker() -> list[str] | None:
            return docker(WORKER, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=app_web").stdout.split() or None

        task = wait_until("a web task on the worker", web_task_on_worker, timeout=600)[0]

        def api_answers() -> str | None:
            got = docker(WORKER, "exec", task, "/echo", "get", "api", "9090", timeout=60)
            return got.stdout if "hello from" in got.stdout else None

        assert wait_until("the api service answering the worker's web task", api_answers, timeout=300, interval=2.0)

        again = cli("up")
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == 'Project "shop" is up to date: nothing to do (2 machine(s), 1 stack(s)).'
        assert again.stderr == ""

        removed = run("rm", "-y", WORKER, timeout=900)
        assert removed.returncode == 0, removed.stderr
        assert nodes(MANAGER) == [f"{MANAGER} Ready Active"]
        planned = cli("plan")
        assert [line.split()[:2] for line in planned.stdout.splitlines()[1:]] == [
            ["leave", MANAGER], ["make", WORKER], ["join", WORKER], ["leave", "stack"]]
        back = cli("up")
        assert back.returncode == 0, back.stderr
        assert "1 made, 1 joined the swarm" in back.stdout
        assert wait_until("the worker back in the swarm", lambda: nodes(MANAGER) == [
            f"{MANAGER} Ready Active", f"{WORKER} Ready Active"] or None, timeout=120)
        ps = cli("ps", "--json")
        rows = {r["Name"]: r for r in json.loads(ps.stdout)}
        assert rows[MANAGER]["Role"] == "manager" and rows[WORKER]["Role"] == "worker"
        assert rows[WORKER]["State"] == "Running"
        listed = run("ls", "-q", check=True).stdout.split()
        assert sorted(listed) == [MANAGER, WORKER]  # ordinary machines: ls, env, use see them
        assert run("env", WORKER, check=True).stdout.count("DOCKER_HOST") == 1

        down = cli("down", "-y", timeout=1800)
        assert down.returncode == 0, down.stderr
        assert "2 machine(s) removed" in down.stdout
    finally:
        run("rm", "-y", "-f", MANAGER, WORKER, timeout=900)
    for name in (MANAGER, WORKER):
        assert not qemu_running_for(store / "machines" / name / "disk.qcow2")
    assert not list((store / "machines").iterdir())
    contexts = subprocess.run(["docker", "context", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              env=os.environ.copy()).stdout.split()
    assert contexts == ["default"]
