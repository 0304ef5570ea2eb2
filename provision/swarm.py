"""Swarm mode over machines: init, join, leave and list, through each engine's own API.

provision never orchestrates containers: it opens the doors between members (the driver's
``join_cluster``/``leave_cluster``), and drives Docker's Swarm mode over the mutual-TLS endpoint it
records for every machine, with the machine's client certificate (the ``docker`` SDK, imported here
only). Join tokens are read from a manager when needed and live in memory only.

A cluster in the store is the set of records sharing ``cluster`` with a ``swarm_role``; the managers
among them are asked about the rest. Nothing here takes a step that would leave a cluster without a
majority of reachable managers: such a step is refused with the reason, before anything changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .driver import Driver, MachineState
from .errors import EngineError, HostNotRunning, NotSupported, ProvisionError, TimeoutExpired, UsageError
from .record import MachineRecord

if TYPE_CHECKING:
    from .machines import Machines

SWARM_PORT = 2377
DRAIN_TIMEOUT = 180.0  # tasks of a drained node rescheduled elsewhere (an image pull under TCG is slow)
DEMOTE_TIMEOUT = 60.0  # a demoted manager no longer listed as one
JOIN_TIMEOUT = 120.0
QUORUM_GRACE = 10.0  # a manager that is joining counts as unreachable until it answers
API_TIMEOUT = 60
POOL_SIZE = 32  # connections kept per engine client: a fleet's joins ask the leader at once
MIN_API_VERSION = "1.40"  # Docker 19.03: max_replicas_per_node and swarm init's address pools


class SwarmError(ProvisionError):
    """A swarm step refused or failed; nothing (or nothing more) was changed."""


@dataclass(frozen=True)
class NodeRow:
    """One node as the managers report it (``swarm ls``)."""

    cluster: str
    manager: str  # the machine asked
    machine: str  # the provision machine, when one matches the node's hostname
    hostname: str
    role: str
    state: str
    availability: str
    manager_status: str  # Leader, Reachable, Unreachable, or empty for a worker
    address: str

    def to_dict(self) -> dict[str, str]:
        return {"Cluster": self.cluster, "Manager": self.manager, "Machine": self.machine, "Hostname": self.hostname,
                "Role": self.role, "State": self.state, "Availability": self.availability,
                "ManagerStatus": self.manager_status, "Address": self.address}


# -- rules, free of any engine ------------------------------------------------------------------------

def check_majority(managers: dict[str, bool], *, removing: str | None = None) -> None:
    """Refuse a step that the cluster cannot take or that leaves it without a majority of reachable managers.

    ``managers`` maps each manager node to whether it is reachable; ``removing`` is a manager about to
    leave (demoted or removed). A new manager needs only the first rule: with a majority now, the
    cluster keeps one with the new (reachable) manager counted.
    """
    total, reachable = len(managers), sum(managers.values())
    if total and reachable * 2 <= total:
        raise SwarmError(f"only {reachable} of {total} managers are reachable: the cluster has no majority "
                         "(quorum) and can change nothing; bring the others back first")
    if removing is not None and removing in managers:
        after_total = total - 1
        after_reachable = reachable - (1 if managers[removing] else 0)
        if after_total and after_reachable * 2 <= after_total:
            raise SwarmError(f"removing manager {removing} would leave {after_reachable} of {after_total} managers "
                             "reachable, no majority; bring the unreachable managers back or remove them first")


def check_last_manager(manager_count: int, worker_count: int, *, force: bool, name: str) -> None:
    if manager_count == 1 and worker_count and not force:
        raise SwarmError(f'{name} is the last manager of a cluster that still has {worker_count} worker(s): '
                         f'remove the workers first, or use -f to remove it anyway (the workers are left '
                         f'without a cluster)')


# -- the engine API ----------------------------------------------------------------------------------

def client(service: Machines, record: MachineRecord) -> Any:
    """A docker SDK client for the machine's engine, with its mutual-TLS files."""
    if record.engine.over_ssh:
        raise NotSupported(f'machine "{record.name}" has its engine reached over SSH; swarm commands need the '
                           f'TLS endpoint (--engine-endpoint tcp)')
    import docker
    from docker.tls import TLSConfig

    info = service.connection(record)
    files = info.tls
    tls = TLSConfig(client_cert=(str(files.cert), str(files.key)), ca_cert=str(files.ca), verify=True)
    try:
        # A fixed version first: "auto" asks the engine in the constructor, before trust_env can be turned
        # off, and requests would let REQUESTS_CA_BUNDLE (and proxies) override the machine's CA.
        api = docker.DockerClient(base_url=info.url, tls=tls, timeout=API_TIMEOUT, version=MIN_API_VERSION,
                                  max_pool_size=POOL_SIZE)
        api.api.trust_env = False
        server = str(api.version(api_version=False).get("ApiVersion") or MIN_API_VERSION)
        api.api._version = min((server, docker.constants.DEFAULT_DOCKER_API_VERSION), key=_version_key)
        return api
    except Exception as exc:  # the SDK's and requests' errors alike: the engine cannot be used
        raise EngineError(f'Docker on machine "{record.name}" does not answer at {info.url}: {_reason(exc)}',
                          machine=record.name) from exc


