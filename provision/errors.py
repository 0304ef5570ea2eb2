"""The one exception hierarchy for failures a user should see.

The CLI turns any ``ProvisionError`` into a single stderr line and its ``exit_code``; anything else is
a bug and shows a traceback only under ``--debug``.
"""

from __future__ import annotations


class ProvisionError(Exception):
    """A failure explained to the user in one line, with an optional hint."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, machine: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.machine = machine

    def __str__(self) -> str:
        return self.message


class UsageError(ProvisionError):
    """Bad usage: a bad flag value, a bad name, a missing argument."""

    exit_code = 2


class InvalidNameError(UsageError):
    pass


class MachineNotFound(ProvisionError):
    def __init__(self, name: str) -> None:
        # Docker Machine's wording: scripts match on it.
        super().__init__(f'Docker machine "{name}" does not exist', machine=name)


class MachineExists(ProvisionError):
    def __init__(self, name: str) -> None:
        super().__init__(f'Docker machine "{name}" already exists', machine=name)


class HostNotRunning(ProvisionError):
    def __init__(self, name: str | None = None) -> None:
        super().__init__("Host is not running", machine=name)


class StoreError(ProvisionError):
    """The store on disk is unreadable, corrupt or locked."""


class BrokenRecord(StoreError):
    pass


class DriverError(ProvisionError):
    """A driver failed; ``driver`` names it."""

    def __init__(self, message: str, *, driver: str | None = None, hint: str | None = None,
                 machine: str | None = None) -> None:
        super().__init__(message, hint=hint, machine=machine)
        self.driver = driver


class UnknownDriver(UsageError):
    pass


class NotSupported(ProvisionError):
    """The machine's driver cannot do what was asked."""


class CredentialsError(DriverError):
    pass


class SSHError(ProvisionError):
    """SSH could not connect, authenticate, or a remote command failed."""


class HostKeyMismatch(SSHError):
    pass


class RemoteCommandError(SSHError):
    def __init__(self, command: str, exit_code: int, stderr: str, *, machine: str | None = None) -> None:
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        super().__init__(f"remote command failed ({exit_code}): {command}: {tail}", machine=machine)
        self.command = command
        self.remote_exit_code = exit_code
        self.stderr = stderr


class ProvisioningError(ProvisionError):
    pass


class EngineError(ProvisionError):
    """The Docker engine did not answer over TLS."""


class CommandError(ProvisionError):
    """A local program failed or is missing."""

    def __init__(self, message: str, *, argv: list[str] | None = None, returncode: int | None = None,
                 stderr: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class MissingDependency(ProvisionError):
    """A package or program that a driver needs is not installed."""


class TimeoutExpired(ProvisionError):
    pass


class CommandTimedOut(CommandError, TimeoutExpired):
    """A local program still running at its bound, killed: both a failed command and a timeout."""


class Interrupted(ProvisionError):
    exit_code = 130


_OS_HINTS = {
    "EACCES": "check the owner and permissions of that path",
    "EPERM": "check the owner and permissions of that path",
    "EROFS": "the file system is read-only",
    "ENOSPC": "free some space and run the command again",
    "EDQUOT": "a disk quota is full",
    "ENOENT": "it went away while provision ran; run the command again",
    "ELOOP": "it is a symlink loop",
    "ENOTDIR": "a part of that path is not a directory",
    "EISDIR": "it is a directory",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError`` that no caller explained: the path, the OS's reason, what to do."""
    import errno

    where = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    hint = _OS_HINTS.get(errno.errorcode.get(exc.errno or 0, ""))
    return f"cannot use {where}: {exc.strerror or exc}" + (f" ({hint})" if hint else "")
