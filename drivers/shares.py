"""The user's folders in a local machine: virtio-9p shares, mounted by systemd at every boot.

QEMU serves each host folder itself (``-fsdev local``), so nothing else runs on the host. With
``security_model=none`` QEMU creates files with its own credentials: a file a container writes as root
lands on the host owned by the user who runs QEMU, and a guest's ``chown`` there is dropped silently
instead of failing. virtiofs was not chosen: it needs a ``virtiofsd`` process per share (Debian 12 ships
only QEMU's deprecated C one, which wants root) and all guest memory as a shared-memory backend; the
figures that made 9p good enough are in the README (``bench/share_speed.py``).

The guest mounts each share from a ``.mount`` unit that the seed carries (written by the first-boot
generator before systemd loads its units): a unit, not an ``/etc/fstab`` line, because the generator
runs beside systemd's own fstab generator, which may already have read the file.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provision.driver import HostFile
from provision.errors import UsageError
from provision.templating import render

from .images import IMAGE_USER

UNIT_DIR = "/etc/systemd/system"
# The drop-in that pulls the share mounts into every boot (a unit enabled in a .wants directory would
# need a symlink; a drop-in is a plain file like the rest of the seed's).
WANTS_DROPIN = f"{UNIT_DIR}/local-fs.target.d/50-provision-shares.conf"
# msize: the largest 9p message; 512000 bytes is the most the virtio transport takes, and the kernel's
# default (128 KiB) read and wrote at a third of the speed. cache=mmap keeps no page cache of file data
# beyond what mmap needs, so a file changed on the host is read afresh in the guest, and unlike cache=none
# it allows a shared writable mmap; cache=loose wrote at 3-4 MiB/s. Figures: the README (bench/share_speed.py).
MOUNT_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000,cache=mmap"
TAG_PREFIX = "provision"
# Guest directories a share may not cover or sit under: the system (with /run, where the first boot mounts
# the seed), Docker's state, and the login user's home (its authorized_keys would vanish behind the share).
FORBIDDEN_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                   "/sbin", "/sys", "/usr", "/var/lib", "/var/log", "/var/run", "/var/cache", "/var/spool",
                   f"/home/{IMAGE_USER}")
# Directories that may hold a share below them but must not be covered by one.
FORBIDDEN_EXACT = ("/", "/home", "/tmp", "/var", "/mnt", "/media", "/opt", "/srv")


@dataclass(frozen=True)
class Share:
    """One shared folder: ``host`` (absolute, symlinks resolved) at ``guest`` in the VM, as 9p ``tag``."""

    host: str
    guest: str
    tag: str

    def to_data(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Share:
        return cls(host=str(data["host"]), guest=str(data["guest"]), tag=str(data["tag"]))

    @property
    def unit_name(self) -> str:
        return mount_unit_name(self.guest)


def split_spec(spec: str, cwd: str) -> tuple[str, str | None]:
    """``HOST_DIR[:GUEST_DIR]`` as Docker Machine's ``--virtualbox-share-folder`` took it. The last colon
    splits, unless the whole text names a host path (a folder with a colon in its name)."""
    host, sep, guest = spec.rpartition(":")
    if not (sep and host and guest) or os.path.exists(os.path.join(cwd, os.path.expanduser(spec))):
        return spec, None
    return host, guest


def plan(folders: Sequence[str], no_share: bool, home: str | None, cwd: str) -> list[Share]:
    """The shares a machine gets: the folders named, else the user's home at the same path; none with
    ``no_share``. Every folder is checked here (``UsageError``, one line), before anything is made."""
    if no_share:
        if folders:
            raise UsageError("--local-no-share and --local-share-folder contradict each other: give one")
        return []
    if not folders:
        if not home:
            raise UsageError("no home directory to share (HOME is unset): give --local-share-folder "
                             "or --local-no-share")
        folders = [home]
    shares: list[Share] = []
    for index, spec in enumerate(folders):
        host_text, guest_text = split_spec(str(spec), cwd)
        given = os.path.normpath(os.path.join(cwd, os.path.expanduser(host_text)))
        host = _readable_dir(given)
        # The guest sees the path as the user types it ($PWD, $HOME), not with its symlinks resolved.
        guest = _guest_dir(guest_text or given)
        shares.append(Share(host=host, guest=guest, tag=f"{TAG_PREFIX}{index}"))
    guests = [s.guest for s in shares]
    duplicate = next((g for g in guests if guests.count(g) > 1), None)
    if duplicate:
        raise UsageError(f"two shared folders would both be mounted at {duplicate} in the machine")
    return shares


def _readable_dir(path: str) -> str:
    flag = "--local-share-folder"
    if not os.path.exists(path):
        raise UsageError(f"{flag}: {path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"{flag}: {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"{flag}: {path} cannot be read by this user (QEMU serves it as you)")
    return str(Path(path).resolve())


def _guest_dir(path: str) -> str:
    if not path.startswith("/"):
        raise UsageError(f"--local-share-folder: the machine's folder {path!r} must be an absolute path")
    if any(ord(ch) < 32 or ch in "\\\x7f" for ch in path):
        raise UsageError(f"--local-share-folder: the machine's folder {path!r} holds a control character "
                         "or a backslash, which a systemd mount unit cannot name")
    guest = posixpath.normpath(path)
    guest = "/" + guest.lstrip("/")  # normpath keeps a leading "//"
    covered = next((t for t in FORBIDDEN_TREES if guest == t or guest.startswith(t + "/")), None)
    if covered or guest in FORBIDDEN_EXACT:
        raise UsageError(f"--local-share-folder: {guest} is a system folder in the machine "
                         f"(a share may not cover {covered or guest}); give HOST_DIR:GUEST_DIR with another "
                         "GUEST_DIR")
    return guest


def mount_unit_name(path: str) -> str:
    """The unit name systemd requires for a mount at ``path`` (``systemd-escape --path --suffix=mount``):
    ``/`` becomes ``-``, and every byte but ASCII letters, digits, ``:``, ``_`` and a non-leading ``.``
    becomes ``\\xNN``."""
    trimmed = posixpath.normpath(path).strip("/")
    if not trimmed:
        return "-.mount"
    out: list[str] = []
    for index, ch in enumerate(trimmed):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and index > 0)):
            out.append(ch)
        else:
            out.extend(f"\\x{byte:02x}" for byte in ch.encode())
    return "".join(out) + ".mount"


def boot_files(shares: Iterable[Share]) -> tuple[HostFile, ...]:
    """The seed's files that mount ``shares`` at every boot, before dockerd starts its containers."""
    shares = list(shares)
    if not shares:
        return ()
    files = [HostFile(f"{UNIT_DIR}/{share.unit_name}", 0o644, render(
        "local/share.mount.j2", host=_unit_text(share.host), where=_unit_text(share.guest), tag=share.tag,
        options=MOUNT_OPTIONS).encode()) for share in shares]
    files.append(HostFile(WANTS_DROPIN, 0o644, render(
        "local/shares-wanted.conf.j2", units=[share.unit_name for share in shares]).encode()))
    return tuple(files)


def _unit_text(value: str) -> str:
    # systemd expands specifiers (%h, %n, ...) in these settings: a literal percent sign is written twice.
    return value.replace("%", "%%")

