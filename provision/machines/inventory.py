"""What there is: ``ls`` (every machine probed at once, within a timeout), ``status``, ``inspect``, the
engine's version, and which machine the shell or the docker CLI points at."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from provision import agent, filerules, paths, waiting
from provision.driver import MachineState
from provision.errors import EngineError, ProvisionError
from provision.names import context_name
from provision.record import Lifecycle, MachineRecord
from provision.store import BrokenEntry

from .core import ConnectionInfo, Core
from .lifecycle import agent_wanted


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


class Inventory:
    def __init__(self, core: Core) -> None:
        self.core = core

    def active_name(self) -> str | None:
        """The machine the shell or the docker CLI points at now."""
        docker = self.core.docker
        return filerules.active_name(self.core.environ, machine_at=self._machine_at,
                                selected_context=docker.current_context, owner_of=docker.owner,
                                exists=self.core.store.exists)

    def _machine_at(self, url: str) -> str | None:
        return next((e.name for e in self.core.records() if e.url == url), None)

    def list(self, timeout: float = filerules.LS_TIMEOUT, probe_engines: bool = True) -> list[Listing]:
        entries = self.core.store.entries()
        try:
            active = self.active_name()
        except ProvisionError:  # an unreadable docker file leaves no machine active; `active` says why
            active = None
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
        deadline = waiting.Deadline(timeout)
        for entry, thread in threads:
            thread.join(deadline.remaining())
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
        from provision import probe

        clock = waiting.Deadline(timeout)
        store = self.core.store
        url, docker, error = record.url or "", "Unknown", record.error or ""
        if record.lifecycle == Lifecycle.CREATING:
            if store.is_locked(record.name):
                return Listing(record.name, active, record.driver, "Creating", url, docker, "",
                               record.engine.labels, swarm=swarm_column(record))
            # The create holds the lock to the end: a free lock means the creating command died (killed).
            return Listing(record.name, active, record.driver, str(MachineState.ERROR), url, docker,
                           f"create was interrupted; remove what it made with `provision rm -f {record.name}`",
                           record.engine.labels, swarm=swarm_column(record))
        try:
            driver = self.core.driver_for(record)
            state = driver.state()
            if state == MachineState.RUNNING:
                url = url or self.core.engine_url(record, driver)
                if agent_wanted(record, driver) and not agent.status(store.machine_dir(record.name)).running:
                    error = f"port agent is not running (`provision start {record.name}` starts it)"
                if probe_engines and not record.engine.over_ssh:  # an SSH login per machine: too slow for ls
                    info = ConnectionInfo(record.name, url, "", store.machine_dir(record.name))
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
        return Listing(record.name, active, record.driver, str(state), url, docker, error,
                       record.engine.labels, int(clock.elapsed() * 1000), swarm_column(record))

    def status(self, name: str | None) -> MachineState:
        return self.core.driver_for(self.core.get(name)).state()

    def inspect(self, name: str | None) -> dict[str, Any]:
        record = self.core.get(name)
        data = record.to_dict()
        data["Name"] = record.name
        data["DriverName"] = record.driver
        if record.exports:  # live, revoked or expired, and whether each can be revoked; not the PEM
            from provision.trust import describe

            data["exports"] = [describe(e) for e in record.exports]
        directory = self.core.store.machine_dir(record.name)
        data["paths"] = {"machine_dir": str(directory), "cert_path": str(directory),
                         "ssh_key": str(directory / paths.SSH_KEY), "known_hosts": str(directory / paths.KNOWN_HOSTS),
                         "context": context_name(record.name)}
        try:
            driver = self.core.driver_for(record)
            data["Driver"] = {**record.driver_options, **record.driver_data, **driver.extra(),
                              "IPAddress": self.core.connection(record).ip}
            log = driver.boot_log()
            if log is not None:
                data["boot_log_tail"] = log.splitlines()[-20:]
        except ProvisionError as exc:
            data["Driver"] = {"error": exc.message}
        data["port_agent"] = agent.status(directory).to_dict()
        server_pem = directory / paths.SERVER_CERT
        if server_pem.exists():
            from provision.tls import describe_certificate

            data["server_certificate"] = describe_certificate(server_pem.read_bytes())
        return data

    def engine_version(self, name: str | None, timeout: float = 10.0) -> str:
        from provision import probe

        info = self.core.connection(self.core.get(name))
        return str(probe.version(info.url, info.tls, timeout).get("Version", "unknown"))


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

    from provision.tls import EXPIRY_WARNING

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
