"""``create``: claim the name, let the driver make the machine, provision its engine, and on any failure
(an interrupt too) remove everything made so far unless asked to keep it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provision import interrupts
from provision.driver import Driver
from provision.errors import Interrupted, ProvisionError, UsageError
from provision.names import context_name, validate_machine_name
from provision.options import public, resolve
from provision.record import EngineSettings, Lifecycle, MachineRecord
from provision.steps import StepClock

from .access import Access
from .core import Core, Keeper, describe_failure, registry
from .lifecycle import Power
from .provisioning import Provisioning
from .removal import close_cluster_doors


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


class Creating:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.access = Access(core)
        self.provisioning = Provisioning(core)

    def create(self, request: CreateRequest) -> MachineRecord:
        with self.core.timed(f"create {request.name}") as (timed, clock):
            record = Creating(timed)._create(request, clock)
        if record.engine.over_ssh and request.ssh_config_include:
            # After the machine is ready: a ~/.ssh/config that cannot be changed must not undo the machine.
            try:
                self.access.agree_to_include()
            except ProvisionError as exc:
                self.core.progress(f"~/.ssh/config was left as it is: {exc.message}")
        return record

    def _create(self, request: CreateRequest, clock: StepClock) -> MachineRecord:
        core = self.core
        validate_machine_name(request.name)
        driver_cls = registry().load(request.driver)
        if request.engine.over_ssh and not (driver_cls.capabilities.ssh and driver_cls.capabilities.provisions_engine):
            raise UsageError(f"--engine-endpoint ssh needs a driver that provisions its engine over SSH; "
                             f"{request.driver} does not")
        options = resolve(driver_cls, request.driver_flags, core.environ)
        driver_cls.check_options(options)
        # A docker context of that name that provision did not write would fail the create at its very end,
        # after a cloud instance was made and paid for: refuse now, before anything exists.
        core.docker.check_context_free(context_name(request.name), request.name)
        record = MachineRecord(name=request.name, driver=request.driver,
                               driver_options=public(driver_cls, options), engine=request.engine,
                               cluster=request.cluster)
        # A Ctrl-C between the claim and the `try` below would leave a `creating` record with nobody to
        # clean up after it: it is held until the `try` is entered, and raised there.
        with interrupts.held() as release_interrupt:
            core.store.claim(record)  # refuses a name already taken
            with core.store.lock(request.name):
                keeper = Keeper(core.store, record)
                driver = core.driver_for(record, data=keeper.data, checkpoint=keeper.checkpoint)
                driver.ctx.options = options  # secrets stay in memory only
                try:
                    release_interrupt()
                    core.progress("Creating the certificate authority and client certificate")
                    core.ca.ensure()
                    self.provisioning.install_client_certs(request.name)
                    if driver_cls.capabilities.ssh:
                        from provision.sshkeys import generate_ed25519

                        generate_ed25519(driver.ctx.ssh_key_path, f"provision-{request.name}")
                    issued = None
                    if driver_cls.capabilities.provisions_engine and driver_cls.capabilities.engine_files_at_boot:
                        issued = self.provisioning.hand_engine_files(keeper.record, driver)
                    core.progress(f"Creating machine {request.name} with the {request.driver} driver")
                    driver.create()
                    keeper.checkpoint()
                    record = keeper.record.evolve(url=core.engine_url(record, driver))
                    if driver_cls.capabilities.provisions_engine:
                        record = self.provisioning.provision(record, driver, first_contact=True, issued=issued)
                    # Recorded with the machine, so `inspect` shows where a slow create spent its time.
                    record = record.evolve(lifecycle=Lifecycle.READY, error=None,
                                           facts={**record.facts, **clock.finish().facts("create")})
                    core.store.save(record)
                    self.access.write_context(record)
                    Power(core).start_agent(record, driver)
                except BaseException as exc:
                    failed = keeper.record.evolve(driver_data=dict(keeper.data), lifecycle=Lifecycle.ERROR,
                                                  error=describe_failure(exc))
                    self._fail_create(failed, driver, request.keep_on_failure)
                    if isinstance(exc, KeyboardInterrupt):
                        raise Interrupted("Interrupted; " + (
                            "the machine was kept (--keep-on-failure)" if request.keep_on_failure
                            else "everything created so far was removed")) from exc
                    raise
        return record

    def _fail_create(self, record: MachineRecord, driver: Driver, keep: bool) -> None:
        store = self.core.store
        with interrupts.held():  # a second Ctrl-C must not leave the record saying `creating`
            store.save(record)
        if keep:
            return
        self.core.progress(f"Create failed; removing what was created for {record.name}")
        try:
            close_cluster_doors(self.core, record, driver)
            driver.remove()
        except BaseException as cleanup:  # keep the record so `rm` can try again
            store.save(record.evolve(error=f"{record.error}; cleanup failed: {describe_failure(cleanup)}"))
            return
        self.core.docker.remove_context(context_name(record.name), record.name)
        store.delete(record.name)
