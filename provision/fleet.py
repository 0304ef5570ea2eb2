"""Several machines at once: ``create -n N`` (concurrent, bounded) and a new or joined swarm at create.

Each machine is created by its own ``Machines`` view that tags its progress with the machine's name,
so a front end can show one line per machine. One failure rolls back that machine only (``create``
does that); the others go on, and the result says which failed and why.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from .errors import ProvisionError, UsageError
from .machines import CreateRequest, Machines, describe_failure
from .record import MachineRecord

MachineProgress = Callable[[str, str], None]  # (machine, message)


@dataclass(frozen=True)
class SwarmPlan:
    """What to do with the new machines: form a cluster (``form``: its name) or join one (``join``: a manager)."""

    form: str | None = None
    managers: int = 1
    join: str | None = None
    join_as_manager: bool = False
    advertise: str | None = None

    def validate(self, count: int) -> None:
        if self.form and self.join:
            raise UsageError("Error: --swarm forms a new cluster and --swarm-join joins one: use one of them")
        if self.form and not 1 <= self.managers <= count:
            raise UsageError(f"Error: --swarm-managers must be between 1 and the number of machines ({count})")
        if self.managers != 1 and not self.form:
            raise UsageError("Error: --swarm-managers goes with --swarm")
        if self.join_as_manager and not self.join:
            raise UsageError("Error: --swarm-manager goes with --swarm-join")


@dataclass
class FleetResult:
    created: list[MachineRecord] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # machine -> why (create or swarm step)


def numbered_names(name: str, count: int) -> list[str]:
    return [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]


def create_many(service: Machines, request: CreateRequest, count: int, *, parallel: int = 4,
                progress: MachineProgress = lambda machine, message: None,
                swarm: SwarmPlan = SwarmPlan()) -> FleetResult:
    """Create ``NAME-1`` … ``NAME-N`` (or ``NAME`` alone for 1), at most ``parallel`` at a time, then form
    or join the swarm the plan names with the machines that were made."""
    if count < 1:
        raise UsageError("Error: -n must be at least 1")
    if parallel < 1:
        raise UsageError("Error: --parallel must be at least 1")
    swarm.validate(count)
    cluster = swarm.form
    if swarm.join:
        manager = service.get(swarm.join)
        if manager.swarm_role != "manager" or not manager.cluster:
            raise UsageError(f'Error: machine "{swarm.join}" is not a swarm manager (see `provision swarm ls`)')
        cluster = manager.cluster
    names = numbered_names(request.name, count)
    for name in names:
        if service.store.exists(name):
            raise UsageError(f'Error: machine "{name}" already exists')
    service.ca.ensure()  # once, before the threads: each create would otherwise race to make it

    def create_one(name: str) -> MachineRecord:
        # Debug lines of machines made at once interleave: each says whose it is (its `took` lines too).
        view = Machines(service.store, service.docker, environ=service.environ,
                        progress=lambda message: progress(name, message),
                        log=lambda line: service.log(f"{name}: {line.lstrip()}"))
        return view.create(replace(request, name=name, cluster=cluster, driver_flags=dict(request.driver_flags)))

    result = FleetResult()
    with ThreadPoolExecutor(max_workers=min(parallel, count), thread_name_prefix="create") as pool:
        futures = {name: pool.submit(create_one, name) for name in names}
        for name, future in futures.items():
            try:
                result.created.append(future.result())
                progress(name, "created")
            except Exception as exc:  # noqa: BLE001 - reported per machine; the others go on
                result.failed[name] = describe_failure(exc)
                progress(name, f"failed: {describe_failure(exc)}")
    if swarm.form or swarm.join:
        _swarm_step(service, result, swarm, cluster or "", progress)
    return result


def _swarm_step(service: Machines, result: FleetResult, plan: SwarmPlan, cluster: str,
                progress: MachineProgress) -> None:
    from .swarm import Swarm

    made = [r.name for r in result.created]
    if not made:
        return
    steps: list[tuple[str, Callable[[Swarm], MachineRecord]]] = []
    if plan.form:
        first, rest = made[0], made[1:]
        steps.append((first, lambda s: s.init(first, advertise=plan.advertise, cluster=cluster)))
        for i, name in enumerate(rest, start=1):
            steps.append((name, lambda s, n=name, m=i < plan.managers:
                          s.join(first, n, as_manager=m, advertise=plan.advertise)))
    else:
        for name in made:
            steps.append((name, lambda s, n=name: s.join(plan.join or "", n, as_manager=plan.join_as_manager,
                                                        advertise=plan.advertise)))
    by_name = {r.name: i for i, r in enumerate(result.created)}
    for name, step in steps:
        view = Machines(service.store, service.docker, environ=service.environ,
                        progress=lambda message, n=name: progress(n, message), log=service.log)
        try:
            result.created[by_name[name]] = step(Swarm(view))
            progress(name, "in the swarm")
        except ProvisionError as exc:
            result.failed[name] = f"created, but not in the swarm: {exc.message}"
            progress(name, f"not in the swarm: {exc.message}")
            if plan.form and name == made[0]:
                for other in made[1:]:
                    result.failed[other] = "created, but not in the swarm: its manager could not start one"
                return


__all__ = ["FleetResult", "SwarmPlan", "create_many", "numbered_names"]
