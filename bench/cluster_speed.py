#!/usr/bin/env python3
"""Time a Swarm mode cluster of `local` VMs against one machine (issue 10's figures), under TCG.

    python3 bench/cluster_speed.py [--accel tcg] [--memory 1024]

Prints the wall time of `create -d local` (one machine), of `create -d local -n 2 --swarm` (two machines
created concurrently plus the swarm), and of `swarm join` of a third machine until its node is Ready,
each from the cached base image in a throwaway store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from create_speed import timed  # noqa: E402
from fixtures_vm import IMAGE_CACHE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--memory", default="1024")
    args = parser.parse_args()
    provision = [sys.executable, "-m", "provision.cli.main"]
    local = ["-d", "local", "--local-memory", args.memory]
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
               "PROVISION_LOCAL_ACCEL": args.accel, "PROVISION_CACHE_PATH": str(IMAGE_CACHE)}
        try:
            one = timed("create -d local (one machine)", [*provision, "create", *local, "solo"], env)
            two = timed("create -d local -n 2 --swarm c", [*provision, "create", *local, "-n", "2", "--swarm", "c"],
                        env)
            timed("swarm init solo (already running)", [*provision, "swarm", "init", "solo"], env)
            timed("rm solo (last manager, no workers)", [*provision, "rm", "-y", "solo"], env)
            timed("create -d local c-3 (for the join)", [*provision, "create", *local, "c-3"], env)
            timed("swarm join c-1 c-3 (to Ready)", [*provision, "swarm", "join", "c-1", "c-3"], env)
            print(f"{'cluster of 2 / one machine':<36}{two / one:8.2f} x")
        finally:
            for name in ("solo", "c-3", "c-2", "c-1"):
                subprocess.run([*provision, "rm", "-y", "-f", name], env=env, capture_output=True)


if __name__ == "__main__":
    main()
