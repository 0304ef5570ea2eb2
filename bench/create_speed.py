#!/usr/bin/env python3
"""Time the provisioning commands of issue 3 on a Debian 12 VM with docker.io preinstalled, under TCG.

Goals (Docker Machine 0.16 took 83 s to `create -d generic` on such a VM, 74 s to regenerate-certs):
`create -d generic` <= 28 s, `regenerate-certs` <= 15 s, `provision` re-run <= 30 s, `create -d local`
from a cached image to a TLS engine <= 45 s.

    python3 bench/create_speed.py [--accel tcg]

Boots one VM with the local driver (the target of the generic machine), then runs the real CLI against
it and prints each command's wall time; finally times `create -d local` on the cached image.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from provision_drivers.local import LocalDriver  # noqa: E402
from fixtures_vm import IMAGE_CACHE, make_context, wait_for_ssh  # noqa: E402


def timed(label: str, argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{label} failed: {result.stderr}")
    print(f"{label:<36}{seconds:8.1f} s", flush=True)
    return seconds


def main() -> None:
    import logging

    # paramiko logs each refused handshake while the VM boots; the wait itself reports what matters.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="tcg")
    args = parser.parse_args()
    provision = [sys.executable, "-m", "provision.cli.main"]
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        work = Path(tmp)
        # The CLI shares the target VM's image cache: `create -d local` is timed from a cached image.
        env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
               "PROVISION_LOCAL_ACCEL": args.accel, "PROVISION_CACHE_PATH": str(IMAGE_CACHE)}
        ctx = make_context(work / "target", "target", environ=env, local_image="debian-docker", local_memory=1536)
        target = LocalDriver(ctx)
        started = time.monotonic()
        target.create()
        try:
            wait_for_ssh(target, work / "known_hosts")
            print(f"{'target VM boot to SSH':<36}{time.monotonic() - started:8.1f} s", flush=True)
            ssh = target.ssh_endpoint()
            # dockerd of a generic machine listens on --generic-engine-port itself: forward that port 1:1.
            from provision_drivers import qemu

            engine_port = qemu.free_ports(1)[0]
            qemu.qmp(target._qmp_socket, "human-monitor-command",
                     {"command-line": f"hostfwd_add net0 tcp:127.0.0.1:{engine_port}-:{engine_port}"})
            timed("create -d generic", provision + [
                "create", "-d", "generic", "--generic-ip-address", ssh.host, "--generic-ssh-port", str(ssh.port),
                "--generic-ssh-user", ssh.user, "--generic-ssh-key", str(ssh.key_path),
                "--generic-engine-port", str(engine_port), "gen"], env)
            timed("provision gen (re-run)", provision + ["provision", "gen"], env)
            timed("regenerate-certs -f gen", provision + ["regenerate-certs", "-f", "gen"], env)
            timed("rm -y gen", provision + ["rm", "-y", "gen"], env)
        finally:
            target.remove()
        timed("create -d local (cached image)", provision + [
            "create", "-d", "local", "--local-image", "debian-docker", "--local-memory", "1536", "loc"], env)
        timed("rm -y loc", provision + ["rm", "-y", "loc"], env)
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"accel {args.accel})")


if __name__ == "__main__":
    main()
