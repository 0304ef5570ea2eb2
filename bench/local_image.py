"""Figures for the local driver: base image build time and size, and boot-to-SSH time under TCG.

Usage: python bench/local_image.py [debian|debian-docker ...] [--cache DIR] [--accel tcg]

Builds each image unless the cache already holds it (the build time then comes from its manifest),
boots one machine from it, and times the path from ``create()`` to an SSH login with cloud-init done.
Prints one JSON object per image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from provision_drivers import images  # noqa: E402
from provision_drivers.local import LocalDriver  # noqa: E402
from fixtures_vm import make_context, wait_for_ssh  # noqa: E402


def measure(variant: str, cache: Path, accel: str) -> dict[str, object]:
    started = time.monotonic()
    image = images.ensure_image(variant, cache_dir=cache, mirror=images.host_debian_mirror(),
                                progress=lambda message: print(f"  {message}", file=sys.stderr))
    facts = images.manifest_facts(image)
    figures: dict[str, object] = {
        "image": variant,
        "build_seconds": facts.get("build_seconds"),
        "ensure_seconds_this_run": round(time.monotonic() - started, 1),
        "disk_mib": round(image.disk.stat().st_size / 2**20, 1),
        "kernel_initrd_mib": round(sum(p.stat().st_size for p in (image.kernel, image.initrd) if p) / 2**20, 1),
    }
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        ctx = make_context(Path(tmp) / "machine", f"bench-{variant}", cache_dir=cache, local_accel=accel,
                           local_image=variant, local_memory=1536)
        driver = LocalDriver(ctx)
        booted = time.monotonic()
        try:
            driver.create()
            figures["create_seconds"] = round(time.monotonic() - booted, 1)
            wait_for_ssh(driver, Path(tmp) / "known_hosts")
            figures["boot_to_ssh_seconds"] = round(time.monotonic() - booted, 1)
            figures["accel"] = ctx.data["accel"]
        finally:
            driver.remove()
    figures["host_load_1min"] = os.getloadavg()[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["debian"], choices=sorted(images.VARIANTS))
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PROVISION_TEST_CACHE", Path.home() / ".cache" / "provision-tests")))
    parser.add_argument("--accel", default="tcg")
    args = parser.parse_args()
    for variant in args.variants:
        print(json.dumps(measure(variant, args.cache, args.accel)), flush=True)


if __name__ == "__main__":
    main()
