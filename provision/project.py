"""Carry out a project's plan: ``up`` makes what is missing in parallel, forms or joins the swarm and
deploys the stacks; ``down`` removes the stacks and the project's machines; ``machines`` lists them.

Machines made here are ordinary machines of the store (``Machines.create``), labelled with the project.
One machine's failure is reported and the others go on: the next ``up`` plans again from what exists.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import reconcile, stacks
from .errors import ProvisionError
from .machines import CreateRequest, Machines
from .projectfile import GroupSpec, ProjectSpec
from .reconcile import GROUP_LABEL, PROJECT_LABEL, STACKS_FACT, Plan, labels_of
from .record import MachineRecord

if TYPE_CHECKING:
    from .swarm import EngineClients

MachineProgress = Callable[[str, str], None]  # (machine or stack, message)
# Machines joining a swarm at once, whatever --parallel says: a join costs a machine one API call and a wait
# for its node to be Ready, so joins are bounded by what the managers take, not by what making a machine costs.
JOINS_AT_ONCE = 32


@dataclass
class UpResult:
    made: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)
    deployed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # machine or stack -> why


@dataclass(frozen=True)
class ProjectMachine:
    """One row of ``ps``."""

    name: str
    group: str
    role: str
    state: str
    url: str
    docker: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"Name": self.name, "Group": self.group, "Role": self.role, "State": self.state, "URL": self.url,
                "DockerVersion": self.docker, "Error": self.error}


class Project:
    def __init__(self, service: Machines, name: str, spec: ProjectSpec | None = None, *, parallel: int = 4,
                 progress: MachineProgress = lambda machine, message: None) -> None:
        self.service = service
        self.name = name
        self.spec = spec
        self.parallel = max(1, parallel)
        self.progress = progress

    def _view(self, name: str) -> Machines:
        """A view of the store whose progress lines say which machine they are about."""
        return Machines(self.service.store, self.service.docker, environ=self.service.environ,
                        progress=lambda message: self.progress(name, message),
                        log=lambda line: self.service.log(f"{name}: {line.lstrip()}"))

    def records(self) -> list[MachineRecord]:
        return sorted((e for e in self.service.store.entries()
                       if isinstance(e, MachineRecord) and labels_of(e).get(PROJECT_LABEL) == self.name),
                      key=lambda r: reconcile.machine_order(r.name))

    # -- plan ------------------------------------------------------------------------------------------
    def plan(self, *, recreate: bool = False) -> Plan:
        spec = self._spec()
        names = {n for g in spec.groups for n in reconcile.machine_names(spec.name, g)}
        return reconcile.plan(spec, reconcile.observe(self.service, spec.name, names), recreate=recreate)

    def _spec(self) -> ProjectSpec:
        if self.spec is None:
            raise ProvisionError("Error: this needs the project file")
        return self.spec

    # -- up --------------------------------------------------------------------------------------------
    def up(self, plan: Plan) -> UpResult:
        spec = self._spec()
        groups = {g.name: g for g in spec.groups}
        result = UpResult()
        to_make = plan.of_kind(reconcile.MAKE, reconcile.REPLACE)
        for action in plan.of_kind(reconcile.CONFLICT):
            result.failed[action.machine] = action.reason
        if to_make:
            self.service.ca.ensure()  # once, before the threads: each create would otherwise race to make it
            with ThreadPoolExecutor(max_workers=min(self.parallel, len(to_make)), thread_name_prefix="up") as pool:
                futures = {a.machine: pool.submit(self._make, a, groups[a.group]) for a in to_make}
                for name, future in futures.items():
                    try:
                        future.result()
                        result.made.append(name)
                        self.progress(name, "created")
                    except Exception as exc:  # noqa: BLE001 - reported per machine; the others go on
                        result.failed[name] = _why(exc)
                        self.progress(name, f"failed: {_why(exc)}")
        self._swarm(plan, result)
        self._remove(plan.of_kind(reconcile.REMOVE), result)
        self._deploy(plan, result)
        return result

    def _make(self, action: reconcile.Action, group: GroupSpec) -> MachineRecord:
        view = self._view(action.machine)
        if action.kind == reconcile.REPLACE:
            view.progress(f"replacing: {action.reason}")
            # A drifted machine leaves its swarm cleanly (drained) or not at all; a broken one goes regardless.
            for line in view.remove(action.machine, force=not action.drifted):
                view.progress(line)
        return view.create(self._request(action.machine, group))

    def _request(self, name: str, group: GroupSpec) -> CreateRequest:
        from .createflags import ENGINE_OPTIONS, engine_settings
        from .options import resolve_options

        engine_keys = {spec.key for spec in ENGINE_OPTIONS.values()}
        given = {k: v for k, v in group.options.items() if k in engine_keys}
        engine = engine_settings(resolve_options(tuple(ENGINE_OPTIONS.values()), given, self.service.environ,
                                                 f'group "{group.name}"'))
        labels = tuple(label for label in engine.labels if not label.startswith("io.provision."))
        from dataclasses import replace

        engine = replace(engine, labels=labels + reconcile.project_labels(self.name, group))
        return CreateRequest(name=name, driver=group.driver,
                             driver_flags={k: v for k, v in group.options.items() if k not in engine_keys},
                             engine=engine, cluster=self.name if self._spec().swarm else None)

    # -- swarm -----------------------------------------------------------------------------------------
    def _swarm(self, plan: Plan, result: UpResult) -> None:
        from .swarm import EngineClients

        if not plan.swarm:
            return
        engines = EngineClients(self.service)
        try:
            self._form_swarm(plan, result, engines)
        finally:
            engines.close()

    def _form_swarm(self, plan: Plan, result: UpResult, engines: EngineClients) -> None:
        from .swarm import Swarm

        spec = self._spec()
        usable = [s for s in plan.swarm if s.machine not in result.failed]
        managers = [s for s in usable if s.role == "manager"]
        workers = [s for s in usable if s.role != "manager"]
        leader = plan.leader

        def step(s: reconcile.SwarmStep) -> None:
            swarm = Swarm(self._view(s.machine), engines)  # one client per engine, the leader's shared by all
            if s.kind == reconcile.INIT:
                swarm.init(s.machine, advertise=spec.advertise, cluster=self.name)
                return
            try:
                swarm.join(leader or "", s.machine, as_manager=s.role == "manager", advertise=spec.advertise)
            finally:
                engines.drop(s.machine)  # nothing asks a joined node again: closed here, beside the other joins

        def attempt(s: reconcile.SwarmStep) -> bool:
            try:
                step(s)
                result.joined.append(s.machine)
                self.progress(s.machine, "in the swarm")
                return True
            except ProvisionError as exc:
                result.failed[s.machine] = f"not in the swarm: {exc.message}"
                self.progress(s.machine, f"not in the swarm: {exc.message}")
                return False

        init = next((s for s in managers if s.kind == reconcile.INIT), None)
        if init is not None and not attempt(init):
            for other in usable:
                if other is not init:
                    result.failed[other.machine] = "not in the swarm: its first manager could not start one"
            return
        if leader in result.failed:
            return
        # Managers and workers join at once, through the leader. The leader adds raft members one at a time
        # itself (each waits for the last change to commit), so concurrent manager joins keep raft's rule.
        joining = [s for s in managers if s is not init] + workers
        if joining:
            with ThreadPoolExecutor(max_workers=min(max(self.parallel, JOINS_AT_ONCE), len(joining)),
                                    thread_name_prefix="join") as pool:
                list(pool.map(attempt, joining))

    # -- removal ---------------------------------------------------------------------------------------
    def _remove(self, actions: list[reconcile.Action], result: UpResult) -> None:
        records = {r.name: r for r in self.records()}
        # Workers first, managers last: a swarm keeps a manager while it still has workers to drain.
        ordered = sorted((a.machine for a in actions),
                         key=lambda n: (records[n].swarm_role == "manager" if n in records else False,
                                        n == _leader_of(records)))
        for name in ordered:
            try:
                for line in self._view(name).remove(name):
                    self.progress(name, line)
                result.removed.append(name)
                self.progress(name, "removed")
            except ProvisionError as exc:
                result.failed[name] = f"not removed: {exc.message}"
                self.progress(name, f"not removed: {exc.message}")

    # -- stacks ----------------------------------------------------------------------------------------
    def _deploy(self, plan: Plan, result: UpResult) -> None:
        spec = self._spec()
        leader = plan.leader
        wanted = [s for s in plan.stacks if s.kind == reconcile.DEPLOY]
        if not wanted:
            return
        if leader is None or leader in result.failed:
            for step in wanted:
                result.failed[f"stack {step.stack}"] = "not deployed: the swarm has no manager"
            return
        files = {s.name: s for s in spec.stacks}
        for step in wanted:
            stack = files[step.stack]
            self.progress(f"stack {stack.name}", f"deploying {stack.compose_file.name} through {leader}")
            try:
                stacks.deploy(self.service.docker.dir, leader, stack.name, stack.compose_file)
            except ProvisionError as exc:
                result.failed[f"stack {stack.name}"] = exc.message
                self.progress(f"stack {stack.name}", f"failed: {exc.message}")
                continue
            with self.service.store.edit(leader) as record:
                deployed = {**dict(record.facts.get(STACKS_FACT) or {}), stack.name: stack.digest()}
                self.service.store.save(record.evolve(facts={**record.facts, STACKS_FACT: deployed}))
            result.deployed.append(stack.name)
            self.progress(f"stack {stack.name}", "deployed")

    # -- down ------------------------------------------------------------------------------------------
    def down(self) -> UpResult:
        """The stacks, then every machine labelled with the project: workers, other managers, the leader."""
        result = UpResult()
        records = {r.name: r for r in self.records()}
        leader = _leader_of(records)
        if leader:
            names = set(records[leader].facts.get(STACKS_FACT) or {})
            names |= {s.name for s in (self.spec.stacks if self.spec else ())}
            for stack in sorted(names):
                self.progress(f"stack {stack}", f"removing through {leader}")
                try:
                    stacks.remove(self.service.docker.dir, leader, stack)
                    self.progress(f"stack {stack}", "removed")
                except ProvisionError as exc:  # the machines go all the same: their stacks go with them
                    self.progress(f"stack {stack}", f"not removed: {exc.message}")
        workers = [n for n, r in records.items() if r.swarm_role != "manager"]
        if workers:
            with ThreadPoolExecutor(max_workers=min(self.parallel, len(workers)), thread_name_prefix="down") as pool:
                list(pool.map(lambda n: self._remove_one(n, result), workers))
        managers = sorted((n for n, r in records.items() if r.swarm_role == "manager"), key=lambda n: n == leader)
        for name in managers:
            self._remove_one(name, result)
        return result

    def _remove_one(self, name: str, result: UpResult) -> None:
        try:
            for line in self._view(name).remove(name, force=True):
                self.progress(name, line)
            result.removed.append(name)
            self.progress(name, "removed")
        except ProvisionError as exc:
            result.failed[name] = exc.message
            self.progress(name, f"not removed: {exc.message}")

    # -- ps --------------------------------------------------------------------------------------------
    def machines(self, timeout: float = 10.0) -> list[ProjectMachine]:
        records = self.records()
        if not records:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(records)), thread_name_prefix="ps") as pool:
            listings = list(pool.map(lambda r: self.service.probe(r, False, timeout), records))
        return [ProjectMachine(r.name, labels_of(r).get(GROUP_LABEL, ""), r.swarm_role or "", row.state, row.url,
                               row.docker, row.error) for r, row in zip(records, listings, strict=True)]


def _why(exc: BaseException) -> str:
    """One line for a machine that could not be made: the user-facing message, else what the bug was."""
    if isinstance(exc, ProvisionError):
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _leader_of(records: dict[str, MachineRecord]) -> str | None:
    """The manager the project's swarm was started on (others joined through it), else any manager."""
    managers = sorted(n for n, r in records.items() if r.swarm_role == "manager")
    started = [n for n in managers if records[n].swarm_manager == n]
    return (started or managers or [None])[0]


__all__ = ["Project", "ProjectMachine", "UpResult"]
