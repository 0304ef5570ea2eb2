"""The core service: every command's work, with no terminal I/O.

The CLI parses and prints; everything a test or another front end needs happens here. Drivers are
reached only through ``provision.registry``; the store, the CA and docker's config through their modules.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision.driver import Driver, DriverContext, MachineState, SSHEndpoint

from . import addresses, agent, interrupts, lean, paths, sshconfig
from .contexts import ContextTLS, DockerConfig
from .errors import (BrokenRecord, EngineError, HostNotRunning, Interrupted, MachineNotFound, NotSupported,
                     ProvisionError, StoreError, TimeoutExpired, UsageError)
from .fsutil import PEM_LIMIT, read_regular
from .names import DEFAULT_MACHINE, context_name, validate_machine_name
from .options import public, resolve
from .shellenv import override_warnings
from .steps import StepClock
from .record import FOREIGN_CA, MIGRATED_FROM, CertInfo, EngineSettings, Lifecycle, MachineRecord
from .store import LOCK_TIMEOUT, BrokenEntry, Store
if TYPE_CHECKING:
    from .provisioner import EngineConfig
    from .tls import CertificateAuthority, IssuedCert
    from .probe import TLSFiles
    from .ssh import RemoteSession

Progress = Callable[[str], None]
ENGINE_READY_TIMEOUT = 120.0
SSH_TIMEOUT = 300.0
FIRST_LOGIN_AUTH_RETRY = 180.0
# A refused or reset ping costs a millisecond on loopback; polling often takes the engine's first answer
# when it comes instead of up to a second later, a second that is the last step of every create and start.
ENGINE_POLL_INTERVAL = 0.25


def _quiet(message: str) -> None:
    return None


@dataclass
class CreateRequest:
    name: str
    driver: str
    driver_flags: dict[str, Any] = field(default_factory=dict)
    engine: EngineSettings = field(default_factory=EngineSettings)
    keep_on_failure: bool = False
    # With the engine reached over SSH: may ~/.ssh/config get our Include line (the user's consent).
    ssh_config_include: bool = False
    # The cluster the machine joins (``--swarm NAME``, or the manager's with ``--swarm-join``): the driver
    # attaches it at create (a shared group or tag).
    cluster: str | None = None


@dataclass(frozen=True)
class Listing:
    """One row of ``ls``."""

    name: str
    active: bool
    driver: str
    state: str
    url: str
    docker: str
    error: str
    labels: tuple[str, ...] = ()
    response_ms: int | None = None
    swarm: str = ""  # Docker Machine's SWARM column, from the record: "web-1 (manager)", or a worker's manager

    def to_dict(self) -> dict[str, Any]:
        return {"Name": self.name, "Active": "*" if self.active else "-", "ActiveHost": self.active,
                "DriverName": self.driver, "State": self.state, "URL": self.url, "Swarm": self.swarm,
                "DockerVersion": self.docker, "Error": self.error, "Labels": list(self.labels),
                "ResponseTime": self.response_ms}


@dataclass(frozen=True)
class ConnectionInfo:
    """What a docker client needs to reach a machine's engine."""

    name: str
    url: str
    ip: str
    cert_path: Path

    @property
    def tls(self) -> TLSFiles:
        from .probe import TLSFiles

        return TLSFiles(self.cert_path / paths.CA_CERT, self.cert_path / paths.CLIENT_CERT,
                        self.cert_path / paths.CLIENT_KEY)


