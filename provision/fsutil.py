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