def _reason(exc: BaseException) -> str:
    """The last line of what went wrong, without requests' nested retry wrappers."""
    text = str(getattr(exc, "explanation", None) or exc)
    return text.rsplit(": ", 1)[-1].rstrip(")\"'") if "Max retries exceeded" in text else text


@contextmanager
def engine_errors(name: str) -> Iterator[None]:
    """The SDK's and requests' errors from a swarm step, as one line naming the machine."""
    try:
        yield
    except ProvisionError:
        raise
    except Exception as exc:
        raise SwarmError(f'Docker on machine "{name}": {_reason(exc)}', machine=name) from exc


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _api_error(record: MachineRecord, what: str, exc: Exception) -> SwarmError:
    explanation = getattr(exc, "explanation", None) or str(exc)
    return SwarmError(f'{what} on machine "{record.name}" failed: {explanation}', machine=record.name)


def _is_active_manager(api: Any) -> bool:
    # /swarm answers only on a manager that can change the cluster (503 elsewhere), and costs the engine far
    # less than /info, which a fleet's joins would otherwise ask every manager for several times each.
    try:
        return bool(api.api.inspect_swarm().get("ID"))
    except Exception:  # noqa: BLE001 - a worker, an engine outside any swarm, or one that does not answer
        return False


def _join_addresses(nodes: dict[str, Any]) -> list[str]:
    """Where a new node joins: the leader first (dockerd joins through the first address), then the other
    reachable managers, as the managers' own node list gives them."""
    ranked = []
    for node in nodes.values():
        status = node.attrs.get("ManagerStatus") or {}
        if status.get("Addr") and (status.get("Leader") or status.get("Reachability") == "reachable"):
            ranked.append((not status.get("Leader"), status["Addr"]))
    return [addr for _, addr in sorted(ranked)]


def swarm_state(api: Any) -> dict[str, Any]:
    """The engine's own view of its swarm membership (``docker info``'s Swarm section)."""
    return api.info().get("Swarm") or {}


class EngineClients:
    """One docker SDK client per machine, made at first use and shared by the threads of one command: a
    fleet's joins would otherwise each open a TLS connection of their own to the leader and ask it its
    version, and leave every connection for the interpreter to close one by one at exit."""

    def __init__(self, service: Machines) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._made: dict[tuple[str, str | None], Any] = {}
        self._making: dict[tuple[str, str | None], threading.Lock] = {}

    def get(self, record: MachineRecord) -> Any:
        key = (record.name, record.url)
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:  # one handshake per engine, however many threads ask at once
            with self._lock:
                made = self._made.get(key)
            if made is None:
                made = client(self.service, record)
                with self._lock:
                    self._made[key] = made
            return made

    def drop(self, name: str) -> None:
        """Close the machine's client (its engine restarted, or nothing more will ask it)."""
        with self._lock:
            gone = [self._made.pop(key) for key in [k for k in self._made if k[0] == name]]
        for api in gone:
            api.close()

    def close(self) -> None:
        with self._lock:
            gone, self._made = list(self._made.values()), {}
        for api in gone:
            api.close()