class Machines:
    def __init__(self, store: Store, docker: DockerConfig, *, environ: dict[str, str] | None = None,
                 progress: Progress = _quiet, log: Progress = _quiet) -> None:
        self.store = store
        self.docker = docker
        self.environ = dict(os.environ) if environ is None else environ
        self.progress = progress
        self.log = log

    @property
    def ca(self) -> CertificateAuthority:
        from .tls import CertificateAuthority

        return CertificateAuthority(self.store.certs_dir)

    @classmethod
    def open(cls, storage_path: Path | None = None, **kwargs: Any) -> Machines:
        environ = kwargs.get("environ") or dict(os.environ)
        root = lean.store_root(str(storage_path) if storage_path else None, environ)
        return cls(Store(Path(root)), DockerConfig(Path(lean.docker_config_dir(environ))), **kwargs)

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

    def driver_for(self, record: MachineRecord, data: dict[str, Any] | None = None,
                   checkpoint: Callable[[], None] | None = None) -> Driver:
        cls = _registry().load(record.driver)
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
            peers=lambda: self._peer_data(record),
            store_lock=self.store.lock_store,
        )
        if checkpoint is not None:
            ctx.checkpoint = checkpoint
        if record.host_key and cls.capabilities.ssh:
            ctx.remote = lambda: self._session(record, driver)
        driver = cls(ctx)
        return driver

    def _peer_data(self, record: MachineRecord) -> list[dict[str, Any]]:
        return [dict(e.driver_data) for e in self.store.entries()
                if isinstance(e, MachineRecord) and e.driver == record.driver and e.name != record.name]

    def connection(self, record: MachineRecord) -> ConnectionInfo:
        """How to reach the engine, from the record alone: a machine stopped by provision has no URL
        recorded (a cloud gives its address back, a local VM's engine is gone), so env, url, ip and
        config answer Docker Machine's "Host is not running" instead of an address that does not answer."""
        url = record.url
        if not url:
            raise HostNotRunning(record.name)
        return ConnectionInfo(record.name, url, addresses.url_host(url),
                              self.store.machine_dir(record.name))

    @contextmanager
    def _timed(self, what: str) -> Iterator[tuple[Machines, StepClock]]:
        """A view of this service whose progress messages are timed steps (``took`` lines through ``log``).
        A view, not a swapped callback: ``start a b`` runs both machines on this one service at once."""
        clock = StepClock(what, log=self.log)
        view = copy.copy(self)
        view.progress = clock.wrap(self.progress)
        try:
            yield view, clock
        finally:
            clock.finish()  # a failed command's steps are timed too; a second finish does nothing

    # -- create ----------------------------------------------------------------------------------
    def create(self, request: CreateRequest) -> MachineRecord:
        with self._timed(f"create {request.name}") as (timed, clock):
            record = timed._create(request, clock)
        if record.engine.over_ssh and request.ssh_config_include:
            # After the machine is ready: a ~/.ssh/config that cannot be changed must not undo the machine.
            try:
                sshconfig.agree_to_include(self.user_ssh_config, self.ssh_config_path, self._include_marker)
            except ProvisionError as exc:
                self.progress(f"~/.ssh/config was left as it is: {exc.message}")
        return record

    def _create(self, request: CreateRequest, clock: StepClock) -> MachineRecord:
        validate_machine_name(request.name)
        driver_cls = _registry().load(request.driver)
        if request.engine.over_ssh and not (driver_cls.capabilities.ssh and driver_cls.capabilities.provisions_engine):
            raise UsageError(f"--engine-endpoint ssh needs a driver that provisions its engine over SSH; "
                             f"{request.driver} does not")
        options = resolve(driver_cls, request.driver_flags, self.environ)
        driver_cls.check_options(options)
        # A docker context of that name that provision did not write would fail the create at its very end,
        # after a cloud instance was made and paid for: refuse now, before anything exists.
        self.docker.check_context_free(context_name(request.name), request.name)
        record = MachineRecord(name=request.name, driver=request.driver,
                               driver_options=public(driver_cls, options), engine=request.engine,
                               cluster=request.cluster)
        # A Ctrl-C between the claim and the `try` below would leave a `creating` record with nobody to
        # clean up after it: it is held until the `try` is entered, and raised there.
        with interrupts.held() as release_interrupt:
            self.store.claim(record)  # refuses a name already taken
            with self.store.lock(request.name):
                keeper = _Keeper(self.store, record)
                driver = self.driver_for(record, data=keeper.data, checkpoint=keeper.checkpoint)
                driver.ctx.options = options  # secrets stay in memory only
                try:
                    release_interrupt()
                    self.progress("Creating the certificate authority and client certificate")
                    self.ca.ensure()
                    self._install_client_certs(request.name)
                    if driver_cls.capabilities.ssh:
                        from .sshkeys import generate_ed25519

                        generate_ed25519(driver.ctx.ssh_key_path, f"provision-{request.name}")
                    issued = None
                    if driver_cls.capabilities.provisions_engine and driver_cls.capabilities.engine_files_at_boot:
                        issued = self._hand_engine_files(keeper.record, driver)
                    self.progress(f"Creating machine {request.name} with the {request.driver} driver")
                    driver.create()
                    keeper.checkpoint()
                    record = keeper.record.evolve(url=self._engine_url(record, driver))
                    if driver_cls.capabilities.provisions_engine:
                        record = self._provision(record, driver, first_contact=True, issued=issued)
                    # Recorded with the machine, so `inspect` shows where a slow create spent its time.
                    record = record.evolve(lifecycle=Lifecycle.READY, error=None,
                                           facts={**record.facts, **clock.finish().facts("create")})
                    self.store.save(record)
                    self.write_context(record)
                    self._start_agent(record, driver)
                except BaseException as exc:
                    failed = keeper.record.evolve(driver_data=dict(keeper.data), lifecycle=Lifecycle.ERROR,
                                                  error=_describe(exc))
                    self._fail_create(failed, driver, request.keep_on_failure)
                    if isinstance(exc, KeyboardInterrupt):
                        raise Interrupted("Interrupted; " + (
                            "the machine was kept (--keep-on-failure)" if request.keep_on_failure
                            else "everything created so far was removed")) from exc
                    raise
        return record

    def _fail_create(self, record: MachineRecord, driver: Driver, keep: bool) -> None:
        with interrupts.held():  # a second Ctrl-C must not leave the record saying `creating`
            self.store.save(record)
        if keep:
            return
        self.progress(f"Create failed; removing what was created for {record.name}")
        try:
            self._close_cluster_doors(record, driver)
            driver.remove()
        except BaseException as cleanup:  # keep the record so `rm` can try again
            self.store.save(record.evolve(error=f"{record.error}; cleanup failed: {_describe(cleanup)}"))
            return
        self.docker.remove_context(context_name(record.name), record.name)
        self.store.delete(record.name)

    def _install_client_certs(self, name: str) -> None:
        ca_cert, client_cert, client_key = self.ca.client_files()
        self.store.write_file(name, paths.CA_CERT, ca_cert, 0o644)
        self.store.write_file(name, paths.CLIENT_CERT, client_cert, 0o644)
        self.store.write_file(name, paths.CLIENT_KEY, client_key, 0o600)

    # -- provisioning ----------------------------------------------------------------------------
    def _session(self, record: MachineRecord, driver: Driver, *, first_contact: bool = False,
                 timeout: float = SSH_TIMEOUT) -> RemoteSession:
        from .ssh import RemoteSession

        if not driver.capabilities.ssh:
            raise NotSupported(f'the {record.driver} driver offers no SSH access', hint=driver.refusal_hint("ssh"))
        endpoint = driver.ssh_endpoint()
        timeout = max(timeout, driver.boot_timeout)
        self.progress(f"Waiting for SSH on {endpoint.host}:{endpoint.port}")
        auth_retry = FIRST_LOGIN_AUTH_RETRY if first_contact and driver.capabilities.keys_at_boot else 0.0
        # The pinned key, else the one the driver chose for the machine (then even a first contact, or a
        # machine whose create stopped before pinning, is verified), else none: learned at this contact.
        known = record.host_key or driver.host_key()
        return RemoteSession.connect(endpoint, known_host_key=known,
                                     machine=record.name, timeout=timeout, log=self.log, auth_retry=auth_retry)

    def _pin_host_key(self, record: MachineRecord, session: RemoteSession, endpoint: SSHEndpoint) -> MachineRecord:
        from .ssh import known_hosts_line

        self.store.write_file(record.name, paths.KNOWN_HOSTS,
                              known_hosts_line(endpoint.host, endpoint.port, session.host_key) + "\n", 0o600)
        record = record.evolve(host_key=session.host_key)
        self.store.save(record)
        return record

    def _pin_at_first_contact(self, record: MachineRecord, driver: Driver) -> MachineRecord:
        """A migrated machine has no pinned host key: the first SSH contact pins it (the caller holds the
        machine's lock). Any other machine without one was never contacted and is refused."""
        if record.host_key:
            return record
        if not record.facts.get(MIGRATED_FROM):
            raise ProvisionError(f'machine "{record.name}" has no pinned host key yet; run `provision provision '
                                 f'{record.name}` to contact it first')
        self.progress(f"Pinning the SSH host key of {record.name} at this first contact")
        endpoint = driver.ssh_endpoint()
        with self._session(record, driver) as session:
            return self._pin_host_key(record, session, endpoint)

    def _hand_engine_files(self, record: MachineRecord, driver: Driver) -> IssuedCert:
        """Give the driver the engine's files for the machine's first boot; the same certificate is then
        recorded and uploaded by provisioning, which finds it in place."""
        from .provisioner import ServerCerts, boot_files

        issued = self._new_server_cert(record, driver)
        driver.ctx.engine_files = boot_files(self._engine_config(record, driver),
                                             ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem),
                                             machine=record.name)
        return issued

    def client_trust(self, record: MachineRecord, exports: tuple[dict[str, Any], ...] | None = None) -> bytes:
        """The engine's client CA file (``/etc/docker/ca.pem``): the store's CA and each live export's
        issuing certificate. Every path that writes the file writes this, so none of them revokes an
        export, or brings a revoked one back, by the way."""
        from .trust import client_trust

        return client_trust(self.ca.ca_pem(), record.exports if exports is None else exports)

    def apply_client_trust(self, record: MachineRecord, exports: tuple[dict[str, Any], ...],
                           message: str) -> MachineRecord:
        """Make the running engine trust exactly the owner and ``exports``' live ones: write the CA file
        over SSH, restart dockerd (containers kept by live-restore), and return once the engine answers
        the owner over mutual TLS. The caller holds the machine's lock and records ``exports`` in the
        record returned (a migrated machine's first contact pins its host key in it)."""
        from .provisioner import install_client_trust

        self._require_provisionable(record)
        driver = self.driver_for(record)
        self._require_running(record, driver)
        self.progress(message)
        record = self._pin_at_first_contact(record, driver)
        with self._session(record, driver) as session:
            install_client_trust(session, self.client_trust(record, exports), self.progress)
        self._wait_ready(record, driver)
        return record

    def _new_server_cert(self, record: MachineRecord, driver: Driver) -> IssuedCert:
        sans = [*driver.addresses(), record.name, "localhost", *record.engine.tls_san]
        return self.ca.issue_server(record.name, sans)

    def _issue_server_cert(self, record: MachineRecord, driver: Driver,
                           issued: IssuedCert | None = None) -> tuple[MachineRecord, IssuedCert]:
        issued = issued or self._new_server_cert(record, driver)
        self.store.write_file(record.name, paths.SERVER_CERT, issued.cert_pem, 0o644)
        self.store.write_file(record.name, paths.SERVER_KEY, issued.key_pem, 0o600)
        info = CertInfo(issued.not_before.isoformat(), issued.not_after.isoformat(), issued.sans,
                        format(issued.serial, "x"))
        record = record.evolve(server_cert=info)
        self.store.save(record)
        return record, issued

    def _engine_config(self, record: MachineRecord, driver: Driver, ssh_user: str | None = None) -> EngineConfig:
        from .provisioner import EngineConfig

        # A cluster member's dockerd runs without live-restore: Swarm mode refuses to start with it.
        return EngineConfig(record.driver, record.name, record.engine, driver.engine_bind_port(), ssh_user=ssh_user,
                            live_restore=not (record.cluster or record.swarm_role))

    def _provision(self, record: MachineRecord, driver: Driver, *, first_contact: bool,
                   issued: IssuedCert | None = None) -> MachineRecord:
        from .provisioner import ServerCerts, provision_engine

        endpoint = driver.ssh_endpoint()
        with self._session(record, driver, first_contact=first_contact) as session:
            if first_contact or not record.host_key:
                record = self._pin_host_key(record, session, endpoint)
            record, issued = self._issue_server_cert(record, driver, issued)
            certs = ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem)
            facts = provision_engine(session, self._engine_config(record, driver, endpoint.user), certs,
                                     self.progress)
        record = record.evolve(facts={**record.facts, **_facts_dict(facts)},
                               engine=_with_storage_driver(record.engine, facts.storage_driver))
        self.store.save(record)
        self._wait_ready(record, driver, max(ENGINE_READY_TIMEOUT, driver.boot_timeout))
        return record

    def _wait_ready(self, record: MachineRecord, driver: Driver, timeout: float = ENGINE_READY_TIMEOUT) -> None:
        if record.engine.over_ssh:
            self._wait_for_engine_over_ssh(record, driver, timeout)
        else:
            self.wait_for_engine(self.connection(record), timeout)

    def _wait_for_engine_over_ssh(self, record: MachineRecord, driver: Driver, timeout: float) -> None:
        """What the docker CLI will do: a fresh login as the machine's user (so a new docker group
        membership counts) that talks to the engine's socket."""
        from . import waiting

        self.progress(f"Waiting for Docker on {record.name} to answer over SSH")

        def answers() -> bool:
            with self._session(record, driver, timeout=min(60.0, timeout)) as session:
                result = session.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
            if result.rc != 0 or not result.out.strip():
                raise waiting.NotYet((result.err or result.out).strip() or f"exit {result.rc}")
            return True

        waiting.wait_for(f"see Docker answer over SSH on {record.name}", answers, timeout=timeout, interval=2.0,
                         error=lambda expired: TimeoutExpired(
                             f'Docker on machine "{record.name}" did not answer over SSH within {timeout:.0f}s: '
                             f"{expired.reason}"))

    def _engine_url_or_none(self, record: MachineRecord, driver: Driver) -> str | None:
        try:
            return self._engine_url(record, driver)
        except ProvisionError:
            return None

    def _engine_url(self, record: MachineRecord, driver: Driver) -> str:
        """``tcp://HOST:PORT`` from the driver, or ``ssh://USER@HOST:PORT`` when the engine is reached over SSH."""
        if record.engine.over_ssh:
            endpoint = driver.ssh_endpoint()
            return addresses.ssh_url(endpoint.user, endpoint.host, endpoint.port)
        return addresses.engine_url(driver.engine_url())

    def wait_for_engine(self, info: ConnectionInfo, timeout: float = ENGINE_READY_TIMEOUT) -> None:
        from . import probe, waiting

        self.progress(f"Waiting for Docker at {info.url} to answer over TLS")
        deadline = waiting.Deadline(timeout)
        waiting.wait_for(
            f"see Docker answer at {info.url}",
            lambda: probe.ping(info.url, info.tls, timeout=min(10.0, max(1.0, deadline.remaining()))),
            timeout=deadline, interval=ENGINE_POLL_INTERVAL, retry_on=(EngineError,),
            error=lambda expired: TimeoutExpired(f'Docker on machine "{info.name}" did not answer /_ping over TLS '
                                                 f"within {timeout:.0f}s: {expired.reason}"))

    def reprovision(self, name: str) -> MachineRecord:
        with self.store.edit(name) as record:
            self._require_provisionable(record)
            self._require_own_ca(record, "re-provisioned")
            driver = self.driver_for(record)
            self._require_running(record, driver)
            record = self._provision(record, driver, first_contact=False)
            record = record.evolve(lifecycle=Lifecycle.READY, error=None)
            self.store.save(record)
            self.write_context(record)
            return record

    def upgrade(self, name: str) -> MachineRecord:
        from .provisioner import upgrade_engine

        record = self.store.load(name)
        self._require_provisionable(record)
        if self.driver_for(record).capabilities.start and self.status(name) != MachineState.RUNNING:
            self.progress(f"{name} is not running; starting it first")  # as Docker Machine's upgrade did
            self.start(name)
        with self.store.edit(name) as record:
            self._require_provisionable(record)
            driver = self.driver_for(record)
            self._require_running(record, driver)
            record = self._pin_at_first_contact(record, driver)
            with self._session(record, driver) as session:
                facts = upgrade_engine(session, self._engine_config(record, driver), self.progress)
            record = record.evolve(facts={**record.facts, **_facts_dict(facts)})
            self.store.save(record)
            self._wait_ready(record, driver)
            return record

    def regenerate_client_cert(self) -> None:
        """A new client certificate for the whole store, once; machines pick it up in ``regenerate_certs``."""
        self.progress("Regenerating the client certificate")
        self.ca.ensure()
        self.ca.regenerate_client()

    def regenerate_certs(self, name: str, client_certs: bool = False, *, adopt_ca: bool = False) -> MachineRecord:
        """A new server certificate for the machine, and with ``client_certs`` a new client certificate.

        Several machines at once: call ``regenerate_client_cert`` once, then this without ``client_certs``
        for each (every machine copies the store's current client certificate either way), with
        ``adopt_ca`` when the user asked for client certificates: a machine still on another tool's CA
        (migrated from Docker Machine) moves to the store's CA only then."""
        from .provisioner import ServerCerts, install_certs

        if client_certs:
            self.regenerate_client_cert()
        with self.store.edit(name) as record:
            self._require_provisionable(record)
            if not (client_certs or adopt_ca):
                self._require_own_ca(record, "get a new server certificate alone")
            driver = self.driver_for(record)
            self._require_running(record, driver)
            record = self._pin_at_first_contact(record, driver)
            self.ca.ensure()
            with self._session(record, driver) as session:
                record, issued = self._issue_server_cert(record, driver)
                install_certs(session, ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem),
                              self.progress)
            self._install_client_certs(name)
            record = record.evolve(url=self._engine_url(record, driver), facts=_without(record.facts, FOREIGN_CA))
            self.store.save(record)
            self._wait_ready(record, driver)
            self.write_context(record)
            return record

    def _require_own_ca(self, record: MachineRecord, action: str) -> None:
        if record.facts.get(FOREIGN_CA):
            raise ProvisionError(f'machine "{record.name}" still trusts {record.facts[FOREIGN_CA]}\'s CA and cannot '
                             f'{action}; `provision regenerate-certs --client-certs {record.name}` moves it to '
                             "provision's CA (new server and client certificates)")

    def _require_provisionable(self, record: MachineRecord) -> None:
        driver_cls = _registry().load(record.driver)
        if not driver_cls.capabilities.provisions_engine:
            raise NotSupported(f'the {record.driver} driver does not provision its engine; '
                               f'"{record.name}" cannot be re-provisioned or get new certificates here',
                               hint=driver_cls.refusal_hint("provisions_engine"))

    def _require_running(self, record: MachineRecord, driver: Driver) -> None:
        state = driver.state()
        if state != MachineState.RUNNING:
            raise HostNotRunning(record.name)

    # -- lifecycle -------------------------------------------------------------------------------
    def _lifecycle(self, name: str, action: str) -> MachineRecord:
        with self._timed(f"{action} {name}") as (timed, _clock):
            return timed._act(name, action)

    def _act(self, name: str, action: str) -> MachineRecord:
        # A second `start` (or a `stop`) while another command boots the machine waits for it to finish,
        # as long as a boot may take, then acts on what that command left: never a half-done state.
        driver_cls = _registry().load(self.store.load(name).driver)
        if not getattr(driver_cls.capabilities, action):
            raise NotSupported(f'the {driver_cls.name} driver cannot {action} machine "{name}"',
                               hint=driver_cls.refusal_hint(action))
        if self.store.is_locked(name):
            self.progress(f"Waiting for another provision command on {name} to finish")
        bound = max(LOCK_TIMEOUT, driver_cls.boot_timeout + ENGINE_READY_TIMEOUT)
        with self.store.edit(name, timeout=bound) as record:
            keeper = _Keeper(self.store, record)
            driver = self.driver_for(record, data=keeper.data, checkpoint=keeper.checkpoint)
            self.progress(f"{action.capitalize()}ing {name}" if action != "stop" else f"Stopping {name}")
            if action in ("stop", "kill", "restart"):
                agent.end(self.store.machine_dir(name))
            getattr(driver, action)()
            keeper.checkpoint()
            record = keeper.record
            if action in ("start", "restart") and driver.capabilities.provisions_engine:
                return self._after_boot(record, driver)
            # Stopped, a machine's engine answers nowhere (a cloud even gives its public address back):
            # never hand out the old URL. Otherwise (generic's restart) the driver's URL stands.
            url = None if action in ("stop", "kill") else self._engine_url_or_none(record, driver)
            record = record.evolve(url=url)
            self.store.save(record)
            return record

    def _after_boot(self, record: MachineRecord, driver: Driver) -> MachineRecord:
        """Certificates follow an IP change: a cloud start can hand out a new public address."""
        changed = driver.refresh()
        if changed and record.facts.get(FOREIGN_CA) and record.server_cert and driver.ip() in record.server_cert.sans:
            # A migrated machine's first refresh records names Docker Machine never kept; while its own
            # certificate still covers the address the machine stays on that CA until the user asks.
            changed = False
        record = record.evolve(driver_data=dict(driver.ctx.data), url=self._engine_url(record, driver))
        self.store.save(record)
        if changed:
            from .provisioner import ServerCerts, install_certs

            self.progress(f"The address of {record.name} changed; issuing a new server certificate")
            with self._session(record, driver) as session:
                # The host key stays pinned; `provision ssh` needs it under the new address too.
                record = self._pin_host_key(record, session, driver.ssh_endpoint())
                record, issued = self._issue_server_cert(record, driver)
                install_certs(session, ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem),
                              self.progress)
            if record.facts.get(FOREIGN_CA):  # the engine now trusts the store's CA: so must the client
                self.progress(f"{record.name} moved from {record.facts[FOREIGN_CA]}'s CA to provision's")
                self._install_client_certs(record.name)
                record = record.evolve(facts=_without(record.facts, FOREIGN_CA))
                self.store.save(record)
            self.write_context(record)
        self._wait_ready(record, driver, max(ENGINE_READY_TIMEOUT, driver.boot_timeout))
        self._start_agent(record, driver)
        return record

    # -- the host agent that forwards published ports ------------------------------------------------
    def agent_wanted(self, record: MachineRecord, driver: Driver) -> bool:
        # The agent reads the engine's events over its mutual-TLS endpoint: an engine reached over SSH
        # has none (`provision ports NAME --forward` covers it).
        return driver.capabilities.forward_ports and driver.wants_port_agent() and not record.engine.over_ssh

    def _start_agent(self, record: MachineRecord, driver: Driver) -> None:
        if not self.agent_wanted(record, driver):
            return
        directory = self.store.machine_dir(record.name)
        try:
            started = agent.ensure(self.store.root, record.name, directory)
        except OSError as exc:  # the machine works without it: say so, never undo the machine for it
            self.progress(f"Published ports are not forwarded: the port agent did not start ({exc})")
            return
        self.log(f"port agent for {record.name}: pid {started.pid}, log {started.log}")

    def agent_status(self, name: str) -> agent.AgentStatus:
        return agent.status(self.store.machine_dir(self.resolve_name(name)))

    def start(self, name: str) -> MachineRecord:
        return self._lifecycle(name, "start")

    def stop(self, name: str) -> MachineRecord:
        return self._lifecycle(name, "stop")

    def restart(self, name: str) -> MachineRecord:
        return self._lifecycle(name, "restart")

    def kill(self, name: str) -> MachineRecord:
        return self._lifecycle(name, "kill")

    def remove(self, name: str, *, force: bool = False) -> list[str]:
        """Remove the machine's resources, its context and its record; returns what was left, one line each.

        A plain rm reads all it needs (record, docker context, config.json) before it changes anything, so
        it removes all or nothing. With ``force`` a broken record, an unreadable docker file or a driver
        failure does not stop the local clean-up, and the context goes whenever it is provably this machine's.
        """
        validate_machine_name(name)
        left: list[str] = []
        context = context_name(name)
        owned, selected = self._context_to_remove(name, context, force, left)
        self._leave_swarm_before_remove(name, force)
        if self.store.exists(name):
            agent.end(self.store.machine_dir(name))
        readable, over_ssh = True, False
        try:
            with self.store.edit(name) as record:
                over_ssh = record.engine.over_ssh
                self.progress(f"Removing {name}")
                driver = self.driver_for(record)
                self._close_cluster_doors(record, driver)
                driver.remove()
        except MachineNotFound:
            raise
        except StoreError as exc:
            # -f gets past an unreadable record, never past another command's lock: deleting the record
            # under a running create would orphan what it makes.
            if not force or not isinstance(exc, BrokenRecord):
                raise
            readable = False
            left.append(f"{exc.message}; removed all the same")
        except ProvisionError:
            if not force:
                raise
        if owned:  # the ownership marker names the machine: no record is needed to know it
            if selected:  # the one local write that can fail (a full disk) goes first: nothing else is gone yet
                try:
                    self.docker.set_current_context(None)
                except ProvisionError as exc:
                    if not force:
                        raise
                    left.append(f"{exc.message}; its currentContext still names the removed context {context!r}")
            self.docker.delete_context(context)
        self.store.delete(name)
        if over_ssh or not readable:  # a TCP machine's rm need not read every record again
            self._write_ssh_config()
        return left

    def _context_to_remove(self, name: str, context: str, force: bool, left: list[str]) -> tuple[bool, bool]:
        """Whether the machine's docker context goes and whether config.json selects it, read before anything
        changes. A file that cannot be read stops a plain rm; ``force`` removes the context only when its TLS
        files are this machine's (its meta.json no longer says so), and adds a line for what it left."""
        try:
            owned = self.docker.owner(context) == name
        except ProvisionError as exc:
            if not force:
                raise
            owned = self.docker.tls_matches(context, self._own_tls(name))
            left.append(exc.message + ("; removed all the same: its TLS files are this machine's" if owned
                                       else f"; left in place, since nothing shows provision made it ({exc.hint})"))
        if not owned:
            return False, False
        try:
            return True, self.docker.current_context() == context
        except ProvisionError as exc:
            if not force:
                raise
            left.append(f"{exc.message}; its currentContext may still name the removed context {context!r}")
            return True, False

    def _own_tls(self, name: str) -> ContextTLS | None:
        """The TLS files a context of this machine holds, when its directory still has them all."""
        try:
            return self.context_tls(name)
        except OSError:
            return None

    def _close_cluster_doors(self, record: MachineRecord, driver: Driver) -> None:
        """A cluster member that goes without leaving its swarm (a failed create, a swarm never formed)
        closes what it opened; the last of the cluster's machines of that driver deletes what they shared,
        so no security group or firewall rule outlives them."""
        if not record.cluster or not driver.capabilities.cluster:
            return
        last = not any(isinstance(e, MachineRecord) and e.name != record.name and e.cluster == record.cluster
                       and e.driver == record.driver for e in self.store.entries())
        driver.leave_cluster(record.cluster, last=last)

    def _leave_swarm_before_remove(self, name: str, force: bool) -> None:
        """A cluster member is drained, leaves the swarm and is removed from the managers' list first; a
        step the cluster cannot take (its last manager with workers, a lost majority) refuses the rm
        unless ``force``."""
        try:
            record = self.store.load(name)
        except StoreError:
            return
        if not record.swarm_role:
            return
        from .swarm import Swarm

        try:
            Swarm(self).leave(name, force=force, removing=True)
        except ProvisionError as exc:
            if not force:
                raise
            self.progress(f"{name} could not leave its swarm cleanly ({exc.message}); removing it anyway")

    # -- listing ---------------------------------------------------------------------------------
    def active_name(self) -> str | None:
        """The machine the shell or the docker CLI points at now."""
        return lean.active_name(self.environ, machine_at=self._machine_at,
                                selected_context=self.docker.current_context, owner_of=self.docker.owner,
                                exists=self.store.exists)

    def _machine_at(self, url: str) -> str | None:
        return next((e.name for e in self.store.entries() if isinstance(e, MachineRecord) and e.url == url), None)

    def list(self, timeout: float = lean.LS_TIMEOUT, probe_engines: bool = True) -> list[Listing]:
        entries = self.store.entries()
        try:
            active = self.active_name()
        except ProvisionError:  # an unreadable docker file leaves no machine active; `active` says why
            active = None
        import threading

        results: dict[str, Listing] = {}
        threads = []
        for entry in entries:
            if isinstance(entry, BrokenEntry):
                results[entry.name] = Listing(entry.name, False, "", str(MachineState.ERROR), "", "Unknown",
                                              entry.error)
                continue
            thread = threading.Thread(target=self._probe_into, args=(entry, active == entry.name, timeout,
                                                                      probe_engines, results), daemon=True)
            thread.start()
            threads.append((entry, thread))
        deadline = time.monotonic() + timeout
        for entry, thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if entry.name not in results:
                results[entry.name] = Listing(entry.name, active == entry.name, entry.driver, str(MachineState.TIMEOUT),
                                              entry.url or "", "Unknown",
                                              f"no answer within {timeout:g}s", entry.engine.labels,
                                              swarm=swarm_column(entry))
        return [results[e.name] for e in entries]

    def _probe_into(self, record: MachineRecord, active: bool, timeout: float, probe_engines: bool,
                    results: dict[str, Listing]) -> None:
        results[record.name] = self.probe(record, active, timeout, probe_engines)

    def probe(self, record: MachineRecord, active: bool, timeout: float, probe_engines: bool = True) -> Listing:
        from . import probe

        started = time.monotonic()
        url, docker, error = record.url or "", "Unknown", record.error or ""
        if record.lifecycle == Lifecycle.CREATING:
            if self.store.is_locked(record.name):
                return Listing(record.name, active, record.driver, "Creating", url, docker, "",
                               record.engine.labels, swarm=swarm_column(record))
            # The create holds the lock to the end: a free lock means the creating command died (killed).
            return Listing(record.name, active, record.driver, str(MachineState.ERROR), url, docker,
                           f"create was interrupted; remove what it made with `provision rm -f {record.name}`",
                           record.engine.labels, swarm=swarm_column(record))
        try:
            driver = self.driver_for(record)
            state = driver.state()
            if state == MachineState.RUNNING:
                url = url or self._engine_url(record, driver)
                if self.agent_wanted(record, driver) and not agent.status(self.store.machine_dir(record.name)).running:
                    error = f"port agent is not running (`provision start {record.name}` starts it)"
                if probe_engines and not record.engine.over_ssh:  # an SSH login per machine: too slow for ls
                    info = ConnectionInfo(record.name, url, "", self.store.machine_dir(record.name))
                    try:
                        docker = "v" + str(probe.version(url, info.tls, timeout).get("Version", "?"))
                    except EngineError as exc:  # the machine runs; its engine does not answer
                        error = exc.message
            else:
                url = ""
        except ProvisionError as exc:
            state, error = MachineState.ERROR, exc.message
        except Exception as exc:  # a third-party driver's bug must not break `ls`
            state, error = MachineState.ERROR, f"{type(exc).__name__}: {exc}"
        if not error:
            error = _expiry_warning(record)
        elapsed = int((time.monotonic() - started) * 1000)
        return Listing(record.name, active, record.driver, str(state), url, docker, error,
                       record.engine.labels, elapsed, swarm_column(record))

    def status(self, name: str | None) -> MachineState:
        record = self.get(name)
        return self.driver_for(record).state()

    def inspect(self, name: str | None) -> dict[str, Any]:
        record = self.get(name)
        data = record.to_dict()
        data["Name"] = record.name
        data["DriverName"] = record.driver
        if record.exports:  # live, revoked or expired, and whether each can be revoked; not the PEM
            from .trust import describe

            data["exports"] = [describe(e) for e in record.exports]
        directory = self.store.machine_dir(record.name)
        data["paths"] = {"machine_dir": str(directory), "cert_path": str(directory),
                         "ssh_key": str(directory / paths.SSH_KEY), "known_hosts": str(directory / paths.KNOWN_HOSTS),
                         "context": context_name(record.name)}
        try:
            driver = self.driver_for(record)
            data["Driver"] = {**record.driver_options, **record.driver_data, **driver.extra(),
                              "IPAddress": self.connection(record).ip}
            log = driver.boot_log()
            if log is not None:
                data["boot_log_tail"] = log.splitlines()[-20:]
        except ProvisionError as exc:
            data["Driver"] = {"error": exc.message}
        data["port_agent"] = agent.status(directory).to_dict()
        server_pem = directory / paths.SERVER_CERT
        if server_pem.exists():
            from .tls import describe_certificate

            data["server_certificate"] = describe_certificate(server_pem.read_bytes())
        return data

    def engine_version(self, name: str | None, timeout: float = 10.0) -> str:
        from . import probe

        info = self.connection(self.get(name))
        return str(probe.version(info.url, info.tls, timeout).get("Version", "unknown"))

    # -- docker contexts -------------------------------------------------------------------------
    def context_tls(self, name: str) -> ContextTLS:
        directory = self.store.machine_dir(name)
        ca, cert, key = (read_regular(str(directory / f), PEM_LIMIT)
                         for f in (paths.CA_CERT, paths.CLIENT_CERT, paths.CLIENT_KEY))
        return ContextTLS(ca, cert, key)

    def write_context(self, record: MachineRecord) -> str:
        info = self.connection(record)
        name = context_name(record.name)
        tls = None if record.engine.over_ssh else self.context_tls(record.name)
        self.docker.write_context(name, record.name, info.url, tls,
                                  f"provision machine {record.name} ({record.driver})")
        if record.engine.over_ssh:
            self._write_ssh_config()
        return name

    # -- the ssh config for engines reached over SSH -------------------------------------------------
    @property
    def ssh_config_path(self) -> Path:
        return self.store.root / sshconfig.FILE

    @property
    def user_ssh_config(self) -> Path:
        return Path(self.environ.get("HOME") or Path.home()) / ".ssh" / "config"

    def ssh_config_included(self) -> bool:
        return sshconfig.is_included(self.user_ssh_config, self.ssh_config_path)

    def _write_ssh_config(self) -> None:
        """The store's ssh config from every machine reached over SSH; with none left, the file and our
        Include line in ~/.ssh/config go."""
        over_ssh = [e for e in self.store.entries() if isinstance(e, MachineRecord) and e.engine.over_ssh]
        machines: list[sshconfig.SSHMachine] = []
        for entry in over_ssh:  # stopped ones too: they start again
            try:
                endpoint = self.driver_for(entry).ssh_endpoint()
            except ProvisionError:
                continue
            directory = self.store.machine_dir(entry.name)
            machines.append(sshconfig.SSHMachine(entry.name, endpoint.host, endpoint.port, endpoint.user,
                                                 endpoint.key_path, directory / paths.KNOWN_HOSTS))
        sshconfig.write(self.ssh_config_path, machines)
        sshconfig.follow_store(self.user_ssh_config, self.ssh_config_path, self._include_marker,
                               needed=bool(over_ssh))

    @property
    def _include_marker(self) -> Path:
        return self.store.root / sshconfig.INCLUDED

    def use(self, name: str) -> tuple[str, list[str]]:
        """Make the machine the docker CLI's current context. Returns the context and warnings."""
        record = self.store.load(validate_machine_name(name))
        if record.lifecycle != Lifecycle.READY:
            raise ProvisionError(f'machine "{name}" is not ready ({record.lifecycle}); see `provision ls`')
        context = context_name(name)
        if self.docker.owner(context) != name:
            self.write_context(record)
        self.docker.set_current_context(context)
        return context, override_warnings(self.environ, context)

    def use_unset(self) -> list[str]:
        self.docker.set_current_context(None)
        return override_warnings(self.environ, "default")

    # -- ssh -------------------------------------------------------------------------------------
    def ssh_target(self, name: str | None) -> tuple[SSHEndpoint, Path]:
        record = self.get(name)
        driver = self.driver_for(record)
        if not driver.capabilities.ssh:
            raise NotSupported(f'the {record.driver} driver offers no SSH access to "{record.name}"',
                               hint=driver.refusal_hint("ssh"))
        if driver.state() != MachineState.RUNNING:
            raise HostNotRunning(record.name)
        if not record.host_key:
            with self.store.edit(record.name) as record:
                self._pin_at_first_contact(record, driver)
        return driver.ssh_endpoint(), self.store.machine_dir(record.name) / paths.KNOWN_HOSTS

    @contextmanager
    def remote(self, name: str) -> Iterator[RemoteSession]:
        record = self.store.load(name)
        driver = self.driver_for(record)
        with self._session(record, driver) as session:
            yield session


