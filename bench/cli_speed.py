#!/usr/bin/env python3
"""Time the commands shells run often, and `ls` over 100 machines whose endpoints refuse connections.

Goals (issue 2): env, active, use, url, config at most 50 ms median; ls over 100 such machines at most
0.45 s. Docker Machine measured on the same kind of machine: env 19-24 ms, ls over 100 machines 0.93 s.

The commands run from a virtualenv holding only provision and its dependencies, as `pipx install` would
give a user (a crowded global site-packages adds its own start-up cost to any Python program).

    python3 bench/cli_speed.py [--runs N] [--venv DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: connections are refused


def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", str(REPO)], check=True)
    return path / "bin" / "provision"


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode()}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "provision-bench-venv")
    args = parser.parse_args()
    provision = str(ensure_venv(args.venv))
    work = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
           "SHELL": "/bin/bash"}
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        env.pop(var, None)
    print(f"creating 100 machines (none driver, refused endpoints) in {work}", file=sys.stderr)
    sys.path.insert(0, str(REPO))
    from provision.machines import CreateRequest, Machines

    service = Machines.open(work / "store", environ=env)
    for i in range(100):
        service.create(CreateRequest(name=f"m{i:03d}", driver="none",
                                     driver_flags={"url": f"tcp://127.0.0.1:{closed_port()}"}))
    subprocess.run([provision, "use", "m000"], env=env, check=True, capture_output=True)
    venv_python = str(Path(provision).parent / "python")
    cases = {
        "python -c pass": [venv_python, "-c", "pass"],  # the floor: interpreter start-up on this machine
        "env m000": [provision, "env", "m000"],
        "url m000": [provision, "url", "m000"],
        "config m000": [provision, "config", "m000"],
        "active": [provision, "active"],
        "use m000": [provision, "use", "m000"],
        "ls (100 machines)": [provision, "ls"],
        "inspect m000": [provision, "inspect", "m000"],  # no quick tier: click and the core service
    }
    print(f"{'command':<22}{'median ms':>10}{'min ms':>9}{'max ms':>9}   goal")
    for label, argv in cases.items():
        samples = timed(argv, env, args.runs if "ls" not in label else max(5, args.runs // 3))
        goal = ("<= 450 ms" if label.startswith("ls") else "(baseline)" if "pass" in label
                else "(full CLI)" if label.startswith("inspect") else "<= 50 ms")
        print(f"{label:<22}{statistics.median(samples) * 1000:>10.1f}{min(samples) * 1000:>9.1f}"
              f"{max(samples) * 1000:>9.1f}   {goal}")
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"{args.runs} runs)")


if __name__ == "__main__":
    main()
