"""A Swarm mode cluster of two `local` VMs under TCG, end to end through the CLI and the real docker CLI.

create -n 2 --swarm -> two Ready nodes -> a stack with an overlay network and one task per node -> a
task on the worker reaches the manager's task by service name over the overlay (across the cluster
network carried on 127.0.0.1) -> rm of the worker drains and removes its node -> rm of the manager
leaves no VM, file, port or context.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from clirun import run
from fixtures_vm import qemu_running_for

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(3600)]

# One static binary, two roles: `serve PORT` answers "hello from HOSTNAME" to each connection;
# `get NAME PORT` resolves NAME (docker's embedded DNS), connects and prints the answer.
ECHO_C = r"""
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) {
        char host[256] = {0}, line[300];
        gethostname(host, sizeof host - 1);
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[2])); a.sin_addr.s_addr = INADDR_ANY;
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) { perror("listen"); return 1; }
        int n = snprintf(line, sizeof line, "hello from %s\n", host);
        for (;;) { int c = accept(s, 0, 0); if (c >= 0) { write(c, line, n); close(c); } }
    }
    if (argc == 4 && !strcmp(argv[1], "get")) {
        struct addrinfo hints = {0}, *res;
        hints.ai_family = AF_INET; hints.ai_socktype = SOCK_STREAM;
        int err = getaddrinfo(argv[2], argv[3], &hints, &res);
        if (err) { fprintf(stderr, "resolve %s: %s\n", argv[2], gai_strerror(err)); return 2; }
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, res->ai_addr, res->ai_addrlen)) { perror("connect"); return 3; }
        char buf[512]; ssize_t got = read(c, buf, sizeof buf - 1);
        if (got <= 0) { perror("read"); return 4; }
        buf[got] = 0; fputs(buf, stdout); return 0;
    }
    fprintf(stderr, "usage: echo serve PORT | echo get NAME PORT\n");
    return 64;
}
"""

STACK = """version: "3.8"
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
networks:
  mesh:
    driver: overlay
"""


def docker(context: str, *args: str, input: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", "--context", context, *args], capture_output=True, input=input,
                            timeout=timeout, env=os.environ.copy())
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))


def echo_image(tmp_path: Path) -> bytes:
    source = tmp_path / "echo.c"
    source.write_text(ECHO_C)
    subprocess.run(["gcc", "-static", "-Os", "-o", str(tmp_path / "echo"), str(source)], check=True,
                   capture_output=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(tmp_path / "echo", arcname="echo")
    return buffer.getvalue()


def wait_until(what: str, check, timeout: float = 600, interval: float = 3.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s (last: {last!r})")


def nodes(context: str) -> list[str]:
    listed = docker(context, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}")
    assert listed.returncode == 0, listed.stderr
    return sorted(listed.stdout.split("\n")[:-1])


def test_two_local_vms_form_a_swarm_and_run_a_stack_over_the_overlay(tmp_path: Path) -> None:
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    disks = [store / "machines" / name / "disk.qcow2" for name in ("c-1", "c-2")]
    created = run("create", "-d", "local", "--local-memory", "1024", "-n", "2", "--swarm", "c", timeout=2400)
    try:
        assert created.returncode == 0, created.stderr
        assert "c-1: " in created.stderr and "c-2: " in created.stderr  # a progress line per machine
        assert wait_until("two Ready nodes", lambda: nodes("c-1") == ["c-1 Ready Active", "c-2 Ready Active"]
                          or None, timeout=120)
        table = run("ls", check=True).stdout.splitlines()
        assert table[0].split()[5] == "SWARM"
        rows = {line.split()[0]: line for line in table[1:]}
        assert "c-1 (manager)" in rows["c-1"] and rows["c-2"].split()[5] == "c-1"
        listed = run("swarm", "ls", check=True).stdout
        assert "c-1" in listed and "c-2" in listed and "worker" in listed and "Leader" in listed

        image = echo_image(tmp_path)
        for context in ("c-1", "c-2"):
            imported = docker(context, "import", "-", "echo:1", input=image)
            assert imported.returncode == 0, imported.stderr
        (tmp_path / "stack.yml").write_text(STACK)
        deployed = docker("c-1", "stack", "deploy", "--resolve-image", "never", "-c", str(tmp_path / "stack.yml"), "s")
        assert deployed.returncode == 0, deployed.stderr

        def spread() -> list[str] | None:
            ps = docker("c-1", "service", "ps", "s_web", "--filter", "desired-state=running",
                        "--format", "{{.Node}} {{.CurrentState}}")
            placed = sorted(line.split()[0] for line in ps.stdout.splitlines() if "Running" in line)
            return placed if placed == ["c-1", "c-2"] else None

        wait_until("one running task per node", spread, timeout=600)
        worker_task = docker("c-2", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=s_web").stdout.split()
        assert len(worker_task) == 1

        def reaches_manager() -> str | None:
            got = docker("c-2", "exec", worker_task[0], "/echo", "get", "web", "8080", timeout=60)
            return got.stdout if "hello from c-1" in got.stdout else None

        # The service's virtual IP balances over both tasks: the manager's answers within a few tries.
        assert wait_until("the worker's task reaching the manager's by service name", reaches_manager, timeout=300,
                          interval=1.0)

        removed = run("rm", "-y", "c-2", timeout=900)
        assert removed.returncode == 0, removed.stderr
        assert nodes("c-1") == ["c-1 Ready Active"]
        # One task per node at most: the drained worker's task waits for a node; the manager's keeps running.
        assert wait_until("the service still running on the manager",
                          lambda: "Running" in docker("c-1", "service", "ps", "s_web", "--filter",
                                                      "desired-state=running", "--format",
                                                      "{{.Node}} {{.CurrentState}}").stdout or None, timeout=300)
        assert not qemu_running_for(disks[1])
        removed = run("rm", "-y", "c-1", timeout=900)
        assert removed.returncode == 0, removed.stderr
    finally:
        run("rm", "-y", "-f", "c-1", "c-2", timeout=900)
    for disk in disks:
        assert not qemu_running_for(disk)
    assert not list((store / "machines").iterdir())
    contexts = subprocess.run(["docker", "context", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              env=os.environ.copy()).stdout.split()
    assert contexts == ["default"]
