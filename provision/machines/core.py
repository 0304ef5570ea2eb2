"""What every concern of the machine service shares: the store, docker's config, the environment and the
progress callbacks; looking a machine up, its driver, its engine's address, and SSH sessions to it
with the host key pinned at first contact."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision import addresses, filerules, paths
from provision.contexts import DockerConfig
from provision.driver import Driver, DriverContext, MachineState, SSHEndpoint, console_last_line
from provision.errors import HostKeyMismatch, HostNotRunning, NotSupported, ProvisionError, SSHError, UsageError
from provision.names import DEFAULT_MACHINE, validate_machine_name
from provision.record import MIGRATED_FROM, MachineRecord
from provision.steps import StepClock
from provision.store import Store

if TYPE_CHECKING:
    from provision.probe import TLSFiles
    from provision.ssh import RemoteSession
    from provision.tls import CertificateAuthority

Progress = Callable[[str], None]
ENGINE_READY_TIMEOUT = 120.0
SSH_TIMEOUT = 300.0
FIRST_LOGIN_AUTH_RETRY = 180.0


def quiet(message: str) -> None:
    return None


@dataclass(frozen=True)
class ConnectionInfo:
    """What a docker client needs to reach a machine's engine."""

    name: str
    url: str
    ip: str
    cert_path: Path

    @property
    def tls(self) -> TLSFiles:
        from provision.probe import TLSFiles

        return TLSFiles(self.cert_path / paths.CA_CERT, self.cert_path / paths.CLIENT_CERT,
                        self.cert_path / paths.CLIENT_KEY)


