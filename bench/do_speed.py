#!/usr/bin/env python3
"""The digitalocean driver against the fake DigitalOcean API (tests/fake_do.py) through the real pydo SDK:
how long create and rm take on the API side, and what each injected failure leaves in the account after
the rollback the core runs (``remove()``).

No VM is involved: the Droplet's addresses are the fake's TEST-NET ones and nothing connects to them. The
create and rm times with a real VM as the Droplet (provisioning included) are printed by
``pytest -s -m do tests/test_digitalocean_e2e.py``.

    python3 bench/do_speed.py [--rounds 5] [--action-polls 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_do import FAILURES, FakeDigitalOcean  # noqa: E402


def driver_for(fake: FakeDigitalOcean, work: Path, name: str) -> object:
    from provision.driver import DriverContext
    from provision.options import resolve
    from provision.sshkeys import generate_ed25519
    from provision_drivers.digitalocean import DigitalOceanDriver

    machine_dir = work / name
    generate_ed25519(machine_dir / "id_ed25519", name)
    options = resolve(DigitalOceanDriver, {"digitalocean_endpoint": fake.url}, dict(os.environ))
    return DigitalOceanDriver(DriverContext(machine_name=name, machine_dir=machine_dir, cache_dir=work / "cache",
                                            options=options, data={}, environ=dict(os.environ)))


def leftovers(fake: FakeDigitalOcean) -> str:
    left = {kind: names for kind, names in fake.resources().items() if names and names != ["provision"]}
    return ", ".join(f"{kind}: {' '.join(names)}" for kind, names in left.items()) or "nothing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--action-polls", type=int, default=2, help="polls an action stays in progress")
    args = parser.parse_args()
    from provision.errors import ProvisionError

    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp, \
            FakeDigitalOcean(action_polls=args.action_polls) as fake:
        work = Path(tmp)
        os.environ.update(REQUESTS_CA_BUNDLE=str(fake.ca_file), DIGITALOCEAN_ACCESS_TOKEN=next(iter(fake.tokens)),
                          XDG_CONFIG_HOME=str(work / "xdg"))
        creates, removes = [], []
        for n in range(args.rounds):
            driver = driver_for(fake, work, f"bench{n}")
            started = time.monotonic()
            driver.create()  # type: ignore[attr-defined]
            creates.append(time.monotonic() - started)
            started = time.monotonic()
            driver.remove()  # type: ignore[attr-defined]
            removes.append(time.monotonic() - started)
        print(f"create (API side, {args.action_polls} polls per action): median {statistics.median(creates):.2f} s, "
              f"max {max(creates):.2f} s over {args.rounds}")
        print(f"rm: median {statistics.median(removes):.2f} s, max {max(removes):.2f} s; left: {leftovers(fake)}")

        print("\n| failure injected | error | left after the rollback |\n|---|---|---|")
        for n, (label, fault, _) in enumerate(FAILURES):
            fake.faults = [dataclasses.replace(fault)]
            driver = driver_for(fake, work, f"fail{n}")
            try:
                driver.create()  # type: ignore[attr-defined]
                error = "(none: the create succeeded)"
            except ProvisionError as exc:
                error = str(exc).splitlines()[0]
            driver.remove()  # type: ignore[attr-defined]
            print(f"| {label} | {error} | {leftovers(fake)} |")


if __name__ == "__main__":
    main()
