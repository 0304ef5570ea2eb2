"""Start, stop, restart and kill through the driver; what follows a boot (a new address, the engine's
answer, the port agent); and the agent that forwards a machine's published ports."""

from __future__ import annotations

from provision import agent
from provision.driver import Driver, MachineState
from provision.errors import NotSupported
from provision.record import FOREIGN_CA, MachineRecord
from provision.store import LOCK_TIMEOUT

from .core import ENGINE_READY_TIMEOUT, Core, Keeper, registry
from .provisioning import Provisioning


def agent_wanted(record: MachineRecord, driver: Driver) -> bool:
    # The agent reads the engine's events over its mutual-TLS endpoint: an engine reached over SSH
    # has none (`provision ports NAME --forward` covers it).
    return driver.capabilities.forward_ports and driver.wants_port_agent() and not record.engine.over_ssh


class Power:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.provisioning = Provisioning(core)

    def act(self, name: str, action: str) -> MachineRecord:
        with self.core.timed(f"{action} {name}") as (timed, _clock):
            return Power(timed)._act(name, action)

    def _act(self, name: str, action: str) -> MachineRecord:
        # A second `start` (or a `stop`) while another command boots the machine waits for it to finish,
        # as long as a boot may take, then acts on what that command left: never a half-done state.
        store = self.core.store
        driver_cls = registry().load(store.load(name).driver)
        if not getattr(driver_cls.capabilities, action):
            raise NotSupported(f'the {driver_cls.name} driver cannot {action} machine "{name}"',
                               hint=driver_cls.refusal_hint(action))
        if store.is_locked(name):
            self.core.progress(f"Waiting for another provision command on {name} to finish")
        bound = max(LOCK_TIMEOUT, driver_cls.boot_timeout + ENGINE_READY_TIMEOUT)
        with store.edit(name, timeout=bound) as record:
            keeper = Keeper(store, record)
            driver = self.core.driver_for(record, data=keeper.data, checkpoint=keeper.checkpoint)
            self.core.progress(f"{action.capitalize()}ing {name}" if action != "stop" else f"Stopping {name}")
            if action in ("stop", "kill", "restart"):
                agent.end(store.machine_dir(name))
            getattr(driver, action)()
            keeper.checkpoint()
            record = keeper.record
            if action in ("start", "restart") and driver.capabilities.provisions_engine:
                return self.after_boot(record, driver)
            # Stopped, a machine's engine answers nowhere (a cloud even gives its public address back):
            # never hand out the old URL. Otherwise (generic's restart) the driver's URL stands.
            url = None if action in ("stop", "kill") else self.core.engine_url_or_none(record, driver)
            record = record.evolve(url=url)
            store.save(record)
            return record

    def after_boot(self, record: MachineRecord, driver: Driver) -> MachineRecord:
        """Certificates follow an IP change: a cloud start can hand out a new public address."""
        changed = driver.refresh()
        if changed and record.facts.get(FOREIGN_CA) and record.server_cert and driver.ip() in record.server_cert.sans:
            # A migrated machine's first refresh records names Docker Machine never kept; while its own
            # certificate still covers the address the machine stays on that CA until the user asks.
            changed = False
        record = record.evolve(driver_data=dict(driver.ctx.data), url=self.core.engine_url(record, driver))
        self.core.store.save(record)
        if changed:
            record = self.provisioning.follow_new_address(record, driver)
        self.provisioning.wait_ready(record, driver, max(ENGINE_READY_TIMEOUT, driver.boot_timeout))
        self.start_agent(record, driver)
        return record

    def upgrade(self, name: str) -> MachineRecord:
        record = self.core.store.load(name)
        self.core.require_provisionable(record)
        driver = self.core.driver_for(record)
        if driver.capabilities.start and driver.state() != MachineState.RUNNING:
            self.core.progress(f"{name} is not running; starting it first")  # as Docker Machine's upgrade did
            self.act(name, "start")
        return self.provisioning.upgrade(name)

    # -- the host agent that forwards published ports ------------------------------------------------
    def start_agent(self, record: MachineRecord, driver: Driver) -> None:
        if not agent_wanted(record, driver):
            return
        directory = self.core.store.machine_dir(record.name)
        try:
            started = agent.ensure(self.core.store.root, record.name, directory)
        except OSError as exc:  # the machine works without it: say so, never undo the machine for it
            self.core.progress(f"Published ports are not forwarded: the port agent did not start ({exc})")
            return
        self.core.log(f"port agent for {record.name}: pid {started.pid}, log {started.log}")
