#!/usr/bin/env python3
"""Time `export` and `export --revoke` on a generic machine on a VM under TCG.

Both are online steps: each rewrites the engine's client CA file over SSH, restarts dockerd (containers
kept by live-restore) and waits until the engine answers the owner over mutual TLS. A container runs
on the engine throughout, as it would on a machine in use.

    python3 bench/revoke_speed.py [--accel tcg] [--rounds 3]
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
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from create_speed import generic_target, timed  # noqa: E402
from fixtures_vm import IMAGE_CACHE  # noqa: E402


def main() -> None:
    import logging

    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    provision = [sys.executable, "-m", "provision.cli.main"]
    revokes: list[float] = []
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
               "PROVISION_LOCAL_ACCEL": args.accel, "PROVISION_CACHE_PATH": str(IMAGE_CACHE)}
        with generic_target(work, env) as flags:
            timed("create -d generic", provision + ["create", *flags, "gen"], env)
            subprocess.run(provision + ["ssh", "gen", "--", "sudo sh -c 'tar -C / -ch usr/bin/sleep "
                                        "usr/lib/x86_64-linux-gnu/libc.so.6 lib/x86_64-linux-gnu/libc.so.6 "
                                        "lib64/ld-linux-x86-64.so.2 | docker import - tiny:1'"],
                           env=env, check=True, capture_output=True)
            subprocess.run(["docker", "--context", "gen", "run", "-d", "tiny:1", "/usr/bin/sleep", "100000"],
                           env=env, check=True, capture_output=True)
            for n in range(args.rounds):
                timed(f"export --docker-context --for t{n}", provision + [
                    "export", "--docker-context", "gen", "-o", str(work / f"t{n}.tar"), "--for", f"t{n}"], env)
                started = time.monotonic()
                revoke = subprocess.run(provision + ["export", "--revoke", f"t{n}", "gen"], env=env, text=True,
                                        capture_output=True, check=True)
                revokes.append(time.monotonic() - started)
                print(f"{f'export --revoke t{n}':<44}{revokes[-1]:8.1f} s", flush=True)
                for line in revoke.stderr.splitlines():  # its steps, each with the time since it began
                    print(f"    {line}")
            running = subprocess.run(["docker", "--context", "gen", "ps", "-q"], env=env, capture_output=True,
                                     text=True, check=True).stdout.split()
            print(f"containers still running after {args.rounds} revocations: {len(running)}")
            timed("rm -y gen", provision + ["rm", "-y", "gen"], env)
    print(f"revoke: min {min(revokes):.1f} s, max {max(revokes):.1f} s "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"accel {args.accel})")


if __name__ == "__main__":
    main()