class Swarm:
    """Swarm mode operations on the machines of one store; ``engines`` shares clients between the Swarms
    of one command's threads (each Swarm has its own otherwise)."""

    def __init__(self, service: Machines, engines: EngineClients | None = None) -> None:
        self.service = service
        self.store = service.store
        self.engines = engines or EngineClients(service)

    def progress(self, message: str) -> None:
        self.service.progress(message)

    # -- lookups ----------------------------------------------------------------------------------
    def _running(self, name: str) -> tuple[MachineRecord, Driver]:
        record = self.service.get(name)
        driver = self.service.driver_for(record)
        if driver.state() != MachineState.RUNNING:
            raise SwarmError(f'machine "{name}" is not running ({driver.state()}): start it first', machine=name)
        if not record.url:
            raise HostNotRunning(name)
        return record, driver

    def advertise_address(self, record: MachineRecord, driver: Driver, override: str | None = None) -> str:
        """The address other members reach this machine at: the driver's cluster address, or for a
        driver without one (generic, none) the address the user names, else the SSH (or engine) host."""
        if override:
            return override
        if driver.capabilities.cluster:
            return driver.cluster_address()
        if record.driver in ("generic", "none"):
            if driver.capabilities.ssh:
                return driver.ssh_endpoint().host
            return self.service.connection(record).ip
        raise NotSupported(f'the {record.driver} driver gives no cluster address, so "{record.name}" cannot join a '
                           f'cluster; name one with --swarm-advertise-addr')

    def members(self, cluster: str) -> list[MachineRecord]:
        return [e for e in self.store.entries()
                if isinstance(e, MachineRecord) and e.cluster == cluster and e.swarm_role]

    def _manager_client(self, cluster: str, *, besides: str | None = None,
                        first: MachineRecord | None = None) -> tuple[MachineRecord, Any]:
        """A reachable manager of ``cluster`` to ask, other than ``besides`` when there is one; ``first`` is
        asked before the store is searched (a fleet's joins would otherwise each read every record)."""
        reasons: list[str] = []
        if first is not None and first.cluster == cluster and first.swarm_role == "manager":
            api = self._active_manager(first, reasons)
            if api is not None:
                return first, api
        managers = [m for m in self.members(cluster) if m.swarm_role == "manager"
                    and not (first is not None and m.name == first.name)]  # asked already
        managers.sort(key=lambda m: m.name == besides)  # the machine leaving is asked last
        for record in managers:
            api = self._active_manager(record, reasons)
            if api is not None:
                return record, api
        raise SwarmError(f'no manager of cluster "{cluster}" answers ({"; ".join(reasons) or "none recorded"})')

    def _active_manager(self, record: MachineRecord, reasons: list[str]) -> Any | None:
        """A client of ``record``'s engine if it is an active manager; else None, and why in ``reasons``."""
        if not record.url:
            reasons.append(f"{record.name}: not running")
            return None
        try:
            api = self.engines.get(record)
        except Exception as exc:  # noqa: BLE001 - any failure is a reason to try the next
            reasons.append(f"{record.name}: {getattr(exc, 'message', exc)}")
            return None
        if _is_active_manager(api):
            return api
        reasons.append(f"{record.name}: not an active manager")
        return None

    @staticmethod
    def _manager_reachability(api: Any) -> tuple[dict[str, bool], int, dict[str, Any]]:
        """Each manager node id -> reachable, the number of workers, and the nodes by id."""
        nodes = {n.id: n for n in api.nodes.list()}
        managers = {nid: (n.attrs.get("ManagerStatus") or {}).get("Reachability") == "reachable"
                    for nid, n in nodes.items() if n.attrs["Spec"].get("Role") == "manager"}
        workers = sum(1 for n in nodes.values() if n.attrs["Spec"].get("Role") != "manager")
        return managers, workers, nodes

    def _set(self, name: str, **changes: Any) -> MachineRecord:
        with self.store.edit(name) as record:
            record = record.evolve(**changes)
            self.store.save(record)
            return record

    def _outside_swarm(self, name: str, advertise: str | None,
                       cluster: str | None) -> tuple[MachineRecord, Driver, Any, str]:
        """A running machine, not in any swarm, with the address it would advertise: or one clear refusal.
        Its engine is made ready for Swarm mode (live-restore off: provisioned again) when it is not yet."""
        record, driver = self._running(name)
        api = self.engines.get(record)
        info = api.info()
        if (info.get("Swarm") or {}).get("LocalNodeState", "inactive") != "inactive":
            raise SwarmError(f'machine "{name}" is already in a swarm; leave it first (`provision swarm leave {name}`)',
                             machine=name)
        address = self.advertise_address(record, driver, advertise)
        if info.get("LiveRestoreEnabled"):
            if not driver.capabilities.provisions_engine:
                raise SwarmError(f'the engine of "{name}" runs with live-restore, which Swarm mode refuses; turn '
                                 f'it off in its daemon configuration first', machine=name)
            self.progress(f"Configuring the engine of {name} for Swarm mode (live-restore off)")
            self._set(name, cluster=cluster or record.cluster or name)
            record = self.service.reprovision(name)
            self.engines.drop(name)  # its engine restarted
            api = self.engines.get(record)
        return record, driver, api, address

    # -- init ---------------------------------------------------------------------------------------
    def init(self, name: str, *, advertise: str | None = None, cluster: str | None = None) -> MachineRecord:
        with engine_errors(name):
            return self._init(name, advertise=advertise, cluster=cluster)

    def _init(self, name: str, *, advertise: str | None, cluster: str | None) -> MachineRecord:
        record, driver, api, address = self._outside_swarm(name, advertise, cluster)
        cluster = cluster or record.cluster or name
        self.progress(f"Opening the cluster ports of {name} to cluster {cluster}")
        driver.join_cluster(cluster)
        self.progress(f"Initialising Swarm mode on {name}, advertising {address}")
        try:
            api.api.init_swarm(advertise_addr=address, listen_addr=f"0.0.0.0:{SWARM_PORT}")
        except Exception as exc:
            raise _api_error(record, "swarm init", exc) from exc
        # init returns before the new manager takes work: a stack deployed at once can find its network gone.
        self._wait_ready(api, api, name)
        return self._set(name, cluster=cluster, swarm_role="manager", swarm_manager=name)

    # -- join ---------------------------------------------------------------------------------------
    def join(self, manager: str, name: str, *, as_manager: bool = False, advertise: str | None = None) -> MachineRecord:
        with engine_errors(name):
            return self._join(manager, name, as_manager=as_manager, advertise=advertise)

    def _join(self, manager: str, name: str, *, as_manager: bool, advertise: str | None) -> MachineRecord:
        manager_record = self.service.get(manager)
        if manager_record.swarm_role != "manager" or not manager_record.cluster:
            raise SwarmError(f'machine "{manager}" is not a swarm manager (see `provision swarm ls`; '
                             f'`provision swarm init {manager}` makes it one)')
        cluster = manager_record.cluster
        record, driver, node_api, address = self._outside_swarm(name, advertise, cluster)
        manager_record, manager_api = self._manager_client(cluster, first=manager_record)
        remote = _join_addresses(self._wait_majority(manager_api))
        if not remote:
            raise SwarmError(f'no manager of cluster "{cluster}" lists a reachable address to join through (is it '
                             f'electing a leader?); try again in a moment', machine=name)
        self.progress(f"Opening the cluster ports of {name} to cluster {cluster}")
        driver.join_cluster(cluster)
        role = "manager" if as_manager else "worker"
        self.progress(f"Joining {name} to cluster {cluster} as a {role} (advertising {address})")
        try:
            # The low-level calls: the SDK's ``client.swarm`` fetches the swarm again at each use.
            token = manager_api.api.inspect_swarm()["JoinTokens"]["Manager" if as_manager else "Worker"]
            node_api.api.join_swarm(remote_addrs=remote, join_token=token, advertise_addr=address,
                                    listen_addr=f"0.0.0.0:{SWARM_PORT}")
            del token
            self._wait_ready(manager_api, node_api, name)
        except BaseException as exc:
            self._undo_join(record, node_api, manager_api)
            if isinstance(exc, ProvisionError):
                raise
            if isinstance(exc, Exception):
                raise SwarmError(f'machine "{name}" could not join cluster {cluster} at {", ".join(remote)} '
                                 f'(is it reachable from {name}?): {getattr(exc, "explanation", None) or exc}; '
                                 f'it was left out of the swarm', machine=name) from exc
            raise
        return self._set(name, cluster=cluster, swarm_role=role, swarm_manager=manager)

    def _wait_majority(self, manager_api: Any) -> dict[str, Any]:
        """The nodes, once a majority of the managers is reachable; refused after a short grace, since a
        manager that is joining this moment counts as unreachable for a second or two."""
        from . import waiting

        def majority() -> dict[str, Any]:
            managers, _, nodes = self._manager_reachability(manager_api)
            check_majority(managers)
            return nodes

        return waiting.wait_for("see a majority of the managers reachable", majority, timeout=QUORUM_GRACE,
                                interval=0.25, backoff=2.0, max_interval=2.0, retry_on=(SwarmError,),
                                error=lambda expired: expired.last if isinstance(expired.last, SwarmError)
                                else SwarmError(expired.reason))

    def _wait_ready(self, manager_api: Any, node_api: Any, name: str) -> None:
        from . import waiting

        known: list[str] = []

        def ready() -> bool:
            if not known:  # asked of the node once: its id does not change while it joins
                node_id = swarm_state(node_api).get("NodeID")
                if not node_id:
                    raise waiting.NotYet("no node id yet")
                known.append(node_id)
            node = manager_api.api.inspect_node(known[0])
            if (node.get("Status") or {}).get("State") != "ready":
                raise waiting.NotYet(f"node state {(node.get('Status') or {}).get('State')}")
            # A manager counts towards the majority once the others reach it; the next join checks that.
            reach = (node.get("ManagerStatus") or {}).get("Reachability", "reachable")
            if reach != "reachable":
                raise waiting.NotYet(f"manager reachability {reach}")
            return True

        # A node is usually Ready a few hundred milliseconds after its join returns: look often at first,
        # then every second, so a fleet's joins do not each wait out a whole second.
        waiting.wait_for(f"see {name} Ready in the swarm", ready, timeout=JOIN_TIMEOUT, interval=0.2, backoff=1.5,
                         max_interval=1.0, retry_on=(Exception,),
                         error=lambda expired: TimeoutExpired(f'machine "{name}" did not become a Ready swarm node '
                                                              f"within {JOIN_TIMEOUT:.0f}s: {expired.reason}"))

    def _undo_join(self, record: MachineRecord, node_api: Any, manager_api: Any) -> None:
        """A join that failed half way: the node leaves (a timed-out join keeps trying in the background)
        and any entry the managers made for it goes."""
        node_id = None
        try:
            node_id = swarm_state(node_api).get("NodeID")
            node_api.api.leave_swarm(force=True)
        except Exception:  # noqa: BLE001 - best effort; the record never said it joined
            pass
        if node_id:
            try:
                manager_api.api.remove_node(node_id, force=True)
            except Exception:  # noqa: BLE001
                pass

    # -- leave --------------------------------------------------------------------------------------
    def leave(self, name: str, *, force: bool = False, removing: bool = False) -> MachineRecord:
        with engine_errors(name):
            return self._leave(name, force=force, removing=removing)

    def _leave(self, name: str, *, force: bool, removing: bool) -> MachineRecord:
        """Drain the node, let its tasks move, demote it if a manager, leave the swarm and remove the node
        from the managers' list; then close its doors. ``removing``: the machine is about to be removed
        (``rm``): a machine that is not running is only taken off the managers' list."""
        record = self.service.get(name)
        if not record.swarm_role or not record.cluster:
            raise SwarmError(f'machine "{name}" is not in a swarm that provision knows of', machine=name)
        cluster = record.cluster
        members = self.members(cluster)
        try:
            manager_record, manager_api = self._manager_client(cluster, besides=name)
        except SwarmError:
            if not force:
                raise
            return self._forget(record, members)
        managers, workers, nodes = self._manager_reachability(manager_api)
        node_id = self._node_id(record, nodes, self._own_node_id(record))
        is_manager = node_id in managers if node_id else record.swarm_role == "manager"
        if is_manager:
            check_last_manager(len(managers), workers, force=force, name=name)
            if len(managers) > 1 and node_id:
                check_majority(managers, removing=node_id)
        if node_id and len(nodes) > 1:  # the last node has nowhere to move its tasks to
            self._drain(manager_api, node_id, name)
            if is_manager and len(managers) > 1:
                self._demote(manager_api, node_id, name)
        self.progress(f"{name} leaves the swarm")
        try:
            node_api = self.engines.get(record)
            node_api.api.leave_swarm(force=is_manager and len(managers) == 1)
        except Exception as exc:  # noqa: BLE001
            if not (force or removing):
                raise _api_error(record, "swarm leave", exc) from exc
        if node_id and not (is_manager and len(managers) == 1):
            self._remove_node(manager_api, node_id, name)
        if is_manager and len(managers) == 1 and force:
            for other in members:
                if other.name != name:
                    self._orphan(other)
        return self._forget(record, members)

    def _own_node_id(self, record: MachineRecord) -> str | None:
        try:
            return swarm_state(self.engines.get(record)).get("NodeID") or None
        except Exception:  # noqa: BLE001 - a stopped machine: found by its hostname instead
            return None

    @staticmethod
    def _node_id(record: MachineRecord, nodes: dict[str, Any], own: str | None) -> str | None:
        if own in nodes:
            return own
        for nid, node in nodes.items():
            if (node.attrs.get("Description") or {}).get("Hostname") == record.name:
                return nid
        return None

    def _drain(self, api: Any, node_id: str, name: str) -> None:
        from . import waiting

        self.progress(f"Draining {name}: its tasks move to the other nodes")
        node = api.nodes.get(node_id)
        spec = dict(node.attrs["Spec"], Availability="drain")
        node.update(spec)

        def moved() -> bool:
            running = [t for t in api.api.tasks(filters={"node": node_id})
                       if (t.get("Status") or {}).get("State") in ("running", "starting", "preparing", "assigned")]
            if running:
                raise waiting.NotYet(f"{len(running)} task(s) still on {name}")
            return True

        waiting.wait_for(f"see the tasks of {name} move", moved, timeout=DRAIN_TIMEOUT, interval=1.0,
                         error=lambda expired: SwarmError(f"the tasks of {name} did not move within "
                                                          f"{DRAIN_TIMEOUT:.0f}s: {expired.reason}"))

    def _demote(self, api: Any, node_id: str, name: str) -> None:
        self.progress(f"Demoting manager {name}")
        node = api.nodes.get(node_id)
        node.update(dict(node.attrs["Spec"], Role="worker"))
        from . import waiting

        # Removing the node next works on a worker: a demotion that takes longer only slows that down.
        waiting.until(lambda: not api.api.inspect_node(node_id).get("ManagerStatus"), timeout=DEMOTE_TIMEOUT)

    def _remove_node(self, api: Any, node_id: str, name: str) -> None:
        self.progress(f"Removing node {name} from the managers' list")
        # Forced at once: the node has left (or is gone with its machine), and the managers mark a node that
        # left as down only after missing its heartbeats, about 10 s that waiting would add to every rm.
        api.api.remove_node(node_id, force=True)

    def _orphan(self, record: MachineRecord) -> None:
        """With the last manager gone (-f), the workers leave too, or a later join would find them in a swarm."""
        try:
            self.engines.get(record).api.leave_swarm(force=True)
        except Exception:  # noqa: BLE001 - a stopped worker leaves nothing running to clean
            pass
        self._forget(record, [])

    def _forget(self, record: MachineRecord, members: list[MachineRecord]) -> MachineRecord:
        """Close the machine's doors and clear its membership from the record."""
        cluster = record.cluster or ""
        # Whether this is its driver's last member decides whether the cluster's doors go. Machines leaving
        # at once (a fleet's down) decide one after another, or each would see the others and none close them.
        with self.store.lock_store():
            last = not any(m.name != record.name and m.driver == record.driver for m in self.members(cluster))
            try:
                self.service.driver_for(record).leave_cluster(cluster, last=last)
            except ProvisionError as exc:
                self.progress(f"closing the cluster ports of {record.name} failed: {exc.message}")
            return self._set(record.name, cluster=None, swarm_role=None, swarm_manager=None)

    # -- ls -----------------------------------------------------------------------------------------
    def ls(self) -> list[NodeRow | tuple[str, str]]:
        """Every node of every cluster in the store, by the managers' account; a cluster whose managers
        do not answer comes back as (cluster, reason)."""
        clusters = sorted({e.cluster for e in self.store.entries()
                           if isinstance(e, MachineRecord) and e.cluster and e.swarm_role})
        rows: list[NodeRow | tuple[str, str]] = []
        for cluster in clusters:
            try:
                manager, api = self._manager_client(cluster)
                machines = {m.name for m in self.members(cluster)}
                for node in sorted(api.nodes.list(), key=lambda n: n.attrs["Description"]["Hostname"]):
                    attrs = node.attrs
                    hostname = attrs["Description"]["Hostname"]
                    status = attrs.get("ManagerStatus") or {}
                    rows.append(NodeRow(cluster, manager.name, hostname if hostname in machines else "",
                                        hostname, attrs["Spec"].get("Role", ""), attrs["Status"].get("State", ""),
                                        attrs["Spec"].get("Availability", ""),
                                        "Leader" if status.get("Leader") else status.get("Reachability", ""),
                                        attrs["Status"].get("Addr", "")))
            except ProvisionError as exc:
                rows.append((cluster, exc.message))
        return rows

    def manager_of(self, name: str) -> str:
        """The machine ``env --swarm`` points at: the machine itself if a manager, else its manager."""
        record = self.service.get(name)
        if not record.swarm_role:
            raise UsageError(f'machine "{name}" is not in a swarm')
        return name if record.swarm_role == "manager" else (record.swarm_manager or name)


def leave_before_remove(service: Machines, name: str, force: bool) -> None:
    """The ``provision.before_remove`` hook: a cluster member is drained, leaves the swarm and is removed
    from the managers' list before ``rm`` removes it; a step the cluster cannot take (its last manager
    with workers, a lost majority) refuses the rm unless ``force``."""
    from .errors import StoreError

    try:
        record = service.store.load(name)
    except StoreError:
        return
    if not record.swarm_role:
        return
    swarm = Swarm(service)
    try:
        swarm.leave(name, force=force, removing=True)
    except ProvisionError as exc:
        if not force:
            raise
        service.progress(f"{name} could not leave its swarm cleanly ({exc.message}); removing it anyway")
    finally:
        swarm.engines.close()  # here, in the thread that removes it, not one by one at exit
