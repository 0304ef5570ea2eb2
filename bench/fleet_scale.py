#!/usr/bin/env python3
"""Time `provision up` of a 20-machine project file with a swarm of 3 managers and 17 workers (issue 20).

    sudo python3 bench/fleet_scale.py [--hosts 20] [--managers 3] [--parallel 8]

Needs root: it makes one network namespace per host, each with its own real dockerd (mutual TLS, trusting
the bench store's CA, its own hostname through a UTS namespace), joined by a bridge that lives in a hub
namespace; provision runs inside the hub, so every address is inside those namespaces and nothing touches
the machine's own network. The machines are `none` machines (one group per host: each names its engine's
URL), so what is timed is provision's part: records, certificates, contexts, the swarm formed through each
engine's API and the stack-free `down` that drains every node and removes it.

Prints the wall time of `up` of one machine, of `up` of all hosts (3 managers + 17 workers by default), of
the same hosts made by sequential `create`s and `swarm init`/`swarm join`s, and of each `down` / `rm`, and
checks that nothing is left (no record, no context, every engine out of its swarm).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from provision import paths  # noqa: E402
from provision.tls import CertificateAuthority  # noqa: E402

HUB = "pvb-hub"
NET = "10.77.0"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def host_ns(i: int) -> str:
    return f"pvb-h{i}"


def address(i: int) -> str:
    return f"{NET}.{i + 1}"


def make_network(count: int) -> None:
    sh("ip", "netns", "add", HUB)
    sh("ip", "-n", HUB, "link", "set", "lo", "up")
    sh("ip", "-n", HUB, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", HUB, "addr", "add", f"{NET}.1/24", "dev", "br0")
    sh("ip", "-n", HUB, "link", "set", "br0", "up")
    for i in range(1, count + 1):
        ns = host_ns(i)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", HUB, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", HUB, "link", "set", f"v{i}", "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{address(i)}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")


def remove_network(count: int) -> None:
    for i in range(1, count + 1):
        sh("ip", "netns", "del", host_ns(i), check=False)
    sh("ip", "netns", "del", HUB, check=False)


def start_engines(work: Path, ca: CertificateAuthority, names: list[str]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i, name in enumerate(names, start=1):
        root = work / f"h{i}"
        root.mkdir()
        server = ca.issue_server(name, [address(i), "localhost"])
        (root / "server.pem").write_bytes(server.cert_pem)
        (root / "server-key.pem").write_bytes(server.key_pem)
        (root / "server-key.pem").chmod(0o600)
        dockerd = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                   "--data-root", str(root / "data"), "--exec-root", str(root / "x"), "--pidfile", str(root / "pid"),
                   "-H", f"unix://{root / 'sock'}", "-H", f"tcp://{address(i)}:2376", "--tlsverify",
                   "--tlscacert", str(ca.ca_cert_path), "--tlscert", str(root / "server.pem"),
                   "--tlskey", str(root / "server-key.pem")]
        # Its own hostname (swarm names nodes by it), set in a UTS namespace of its own, then dockerd.
        # nsenter, not `ip netns exec`: that remounts /sys, and dockerd needs the host's cgroup mounts there.
        argv = ["nsenter", f"--net=/run/netns/{host_ns(i)}", "unshare", "--uts", "--", "sh", "-c",
                'hostname "$1" && shift && exec "$@"', "sh", name, *dockerd]
        log = open(root / "dockerd.log", "wb")
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    deadline = time.monotonic() + 180
    for i in range(1, len(names) + 1):
        while sh("docker", "-H", f"unix://{work / f'h{i}' / 'sock'}", "version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"dockerd {i} did not start:\n" + (work / f"h{i}" / "dockerd.log").read_text()[-2000:])
            time.sleep(0.5)
    return procs


def stop_engines(work: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for data in work.glob("h*/data"):
        sh("umount", "-R", str(data), check=False)


def project_file(path: Path, project: str, names: list[str], managers: int) -> None:
    lines = [f"name: {project}", "machines:"]
    for i, _ in enumerate(names, start=1):
        role = "manager" if i <= managers else "worker"
        group = f"m{i}" if role == "manager" else f"w{i}"
        lines += [f"  {group}:", "    driver: none", f"    swarm: {role}",
                  f"    options: {{url: 'tcp://{address(i)}:2376'}}"]
    path.write_text("\n".join(lines) + "\n")


def machine_names(project: str, count: int, managers: int) -> list[str]:
    return [f"{project}-{'m' if i <= managers else 'w'}{i}-1" for i in range(1, count + 1)]


class Provision:
    def __init__(self, work: Path) -> None:
        self.env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
                    "HOME": str(work / "home")}
        for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(var, None)
        self.work = work

    def __call__(self, *args: str, cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
        argv = ["nsenter", f"--net=/run/netns/{HUB}", sys.executable, "-m", "provision.cli.main", *args]
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=cwd or self.work)
        took = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"provision {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return took, done


def swarm_states(work: Path, count: int) -> list[str]:
    states = []
    for i in range(1, count + 1):
        info = sh("docker", "-H", f"unix://{work / f'h{i}' / 'sock'}", "info", "--format", "{{json .Swarm}}")
        states.append(json.loads(info.stdout)["LocalNodeState"])
    return states


def nothing_left(work: Path, provision: Provision, count: int) -> str:
    _, listed = provision("ls", "-q")
    contexts = sh("docker", "--config", str(work / "docker"), "context", "ls", "--format", "{{.Name}}").stdout.split()
    states = set(swarm_states(work, count))
    ok = not listed.stdout.strip() and contexts == ["default"] and states == {"inactive"}
    return "nothing left" if ok else f"LEFT: machines={listed.stdout.split()} contexts={contexts} swarm={states}"


def report(figures: list[tuple[str, float, str]], args: argparse.Namespace, swarm: list[str], roles: list[str],
           by_hand: float) -> None:
    width = max(len(f[0]) for f in figures)
    for what, took, note in figures:
        print(f"{what:<{width}}  {took:7.1f} s  {note}")
    single = figures[0][1]
    fleet_up = figures[3][1]
    print(f"\nup of {args.hosts} / up of 1: {fleet_up / single:.2f}x (goal: at most 3x)")
    print(f"up of {args.hosts} / by hand: {fleet_up / by_hand:.2f}x")
    print(f"swarm after up: {swarm.count('active')} of {args.hosts} engines active; roles "
          f"{roles.count('manager')} managers, {roles.count('worker')} workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--log", type=Path, help="Write the progress lines of the fleet's up and down here")
    parser.add_argument("--skip-by-hand", action="store_true", help="Time only up and down, not sequential creates")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench makes network namespaces and starts dockerd")
    work = Path(tempfile.mkdtemp(prefix="pvb-", dir="/tmp"))  # short: dockerd's exec root holds sockets
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ca = CertificateAuthority(work / "store" / paths.CERTS_DIR)
        ca.ensure()
        names = machine_names("scale", args.hosts, args.managers)
        make_network(args.hosts)
        procs = start_engines(work, ca, names)
        provision = Provision(work)
        figures: list[tuple[str, float, str]] = []

        # One machine: a project of host 1 alone, a swarm of one manager.
        one = work / "one"
        one.mkdir()
        project_file(one / "provision.yml", "one", names[:1], 1)
        took, _ = provision("up", cwd=one)
        figures.append(("up, 1 machine (swarm init)", took, ""))
        took, _ = provision("down", "-y", cwd=one)
        figures.append(("down, 1 machine", took, nothing_left(work, provision, args.hosts)))

        # All hosts from one file, in parallel.
        fleet = work / "fleet"
        fleet.mkdir()
        project_file(fleet / "provision.yml", "scale", names, args.managers)
        took, _ = provision("plan", cwd=fleet)
        figures.append(("plan, all machines", took, ""))
        took, done = provision("up", "--parallel", str(args.parallel), cwd=fleet)
        figures.append((f"up, {args.hosts} machines ({args.managers} managers), --parallel {args.parallel}", took,
                        done.stdout.strip()))
        if args.log:
            args.log.write_text(f"$ provision up --parallel {args.parallel}\n{done.stdout}{done.stderr}")
        swarm = [s for s in swarm_states(work, args.hosts)]
        took, again = provision("up", cwd=fleet)
        figures.append(("up again (no change)", took, again.stdout.strip()))
        _, ps = provision("ps", "--json", cwd=fleet)
        roles = [row["Role"] for row in json.loads(ps.stdout)]
        took, down = provision("down", "-y", "--parallel", str(args.parallel), cwd=fleet)
        if args.log:
            with args.log.open("a") as log:
                log.write(f"\n$ provision down -y --parallel {args.parallel}\n{down.stdout}{down.stderr}")
        figures.append((f"down, {args.hosts} machines", took, nothing_left(work, provision, args.hosts)))

        by_hand = float("nan")
        if args.skip_by_hand:
            report(figures, args, swarm, roles, by_hand)
            return
        # The same hosts by hand: one create after another, then swarm init and one join after another.
        started = time.monotonic()
        seq = [f"seq-{i}" for i in range(1, args.hosts + 1)]
        for i, name in enumerate(seq, start=1):
            provision("create", "-d", "none", "--url", f"tcp://{address(i)}:2376", name)
        creates = time.monotonic() - started
        provision("swarm", "init", seq[0])
        if args.managers > 1:
            provision("swarm", "join", "--manager", seq[0], *seq[1:args.managers])
        provision("swarm", "join", seq[0], *seq[args.managers:])
        by_hand = time.monotonic() - started
        figures.append((f"{args.hosts} sequential creates", creates, ""))
        figures.append((f"{args.hosts} sequential creates + swarm init/join", by_hand, ""))
        started = time.monotonic()
        provision("rm", "-y", *reversed(seq))
        figures.append((f"rm of {args.hosts} (one command)", time.monotonic() - started,
                        nothing_left(work, provision, args.hosts)))

        report(figures, args, swarm, roles, by_hand)
    finally:
        stop_engines(work, procs)
        remove_network(args.hosts)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
