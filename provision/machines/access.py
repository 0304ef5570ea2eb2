"""How users reach a machine: its docker context, the store's ssh config for engines reached over SSH,
``use``, and SSH targets and sessions for ``ssh``, ``scp`` and the swarm."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from provision import paths, sshconfig
from provision.contexts import ContextTLS
from provision.driver import MachineState, SSHEndpoint
from provision.errors import HostNotRunning, NotSupported, ProvisionError
from provision.fsutil import PEM_LIMIT, read_regular
from provision.names import context_name, validate_machine_name
from provision.record import Lifecycle, MachineRecord
from provision.shellenv import override_warnings

from .core import Core

if TYPE_CHECKING:
    from provision.ssh import RemoteSession


class Access:
    def __init__(self, core: Core) -> None:
        self.core = core

    # -- docker contexts -------------------------------------------------------------------------
    def context_tls(self, name: str) -> ContextTLS:
        directory = self.core.store.machine_dir(name)
        ca, cert, key = (read_regular(str(directory / f), PEM_LIMIT)
                         for f in (paths.CA_CERT, paths.CLIENT_CERT, paths.CLIENT_KEY))
        return ContextTLS(ca, cert, key)

    def write_context(self, record: MachineRecord) -> str:
        info = self.core.connection(record)
        name = context_name(record.name)
        tls = None if record.engine.over_ssh else self.context_tls(record.name)
        self.core.docker.write_context(name, record.name, info.url, tls,
                                       f"provision machine {record.name} ({record.driver})")
        if record.engine.over_ssh:
            self.write_ssh_config()
        return name

    def use(self, name: str) -> tuple[str, list[str]]:
        """Make the machine the docker CLI's current context. Returns the context and warnings."""
        record = self.core.store.load(validate_machine_name(name))
        if record.lifecycle != Lifecycle.READY:
            raise ProvisionError(f'machine "{name}" is not ready ({record.lifecycle}); see `provision ls`')
        context = context_name(name)
        if self.core.docker.owner(context) != name:
            self.write_context(record)
        self.core.docker.set_current_context(context)
        return context, override_warnings(self.core.environ, context)

    def use_unset(self) -> list[str]:
        self.core.docker.set_current_context(None)
        return override_warnings(self.core.environ, "default")

    # -- the ssh config for engines reached over SSH ---------------------------------------------
    @property
    def ssh_config_path(self) -> Path:
        return self.core.store.root / sshconfig.FILE

    @property
    def user_ssh_config(self) -> Path:
        return Path(self.core.environ.get("HOME") or Path.home()) / ".ssh" / "config"

    @property
    def include_marker(self) -> Path:
        return self.core.store.root / sshconfig.INCLUDED

    def ssh_config_included(self) -> bool:
        return sshconfig.is_included(self.user_ssh_config, self.ssh_config_path)

    def agree_to_include(self) -> None:
        sshconfig.agree_to_include(self.user_ssh_config, self.ssh_config_path, self.include_marker)

    def write_ssh_config(self) -> None:
        """The store's ssh config from every machine reached over SSH; with none left, the file and our
        Include line in ~/.ssh/config go."""
        over_ssh = [e for e in self.core.records() if e.engine.over_ssh]
        machines: list[sshconfig.SSHMachine] = []
        for entry in over_ssh:  # stopped ones too: they start again
            try:
                endpoint = self.core.driver_for(entry).ssh_endpoint()
            except ProvisionError:
                continue
            directory = self.core.store.machine_dir(entry.name)
            machines.append(sshconfig.SSHMachine(entry.name, endpoint.host, endpoint.port, endpoint.user,
                                                 endpoint.key_path, directory / paths.KNOWN_HOSTS))
        sshconfig.write(self.ssh_config_path, machines)
        sshconfig.follow_store(self.user_ssh_config, self.ssh_config_path, self.include_marker,
                               needed=bool(over_ssh))

    # -- ssh -------------------------------------------------------------------------------------
    def ssh_target(self, name: str | None) -> tuple[SSHEndpoint, Path]:
        record = self.core.get(name)
        driver = self.core.driver_for(record)
        if not driver.capabilities.ssh:
            raise NotSupported(f'the {record.driver} driver offers no SSH access to "{record.name}"',
                               hint=driver.refusal_hint("ssh"))
        if driver.state() != MachineState.RUNNING:
            raise HostNotRunning(record.name)
        if not record.host_key:
            with self.core.store.edit(record.name) as record:
                self.core.pin_at_first_contact(record, driver)
        return driver.ssh_endpoint(), self.core.store.machine_dir(record.name) / paths.KNOWN_HOSTS

    @contextmanager
    def remote(self, name: str) -> Iterator[RemoteSession]:
        record = self.core.store.load(name)
        with self.core.session(record, self.core.driver_for(record)) as session:
            yield session
