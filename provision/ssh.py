"""One SSH connection per run, with the host key pinned, plus argv builders for the real ``ssh``/``scp``.

Docker Machine opened a new connection for every remote command and never checked host keys. Here a
``RemoteSession`` holds one paramiko transport for the whole run (each command is a new channel on it,
one round trip), verifies the server's key against the one pinned in the machine record, and records it
on first contact. Interactive use (``provision ssh``/``scp``) goes through the OpenSSH binaries with a
per-machine known_hosts file and ``StrictHostKeyChecking=yes``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import select
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision import waiting
from provision.driver import SSHEndpoint
from provision.errors import HostKeyMismatch, RemoteCommandError, SSHError, TimeoutExpired, UsageError

# How long one TCP connect or SSH handshake attempt may take before we retry.
ATTEMPT_TIMEOUT = 10.0
RETRY_INTERVAL = 0.5  # sshd comes up mid-boot: a shorter wait takes it sooner, a refused connect is cheap

# sudo's own words when it cannot run without a password (sudo 1.8/1.9).
_SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required", "no tty present")


class _AuthFailed(Exception):
    """Internal: carries the user-facing error out of one attempt so ``connect`` decides on a retry."""

    def __init__(self, error: SSHError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RemoteResult:
    out: str
    err: str
    rc: int


def fingerprint(host_key: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of an OpenSSH public key line."""
    parts = host_key.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key: {host_key!r}")
    digest = hashlib.sha256(base64.b64decode(parts[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(host: str, port: int, host_key: str) -> str:
    """A known_hosts line (no newline) as OpenSSH looks it up: ``[host]:port`` unless the port is 22."""
    name = host if port == 22 else f"[{host}]:{port}"
    key_type, key_b64 = host_key.split()[:2]
    return f"{name} {key_type} {key_b64}"


def _key_type(host_key: str) -> str:
    return host_key.split()[0]


def _negotiation_names(key_type: str) -> list[str]:
    # An RSA key is stored as "ssh-rsa" but negotiated under its signature algorithms' names.
    if key_type == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    return [key_type]


def _load_private_key(path: Path):  # type: ignore[no-untyped-def]
    import paramiko

    try:
        return paramiko.PKey.from_path(str(path))
    except FileNotFoundError as exc:
        raise SSHError(f"SSH private key {path} does not exist") from exc
    except paramiko.PasswordRequiredException as exc:
        raise SSHError(f"SSH private key {path} is encrypted; provision needs a key without a passphrase") from exc
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise SSHError(f"cannot read SSH private key {path}: {exc}") from exc


class RemoteSession:
    """One authenticated SSH connection; every command is a channel on it. Use as a context manager."""

    def __init__(self, transport: Any, endpoint: SSHEndpoint, machine: str, host_key: str,
                 log: Callable[[str], None] | None) -> None:
        self._transport = transport
        self.endpoint = endpoint
        self.machine = machine
        self.host_key = host_key
        self._log = log
        # Counted so provisioning can be measured (and kept) at a handful of round trips.
        self.commands_run = 0

    # -- connecting -------------------------------------------------------------------------------
    @classmethod
    def connect(cls, endpoint: SSHEndpoint, *, known_host_key: str | None, machine: str,
                timeout: float = 120.0, log: Callable[[str], None] | None = None,
                auth_retry: float = 0.0) -> RemoteSession:
        """Connect, retrying while the port is closed or the server is still starting, for at most
        ``timeout`` seconds. Host-key mismatches are final, and so are authentication failures unless
        ``auth_retry`` > 0: then they are retried for that many seconds (a freshly booted cloud VM may run
        sshd a moment before cloud-init has written the user's authorized_keys)."""
        import paramiko

        # paramiko logs every failed handshake with a traceback; with no handler configured Python would
        # print those to stderr. Our retry loop reports the outcome itself.
        paramiko_log = logging.getLogger("paramiko")
        if not any(isinstance(h, logging.NullHandler) for h in paramiko_log.handlers):
            paramiko_log.addHandler(logging.NullHandler())
        pkey = _load_private_key(endpoint.key_path)
        deadline = waiting.Deadline(timeout)

        def connected() -> RemoteSession:
            try:
                return cls._connect_once(endpoint, pkey, known_host_key, machine, log, deadline)
            except _AuthFailed as exc:
                if deadline.elapsed() + RETRY_INTERVAL >= min(auth_retry, timeout):
                    raise exc.error from None
                if log:
                    log(f"authentication refused, retrying for up to {auth_retry:.0f}s: {exc.error}")
                raise waiting.NotYet(str(exc.error)) from None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                # Refused, unreachable, reset, or a banner that never came: the host may still be booting.
                # (A host-key mismatch or any other SSHError is final: it is none of these.)
                raise waiting.NotYet(_describe_network_error(exc)) from exc

        return waiting.wait_for(
            f"reach SSH on {endpoint.host}:{endpoint.port}", connected, timeout=deadline, interval=RETRY_INTERVAL,
            error=lambda expired: SSHError(
                f"cannot reach SSH on {endpoint.host}:{endpoint.port} for machine \"{machine}\" "
                f"after {expired.attempts} attempts in {timeout:.0f}s: {expired.reason}",
                hint="check that the machine is running and that its SSH port is open to this host",
                machine=machine,
            ))

    @classmethod
    def _connect_once(cls, endpoint: SSHEndpoint, pkey: Any, known_host_key: str | None, machine: str,
                      log: Callable[[str], None] | None, deadline: waiting.Deadline) -> RemoteSession:
        import paramiko

        attempt_timeout = max(1.0, min(ATTEMPT_TIMEOUT, deadline.remaining()))
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=attempt_timeout)
        # Provisioning is many small request/response exchanges: Nagle would add delay to each.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = attempt_timeout
            transport.handshake_timeout = attempt_timeout
            if known_host_key:
                # Ask for the pinned key's type first, so a server with several host keys shows us
                # the one we pinned rather than a different (equally genuine) one.
                options = transport.get_security_options()
                wanted = [n for n in _negotiation_names(_key_type(known_host_key)) if n in options.key_types]
                options.key_types = tuple(wanted + [t for t in options.key_types if t not in wanted])
            transport.start_client(timeout=attempt_timeout)
            server_key = transport.get_remote_server_key()
            seen = f"{server_key.get_name()} {server_key.get_base64()}"
            if known_host_key and seen.split()[:2] != known_host_key.split()[:2]:
                raise HostKeyMismatch(
                    f'host key of machine "{machine}" ({endpoint.host}:{endpoint.port}) has changed: '
                    f"expected {fingerprint(known_host_key)}, got {fingerprint(seen)}",
                    hint="someone may be intercepting the connection; if the machine was rebuilt on purpose, "
                         "remove it and create it again",
                    machine=machine,
                )
            try:
                transport.auth_publickey(endpoint.user, pkey)
            except paramiko.AuthenticationException as exc:
                raise _AuthFailed(SSHError(
                    f'SSH authentication as "{endpoint.user}" on {endpoint.host}:{endpoint.port} '
                    f'(machine "{machine}") was refused for key {endpoint.key_path}: {exc}',
                    hint="check the SSH user and that the key's .pub is in the user's authorized_keys",
                    machine=machine,
                )) from exc
            transport.set_keepalive(30)
            return cls(transport, endpoint, machine, seen, log)
        except BaseException:
            transport.close()
            raise

    # -- context manager ------------------------------------------------------------------------------
    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def is_root(self) -> bool:
        return self.endpoint.user == "root"

    @property
    def socket(self) -> socket.socket:
        return self._transport.sock

    # -- commands -------------------------------------------------------------------------------------
    def command_line(self, argv: list[str] | str, *, sudo: bool = False) -> str:
        """The shell command line sent for ``argv``: a list is quoted, a string is a shell snippet."""
        line = argv if isinstance(argv, str) else shlex.join(argv)
        if sudo and not self.is_root:
            if isinstance(argv, str):
                return "sudo -n sh -c " + shlex.quote(line)
            return "sudo -n " + line
        return line

    def run(self, argv: list[str] | str, *, sudo: bool = False, check: bool = True, input: bytes | None = None,
            timeout: float | None = 600, on_output: Callable[[str], None] | None = None) -> RemoteResult:
        """Run one command. ``check`` raises ``RemoteCommandError`` on a non-zero exit. ``on_output``
        receives complete stdout lines as they arrive (long scripts report progress that way)."""
        line = self.command_line(argv, sudo=sudo)
        out, err, rc = self._exec(line, input=input, timeout=timeout, on_output=on_output)
        result = RemoteResult(out.decode(errors="replace"), err.decode(errors="replace"), rc)
        if rc != 0 and sudo and not self.is_root:
            self._check_sudo(result)
        if check and rc != 0:
            raise RemoteCommandError(line if len(line) < 200 else line[:200] + "…", rc, result.err,
                                     machine=self.machine)
        return result

    def _check_sudo(self, result: RemoteResult) -> None:
        err = result.err.lower()
        if result.rc == 127 and "sudo" in err and "not found" in err:
            raise SSHError(f'sudo is not installed on machine "{self.machine}" and user "{self.endpoint.user}" '
                           "is not root", hint="log in as root or install sudo", machine=self.machine)
        if err.startswith("sudo:") and any(marker in err for marker in _SUDO_PASSWORD_MARKERS):
            raise SSHError(
                f'user "{self.endpoint.user}" on machine "{self.machine}" needs passwordless sudo',
                hint=f"add '{self.endpoint.user} ALL=(ALL) NOPASSWD:ALL' to /etc/sudoers.d/ on the host, "
                     "or log in as root",
                machine=self.machine,
            )

    def _exec(self, line: str, *, input: bytes | None, timeout: float | None,
              on_output: Callable[[str], None] | None) -> tuple[bytes, bytes, int]:
        if self._log:
            self._log(f"+ {line}")
        self.commands_run += 1
        try:
            channel = self._transport.open_session(timeout=30)
        except Exception as exc:
            raise SSHError(f'SSH connection to machine "{self.machine}" is gone: {exc}',
                           machine=self.machine) from exc
        # Not a polling loop: select() wakes on output, so only the bound comes from waiting.
        deadline = None if timeout is None else waiting.Deadline(timeout)
        out, err = bytearray(), bytearray()
        pending = b""
        try:
            channel.exec_command(line)
            if input:
                channel.sendall(input)
            channel.shutdown_write()
            while True:
                while channel.recv_ready():
                    chunk = channel.recv(65536)
                    out += chunk
                    if on_output:
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        for one in lines:
                            on_output(one.decode(errors="replace"))
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                finished = channel.exit_status_ready() and (channel.eof_received or channel.closed)
                if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                remaining = None if deadline is None else deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise TimeoutExpired(
                        f'remote command on machine "{self.machine}" did not finish within {timeout:.0f}s: '
                        f"{line[:200]}", machine=self.machine)
                wait = 1.0 if remaining is None else min(remaining, 1.0)
                if channel.eof_received or channel.closed:
                    # All output is in; only the exit status is still on its way.
                    channel.status_event.wait(wait)
                else:
                    # The channel's pipe becomes readable on stdout or stderr data and on EOF.
                    select.select([channel], [], [], wait)
            if on_output and pending:
                on_output(pending.decode(errors="replace"))
            return bytes(out), bytes(err), channel.recv_exit_status()
        finally:
            channel.close()

    # -- files ----------------------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename)."""
        tmp = f"{path}.provision-tmp"
        script = (f"umask 077 && cat > {shlex.quote(tmp)} && chmod {mode:o} {shlex.quote(tmp)} "
                  f"&& mv -f {shlex.quote(tmp)} {shlex.quote(path)}")
        self.run(script, sudo=sudo, input=data)


def _describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on the port yet)"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "connection timed out"
    if isinstance(exc, EOFError):
        return "the server closed the connection during the handshake"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- the OpenSSH binaries ----------------------------------------------------------------------------------

def _ssh_options(known_hosts: list[Path], keys: list[Path]) -> list[str]:
    options: list[str] = []
    for key in keys:
        options += ["-i", str(key)]
    options += [
        "-o", "UserKnownHostsFile=" + " ".join(_ssh_config_quote(str(p)) for p in known_hosts),
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes",
        # Our known_hosts file holds the machine's name-less [ip]:port entry: don't consult or update others.
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
    ]
    return options


def _ssh_config_quote(value: str) -> str:
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# The OpenSSH client's flags that take a value (ssh(1)); every other flag letter stands alone.
_SSH_VALUE_FLAGS = frozenset("BbcDEeFIiJLlmOoPpQRSWw")


def split_client_args(args: list[str]) -> tuple[list[str], list[str]]:
    """``provision ssh NAME [ssh-flags] [CMD...]``: the ssh client's flags given after the name, and the command.

    The flags end at ``--`` (dropped) or at the first word that is neither a flag nor a flag's value, as
    Docker Machine handed them to ssh. ``-L 8080:localhost:80``, ``-L8080:localhost:80`` and ``-CL 8080:...``
    (a value-taking letter takes the rest of its word, else the next word) all work.
    """
    flags: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return flags, args[i + 1:]
        if not arg.startswith("-") or arg == "-":
            break
        flags.append(arg)
        i += 1
        for position, letter in enumerate(arg[1:], start=1):
            if letter in _SSH_VALUE_FLAGS:
                if position == len(arg) - 1:  # the value is the next word
                    if i >= len(args):
                        raise UsageError(f"ssh flag -{letter} needs a value")
                    flags.append(args[i])
                    i += 1
                break
    return flags, args[i:]


def interactive_argv(endpoint: SSHEndpoint, known_hosts: Path, command: list[str],
                     client_flags: list[str] | None = None) -> list[str]:
    """``ssh`` argv for ``provision ssh NAME [ssh-flags] [CMD...]``: pinned host key, this machine's key only.

    The user's flags come after ours: ssh keeps the first value it gets for an option, so no flag can switch
    host-key checking off or point the login at another port or user.
    """
    argv = ["ssh", *_ssh_options([known_hosts], [endpoint.key_path]), "-p", str(endpoint.port),
            "-l", endpoint.user, *(client_flags or []), "--", endpoint.host]
    return argv + list(command)


@dataclass(frozen=True)
class RemotePath:
    """``machine:path`` resolved by the core: where the machine is, its known_hosts file, the path there."""

    endpoint: SSHEndpoint
    known_hosts: Path
    path: str


Location = str | RemotePath


def _scp_uri(remote: RemotePath) -> str:
    # scp's URI form carries the port per host, so machine-to-machine copies work; the path after the
    # first "/" is relative to the login directory, like scp's "host:path".
    ep = remote.endpoint
    return f"scp://{ep.user}@{_host(ep.host)}:{ep.port}/{remote.path}"


def scp_argv(src: Location, dst: Location, *, recursive: bool = False) -> list[str]:
    """``scp`` argv for ``provision scp [-r] SRC DST``; either side (or both) may be on a machine."""
    remotes = [loc for loc in (src, dst) if isinstance(loc, RemotePath)]
    argv = ["scp", *_ssh_options([r.known_hosts for r in remotes], _unique([r.endpoint.key_path for r in remotes]))]
    if recursive:
        argv.append("-r")
    if len(remotes) == 2:
        argv.append("-3")  # copy through this host: the two machines need not reach each other
    return argv + ["--"] + [_scp_uri(loc) if isinstance(loc, RemotePath) else loc for loc in (src, dst)]


def rsync_argv(src: Location, dst: Location, *, recursive: bool = False) -> list[str]:
    """``rsync -e 'ssh ...'`` argv for ``provision scp -d`` (send only differences); one side must be local."""
    remotes = [loc for loc in (src, dst) if isinstance(loc, RemotePath)]
    if len(remotes) != 1:
        raise UsageError("scp --delta copies between this host and one machine; "
                         "give exactly one machine:path" if remotes else "neither path names a machine")
    remote = remotes[0]
    ep = remote.endpoint
    ssh = ["ssh", *_ssh_options([remote.known_hosts], [ep.key_path]), "-p", str(ep.port)]
    argv = ["rsync", "-e", " ".join(shlex.quote(a) for a in ssh), "--archive" if recursive else "--times"]
    if not recursive:
        argv.append("--perms")
    spec = f"{ep.user}@{_host(ep.host)}:{remote.path}"
    return argv + ["--"] + [spec if isinstance(loc, RemotePath) else loc for loc in (src, dst)]


def _unique(paths: list[Path]) -> list[Path]:
    seen: list[Path] = []
    for p in paths:
        if p not in seen:
            seen.append(p)
    return seen
