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
the same hosts made by sequential `create`s and `swarm init`/`swarm join`s, and of each `down` / `rm`, with
the CPU time provision and the engines spent meanwhile (all of them share this machine's cores, where a real
fleet's engines each have a computer of their own), and checks that nothing is left (no record, no context,
every engine out of its swarm).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the hosts are the fleet tests' own

from netns_hosts import NetnsHosts  # noqa: E402
from provision import paths  # noqa: E402
from provision.tls import CertificateAuthority  # noqa: E402


def engines_cpu() -> float:
    """CPU seconds the dockerds of this machine have used so far (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "dockerd":
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        except OSError:  # gone meanwhile
            continue
    return total / ticks


def project_file(path: Path, project: str, hosts: NetnsHosts, count: int, managers: int) -> None:
    lines = [f"name: {project}", "machines:"]
    for i in range(1, count + 1):
        role = "manager" if i <= managers else "worker"
        group = f"m{i}" if role == "manager" else f"w{i}"
        lines += [f"  {group}:", "    driver: none", f"    swarm: {role}", f"    options: {{url: '{hosts.url(i)}'}}"]
    path.write_text("\n".join(lines) + "\n")


def machine_names(project: str, count: int, managers: int) -> list[str]:
    return [f"{project}-{'m' if i <= managers else 'w'}{i}-1" for i in range(1, count + 1)]


@dataclass
class Timed:
    wall: float
    cpu: float  # provision's own CPU seconds
    engines: float  # the engines' CPU seconds meanwhile
    done: subprocess.CompletedProcess[str]


class Provision:
    def __init__(self, work: Path, hosts: NetnsHosts) -> None:
        self.env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
                    "HOME": str(work / "home")}
        for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(var, None)
        self.work = work
        self.hosts = hosts

    def __call__(self, *args: str, cwd: Path | None = None) -> Timed:
        before, engines = resource.getrusage(resource.RUSAGE_CHILDREN), engines_cpu()
        started = time.monotonic()
        done = subprocess.run(self.hosts.provision_argv(*args), capture_output=True, text=True, env=self.env,
                              cwd=cwd or self.work)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"provision {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return Timed(wall, cpu, engines_cpu() - engines, done)


def nothing_left(work: Path, provision: Provision, hosts: NetnsHosts) -> str:
    listed = provision("ls", "-q").done
    contexts = subprocess.run(["docker", "--config", str(work / "docker"), "context", "ls", "--format", "{{.Name}}"],
                              capture_output=True, text=True, check=True).stdout.split()
    states = set(hosts.swarm_states())
    ok = not listed.stdout.strip() and contexts == ["default"] and states == {"inactive"}
    return "nothing left" if ok else f"LEFT: machines={listed.stdout.split()} contexts={contexts} swarm={states}"


def report(figures: list[tuple[str, Timed | float, str]], args: argparse.Namespace, swarm: list[str],
           roles: list[str], by_hand: float) -> None:
    width = max(len(f[0]) for f in figures)
    print(f"{'':<{width}}  {'wall':>7}    {'provision CPU':>13}  {'engines CPU':>11}")
    for what, took, note in figures:
        if isinstance(took, Timed):
            print(f"{what:<{width}}  {took.wall:7.1f} s  {took.cpu:11.1f} s  {took.engines:9.1f} s  {note}")
        else:
            print(f"{what:<{width}}  {took:7.1f} s  {'':>13}  {'':>11}  {note}")
    single, fleet_up = figures[0][1], figures[3][1]
    assert isinstance(single, Timed) and isinstance(fleet_up, Timed)
    print(f"\nup of {args.hosts} / up of 1: {fleet_up.wall / single.wall:.2f}x (goal: at most 3x)")
    print(f"up of {args.hosts} / by hand: {fleet_up.wall / by_hand:.2f}x")
    busy = (fleet_up.cpu + fleet_up.engines) / os.cpu_count()
    print(f"up of {args.hosts}: {fleet_up.cpu + fleet_up.engines:.1f} CPU seconds on {os.cpu_count()} cores, at least "
          f"{busy:.1f} s of wall time for the CPU alone; the engines stand in for {args.hosts} other computers")
    print(f"engines at nice {args.engine_nice}")
    print(f"swarm after up: {swarm.count('active')} of {args.hosts} engines active; roles "
          f"{roles.count('manager')} managers, {roles.count('worker')} workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--engine-nice", type=int, default=19,
                        help="The engines' CPU priority (nice level of their sessions; 0: the same as provision's). "
                             "On a real fleet each engine has a computer of its own and takes none of provision's CPU")
    parser.add_argument("--rounds", type=int, default=3, help="Time the project commands this many times")
    parser.add_argument("--log", type=Path, help="Write each round's up and down progress lines here (provision "
                                                  "prints each with the seconds since it started)")
    parser.add_argument("--skip-by-hand", action="store_true", help="Time only up and down, not sequential creates")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench makes network namespaces and starts dockerd")
    work = Path(tempfile.mkdtemp(prefix="pvb-", dir="/tmp"))  # short: dockerd's exec root holds sockets
    names = machine_names("scale", args.hosts, args.managers)
    hosts = NetnsHosts(work, names, prefix="pvb", net="10.77.0")
    try:
        ca = CertificateAuthority(work / "store" / paths.CERTS_DIR)
        ca.ensure()
        hosts.make_network()
        hosts.start_engines(ca, nice=args.engine_nice)
        provision = Provision(work, hosts)

        one = work / "one"
        one.mkdir()
        project_file(one / "provision.yml", "one", hosts, 1, 1)
        fleet = work / "fleet"
        fleet.mkdir()
        project_file(fleet / "provision.yml", "scale", hosts, args.hosts, args.managers)
        rounds: dict[str, list[Timed]] = {}
        notes: dict[str, str] = {}
        ratios = []

        def timed(what: str, took: Timed) -> Timed:
            rounds.setdefault(what, []).append(took)
            return took

        def left(what: str) -> None:  # the first round's word, unless a later round left something
            found = nothing_left(work, provision, hosts)
            if what not in notes or found != "nothing left":
                notes[what] = found

        for round_no in range(1, args.rounds + 1):
            # One machine: a project of host 1 alone, a swarm of one manager.
            single = timed("up, 1 machine (swarm init)", provision("up", cwd=one))
            timed("down, 1 machine", provision("down", "-y", cwd=one))
            left("down, 1 machine")
            # All hosts from one file, in parallel.
            timed("plan, all machines", provision("plan", cwd=fleet))
            up = timed(f"up, {args.hosts} machines ({args.managers} managers), --parallel {args.parallel}",
                       provision("up", "--parallel", str(args.parallel), cwd=fleet))
            notes[f"up, {args.hosts} machines ({args.managers} managers), --parallel {args.parallel}"] = \
                up.done.stdout.strip()
            ratios.append(up.wall / single.wall)
            if args.log:
                with args.log.open("w" if round_no == 1 else "a") as log:
                    log.write(f"# round {round_no}: up of {args.hosts} took {up.wall:.2f} s, up of 1 {single.wall:.2f} s\n"
                              f"$ provision up --parallel {args.parallel}\n{up.done.stdout}{up.done.stderr}")
            swarm = hosts.swarm_states()
            again = timed("up again (no change)", provision("up", cwd=fleet))
            notes["up again (no change)"] = again.done.stdout.strip()
            roles = [row["Role"] for row in json.loads(provision("ps", "--json", cwd=fleet).done.stdout)]
            down = timed(f"down, {args.hosts} machines", provision("down", "-y", "--parallel", str(args.parallel),
                                                                    cwd=fleet))
            left(f"down, {args.hosts} machines")
            if args.log:
                with args.log.open("a") as log:
                    log.write(f"\n$ provision down -y --parallel {args.parallel}\n{down.done.stdout}{down.done.stderr}")
        figures: list[tuple[str, Timed | float, str]] = [
            (what, sorted(runs, key=lambda t: t.wall)[(len(runs) - 1) // 2], notes.get(what, ""))
            for what, runs in rounds.items()]
        print(f"{args.rounds} round(s); each row is the median round's; up of {args.hosts} / up of 1 by round: "
              + ", ".join(f"{r:.2f}x" for r in ratios))

        by_hand = float("nan")
        if args.skip_by_hand:
            report(figures, args, swarm, roles, by_hand)
            return
        # The same hosts by hand: one create after another, then swarm init and one join after another.
        started = time.monotonic()
        seq = [f"seq-{i}" for i in range(1, args.hosts + 1)]
        for i, name in enumerate(seq, start=1):
            provision("create", "-d", "none", "--url", hosts.url(i), name)
        creates = time.monotonic() - started
        provision("swarm", "init", seq[0])
        if args.managers > 1:
            provision("swarm", "join", "--manager", seq[0], *seq[1:args.managers])
        provision("swarm", "join", seq[0], *seq[args.managers:])
        by_hand = time.monotonic() - started
        figures.append((f"{args.hosts} sequential creates", creates, ""))
        figures.append((f"{args.hosts} sequential creates + swarm init/join", by_hand, ""))
        removed = provision("rm", "-y", *reversed(seq))
        figures.append((f"rm of {args.hosts} (one command)", removed, nothing_left(work, provision, hosts)))

        report(figures, args, swarm, roles, by_hand)
    finally:
        hosts.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
