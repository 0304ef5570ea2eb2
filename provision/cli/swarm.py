"""``provision swarm init|join|ls|leave``: Swarm mode over machines (the work is in ``provision.swarm``)."""

from __future__ import annotations

import click

from provision import formatting

from .call import Call, out


def init(call: Call, manager: str, advertise: str | None) -> None:
    from provision.swarm import Swarm

    record = Swarm(call.machines()).init(manager, advertise=advertise)
    out(f'"{record.name}" manages swarm cluster "{record.cluster}".\n')


def join(call: Call, manager: str, names: list[str], as_manager: bool, advertise: str | None) -> None:
    from provision.swarm import Swarm

    swarm = Swarm(call.machines())
    for name in names:
        record = swarm.join(manager, name, as_manager=as_manager, advertise=advertise)
        out(f'"{name}" joined cluster "{record.cluster}" as a {record.swarm_role}.\n')


def leave(call: Call, names: list[str], force: bool) -> None:
    from provision.swarm import Swarm

    swarm = Swarm(call.machines())
    for name in names:
        swarm.leave(name, force=force)
        out(f'"{name}" left its swarm.\n')


def ls(call: Call) -> None:
    from provision.swarm import NodeRow, Swarm

    rows = Swarm(call.machines()).ls()
    table = [["CLUSTER", "MANAGER", "NODE", "ROLE", "STATE", "AVAILABILITY", "MANAGER STATUS", "ADDRESS"]]
    problems = []
    for row in rows:
        if isinstance(row, NodeRow):
            table.append([row.cluster, row.manager, row.hostname, row.role, row.state, row.availability,
                          row.manager_status, row.address])
        else:
            problems.append(f"cluster {row[0]}: {row[1]}\n")
    out(formatting.columns(table) + "".join(problems))
    if problems:
        raise click.exceptions.Exit(1)
