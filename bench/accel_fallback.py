"""What the `auto` accelerator's fallback costs a create: from QEMU's launch under KVM to the TCG guest's
kernel banner, against a launch straight under TCG, on this host.

Usage: python bench/accel_fallback.py [--runs N] [--cache DIR]

Runs the local driver's own create (image from the cache) under `auto` and under `tcg`, stops timing
when the guest kernel prints its banner, removes the machine, and prints one JSON line per run with the
fallback's reason as the driver recorded it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from provision_drivers import qemu  # noqa: E402
from provision_drivers.local import LocalDriver  # noqa: E402
from fixtures_vm import make_context  # noqa: E402


def one(accel: str, cache: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp) / "m", "bench", environ={**os.environ, "PROVISION_LOCAL_ACCEL": accel},
                           cache_dir=cache, local_memory=512)
        driver = LocalDriver(ctx)
        started = time.monotonic()
        try:
            driver.create()
            while qemu.KERNEL_BANNER not in (driver.boot_log() or ""):
                if time.monotonic() - started > 300:
                    raise SystemExit("no kernel banner within 300 s")
                time.sleep(0.05)
            elapsed = round(time.monotonic() - started, 2)
            return {"requested": accel, "ran": ctx.data["accel"], "to_kernel_banner_s": elapsed,
                    "fallback": ctx.data.get("accel_fallback")}
        finally:
            driver.remove()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("PROVISION_TEST_CACHE",
                                                                          Path.home() / ".cache" / "provision-tests")))
    args = parser.parse_args()
    times: dict[str, list[float]] = {"auto": [], "tcg": []}
    for _ in range(args.runs):
        for accel in ("auto", "tcg"):
            result = one(accel, args.cache)
            times[accel].append(float(result["to_kernel_banner_s"]))  # type: ignore[arg-type]
            print(json.dumps(result), flush=True)
    added = statistics.median(times["auto"]) - statistics.median(times["tcg"])
    print(json.dumps({"median_auto_s": statistics.median(times["auto"]),
                      "median_tcg_s": statistics.median(times["tcg"]), "fallback_adds_s": round(added, 2)}))


if __name__ == "__main__":
    main()
