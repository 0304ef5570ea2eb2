#!/usr/bin/env python3
"""Time provision's slow commands under TCG, and say where each create's seconds went.

Goals (issue 11; Docker Machine 0.16 took 83 s to `create -d generic` on a Debian VM with Docker, and
74 s to regenerate-certs): `create -d generic` <= 21 s, `regenerate-certs` <= 15 s, `create -d local` from
a cached image <= 30 s, a second local machine <= 20 s, `start` of a stopped local machine <= 20 s.

    python3 bench/create_speed.py [--accel tcg] [--only generic|local]

The generic part boots one VM with the local driver (Debian 12 with docker.io) as the target and waits
until its own boot has settled (dockerd up, nothing starting) before timing anything: a command timed
while the target still boots shares its two CPUs with the boot and restarts a dockerd that is still
starting. That is why the bench used to report 34 s where a settled host took 20-26 s.

Each local create prints its steps as the host saw them (`inspect`'s create_steps) and the guest's side
from its journal: kernel, userspace, and when dockerd listened.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from provision_drivers.local import LocalDriver  # noqa: E402
from fixtures_vm import IMAGE_CACHE, make_context, wait_for_ssh  # noqa: E402

# What the guest's journal says about a boot, in one SSH round trip.
GUEST_TIMES = ("systemd-analyze | head -n1; "
               "sudo journalctl -b -o short-monotonic --no-pager -u docker.service | grep -m1 'API listen on' "
               "| cut -d']' -f1 | tr -d '[ '")


def timed(label: str, argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{label} failed: {result.stderr}")
    print(f"{label:<44}{seconds:8.1f} s", flush=True)
    return seconds


def show_steps(provision: list[str], name: str, env: dict[str, str]) -> None:
    """The host's steps of the create, and the guest's boot from its own journal."""
    facts = json.loads(subprocess.run(provision + ["inspect", name], env=env, capture_output=True, text=True,
                                      check=True).stdout).get("facts", {})
    for step in facts.get("create_steps", []):
        if step["seconds"] >= 0.3:
            print(f"    {step['seconds']:6.1f} s  {step['step']}")
    guest = subprocess.run(provision + ["ssh", name, "--", GUEST_TIMES], env=env, capture_output=True, text=True)
    lines = guest.stdout.strip().splitlines()
    if lines:
        print(f"    guest: {lines[0].removeprefix('Startup finished in ').strip()}")
    if len(lines) > 1:
        print(f"    guest: dockerd listened {float(lines[1]):.1f} s after the kernel started")


def settle(target: LocalDriver) -> None:
    """Wait until the target's boot has finished: dockerd answers and no unit is still starting."""
    from provision.ssh import RemoteSession

    with RemoteSession.connect(target.ssh_endpoint(), known_host_key=target.host_key(), machine="target",
                               timeout=120) as session:
        session.run("systemctl is-system-running --wait >/dev/null || true; "
                    "until curl -fsS --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1; "
                    "do sleep 0.5; done", sudo=True, timeout=300)


@contextmanager
def generic_target(work: Path, env: dict[str, str]) -> Iterator[list[str]]:
    """A settled Debian 12 VM with docker.io; yields the `create -d generic` flags that reach it."""
    ctx = make_context(work / "target", "target", environ=env, local_image="debian-docker", local_memory=1536)
    target = LocalDriver(ctx)
    started = time.monotonic()
    target.create()
    try:
        wait_for_ssh(target, work / "known_hosts")
        print(f"{'target VM boot to SSH':<44}{time.monotonic() - started:8.1f} s", flush=True)
        settle(target)
        print(f"{'target VM settled (dockerd up)':<44}{time.monotonic() - started:8.1f} s", flush=True)
        ssh = target.ssh_endpoint()
        # dockerd of a generic machine listens on --generic-engine-port itself: forward that port 1:1.
        from provision_drivers import qemu

        engine_port = qemu.free_ports(1)[0]
        qemu.qmp(target._qmp_socket, "human-monitor-command",
                 {"command-line": f"hostfwd_add net0 tcp:127.0.0.1:{engine_port}-:{engine_port}"})
        yield ["-d", "generic", "--generic-ip-address", ssh.host, "--generic-ssh-port", str(ssh.port),
               "--generic-ssh-user", ssh.user, "--generic-ssh-key", str(ssh.key_path),
               "--generic-engine-port", str(engine_port)]
    finally:
        target.remove()


def bench_generic(work: Path, provision: list[str], env: dict[str, str]) -> None:
    with generic_target(work, env) as flags:
        timed("create -d generic", provision + ["create", *flags, "gen"], env)
        show_steps(provision, "gen", env)
        timed("provision gen (re-run)", provision + ["provision", "gen"], env)
        timed("regenerate-certs -f gen", provision + ["regenerate-certs", "-f", "gen"], env)
        timed("rm -y gen", provision + ["rm", "-y", "gen"], env)


def bench_local(provision: list[str], env: dict[str, str]) -> None:
    create = provision + ["create", "-d", "local", "--local-image", "debian-docker", "--local-memory", "1536"]
    timed("create -d local (cached image)", create + ["loc"], env)
    show_steps(provision, "loc", env)
    try:
        timed("create -d local, a second machine beside it", create + ["loc2"], env)
        show_steps(provision, "loc2", env)
        timed("rm -y loc2", provision + ["rm", "-y", "loc2"], env)
        timed("stop loc", provision + ["stop", "loc"], env)
        timed("start loc (stopped machine)", provision + ["start", "loc"], env)
        timed("regenerate-certs -f loc", provision + ["regenerate-certs", "-f", "loc"], env)
    finally:
        for name in ("loc", "loc2"):  # one at a time: a name already removed would stop the rest
            subprocess.run(provision + ["rm", "-f", name], env=env, capture_output=True)


def main() -> None:
    import logging

    # paramiko logs each refused handshake while the VM boots; the wait itself reports what matters.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--only", choices=("generic", "local"))
    args = parser.parse_args()
    provision = [sys.executable, "-m", "provision.cli.main"]
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        work = Path(tmp)
        # The CLI shares the target VM's image cache: `create -d local` is timed from a cached image.
        env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
               "PROVISION_LOCAL_ACCEL": args.accel, "PROVISION_CACHE_PATH": str(IMAGE_CACHE)}
        if args.only != "local":
            bench_generic(work, provision, env)
        if args.only != "generic":
            bench_local(provision, env)
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"accel {args.accel})")


if __name__ == "__main__":
    main()
