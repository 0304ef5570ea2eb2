"""Many Docker hosts on one machine: each a network namespace of its own with a real dockerd (mutual TLS,
its own hostname through a UTS namespace), all on a bridge that lives in a hub namespace. provision runs
inside the hub, so every address is inside those namespaces and nothing touches the machine's network.

Needs root. Used by the fleet tests and by ``bench/fleet_scale.py``, and ``dockerd_argv`` by the one-engine fixture
too; it imports nothing from pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from provision.tls import CertificateAuthority


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def dockerd_argv(root: Path, listen: str, ca_file: Path, binary: str = "dockerd") -> list[str]:
    """An engine of its own: data, exec root, pid file and unix socket under ``root``, no iptables and no
    bridge (it never touches the host's network or another engine), and mutual TLS on ``listen``
    (``HOST:PORT``) with ``root``'s server.pem and server-key.pem, trusting ``ca_file``."""
    return [binary, "--iptables=false", "--ip6tables=false", "--bridge=none", "--data-root", str(root / "data"),
            "--exec-root", str(root / "x"), "--pidfile", str(root / "docker.pid"),
            "-H", f"unix://{root / 'docker.sock'}", "-H", f"tcp://{listen}", "--tlsverify",
            "--tlscacert", str(ca_file), "--tlscert", str(root / "server.pem"), "--tlskey", str(root / "server-key.pem")]


@dataclass
class NetnsHosts:
    """``count`` hosts named by ``names`` (their hostnames, as swarm shows them), numbered from 1; host i
    has address ``{net}.{i + 1}`` and its engine listens there on 2376. ``prefix`` keeps the namespaces of
    two users (a test and a bench) apart."""

    work: Path
    names: list[str]
    prefix: str = "pvt"
    net: str = "10.78.0"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    def namespace(self, i: int) -> str:
        return f"{self.prefix}-h{i}"

    def address(self, i: int) -> str:
        return f"{self.net}.{i + 1}"

    def url(self, i: int) -> str:
        return f"tcp://{self.address(i)}:2376"

    def socket(self, i: int) -> Path:
        return self.work / f"h{i}" / "docker.sock"

    # -- network -------------------------------------------------------------------------------------
    def make_network(self) -> None:
        self.remove_network()  # what an interrupted run left
        sh("ip", "netns", "add", self.hub)
        sh("ip", "-n", self.hub, "link", "set", "lo", "up")
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "addr", "add", f"{self.net}.1/24", "dev", "br0")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i in range(1, len(self.names) + 1):
            ns = self.namespace(i)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", self.hub, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.hub, "link", "set", f"v{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def remove_network(self) -> None:
        for i in range(1, len(self.names) + 1):
            sh("ip", "netns", "del", self.namespace(i), check=False)
        sh("ip", "netns", "del", self.hub, check=False)

    # -- engines -------------------------------------------------------------------------------------
    def start_engines(self, ca: CertificateAuthority, *, nice: int = 0, timeout: float = 180.0) -> None:
        """One dockerd per host trusting ``ca``; ``nice`` lowers the engines' CPU priority below the
        client's (they stand in for other computers, where they would take none of the client's CPU)."""
        for i, name in enumerate(self.names, start=1):
            root = self.work / f"h{i}"
            root.mkdir(parents=True)
            server = ca.issue_server(name, [self.address(i), "localhost"])
            (root / "server.pem").write_bytes(server.cert_pem)
            (root / "server-key.pem").write_bytes(server.key_pem)
            (root / "server-key.pem").chmod(0o600)
            dockerd = dockerd_argv(root, f"{self.address(i)}:2376", ca.ca_cert_path)
            # nsenter, not `ip netns exec`: that remounts /sys, and dockerd needs the host's cgroup mounts.
            argv = ["nsenter", f"--net=/run/netns/{self.namespace(i)}", "unshare", "--uts", "--",
                    "nice", "-n", str(nice), "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh", name, *dockerd]
            with open(root / "dockerd.log", "wb") as log:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            self.procs.append(proc)
            if nice:
                # Each engine is a session of its own, and with autogroup scheduling a session's share of the
                # CPU ignores the nice value of the processes in it: the session's own nice level is the knob.
                try:
                    Path(f"/proc/{proc.pid}/autogroup").write_text(str(nice))
                except OSError:  # no autogroup scheduling here: the processes' nice level is what counts
                    pass
        deadline = time.monotonic() + timeout
        for i in range(1, len(self.names) + 1):
            while sh("docker", "-H", f"unix://{self.socket(i)}", "version", check=False).returncode != 0:
                if time.monotonic() > deadline:
                    log = (self.work / f"h{i}" / "dockerd.log").read_text(errors="replace")
                    raise RuntimeError(f"dockerd {i} did not start:\n{log[-2000:]}")
                time.sleep(0.5)

    def stop_engines(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        # What the engines mounted under their roots: overlay data, and the swarm's network namespaces (nsfs)
        # that a stopped dockerd leaves in its exec root.
        prefix = f"{self.work}/"
        with open("/proc/mounts") as mounts:
            points = [fields[1] for fields in (line.split() for line in mounts) if fields[1].startswith(prefix)]
        for point in sorted(points, key=len, reverse=True):
            sh("umount", "-l", point, check=False)

    def close(self) -> None:
        self.stop_engines()
        self.remove_network()

    # -- what the engines say --------------------------------------------------------------------------
    def docker(self, i: int, *args: str) -> str:
        return sh("docker", "-H", f"unix://{self.socket(i)}", *args).stdout

    def swarm(self, i: int) -> dict:
        return json.loads(self.docker(i, "info", "--format", "{{json .Swarm}}"))

    def swarm_states(self) -> list[str]:
        return [self.swarm(i)["LocalNodeState"] for i in range(1, len(self.names) + 1)]

    def nodes(self, i: int) -> dict[str, tuple[str, str]]:
        """The swarm's nodes as manager ``i`` lists them: hostname -> (role, state)."""
        out = self.docker(i, "node", "ls", "--format", "{{json .}}")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {r["Hostname"]: ("manager" if r.get("ManagerStatus") else "worker", r["Status"].lower())
                for r in rows}

    def provision_argv(self, *args: str) -> list[str]:
        """A provision command run inside the hub namespace, where the hosts' addresses are."""
        return ["nsenter", f"--net=/run/netns/{self.hub}", sys.executable, "-m", "provision.cli.main", *args]
