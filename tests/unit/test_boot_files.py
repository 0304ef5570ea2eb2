"""The local image's boot files: the ELF kernel taken out of a bzImage (PVH boot), and the small initramfs."""

from __future__ import annotations

import gzip
import lzma
import stat
import struct
from pathlib import Path

import pytest

from provision_drivers.initrd import InitrdError, build_initrd, module_load_order
from provision_drivers.kernelfile import extract_vmlinux, write_boot_kernel

FAKE_ROOT_MODULES = ("virtio_pci", "virtio_blk", "ext4")  # what the fake kernels below offer
PVH_NOTE = struct.pack("<III", 4, 8, 18) + b"Xen\x00" + struct.pack("<Q", 0x1000000)


def _bzimage(payload: bytes, compress=lzma.compress) -> bytes:  # type: ignore[no-untyped-def]
    # A real bzImage is a real-mode set-up, a decompressor, then the compressed ELF: only the last matters here.
    return b"MZ" + b"\x90" * 4096 + compress(payload) + b"\0" * 64


def test_the_elf_kernel_with_a_pvh_entry_comes_out_of_an_xz_or_gzip_bzimage(tmp_path: Path) -> None:
    elf = b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 100 + PVH_NOTE + b"kernel text" * 100
    assert extract_vmlinux(_bzimage(elf)) == elf
    assert extract_vmlinux(_bzimage(elf, compress=lambda data: gzip.compress(data))) == elf
    (tmp_path / "vmlinuz").write_bytes(_bzimage(elf))
    target = write_boot_kernel(tmp_path / "vmlinuz", tmp_path)
    assert (target.name, target.read_bytes()) == ("vmlinux", elf)


def test_a_kernel_without_a_pvh_entry_is_booted_as_it_came(tmp_path: Path) -> None:
    """QEMU refuses an ELF kernel without the PVH note: the bzImage is kept instead."""
    no_note = b"\x7fELF" + b"\0" * 200
    bzimage = _bzimage(no_note)
    assert extract_vmlinux(bzimage) is None
    assert extract_vmlinux(b"MZ not a kernel at all") is None
    (tmp_path / "k").mkdir()
    (tmp_path / "vmlinuz-x").write_bytes(bzimage)
    target = write_boot_kernel(tmp_path / "vmlinuz-x", tmp_path / "k")
    assert (target.name, target.read_bytes()) == ("vmlinuz", bzimage)


def _modules_dir(tmp_path: Path, dep: str, builtin: str = "") -> Path:
    modules = tmp_path / "root" / "lib" / "modules" / "6.1.0-test"
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text(dep)
    (modules / "modules.builtin").write_text(builtin)
    return modules


def test_modules_load_after_what_they_need_and_builtins_are_skipped(tmp_path: Path) -> None:
    modules = _modules_dir(tmp_path, (
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko "
        "kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko: kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/fs/nfs/nfs.ko:\n"), builtin="kernel/fs/ext4/ext4.ko\n")
    assert module_load_order(modules, FAKE_ROOT_MODULES) == [
        "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko"]
    with pytest.raises(InitrdError, match="no module virtio_scsi"):
        module_load_order(modules, ("virtio_scsi",))


def test_a_dependency_cycle_or_a_missing_index_is_refused(tmp_path: Path) -> None:
    modules = _modules_dir(tmp_path, "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n")
    with pytest.raises(InitrdError, match="cycle"):
        module_load_order(modules, ("a",))
    with pytest.raises(InitrdError, match="no module index"):
        module_load_order(tmp_path / "nowhere", ("a",))


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, content, (rdev major, minor)), read the way the kernel's unpacker does."""
    entries, offset = {}, 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i: offset + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[offset + 110: offset + 110 + namesize - 1].decode()
        offset += 110 + namesize
        offset += -offset % 4
        content = data[offset: offset + filesize]
        offset += filesize
        offset += -offset % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (fields[1], content, (fields[9], fields[10]))


def test_the_initramfs_holds_init_busybox_and_the_modules_in_load_order(tmp_path: Path) -> None:
    modules = _modules_dir(tmp_path, (
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko\n"),
        builtin="kernel/fs/ext4/ext4.ko\n")
    for path, content in (("kernel/drivers/virtio/virtio_pci.ko", b"pci"),
                          ("kernel/drivers/virtio/virtio_ring.ko", b"ring")):
        (modules / path).parent.mkdir(parents=True, exist_ok=True)
        (modules / path).write_bytes(content)
    (modules / "kernel/drivers/block").mkdir(parents=True)
    (modules / "kernel/drivers/block/virtio_blk.ko.xz").write_bytes(lzma.compress(b"blk"))
    root = tmp_path / "root"
    with pytest.raises(InitrdError, match="busybox"):
        build_initrd(root, "6.1.0-test", "#!/bin/busybox sh\n", FAKE_ROOT_MODULES)
    (root / "bin").mkdir()
    (root / "bin" / "busybox").write_bytes(b"\x7fELF busybox")

    entries = _read_newc(gzip.decompress(build_initrd(root, "6.1.0-test", "#!/bin/busybox sh\necho hi\n",
                                                      FAKE_ROOT_MODULES)))
    mode, init, _ = entries["init"]
    assert stat.S_ISREG(mode) and mode & 0o777 == 0o755 and init == b"#!/bin/busybox sh\necho hi\n"
    assert entries["bin/busybox"][1] == b"\x7fELF busybox"
    console_mode, _, rdev = entries["dev/console"]
    assert stat.S_ISCHR(console_mode) and rdev == (5, 1)  # the kernel opens it for /init's output
    order = entries["modules/order"][1].decode().split()
    assert order == ["00-virtio_ring.ko", "01-virtio_pci.ko", "02-virtio_blk.ko"]
    # An xz-compressed module is stored plain: busybox's insmod loads it as it is.
    assert [entries[f"modules/{name}"][1] for name in order] == [b"ring", b"pci", b"blk"]
    assert all(stat.S_ISDIR(entries[d][0]) for d in ("dev", "proc", "root", "modules"))


def test_a_zstd_module_keeps_debians_initrd(tmp_path: Path) -> None:
    modules = _modules_dir(tmp_path, "kernel/drivers/block/virtio_blk.ko.zst:\n")
    (modules / "kernel/drivers/block").mkdir(parents=True)
    (modules / "kernel/drivers/block/virtio_blk.ko.zst").write_bytes(b"(\xb5/\xfd")
    (tmp_path / "root" / "bin").mkdir()
    (tmp_path / "root" / "bin" / "busybox").write_bytes(b"bb")
    with pytest.raises(InitrdError, match="zstd"):
        build_initrd(tmp_path / "root", "6.1.0-test", "", modules=("virtio_blk",))
