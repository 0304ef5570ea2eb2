"""Docker Engine on a machine: certificates (the client's, the server's, the engine's client trust), the
provisioning session over SSH, and waiting until the engine answers as the docker CLI will reach it."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from provision import paths
from provision.driver import Driver
from provision.errors import EngineError, ProvisionError, TimeoutExpired
from provision.record import FOREIGN_CA, CertInfo, EngineSettings, Lifecycle, MachineRecord

from .access import Access
from .core import ENGINE_READY_TIMEOUT, ConnectionInfo, Core

if TYPE_CHECKING:
    from provision.provisioner import EngineConfig
    from provision.tls import IssuedCert

# A refused or reset ping costs a millisecond on loopback; polling often takes the engine's first answer
# when it comes instead of up to a second later, a second that is the last step of every create and start.
ENGINE_POLL_INTERVAL = 0.25


class Provisioning:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.access = Access(core)

    # -- certificates ----------------------------------------------------------------------------
    def install_client_certs(self, name: str) -> None:
        ca_cert, client_cert, client_key = self.core.ca.client_files()
        store = self.core.store
        store.write_file(name, paths.CA_CERT, ca_cert, 0o644)
        store.write_file(name, paths.CLIENT_CERT, client_cert, 0o644)
        store.write_file(name, paths.CLIENT_KEY, client_key, 0o600)

    def hand_engine_files(self, record: MachineRecord, driver: Driver) -> IssuedCert:
        """Give the driver the engine's files for the machine's first boot; the same certificate is then
        recorded and uploaded by provisioning, which finds it in place."""
        from provision.provisioner import ServerCerts, boot_files

        issued = self.new_server_cert(record, driver)
        driver.ctx.engine_files = boot_files(self.engine_config(record, driver),
                                             ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem),
                                             machine=record.name)
        return issued

    def client_trust(self, record: MachineRecord, exports: tuple[dict[str, Any], ...] | None = None) -> bytes:
        """The engine's client CA file (``/etc/docker/ca.pem``): the store's CA and each live export's
        issuing certificate. Every path that writes the file writes this, so none of them revokes an
        export, or brings a revoked one back, by the way."""
        from provision.trust import client_trust

        return client_trust(self.core.ca.ca_pem(), record.exports if exports is None else exports)

    def apply_client_trust(self, record: MachineRecord, exports: tuple[dict[str, Any], ...],
                           message: str) -> MachineRecord:
        """Make the running engine trust exactly the owner and ``exports``' live ones: write the CA file
        over SSH, restart dockerd (containers kept by live-restore), and return once the engine answers
        the owner over mutual TLS. The caller holds the machine's lock and records ``exports`` in the
        record returned (a migrated machine's first contact pins its host key in it)."""
        from provision.provisioner import install_client_trust

        self.core.require_provisionable(record)
        driver = self.core.driver_for(record)
        self.core.require_running(record, driver)
        self.core.progress(message)
        record = self.core.pin_at_first_contact(record, driver)
        with self.core.session(record, driver) as session:
            install_client_trust(session, self.client_trust(record, exports), self.core.progress)
        self.wait_ready(record, driver)
        return record

    def new_server_cert(self, record: MachineRecord, driver: Driver) -> IssuedCert:
        sans = [*driver.addresses(), record.name, "localhost", *record.engine.tls_san]
        return self.core.ca.issue_server(record.name, sans)

    def issue_server_cert(self, record: MachineRecord, driver: Driver,
                          issued: IssuedCert | None = None) -> tuple[MachineRecord, IssuedCert]:
        issued = issued or self.new_server_cert(record, driver)
        self.core.store.write_file(record.name, paths.SERVER_CERT, issued.cert_pem, 0o644)
        self.core.store.write_file(record.name, paths.SERVER_KEY, issued.key_pem, 0o600)
        info = CertInfo(issued.not_before.isoformat(), issued.not_after.isoformat(), issued.sans,
                        format(issued.serial, "x"))
        record = record.evolve(server_cert=info)
        self.core.store.save(record)
        return record, issued

    def regenerate_client_cert(self) -> None:
        """A new client certificate for the whole store, once; machines pick it up in ``regenerate_certs``."""
        self.core.progress("Regenerating the client certificate")
        self.core.ca.ensure()
        self.core.ca.regenerate_client()

    def regenerate_certs(self, name: str, client_certs: bool = False, *, adopt_ca: bool = False) -> MachineRecord:
        """A new server certificate for the machine, and with ``client_certs`` a new client certificate.

        Several machines at once: call ``regenerate_client_cert`` once, then this without ``client_certs``
        for each (every machine copies the store's current client certificate either way), with
        ``adopt_ca`` when the user asked for client certificates: a machine still on another tool's CA
        (migrated from Docker Machine) moves to the store's CA only then."""
        if client_certs:
            self.regenerate_client_cert()
        with self.core.store.edit(name) as record:
            self.core.require_provisionable(record)
            if not (client_certs or adopt_ca):
                self._require_own_ca(record, "get a new server certificate alone")
            driver = self.core.driver_for(record)
            self.core.require_running(record, driver)
            record = self.core.pin_at_first_contact(record, driver)
            self.core.ca.ensure()
            with self.core.session(record, driver) as session:
                record = self._replace_server_cert(record, driver, session)
            self.install_client_certs(name)
            record = record.evolve(url=self.core.engine_url(record, driver), facts=_without(record.facts, FOREIGN_CA))
            self.core.store.save(record)
            self.wait_ready(record, driver)
            self.access.write_context(record)
            return record

    def follow_new_address(self, record: MachineRecord, driver: Driver) -> MachineRecord:
        """A cloud start handed out a new public address: a new server certificate names it, the host key
        stays pinned under it too, and a migrated machine moves to the store's CA."""
        self.core.progress(f"The address of {record.name} changed; issuing a new server certificate")
        with self.core.session(record, driver) as session:
            record = self.core.pin_host_key(record, session, driver.ssh_endpoint())
            record = self._replace_server_cert(record, driver, session)
        if record.facts.get(FOREIGN_CA):  # the engine now trusts the store's CA: so must the client
            self.core.progress(f"{record.name} moved from {record.facts[FOREIGN_CA]}'s CA to provision's")
            self.install_client_certs(record.name)
            record = record.evolve(facts=_without(record.facts, FOREIGN_CA))
            self.core.store.save(record)
        self.access.write_context(record)
        return record

    def _replace_server_cert(self, record: MachineRecord, driver: Driver, session: Any) -> MachineRecord:
        from provision.provisioner import ServerCerts, install_certs

        record, issued = self.issue_server_cert(record, driver)
        install_certs(session, ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem),
                      self.core.progress)
        return record

    def _require_own_ca(self, record: MachineRecord, action: str) -> None:
        if record.facts.get(FOREIGN_CA):
            raise ProvisionError(f'machine "{record.name}" still trusts {record.facts[FOREIGN_CA]}\'s CA and cannot '
                                 f'{action}; `provision regenerate-certs --client-certs {record.name}` moves it to '
                                 "provision's CA (new server and client certificates)")

    # -- provisioning ----------------------------------------------------------------------------
    def engine_config(self, record: MachineRecord, driver: Driver, ssh_user: str | None = None) -> EngineConfig:
        from provision.provisioner import EngineConfig

        # A cluster member's dockerd runs without live-restore: Swarm mode refuses to start with it.
        return EngineConfig(record.driver, record.name, record.engine, driver.engine_port(), ssh_user=ssh_user,
                            live_restore=not (record.cluster or record.swarm_role))

    def provision(self, record: MachineRecord, driver: Driver, *, first_contact: bool,
                  issued: IssuedCert | None = None) -> MachineRecord:
        from provision.provisioner import ServerCerts, provision_engine

        endpoint = driver.ssh_endpoint()
        with self.core.session(record, driver, first_contact=first_contact) as session:
            if first_contact or not record.host_key:
                record = self.core.pin_host_key(record, session, endpoint)
            record, issued = self.issue_server_cert(record, driver, issued)
            certs = ServerCerts(self.client_trust(record), issued.cert_pem, issued.key_pem)
            facts = provision_engine(session, self.engine_config(record, driver, endpoint.user), certs,
                                     self.core.progress)
        record = record.evolve(facts={**record.facts, **asdict(facts)},
                               engine=_with_storage_driver(record.engine, facts.storage_driver))
        self.core.store.save(record)
        self.wait_ready(record, driver, max(ENGINE_READY_TIMEOUT, driver.boot_timeout))
        return record

    def reprovision(self, name: str) -> MachineRecord:
        with self.core.store.edit(name) as record:
            self.core.require_provisionable(record)
            self._require_own_ca(record, "re-provisioned")
            driver = self.core.driver_for(record)
            self.core.require_running(record, driver)
            record = self.provision(record, driver, first_contact=False)
            record = record.evolve(lifecycle=Lifecycle.READY, error=None)
            self.core.store.save(record)
            self.access.write_context(record)
            return record

    def upgrade(self, name: str) -> MachineRecord:
        """The engine to its newest release, on a running machine."""
        from provision.provisioner import upgrade_engine

        with self.core.store.edit(name) as record:
            self.core.require_provisionable(record)
            driver = self.core.driver_for(record)
            self.core.require_running(record, driver)
            record = self.core.pin_at_first_contact(record, driver)
            with self.core.session(record, driver) as session:
                facts = upgrade_engine(session, self.engine_config(record, driver), self.core.progress)
            record = record.evolve(facts={**record.facts, **asdict(facts)})
            self.core.store.save(record)
            self.wait_ready(record, driver)
            return record

    # -- waiting for the engine --------------------------------------------------------------------
    def wait_ready(self, record: MachineRecord, driver: Driver, timeout: float = ENGINE_READY_TIMEOUT) -> None:
        if record.engine.over_ssh:
            self._wait_for_engine_over_ssh(record, driver, timeout)
        else:
            self.wait_for_engine(self.core.connection(record), timeout)

    def _wait_for_engine_over_ssh(self, record: MachineRecord, driver: Driver, timeout: float) -> None:
        """What the docker CLI will do: a fresh login as the machine's user (so a new docker group
        membership counts) that talks to the engine's socket."""
        from provision import waiting

        self.core.progress(f"Waiting for Docker on {record.name} to answer over SSH")

        def answers() -> bool:
            with self.core.session(record, driver, timeout=min(60.0, timeout)) as session:
                result = session.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
            if result.rc != 0 or not result.out.strip():
                raise waiting.NotYet((result.err or result.out).strip() or f"exit {result.rc}")
            return True

        waiting.wait_for(f"see Docker answer over SSH on {record.name}", answers, timeout=timeout, interval=2.0,
                         error=lambda expired: TimeoutExpired(
                             f'Docker on machine "{record.name}" did not answer over SSH within {timeout:.0f}s: '
                             f"{expired.reason}"))

    def wait_for_engine(self, info: ConnectionInfo, timeout: float = ENGINE_READY_TIMEOUT) -> None:
        from provision import probe, waiting

        self.core.progress(f"Waiting for Docker at {info.url} to answer over TLS")
        deadline = waiting.Deadline(timeout)
        waiting.wait_for(
            f"see Docker answer at {info.url}",
            lambda: probe.ping(info.url, info.tls, timeout=min(10.0, max(1.0, deadline.remaining()))),
            timeout=deadline, interval=ENGINE_POLL_INTERVAL, retry_on=(EngineError,),
            error=lambda expired: TimeoutExpired(f'Docker on machine "{info.name}" did not answer /_ping over TLS '
                                                 f"within {timeout:.0f}s: {expired.reason}"))


def _without(facts: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k != key}


def _with_storage_driver(engine: EngineSettings, used: str | None) -> EngineSettings:
    """Persist the storage driver actually in use, so a re-provision never switches it."""
    if used and not engine.storage_driver:
        return replace(engine, storage_driver=used)
    return engine
