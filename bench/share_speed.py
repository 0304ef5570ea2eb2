#!/usr/bin/env python3
"""A shared folder against the VM's own disk, in a `local` machine: sequential write and read of 100 MiB
and `find` over 10,000 small files. Goal (issue 18): the share reads at least 0.5x the VM's own disk.

    python3 bench/share_speed.py [--accel tcg] [--machine NAME --guest-dir DIR]

Without --machine it creates a machine in a store of its own sharing a temporary folder, and removes it
afterwards; with --machine it uses a running machine of your store and a folder under one of its shares.
Every figure is taken inside the guest, with the guest's page cache dropped before each read and each
`find` (the host's page cache stays warm: the files were just written there, as a user's files would be).
The share is measured as the machine mounts it, then remounted with other 9p options in its place (and
mounted back), so the choice of mount options is made by figures too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from provision_drivers.shares import MOUNT_OPTIONS  # noqa: E402

SIZE_MIB = 100
SMALL_FILES = 10_000
GOAL = 0.5
# 9p options measured beside the machine's own: the kernel's default message size, and the other caches.
VARIANTS = ("trans=virtio,version=9p2000.L,cache=mmap",
            "trans=virtio,version=9p2000.L,msize=512000,cache=none",
            "trans=virtio,version=9p2000.L,msize=512000,cache=loose")

# Runs in the guest as root: prints "write T0 T1", "read T0 T1", "find T0 T1 COUNT" for folder $1 (the
# image has no bc or awk: the host subtracts).
# The small files are made by the caller (on the host for a share) unless $2 is "make".
GUEST_SCRIPT = r"""
set -eu
dir=$1
now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mkdir -p "$dir"
rm -f "$dir/big"
drop
t0=$(now); dd if=/dev/zero of="$dir/big" bs=1M count=SIZE conv=fsync status=none; t1=$(now)
echo "write $t0 $t1"
drop
t0=$(now); dd if="$dir/big" of=/dev/null bs=1M status=none; t1=$(now)
echo "read $t0 $t1"
rm -f "$dir/big"
if [ "${2:-}" = make ]; then
    mkdir -p "$dir/small"
    (cd "$dir/small" && for d in $(seq 0 99); do mkdir -p d$d; for f in $(seq 0 99); do echo $d$f > d$d/f$f; done; done)
fi
drop
t0=$(now); n=$(find "$dir/small" -type f | wc -l); t1=$(now)
echo "find $t0 $t1 $n"
""".replace("SIZE", str(SIZE_MIB))


def provision(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision.cli.main", *args], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def guest(machine: str, command: str, env: dict[str, str]) -> str:
    result = provision(["ssh", machine, "--", command], env, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"in the guest: {command[:80]}... failed: {result.stderr or result.stdout}")
    return result.stdout


def measure(machine: str, folder: str, env: dict[str, str], make: bool) -> dict[str, float]:
    script = f"sudo sh -c {shlex.quote(GUEST_SCRIPT)} measure {shlex.quote(folder)} {'make' if make else ''}"
    figures: dict[str, float] = {}
    for line in guest(machine, script, env).splitlines():
        words = line.split()
        if words and words[0] in ("write", "read", "find"):
            figures[words[0]] = float(words[2]) - float(words[1])
            if words[0] == "find" and int(words[3]) != SMALL_FILES:
                raise SystemExit(f"find counted {words[3]} files in {folder}, not {SMALL_FILES}")
    return figures


def make_small_files(root: Path) -> None:
    """10,000 small files in 100 folders, written on the host as a user's checkout would be."""
    for d in range(100):
        folder = root / "small" / f"d{d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(100):
            (folder / f"f{f}").write_text(f"{d}{f}\n")


def row(label: str, figures: dict[str, float], disk: dict[str, float]) -> str:
    write = SIZE_MIB / figures["write"]
    read = SIZE_MIB / figures["read"]
    ratios = (f"{read / (SIZE_MIB / disk['read']):5.2f}x  {write / (SIZE_MIB / disk['write']):5.2f}x  "
              f"{disk['find'] / figures['find']:5.2f}x")
    return f"{label:<52}{write:9.1f}{read:9.1f}{figures['find']:9.2f}   {ratios}"


def run(machine: str, host_dir: Path, guest_dir: str, env: dict[str, str]) -> None:
    make_small_files(host_dir)
    disk = measure(machine, "/var/tmp/provision-bench", env, make=True)
    share = measure(machine, guest_dir, env, make=False)
    tag = guest(machine, f"findmnt -n -o SOURCE --target {shlex.quote(guest_dir)}", env).strip()
    print(f"{'':<52}{'write':>9}{'read':>9}{'find':>9}   read/disk write/disk find/disk")
    print(f"{'':<52}{'MiB/s':>9}{'MiB/s':>9}{'s':>9}")
    print(row("VM's own disk (ext4 on virtio-blk, qcow2)", disk, disk))
    print(row(f"share as mounted ({MOUNT_OPTIONS.split(',', 2)[2]})", share, disk))
    # A 9p channel takes one mount at a time: each variant replaces the machine's mount for a while.
    root = guest(machine, f"findmnt -n -o TARGET --target {shlex.quote(guest_dir)}", env).strip()
    for options in VARIANTS:
        guest(machine, f"sudo umount {shlex.quote(root)} && sudo mount -t 9p -o {options} {tag} {shlex.quote(root)}",
              env)
        try:
            figures = measure(machine, guest_dir, env, make=False)
        finally:
            guest(machine, f"sudo umount {shlex.quote(root)} && "
                           f"sudo mount -t 9p -o {MOUNT_OPTIONS} {tag} {shlex.quote(root)}", env)
        print(row(f"share remounted ({options.split(',', 2)[2]})", figures, disk))
    read_ratio = (SIZE_MIB / share["read"]) / (SIZE_MIB / disk["read"])
    verdict = "met" if read_ratio >= GOAL else "NOT met"
    print(f"goal: the share reads at least {GOAL}x the VM's own disk: {read_ratio:.2f}x, {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--machine", help="a running local machine of your store to measure instead of a new one")
    parser.add_argument("--guest-dir", help="with --machine: a folder under one of its shares (made if missing; "
                                            "its small/ subfolder is filled)")
    args = parser.parse_args()
    if args.machine:
        if not args.guest_dir:
            parser.error("--machine needs --guest-dir")
        host_dir = Path(args.guest_dir)  # a share sits at the same path unless HOST_DIR:GUEST_DIR said otherwise
        host_dir.mkdir(parents=True, exist_ok=True)
        run(args.machine, host_dir, args.guest_dir, dict(os.environ))
        return
    from fixtures_vm import IMAGE_CACHE

    with tempfile.TemporaryDirectory(prefix="provision-share-bench-") as tmp:
        work = Path(tmp)
        shared = work / "shared"
        shared.mkdir()
        env = {**os.environ, "PROVISION_STORAGE_PATH": str(work / "store"), "DOCKER_CONFIG": str(work / "docker"),
               "PROVISION_LOCAL_ACCEL": args.accel, "PROVISION_CACHE_PATH": str(IMAGE_CACHE)}
        created = provision(["create", "-d", "local", "--local-image", "debian-docker", "--local-memory", "1536",
                             "--local-share-folder", str(shared), "bench"], env, timeout=1800)
        try:
            if created.returncode != 0:
                raise SystemExit(f"create failed: {created.stderr}")
            run("bench", shared / "bench", str(shared / "bench"), env)
        finally:
            provision(["rm", "-f", "bench"], env, timeout=600)
    print(f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, accel {args.accel})")


if __name__ == "__main__":
    main()
