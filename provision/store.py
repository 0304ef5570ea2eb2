"""The machine store on disk (DESIGN §3): one directory per machine, records written atomically
under a per-machine lock.

A record that cannot be read comes back as a ``BrokenEntry`` from ``entries()``, so listing and every
command on the other machines keep working; nothing here ever overwrites a record it could not read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import filerules, paths
from .errors import BrokenRecord, MachineExists, MachineNotFound, StoreError
from .fsutil import atomic_write, ensure_dir
from .names import validate_machine_name
from .record import MachineRecord

LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class BrokenEntry:
    name: str
    error: str


def _same_directory(directory: Path, before: os.stat_result) -> bool:
    try:
        now = directory.stat()
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)


def _remove_if_only_lock(directory: Path) -> None:
    try:
        if [p.name for p in directory.iterdir()] == [paths.LOCK]:
            (directory / paths.LOCK).unlink()
            directory.rmdir()
    except OSError:
        pass  # another command is using it now: it is theirs to finish


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()

    # -- layout ----------------------------------------------------------------------------------
    @property
    def machines_dir(self) -> Path:
        return self.root / paths.MACHINES_DIR

    @property
    def certs_dir(self) -> Path:
        return self.root / paths.CERTS_DIR

    @property
    def cache_dir(self) -> Path:
        override = os.environ.get(paths.CACHE_ENV)
        return Path(override).expanduser() if override else self.root / paths.CACHE_DIR

    def machine_dir(self, name: str) -> Path:
        return self.machines_dir / name

    def record_path(self, name: str) -> Path:
        return self.machine_dir(name) / paths.RECORD

    # -- locking ---------------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        import filelock

        directory = self.machine_dir(name)
        lock_path = directory / paths.LOCK
        try:
            before = directory.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise MachineNotFound(name) from None
        lock = filelock.FileLock(str(lock_path), timeout=timeout)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise StoreError(f'machine "{name}" is locked by another provision command (waited {timeout:.0f}s)',
                             machine=name) from exc
        except FileNotFoundError as exc:  # another command removed the machine while this one waited
            raise MachineNotFound(name) from exc
        if not _same_directory(directory, before):
            # Removed while this command waited, and filelock made the directory again for its lock file:
            # take that empty directory back out rather than leave what looks like a broken machine.
            lock.release()
            _remove_if_only_lock(directory)
            raise MachineNotFound(name)
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def lock_store(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """A lock over the whole store, for choosing something unique among its machines (an address)."""
        import filelock

        ensure_dir(self.machines_dir)  # the root with it, private
        try:
            with filelock.FileLock(str(self.root / paths.STORE_LOCK), timeout=timeout):
                yield
        except filelock.Timeout as exc:
            raise StoreError(f"the store is locked by another provision command (waited {timeout:.0f}s)") from exc

    def is_locked(self, name: str) -> bool:
        """True while another command holds the machine's lock (a create in progress, say)."""
        try:
            with self.lock(name, timeout=0):
                return False
        except StoreError:
            return True

    @contextmanager
    def edit(self, name: str, timeout: float = LOCK_TIMEOUT) -> Iterator[MachineRecord]:
        """The machine's record read *after* its lock is taken, the lock held until the block ends.

        Every read-modify-write of a record goes through here: a record loaded before the lock and
        saved after it would overwrite what another command saved in between (a new cloud address
        recorded by ``start`` lost to a concurrent ``regenerate-certs``).
        """
        validate_machine_name(name)
        with self.lock(name, timeout):
            yield self.load(name)

    # -- reading ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.machines_dir.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def exists(self, name: str) -> bool:
        return self.machine_dir(name).is_dir()

    def load(self, name: str) -> MachineRecord:
        validate_machine_name(name)
        path = self.record_path(name)
        if not self.machine_dir(name).is_dir():
            raise MachineNotFound(name)
        if self.machine_dir(name).is_symlink():  # never read a record from wherever a link points
            raise BrokenRecord(f'machine "{name}": {self.machine_dir(name)} is a symbolic link, not a machine '
                               "directory (`rm -f` removes the link only)", machine=name)
        try:
            data = filerules.read_json(str(path), follow=False)
        except FileNotFoundError as exc:
            raise BrokenRecord(f'machine "{name}": its record {path} is missing', machine=name) from exc
        except OSError as exc:
            raise BrokenRecord(f'machine "{name}": cannot read {path}: {exc.strerror}', machine=name) from exc
        except json.JSONDecodeError as exc:
            raise BrokenRecord(f'machine "{name}": {path} is not valid JSON ({exc.msg} at line {exc.lineno})',
                               machine=name) from exc
        except ValueError as exc:  # not UTF-8, nested too deeply
            raise BrokenRecord(f'machine "{name}": {path} is not valid JSON ({exc})', machine=name) from exc
        try:
            record = MachineRecord.from_dict(data)
        except BrokenRecord as exc:
            raise BrokenRecord(f'machine "{name}": {path}: {exc.message}', machine=name) from exc
        if record.name != name:
            raise BrokenRecord(f'machine "{name}": its record names "{record.name}"', machine=name)
        return record

    def entries(self) -> list[MachineRecord | BrokenEntry]:
        result: list[MachineRecord | BrokenEntry] = []
        for name in self.names():
            try:
                result.append(self.load(name))
            except StoreError as exc:
                result.append(BrokenEntry(name, exc.message))
            except MachineNotFound:  # removed while we listed
                continue
            except Exception as exc:  # an invalid directory name left in the store
                result.append(BrokenEntry(name, str(exc)))
        return result

    # -- writing ---------------------------------------------------------------------------------
    def claim(self, record: MachineRecord) -> None:
        """Create a new machine's directory and first record; refuse a name already taken."""
        validate_machine_name(record.name)
        ensure_dir(self.machines_dir)
        try:
            self.machine_dir(record.name).mkdir(mode=0o700)
        except FileExistsError as exc:
            raise MachineExists(record.name) from exc
        try:
            self.save(record)
        except StoreError:  # no record could be written (a full disk): leave no half-made machine behind
            shutil.rmtree(self.machine_dir(record.name), ignore_errors=True)
            raise

    def save(self, record: MachineRecord) -> None:
        directory = self.machine_dir(record.name)
        if not directory.is_dir():
            raise MachineNotFound(record.name)
        atomic_write(directory / paths.RECORD, json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")

    def write_file(self, name: str, filename: str, data: bytes | str, mode: int = 0o600) -> Path:
        path = self.machine_dir(name) / filename
        atomic_write(path, data, mode)
        return path

    def delete(self, name: str) -> None:
        directory = self.machine_dir(name)
        if not directory.is_dir():
            raise MachineNotFound(name)
        if directory.is_symlink():  # the link goes, never what it points at
            directory.unlink()
            return
        # Rename first so a half-deleted directory never looks like a machine.
        graveyard = self.machines_dir / f".removing-{name}-{os.getpid()}"
        try:
            os.replace(directory, graveyard)
        except FileNotFoundError:  # another command removed it first
            raise MachineNotFound(name) from None
        shutil.rmtree(graveyard, ignore_errors=True)
