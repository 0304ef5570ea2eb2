"""Forwards over SSH for a machine that is not a local VM: one OpenSSH master connection (the machine's
key, its pinned host key, ``StrictHostKeyChecking=yes``), to which ``ssh -O forward -L`` adds a forward
and ``ssh -O cancel -L`` takes one away while it runs, so ports follow containers without a new login.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from provision.driver import SSHEndpoint

from . import waiting
from .errors import CommandError, ProvisionError, SSHError
from .run import run, spawn
from .ssh import interactive_argv

MASTER_TIMEOUT = 60.0


class SSHForwarder:
    def __init__(self, endpoint: SSHEndpoint, known_hosts: Path, machine: str) -> None:
        self.endpoint = endpoint
        self.known_hosts = known_hosts
        self.machine = machine
        # A short private directory: a unix socket path must stay under ~100 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="provision-fwd-"))
        self.control = self._dir / "ctl"
        self._master = None

    def _argv(self, *flags: str) -> list[str]:
        return interactive_argv(self.endpoint, self.known_hosts, [], ["-S", str(self.control), *flags])

    def __enter__(self) -> SSHForwarder:
        master = self._master = spawn(self._argv("-M", "-N", "-o", "ExitOnForwardFailure=no",
                                                 "-o", "ServerAliveInterval=15", "-o", "BatchMode=yes"))

        def up() -> bool:
            try:
                run(self._argv("-O", "check"), timeout=10, what="ssh -O check")
                return True
            except CommandError as exc:
                reason = waiting.NotYet(exc.stderr.strip() or exc.message)
                if master.poll() is not None:  # the master gave up (refused, host key): no use waiting
                    raise self._failed(reason) from exc
                raise reason from exc

        try:
            waiting.wait_for(f"open an SSH connection to {self.machine}", up, timeout=MASTER_TIMEOUT,
                             interval=0.2, error=lambda expired: self._failed(expired.reason))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _failed(self, reason: object) -> SSHError:
        return SSHError(f'cannot keep an SSH connection to "{self.machine}" open for forwarding: {reason}',
                        machine=self.machine)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._master is not None and self._master.poll() is None:
            try:
                run(self._argv("-O", "exit"), timeout=10, what="ssh -O exit")
            except CommandError:
                self._master.terminate()
            self._master.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def alive(self) -> bool:
        return self._master is not None and self._master.poll() is None

    def _forward(self, action: str, protocol: str, port: int) -> None:
        if protocol != "tcp":
            raise ProvisionError("SSH carries TCP only")
        try:
            run(self._argv("-O", action, "-L", f"127.0.0.1:{port}:127.0.0.1:{port}"), timeout=20,
                what=f"ssh -O {action}")
        except CommandError as exc:
            raise ProvisionError(exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc.message) from exc

    def add(self, protocol: str, port: int) -> None:
        self._forward("forward", protocol, port)

    def remove(self, protocol: str, port: int) -> None:
        self._forward("cancel", protocol, port)