class Core:
    def __init__(self, store: Store, docker: DockerConfig, *, environ: dict[str, str] | None = None,
                 progress: Progress = quiet, log: Progress = quiet) -> None:
        self.store = store
        self.docker = docker
        self.environ = dict(os.environ) if environ is None else environ
        self.progress = progress
        self.log = log

    @property
    def ca(self) -> CertificateAuthority:
        from provision.tls import CertificateAuthority

        return CertificateAuthority(self.store.certs_dir)

    @contextmanager
    def timed(self, what: str) -> Iterator[tuple[Core, StepClock]]:
        """A view whose progress messages are timed steps (``took`` lines through ``log``). A view, not a
        swapped callback: ``start a b`` runs both machines on one service at once."""
        clock = StepClock(what, log=self.log)
        view = copy.copy(self)
        view.progress = clock.wrap(self.progress)
        try:
            yield view, clock
        finally:
            clock.finish()  # a failed command's steps are timed too; a second finish does nothing

    # -- lookups -------------------------------------------------------------------------------
    def resolve_name(self, name: str | None) -> str:
        """Without a name, commands use the machine called ``default``, as Docker Machine did."""
        if name:
            return validate_machine_name(name)
        if self.store.exists(DEFAULT_MACHINE):
            return DEFAULT_MACHINE
        raise UsageError('Error: No machine name(s) specified and no "default" machine exists')

    def get(self, name: str | None) -> MachineRecord:
        return self.store.load(self.resolve_name(name))

    def records(self) -> list[MachineRecord]:
        return [e for e in self.store.entries() if isinstance(e, MachineRecord)]

    def driver_for(self, record: MachineRecord, data: dict[str, Any] | None = None,
                   checkpoint: Callable[[], None] | None = None) -> Driver:
        cls = registry().load(record.driver)
        ctx = DriverContext(
            machine_name=record.name,
            machine_dir=self.store.machine_dir(record.name),
            cache_dir=self.store.cache_dir,
            options=dict(record.driver_options),
            data=dict(record.driver_data) if data is None else data,
            progress=self.progress,
            environ=self.environ,
            engine_port_exposed=not record.engine.over_ssh,
            cluster=record.cluster,
            peers=lambda: [dict(e.driver_data) for e in self.records()
                           if e.driver == record.driver and e.name != record.name],
            store_lock=self.store.lock_store,
        )
        if checkpoint is not None:
            ctx.checkpoint = checkpoint
        if record.host_key and cls.capabilities.ssh:
            ctx.remote = lambda: self.session(record, driver)
        driver = cls(ctx)
        return driver

    def connection(self, record: MachineRecord) -> ConnectionInfo:
        """How to reach the engine, from the record alone: a machine stopped by provision has no URL
        recorded (a cloud gives its address back, a local VM's engine is gone), so env, url, ip and
        config answer Docker Machine's "Host is not running" instead of an address that does not answer."""
        url = record.url
        if not url:
            raise HostNotRunning(record.name)
        return ConnectionInfo(record.name, url, addresses.url_host(url), self.store.machine_dir(record.name))

    def engine_url(self, record: MachineRecord, driver: Driver) -> str:
        """``tcp://HOST:PORT`` from the driver, or ``ssh://USER@HOST:PORT`` when the engine is reached over SSH."""
        if record.engine.over_ssh:
            endpoint = driver.ssh_endpoint()
            return addresses.ssh_url(endpoint.user, endpoint.host, endpoint.port)
        return addresses.engine_url(driver.engine_url())

    def engine_url_or_none(self, record: MachineRecord, driver: Driver) -> str | None:
        try:
            return self.engine_url(record, driver)
        except ProvisionError:
            return None

    # -- refusals --------------------------------------------------------------------------------
    def require_provisionable(self, record: MachineRecord) -> None:
        driver_cls = registry().load(record.driver)
        if not driver_cls.capabilities.provisions_engine:
            raise NotSupported(f'the {record.driver} driver does not provision its engine; '
                               f'"{record.name}" cannot be re-provisioned or get new certificates here',
                               hint=driver_cls.refusal_hint("provisions_engine"))

    def require_running(self, record: MachineRecord, driver: Driver) -> None:
        if driver.state() != MachineState.RUNNING:
            raise HostNotRunning(record.name)

    # -- SSH sessions ----------------------------------------------------------------------------
    def session(self, record: MachineRecord, driver: Driver, *, first_contact: bool = False,
                timeout: float = SSH_TIMEOUT) -> RemoteSession:
        from provision.ssh import RemoteSession

        if not driver.capabilities.ssh:
            raise NotSupported(f'the {record.driver} driver offers no SSH access', hint=driver.refusal_hint("ssh"))
        endpoint = driver.ssh_endpoint()
        timeout = max(timeout, driver.boot_timeout)
        self.progress(f"Waiting for SSH on {endpoint.host}:{endpoint.port}")
        auth_retry = FIRST_LOGIN_AUTH_RETRY if first_contact and driver.capabilities.keys_at_boot else 0.0
        # The pinned key, else the one the driver chose for the machine (then even a first contact, or a
        # machine whose create stopped before pinning, is verified), else none: learned at this contact.
        known = record.host_key or driver.host_key()
        try:
            return RemoteSession.connect(endpoint, known_host_key=known,
                                         machine=record.name, timeout=timeout, log=self.log, auth_retry=auth_retry)
        except HostKeyMismatch:
            raise
        except SSHError as exc:
            # A failed create removes the machine and its console log with it: its last word goes into the error.
            last = console_last_line(driver.boot_log())
            if last:
                exc.message = f"{exc.message}; the machine's console last printed: {last}"
            raise

    def pin_host_key(self, record: MachineRecord, session: RemoteSession, endpoint: SSHEndpoint) -> MachineRecord:
        from provision.ssh import known_hosts_line

        self.store.write_file(record.name, paths.KNOWN_HOSTS,
                              known_hosts_line(endpoint.host, endpoint.port, session.host_key) + "\n", 0o600)
        record = record.evolve(host_key=session.host_key)
        self.store.save(record)
        return record

    def pin_at_first_contact(self, record: MachineRecord, driver: Driver) -> MachineRecord:
        """A migrated machine has no pinned host key: the first SSH contact pins it (the caller holds the
        machine's lock). Any other machine without one was never contacted and is refused."""
        if record.host_key:
            return record
        if not record.facts.get(MIGRATED_FROM):
            raise ProvisionError(f'machine "{record.name}" has no pinned host key yet; run `provision provision '
                                 f'{record.name}` to contact it first')
        self.progress(f"Pinning the SSH host key of {record.name} at this first contact")
        endpoint = driver.ssh_endpoint()
        with self.session(record, driver) as session:
            return self.pin_host_key(record, session, endpoint)


class Keeper:
    """Persists a driver's ``data`` into the record each time the driver checkpoints."""

    def __init__(self, store: Store, record: MachineRecord) -> None:
        self.store = store
        self.record = record
        self.data: dict[str, Any] = dict(record.driver_data)

    def checkpoint(self) -> None:
        self.record = self.record.evolve(driver_data=dict(self.data))
        self.store.save(self.record)


def open_core(storage_path: Path | None, **kwargs: Any) -> Core:
    environ = kwargs.get("environ") or dict(os.environ)
    root = filerules.store_root(str(storage_path) if storage_path else None, environ)
    return Core(Store(Path(root)), DockerConfig(Path(filerules.docker_config_dir(environ))), **kwargs)


def registry():  # type: ignore[no-untyped-def]
    # importlib.metadata costs ~40 ms: only commands that need a driver pay for it.
    from provision import registry

    return registry


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, ProvisionError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
