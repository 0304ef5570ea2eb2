"""A fleet of four real engines, each on a host of its own (network namespaces made by the test): `up` makes
two managers and two workers and forms the swarm; a worker
removed by hand is off the managers' list when `rm` returns, and the next `up` brings it back; `down` leaves
every engine out of any swarm and nothing in the store or among docker's contexts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns_hosts import NetnsHosts
from provision import paths
from provision.tls import CertificateAuthority

pytestmark = pytest.mark.dockerd

NAMES = ["fleet-m1-1", "fleet-m2-1", "fleet-w3-1", "fleet-w4-1"]


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[NetnsHosts]:
    if os.geteuid() != 0:
        pytest.fail("needs root: the test makes network namespaces and starts dockerd (CI runs as root)")
    ca = CertificateAuthority(Path(os.environ["PROVISION_STORAGE_PATH"]) / paths.CERTS_DIR)
    ca.ensure()
    # A short work path: dockerd's exec root holds unix sockets, whose paths are limited to 108 bytes.
    work = Path(f"/tmp/pvt-{os.getpid()}")
    made = NetnsHosts(work, NAMES, prefix=f"pvt{os.getpid() % 10000}")
    try:
        made.make_network()
        made.start_engines(ca)
        yield made
    finally:
        made.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def project_file(hosts: NetnsHosts) -> str:
    lines = ["name: fleet", "machines:"]
    for i, name in enumerate(hosts.names, start=1):
        group = name.split("-")[1]
        role = "manager" if group.startswith("m") else "worker"
        lines += [f"  {group}:", "    driver: none", f"    swarm: {role}", f"    options: {{url: '{hosts.url(i)}'}}"]
    return "\n".join(lines) + "\n"


def test_fleet_up_rm_up_down_on_four_hosts(hosts: NetnsHosts, tmp_path: Path) -> None:
    (tmp_path / "provision.yml").write_text(project_file(hosts))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(hosts.provision_argv(*args), capture_output=True, text=True, cwd=tmp_path,
                              timeout=300)

    up = cli("up", "--parallel", "4")
    assert up.returncode == 0, up.stderr
    assert up.stdout == 'Project "fleet": 4 made, 4 joined the swarm, 0 removed, 0 stack(s) deployed.\n'
    assert hosts.swarm_states() == ["active"] * 4
    expected = {"fleet-m1-1": ("manager", "ready"), "fleet-m2-1": ("manager", "ready"),
                "fleet-w3-1": ("worker", "ready"), "fleet-w4-1": ("worker", "ready")}
    assert hosts.nodes(1) == expected
    assert hosts.nodes(2) == expected  # the second manager sees the same swarm

    removed = cli("rm", "-y", "fleet-w4-1")
    assert removed.returncode == 0, removed.stderr
    assert hosts.swarm(4)["LocalNodeState"] == "inactive"
    assert "fleet-w4-1" not in hosts.nodes(1)  # off the managers' list when rm returns, not after a wait

    again = cli("up")
    assert again.returncode == 0, again.stderr
    assert again.stdout == 'Project "fleet": 1 made, 1 joined the swarm, 0 removed, 0 stack(s) deployed.\n'
    assert hosts.nodes(1) == expected
    assert cli("up").stdout == 'Project "fleet" is up to date: nothing to do (4 machine(s)).\n'

    down = cli("down", "-y")
    assert down.returncode == 0, down.stderr
    assert down.stdout == 'Project "fleet": 4 machine(s) removed.\n'
    assert hosts.swarm_states() == ["inactive"] * 4
    assert cli("ls", "-q").stdout == ""
    contexts = subprocess.run(["docker", "context", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              check=True).stdout.split()
    assert contexts == ["default"]
