"""Crash-safe file writes: a reader sees the old file or the new one, never half of either.

Plain ``os`` calls only: this module sits on the start-up path of ``use`` (``provision.cli.light``).
"""

from __future__ import annotations

import itertools
import os

_COUNTER = itertools.count()


def ensure_dir(path: "Path", mode: int = 0o700) -> "Path":  # noqa: F821
    """``path`` and every missing parent, each made with ``mode`` (mkdir's ``parents`` would make the
    parents, the store root among them, with the umask's 0755); existing directories are left as they are."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            pass
    return path


def atomic_write(path: "os.PathLike[str] | str", data: bytes | str, mode: int = 0o600) -> None:
    if isinstance(data, str):
        data = data.encode()
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.{next(_COUNTER)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    except OSError as exc:  # a full disk, a read-only or vanished directory: the old file is untouched
        from .errors import StoreError

        kept = "the previous version is kept" if os.path.exists(target) else "nothing was written"
        raise StoreError(f"cannot write {target}: {exc.strerror or exc} ({kept})") from exc
    _fsync_dir(directory)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading files someone else wrote ----------------------------------------------------------------
# Bounds for what is read whole: a JSON file (a record, docker's config, Docker Machine's config.json),
# and a key or a certificate.
JSON_LIMIT = 1 << 20
PEM_LIMIT = 64 << 10


def read_regular(path: str, limit: int, *, follow: bool = True) -> bytes:
    """At most ``limit`` bytes of the regular file at ``path`` (symlinks followed, as docker follows its own,
    unless ``follow`` is False: then a link is refused too).

    A FIFO, a device or a directory never blocks or is read: each is ``OSError`` whose ``strerror`` says
    what it is (a phrase for ``f"cannot read {path}: {exc.strerror}"``), as is a file larger than ``limit``.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags if follow else flags | os.O_NOFOLLOW)
    except OSError as exc:
        if not follow and os.path.islink(path):
            import errno

            raise OSError(errno.ELOOP, "a symbolic link, not a file provision wrote", path) from exc
        raise
    return _read_open(fd, limit)


def read_inside(root: str, path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file at ``path``, which must lie under directory ``root``.

    Each component below ``root`` is opened relative to its parent without following a symlink, so
    neither a ``..`` nor a link (to a directory or a file) leads anywhere outside ``root``. Missing:
    ``FileNotFoundError``; anything else refused: ``OSError`` whose ``strerror`` says why.
    """
    import errno

    relative = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
    parts = relative.split(os.sep)
    if not os.path.isabs(path) or relative == os.curdir or parts[0] == os.pardir:
        raise OSError(errno.EACCES, f"outside {root}, so never read", path)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            except OSError as exc:
                raise _refusal(exc, part, directory, "a directory") from None
            os.close(directory)
            directory = below
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        except OSError as exc:
            raise _refusal(exc, parts[-1], directory, "a file") from None
    finally:
        os.close(directory)
    return _read_open(fd, limit)


def _refusal(exc: OSError, part: str, directory: int, wanted: str) -> OSError:
    """The open of ``part`` failed: a symlink in the way says so, anything else is as it was."""
    import errno
    import stat

    try:
        if stat.S_ISLNK(os.stat(part, dir_fd=directory, follow_symlinks=False).st_mode):
            return OSError(errno.ELOOP, f"{part} is a symbolic link, not {wanted}; links are not followed")
    except OSError:
        pass
    if exc.errno == errno.ENOTDIR:
        return OSError(errno.ENOTDIR, f"{part} is not a directory")
    return exc


def _read_open(fd: int, limit: int) -> bytes:
    import errno
    import stat

    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a directory" if stat.S_ISDIR(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device")
            raise OSError(errno.EINVAL, f"{kind}, not a regular file")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        return data
    finally:
        os.close(fd)
