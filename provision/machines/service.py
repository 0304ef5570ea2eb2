"""The machine service every front end uses: one object, each call handed to the concern that does it.

Creating, provisioning, power (lifecycle), inventory, access and removal each live in a module of their
own over a shared ``Core``; this facade only wires them, and runs the ``provision.before_remove`` hooks
(the swarm's drain) inside ``remove``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision import agent, filerules
from provision.contexts import ContextTLS, DockerConfig
from provision.driver import Driver, MachineState, SSHEndpoint
from provision.record import MachineRecord
from provision.store import Store

from .access import Access
from .core import ENGINE_READY_TIMEOUT, ConnectionInfo, Core, Progress, open_core, quiet, registry
from .creating import CreateRequest, Creating
from .inventory import Inventory, Listing
from .lifecycle import Power, agent_wanted
from .provisioning import Provisioning
from .removal import Removal

if TYPE_CHECKING:
    from provision.ssh import RemoteSession
    from provision.tls import CertificateAuthority


class Machines:
    def __init__(self, store: Store, docker: DockerConfig, *, environ: dict[str, str] | None = None,
                 progress: Progress = quiet, log: Progress = quiet) -> None:
        self.core = Core(store, docker, environ=environ, progress=progress, log=log)

    @classmethod
    def open(cls, storage_path: Path | None = None, **kwargs: Any) -> Machines:
        core = open_core(storage_path, **kwargs)
        return cls(core.store, core.docker, environ=core.environ, progress=core.progress, log=core.log)

    # The shared state, read by front ends and the swarm.
    store = property(lambda self: self.core.store)
    docker = property(lambda self: self.core.docker)
    environ = property(lambda self: self.core.environ)
    progress = property(lambda self: self.core.progress)
    log = property(lambda self: self.core.log)

    @property
    def ca(self) -> CertificateAuthority:
        return self.core.ca

    @property
    def provisioning(self) -> Provisioning:
        return Provisioning(self.core)

    @property
    def access(self) -> Access:
        return Access(self.core)

    @property
    def power(self) -> Power:
        return Power(self.core)

    @property
    def inventory(self) -> Inventory:
        return Inventory(self.core)

    # -- lookups ---------------------------------------------------------------------------------
    def resolve_name(self, name: str | None) -> str:
        return self.core.resolve_name(name)

    def get(self, name: str | None) -> MachineRecord:
        return self.core.get(name)

    def driver_for(self, record: MachineRecord, data: dict[str, Any] | None = None) -> Driver:
        return self.core.driver_for(record, data)

    def connection(self, record: MachineRecord) -> ConnectionInfo:
        return self.core.connection(record)

    # -- create, provision, certificates ---------------------------------------------------------
    def create(self, request: CreateRequest) -> MachineRecord:
        return Creating(self.core).create(request)

    def reprovision(self, name: str) -> MachineRecord:
        return self.provisioning.reprovision(name)

    def upgrade(self, name: str) -> MachineRecord:
        return self.power.upgrade(name)

    def regenerate_client_cert(self) -> None:
        self.provisioning.regenerate_client_cert()

    def regenerate_certs(self, name: str, client_certs: bool = False, *, adopt_ca: bool = False) -> MachineRecord:
        return self.provisioning.regenerate_certs(name, client_certs, adopt_ca=adopt_ca)

    def apply_client_trust(self, record: MachineRecord, exports: tuple[dict[str, Any], ...],
                           message: str) -> MachineRecord:
        return self.provisioning.apply_client_trust(record, exports, message)

    def wait_for_engine(self, info: ConnectionInfo, timeout: float = ENGINE_READY_TIMEOUT) -> None:
        self.provisioning.wait_for_engine(info, timeout)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, name: str) -> MachineRecord:
        return self.power.act(name, "start")

    def stop(self, name: str) -> MachineRecord:
        return self.power.act(name, "stop")

    def restart(self, name: str) -> MachineRecord:
        return self.power.act(name, "restart")

    def kill(self, name: str) -> MachineRecord:
        return self.power.act(name, "kill")

    def agent_wanted(self, record: MachineRecord, driver: Driver) -> bool:
        return agent_wanted(record, driver)

    def agent_status(self, name: str) -> agent.AgentStatus:
        return agent.status(self.store.machine_dir(self.resolve_name(name)))

    def remove(self, name: str, *, force: bool = False) -> list[str]:
        return Removal(self.core).remove(name, force=force, before=lambda: self._before_remove(name, force))

    def _before_remove(self, name: str, force: bool) -> None:
        for hook in registry().before_remove_hooks():
            hook(self, name, force)

    # -- inventory -------------------------------------------------------------------------------
    def active_name(self) -> str | None:
        return self.inventory.active_name()

    def list(self, timeout: float = filerules.LS_TIMEOUT, probe_engines: bool = True) -> list[Listing]:
        return self.inventory.list(timeout, probe_engines)

    def probe(self, record: MachineRecord, active: bool, timeout: float, probe_engines: bool = True) -> Listing:
        return self.inventory.probe(record, active, timeout, probe_engines)

    def status(self, name: str | None) -> MachineState:
        return self.inventory.status(name)

    def inspect(self, name: str | None) -> dict[str, Any]:
        return self.inventory.inspect(name)

    def engine_version(self, name: str | None, timeout: float = 10.0) -> str:
        return self.inventory.engine_version(name, timeout)

    # -- access ----------------------------------------------------------------------------------
    def context_tls(self, name: str) -> ContextTLS:
        return self.access.context_tls(name)

    def write_context(self, record: MachineRecord) -> str:
        return self.access.write_context(record)

    @property
    def ssh_config_path(self) -> Path:
        return self.access.ssh_config_path

    def ssh_config_included(self) -> bool:
        return self.access.ssh_config_included()

    def use(self, name: str) -> tuple[str, list[str]]:
        return self.access.use(name)

    def use_unset(self) -> list[str]:
        return self.access.use_unset()

    def ssh_target(self, name: str | None) -> tuple[SSHEndpoint, Path]:
        return self.access.ssh_target(name)

    def remote(self, name: str) -> AbstractContextManager[RemoteSession]:
        return self.access.remote(name)


__all__ = ["Machines"]
