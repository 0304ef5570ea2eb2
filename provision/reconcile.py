"""What ``up`` must do to make the store match a project file: the plan, worked out from what is observed.

A machine belongs to a project through engine labels written into its record at create (and onto its
engine): the project, the group, and a digest of the group's options. A machine the file names is
*made* when the store lacks it, *replaced* when its record is broken, its create never finished or its
cloud resource is gone, reported as *drift* when its group's options changed (replaced only when asked),
and otherwise *left*. A project machine the file no longer names is *removed*. A machine of the same
name that is not the project's is a *conflict*: never touched.

Planning reads and never writes; ``observe`` asks each driver for its state, all at once, each bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .projectfile import GroupSpec, ProjectSpec
from .record import Lifecycle, MachineRecord

PROJECT_LABEL = "io.provision.project"
GROUP_LABEL = "io.provision.group"
SPEC_LABEL = "io.provision.spec"
STACKS_FACT = "project_stacks"  # on the swarm's leading manager: digest of each stack deployed from it

MAKE, REPLACE, LEAVE, REMOVE, DRIFT, CONFLICT = "make", "replace", "leave", "remove", "drift", "conflict"
JOIN, INIT, DEPLOY = "join", "init", "deploy"


def machine_names(project: str, group: GroupSpec) -> list[str]:
    return [f"{project}-{group.name}-{i}" for i in range(1, group.count + 1)]


def labels_of(record: MachineRecord) -> dict[str, str]:
    return dict(label.split("=", 1) for label in record.engine.labels if "=" in label)


def project_labels(project: str, group: GroupSpec) -> tuple[str, ...]:
    return (f"{PROJECT_LABEL}={project}", f"{GROUP_LABEL}={group.name}", f"{SPEC_LABEL}={group.digest()}")


@dataclass(frozen=True)
class Observed:
    """One store entry as ``up`` sees it: its record (None when unreadable) and its driver's state."""

    name: str
    record: MachineRecord | None
    state: str = ""
    error: str = ""
    locked: bool = False  # another command holds its lock (a create still running)

    @property
    def project(self) -> str | None:
        return labels_of(self.record).get(PROJECT_LABEL) if self.record else None


@dataclass(frozen=True)
class Action:
    machine: str
    kind: str  # make, replace, leave, remove, drift, conflict
    group: str = ""
    role: str | None = None
    reason: str = ""
    drifted: bool = False  # replaced because its options changed: it must leave its swarm cleanly first

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "action": self.kind, "group": self.group, "role": self.role,
                "reason": self.reason}


@dataclass(frozen=True)
class SwarmStep:
    machine: str
    kind: str  # init or join
    role: str

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "action": self.kind, "role": self.role}


@dataclass(frozen=True)
class StackStep:
    stack: str
    kind: str  # deploy or leave
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "action": self.kind, "reason": self.reason}


@dataclass
class Plan:
    project: str
    machines: list[Action] = field(default_factory=list)
    swarm: list[SwarmStep] = field(default_factory=list)
    stacks: list[StackStep] = field(default_factory=list)
    leader: str | None = None  # the manager others join through

    def of_kind(self, *kinds: str) -> list[Action]:
        return [a for a in self.machines if a.kind in kinds]

    @property
    def changes_nothing(self) -> bool:
        return (not self.of_kind(MAKE, REPLACE, REMOVE) and not self.swarm
                and all(s.kind == LEAVE for s in self.stacks))

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "machines": [a.to_dict() for a in self.machines],
                "swarm": [s.to_dict() for s in self.swarm], "stacks": [s.to_dict() for s in self.stacks],
                "leader": self.leader}


def plan(project: ProjectSpec, observed: dict[str, Observed], *, recreate: bool = False) -> Plan:
    result = Plan(project.name)
    wanted: dict[str, GroupSpec] = {}
    for group in project.groups:
        for name in machine_names(project.name, group):
            wanted[name] = group
            result.machines.append(_machine_action(project.name, name, group, observed.get(name), recreate))
    for name, seen in sorted(observed.items()):
        if name not in wanted and seen.project == project.name:
            result.machines.append(Action(name, REMOVE, labels_of(seen.record).get(GROUP_LABEL, "") if seen.record
                                          else "", reason="no longer in the file"))
    if project.swarm:
        _plan_swarm(result, project, wanted, observed)
    if project.stacks:
        _plan_stacks(result, project, observed)
    return result