class _Keeper:
    """Persists a driver's ``data`` into the record each time the driver checkpoints."""

    def __init__(self, store: Store, record: MachineRecord) -> None:
        self.store = store
        self.record = record
        self.data: dict[str, Any] = dict(record.driver_data)

    def checkpoint(self) -> None:
        self.record = self.record.evolve(driver_data=dict(self.data))
        self.store.save(self.record)


def swarm_column(record: MachineRecord) -> str:
    """``ls``'s SWARM column, as Docker Machine showed it: a manager as ``NAME (manager)``, a worker as the
    manager it joined through; empty outside a swarm."""
    if record.swarm_role == "manager":
        return f"{record.name} (manager)"
    return (record.swarm_manager or "") if record.swarm_role else ""


def _expiry_warning(record: MachineRecord) -> str:
    """Warn in `ls` a month before the server certificate expires."""
    if record.server_cert is None:
        return ""
    from datetime import datetime, timezone

    from .tls import EXPIRY_WARNING

    try:
        not_after = datetime.fromisoformat(record.server_cert.not_after)
    except ValueError:
        return ""
    now = datetime.now(timezone.utc)
    if not_after <= now:
        return f"server certificate expired on {not_after:%Y-%m-%d}; run regenerate-certs"
    if not_after - now < EXPIRY_WARNING:
        return f"server certificate expires on {not_after:%Y-%m-%d}; run regenerate-certs"
    return ""


def _registry():  # type: ignore[no-untyped-def]
    # importlib.metadata costs ~40 ms: only commands that need a driver pay for it.
    from provision import registry

    return registry


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, ProvisionError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _facts_dict(facts: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(facts)


def _without(facts: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k != key}


def _with_storage_driver(engine: EngineSettings, used: str | None) -> EngineSettings:
    """Persist the storage driver actually in use, so a re-provision never switches it."""
    if used and not engine.storage_driver:
        from dataclasses import replace

        return replace(engine, storage_driver=used)
    return engine


__all__ = ["ConnectionInfo", "CreateRequest", "Listing", "Machines", "MachineNotFound"]
