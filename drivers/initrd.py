"""A small initramfs for provision's Debian image: the modules that reach a virtio disk, a static
busybox, and an init that mounts ``/dev/vda`` and hands over to systemd.

Debian's own initrd (initramfs-tools) starts udev, probes for every kind of root device and runs a
dozen scripts before the root is mounted: under TCG that is close to two seconds of every boot. The
machine's hardware is known (QEMU's virtio disk, an ext4 root without partitions), so the init here
loads exactly what modules.dep says that needs, in dependency order, and nothing else. Debian's initrd
stays in the image as the fallback when this one cannot be built (a kernel with compressed modules in
a format Python cannot read).
"""

from __future__ import annotations

import gzip
import io
import lzma
import stat
from dataclasses import dataclass
from pathlib import Path

# What the root on QEMU's virtio disk needs; each module's own dependencies come from modules.dep. ext4
# asks the crypto API for crc32c at mount (a soft dependency, not in modules.dep): loaded before it.
ROOT_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
BUSYBOX = "bin/busybox"  # from Debian's busybox-static


class InitrdError(Exception):
    """The small initramfs cannot be built from this root; the caller keeps Debian's."""


@dataclass(frozen=True)
class _Entry:
    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def module_load_order(modules_dir: Path, wanted: tuple[str, ...] = ROOT_MODULES) -> list[str]:
    """Paths (relative to ``modules_dir``) of the modules ``wanted`` needs, each after its dependencies.
    Modules built into the kernel (modules.builtin) need nothing loaded."""
    try:
        dep_lines = (modules_dir / "modules.dep").read_text().splitlines()
        builtin_lines = (modules_dir / "modules.builtin").read_text().splitlines()
    except OSError as exc:
        raise InitrdError(f"no module index in {modules_dir}: {exc.strerror}") from exc
    deps: dict[str, list[str]] = {}
    path_of: dict[str, str] = {}
    for line in dep_lines:
        path, _, rest = line.partition(":")
        path_of[_module_name(path)] = path
        deps[path] = rest.split()
    builtin = {_module_name(line) for line in builtin_lines if line.strip()}
    order: list[str] = []

    def visit(path: str, trail: tuple[str, ...]) -> None:
        if path in order:
            return
        if path in trail:
            raise InitrdError(f"modules.dep has a cycle through {path}")
        for dep in deps.get(path, []):
            visit(dep, (*trail, path))
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in path_of:
            raise InitrdError(f"the kernel has no module {name}")
        visit(path_of[key], ())
    return order


def _module_name(path: str) -> str:
    base = Path(path.strip()).name
    for suffix in (".xz", ".gz", ".zst"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        raise InitrdError(f"{path.name} is zstd-compressed; busybox insmod needs it plain")
    return data


def build_initrd(root: Path, kernel_version: str, init_script: str,
                 modules: tuple[str, ...] = ROOT_MODULES) -> bytes:
    """A gzip-compressed newc cpio archive: /init, busybox, the modules and the order to load them in."""
    modules_dir = root / "lib" / "modules" / kernel_version
    order = module_load_order(modules_dir, modules)
    busybox = root / BUSYBOX
    if not busybox.is_file():
        raise InitrdError(f"no static busybox at /{BUSYBOX} in the image")
    entries = [_Entry(d, stat.S_IFDIR | 0o755) for d in ("bin", "dev", "proc", "root", "modules")]
    entries.append(_Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(_Entry(BUSYBOX, stat.S_IFREG | 0o755, busybox.read_bytes()))
    entries.append(_Entry("init", stat.S_IFREG | 0o755, init_script.encode()))
    names = []
    for index, relative in enumerate(order):
        name = f"{index:02d}-{_module_name(relative)}.ko"
        entries.append(_Entry(f"modules/{name}", stat.S_IFREG | 0o644, _module_bytes(modules_dir / relative)))
        names.append(name)
    entries.append(_Entry("modules/order", stat.S_IFREG | 0o644, ("\n".join(names) + "\n").encode()))
    return gzip.compress(_cpio(entries), compresslevel=6, mtime=0)


def _cpio(entries: list[_Entry]) -> bytes:
    """The newc format the kernel unpacks: a hex header per entry, name and data padded to 4 bytes."""
    out = io.BytesIO()
    for inode, entry in enumerate([*entries, _Entry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (inode, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, entry.rdev[0], entry.rdev[1], len(name), 0)
        out.write(b"070701" + b"".join(b"%08X" % value for value in fields))
        out.write(name)
        out.write(b"\0" * (-(110 + len(name)) % 4))
        out.write(entry.data)
        out.write(b"\0" * (-len(entry.data) % 4))
    return out.getvalue()