def _machine_action(project: str, name: str, group: GroupSpec, seen: Observed | None, recreate: bool) -> Action:
    def act(kind: str, reason: str = "", drifted: bool = False) -> Action:
        return Action(name, kind, group.name, group.role, reason, drifted)

    if seen is None:
        return act(MAKE, "not in the store")
    if seen.record is None:
        return act(REPLACE, f"its record is broken ({seen.error})")
    if seen.project != project:
        owner = f'project "{seen.project}"' if seen.project else "no project"
        return act(CONFLICT, f"a machine of that name belongs to {owner}; it is left alone")
    if seen.record.lifecycle == Lifecycle.CREATING:
        if seen.locked:
            return act(CONFLICT, "another command is creating it right now")
        return act(REPLACE, "its create was interrupted")
    if seen.record.lifecycle == Lifecycle.ERROR:
        return act(REPLACE, f"its create failed ({seen.record.error or 'no reason recorded'})")
    if seen.state == "NotFound":
        return act(REPLACE, "its cloud resource is gone")
    changed = []
    labels = labels_of(seen.record)
    if labels.get(SPEC_LABEL) != group.digest():
        changed.append("the group's options changed")
    if seen.record.driver != group.driver:
        changed.append(f"driver {seen.record.driver} -> {group.driver}")
    if changed:
        reason = "; ".join(dict.fromkeys(changed))
        return act(REPLACE, reason + " (--recreate)", True) if recreate else act(DRIFT, reason + ": up --recreate replaces it")
    return act(LEAVE, seen.state or "")


def _plan_swarm(result: Plan, project: ProjectSpec, wanted: dict[str, GroupSpec],
                observed: dict[str, Observed]) -> None:
    staying = {a.machine for a in result.machines if a.kind in (LEAVE, DRIFT)}
    fresh = [a.machine for a in result.machines if a.kind in (MAKE, REPLACE)]
    in_swarm = {name for name in staying
                if (rec := observed[name].record) and rec.swarm_role and rec.cluster == project.name}
    # The manager the swarm was started on leads (the others joined through it), else any manager.
    leaders = sorted((n for n in in_swarm if observed[n].record.swarm_role == "manager"),  # type: ignore[union-attr]
                     key=lambda n: (observed[n].record.swarm_manager != n, machine_order(n)))  # type: ignore[union-attr]
    if leaders:
        result.leader = leaders[0]
    order = sorted(wanted, key=lambda n: (wanted[n].role != "manager", wanted[n].role is None, machine_order(n)))
    for name in order:
        group = wanted[name]
        if group.role is None or name in in_swarm or name not in staying | set(fresh):
            continue
        if result.leader is None and group.role == "manager":
            result.leader = name
            result.swarm.append(SwarmStep(name, INIT, "manager"))
        else:
            result.swarm.append(SwarmStep(name, JOIN, group.role))


def machine_order(name: str) -> list[str | int]:
    """Natural order: shop-w2-1 before shop-w10-1."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _plan_stacks(result: Plan, project: ProjectSpec, observed: dict[str, Observed]) -> None:
    leader = result.leader
    leader_fresh = leader is None or any(s.machine == leader and s.kind == INIT for s in result.swarm)
    deployed: dict[str, str] = {}
    if not leader_fresh and leader in observed and observed[leader].record is not None:
        deployed = dict(observed[leader].record.facts.get(STACKS_FACT) or {})  # type: ignore[union-attr]
    for stack in project.stacks:
        digest = stack.digest()
        if leader_fresh:
            result.stacks.append(StackStep(stack.name, DEPLOY, "the swarm is new"))
        elif deployed.get(stack.name) != digest:
            why = "not deployed from this file yet" if stack.name not in deployed else "its compose file changed"
            result.stacks.append(StackStep(stack.name, DEPLOY, why))
        else:
            result.stacks.append(StackStep(stack.name, LEAVE, "unchanged"))


def observe(service: Any, project: str, names: set[str], timeout: float = 30.0) -> dict[str, Observed]:
    """The store entries ``up`` cares about (names the file gives, and every machine labelled with the
    project), each with its driver's state; the drivers are asked all at once, each bounded by ``timeout``."""
    from concurrent.futures import ThreadPoolExecutor, wait

    from .store import BrokenEntry

    picked: dict[str, Observed] = {}
    for entry in service.store.entries():
        if isinstance(entry, BrokenEntry):
            if entry.name in names:
                picked[entry.name] = Observed(entry.name, None, error=entry.error)
            continue
        if entry.name in names or labels_of(entry).get(PROJECT_LABEL) == project:
            picked[entry.name] = Observed(entry.name, entry, locked=service.store.is_locked(entry.name))

    def state_of(seen: Observed) -> Observed:
        if seen.record is None or seen.record.lifecycle != Lifecycle.READY:
            return seen
        try:
            return Observed(seen.name, seen.record, str(service.driver_for(seen.record).state()), locked=seen.locked)
        except Exception as exc:  # noqa: BLE001 - an unreachable cloud is a state to report, not a reason to stop
            return Observed(seen.name, seen.record, "Error", error=str(exc), locked=seen.locked)

    pool = ThreadPoolExecutor(max_workers=max(1, min(16, len(picked))), thread_name_prefix="observe")
    futures = {name: pool.submit(state_of, seen) for name, seen in picked.items()}
    wait(list(futures.values()), timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    return {name: (f.result() if f.done() else Observed(name, picked[name].record, "Timeout",
                                                         error=f"no answer within {timeout:g}s"))
            for name, f in futures.items()}


__all__ = ["Action", "Observed", "Plan", "PROJECT_LABEL", "GROUP_LABEL", "SPEC_LABEL", "machine_names",
           "observe", "plan", "project_labels"]
