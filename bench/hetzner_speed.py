#!/usr/bin/env python3
"""The hetzner driver against the fake Hetzner Cloud API (tests/fake_hetzner.py), no VM needed:

    python3 bench/hetzner_speed.py [--runs 5]

Prints the driver's own create and remove times (the API side only: no SSH, no engine; the end-to-end
figures with the test VM come from tests/test_hetzner_e2e.py), then the table of injected failures: for
each, `provision create -d hetzner` run through the CLI, the one line it ended with, and what was left in
the fake's account and the store after its rollback. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_hetzner import Fault, FakeHetzner  # noqa: E402

FAILURES: list[tuple[str, Any]] = [
    ("token refused (401 unauthorized)", lambda fake, token: fake.revoke_token(token)),
    ("token refused at the firewall step (401)", lambda fake, token: fake.inject(Fault(
        "POST /firewalls", code="unauthorized", message="unable to authenticate"))),
    ("SSH key quota exceeded (403)", lambda fake, token: fake.limits.update(ssh_keys=0)),
    ("firewall quota exceeded (403)", lambda fake, token: fake.limits.update(firewalls=0)),
    ("server quota exceeded (403)", lambda fake, token: fake.limits.update(servers=0)),
    ("server create refused (500)", lambda fake, token: fake.inject(Fault("POST /servers"))),
    ("create_server action ends in error", lambda fake, token: fake.inject(Fault(
        "POST /servers", code="placement_error", message="no capacity left", action_error=True))),
    ("cluster network quota exceeded (403)", lambda fake, token: fake.limits.update(networks=0)),
    ("attach_to_network action ends in error", lambda fake, token: fake.inject(Fault(
        "POST /servers/{id}/actions/attach_to_network", code="ip_not_available", message="no IP left",
        action_error=True))),
]


def driver_times(fake: FakeHetzner, work: Path, runs: int) -> tuple[list[float], list[float]]:
    from provision.driver import DriverContext
    from provision.options import resolve
    from provision.sshkeys import generate_ed25519
    from provision_drivers.hetzner import HetznerDriver

    creates, removes = [], []
    for n in range(runs):
        machine_dir = work / f"m{n}"
        machine_dir.mkdir(parents=True)
        generate_ed25519(machine_dir / "id_ed25519", f"bench-{n}")
        options = resolve(HetznerDriver, {"hetzner_endpoint": fake.url}, os.environ)
        driver = HetznerDriver(DriverContext(f"bench{n}", machine_dir, work / "cache", options))
        started = time.monotonic()
        driver.create()
        creates.append(time.monotonic() - started)
        started = time.monotonic()
        driver.remove()
        removes.append(time.monotonic() - started)
    return creates, removes


def failure_row(name: str, inject: Any, work: Path) -> tuple[str, str, str]:
    from provision.cli.main import main

    token = os.environ["HCLOUD_TOKEN"]
    with FakeHetzner(tokens=(token,), action_polls=2, action_seconds=1.0) as fake:
        inject(fake, token)
        cluster = ["-n", "1", "--swarm"] if "network" in name else []
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["create", "-d", "hetzner", "--hetzner-endpoint", fake.url, *cluster, "box"])
        fake.add_token(token)
        left = [f"{kind}: {', '.join(names)}" for kind, names in fake.resources().items() if names]
        store = work / "store" / "machines"
        left += [f"record {p.name}" for p in store.iterdir()] if store.exists() else []
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        return name, f"exit {code}: {lines[-1] if lines else ''}", "; ".join(left) or "nothing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    token = "b" * 64
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        work = Path(tmp)
        os.environ.update(HCLOUD_TOKEN=token, PROVISION_STORAGE_PATH=str(work / "store"),
                          DOCKER_CONFIG=str(work / "docker"), HOME=str(work))
        for var in ("HETZNER_API_TOKEN", "HCLOUD_CONTEXT", "HCLOUD_CONFIG", "HCLOUD_ENDPOINT"):
            os.environ.pop(var, None)
        with FakeHetzner(tokens=(token,), action_polls=2, action_seconds=1.0) as fake:
            creates, removes = driver_times(fake, work / "driver", args.runs)
        print(f"driver create against the fake: median {statistics.median(creates):.2f} s "
              f"(min {min(creates):.2f}, max {max(creates):.2f}, {args.runs} runs)")
        print(f"driver remove against the fake: median {statistics.median(removes):.2f} s "
              f"(min {min(removes):.2f}, max {max(removes):.2f})")
        print("\n| injected failure | what create said | left after the rollback |\n|---|---|---|")
        for name, inject in FAILURES:
            print("| {} | {} | {} |".format(*failure_row(name, inject, work)))


if __name__ == "__main__":
    main()
