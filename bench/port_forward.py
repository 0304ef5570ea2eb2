#!/usr/bin/env python3
"""Published ports on a local machine: how soon they answer, and how much they carry.

Goals (issue 18): a published port answers on 127.0.0.1 within 2 s of the container starting; a forwarded
port carries at least 0.5x what the engine's own forwarded port does.

    python3 bench/port_forward.py [--samples 5] [--accel tcg]

It creates a local machine in a temporary store (the image cache is shared), loads the test server image
(tests/data/portsrv.c), then:
- runs a container publishing a new port, `samples` times, and times from `docker run` returning to the
  port answering on 127.0.0.1 (the agent's events window is 5 s; an event reconciles at once);
- reads 100 MiB from the container through its forwarded port (the agent's QEMU forward), and 100 MiB of
  a file in a container through the engine's own forwarded port (`docker cp` over mutual TLS), and prints
  both rates and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

import portsrv  # noqa: E402

BULK_BYTES = 100 << 20


def provision_argv() -> list[str]:
    beside = Path(sys.executable).parent / "provision"
    return [str(beside) if beside.exists() else shutil.which("provision") or "provision"]


def run(argv: list[str], env: dict[str, str], timeout: float = 1800) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr}")
    return done.stdout


def read_all(port: int) -> int:
    total = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        while chunk := conn.recv(1 << 20):
            total += len(chunk)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--accel", default=os.environ.get("PROVISION_LOCAL_ACCEL", "tcg"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="provision-bench-ports-"))
    cache = os.environ.get("PROVISION_CACHE_PATH") or str(Path.home() / ".cache" / "provision-tests")
    env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
           "PROVISION_CACHE_PATH": cache, "PROVISION_LOCAL_ACCEL": args.accel}
    provision = provision_argv()
    docker = ["docker", "--context", "bench-ports"]
    try:
        run(provision + ["create", "-d", "local", "bench-ports"], env)
        run(docker + ["import", str(portsrv.image_tar(work)), portsrv.IMAGE], env)
        delays = []
        for sample in range(args.samples):
            port = 18700 + sample
            run(docker + ["run", "-d", "--name", f"s{sample}", "-p", f"{port}:8000", portsrv.IMAGE, "/portsrv"], env)
            delays.append(portsrv.wait_for(lambda: portsrv.tcp(port), "tcp-ok", 30))
            run(docker + ["rm", "-f", f"s{sample}"], env)
        print(f"docker run -p to the port answering on 127.0.0.1: median {statistics.median(delays):.2f} s, "
              f"max {max(delays):.2f} s over {len(delays)} runs (goal: 2 s)")

        run(docker + ["run", "-d", "--name", "bulk", "-p", "18799:8002", portsrv.IMAGE, "/portsrv"], env)
        portsrv.wait_for(lambda: "up" if _listening(18799) else "down", "up", 30)
        started = time.monotonic()
        received = read_all(18799)
        forwarded = received / (time.monotonic() - started) / (1 << 20)
        blob = work / "blob"
        with blob.open("wb") as handle:
            handle.truncate(BULK_BYTES)
        run(docker + ["cp", str(blob), "bulk:/blob"], env)
        started = time.monotonic()
        copy = subprocess.run(docker + ["cp", "bulk:/blob", "-"], env=env, stdout=subprocess.PIPE, check=True)
        engine = len(copy.stdout) / (time.monotonic() - started) / (1 << 20)
        print(f"through a forwarded port: {received >> 20} MiB at {forwarded:.0f} MiB/s")
        print(f"through the engine's own port (docker cp, mutual TLS): {len(copy.stdout) >> 20} MiB at {engine:.0f} MiB/s")
        print(f"ratio {forwarded / engine:.2f}x (goal: at least 0.5x)")
    finally:
        subprocess.run(provision + ["rm", "-f", "bench-ports"], env=env, capture_output=True, timeout=600)
        shutil.rmtree(work, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
