"""``provision swarm init|join|ls|leave``: Swarm mode over machines (the work is in ``provision.swarm``)."""

from __future__ import annotations

import typer

from provision import formatting

from .app import app, machines, out

swarm_app = typer.Typer(help="Swarm mode clusters of machines: init, join, ls, leave", no_args_is_help=True)
app.add_typer(swarm_app, name="swarm")

ADVERTISE = typer.Option(None, "--swarm-advertise-addr",
                         help="Address the other members reach the machine at (default: the driver's cluster "
                              "address; generic and none: the SSH address)")


@swarm_app.command("init", help="Make MANAGER a Swarm mode manager advertising its cluster address")
def init(ctx: typer.Context, manager: str = typer.Argument(..., metavar="MANAGER"),
         advertise: str = ADVERTISE) -> None:
    from provision.swarm import Swarm

    record = Swarm(machines(ctx)).init(manager, advertise=advertise)
    out(f'"{record.name}" manages swarm cluster "{record.cluster}".\n')


@swarm_app.command("join", help="Join machines to the cluster MANAGER manages (tokens read from it, never shown)")
def join(ctx: typer.Context, manager: str = typer.Argument(..., metavar="MANAGER"),
         names: list[str] = typer.Argument(..., metavar="NAME..."),
         as_manager: bool = typer.Option(False, "--manager", help="Join as managers (default: workers)"),
         advertise: str = ADVERTISE) -> None:
    from provision.swarm import Swarm

    swarm = Swarm(machines(ctx))
    for name in names:
        record = swarm.join(manager, name, as_manager=as_manager, advertise=advertise)
        out(f'"{name}" joined cluster "{record.cluster}" as a {record.swarm_role}.\n')


@swarm_app.command("leave", help="Drain machines, let their tasks move, leave the swarm and drop their nodes")
def leave(ctx: typer.Context, names: list[str] = typer.Argument(..., metavar="NAME..."),
          force: bool = typer.Option(False, "--force", "-f",
                                     help="Also the last manager of a cluster that still has workers")) -> None:
    from provision.swarm import Swarm

    swarm = Swarm(machines(ctx))
    for name in names:
        swarm.leave(name, force=force)
        out(f'"{name}" left its swarm.\n')


@swarm_app.command("ls", help="Clusters by manager machine, each node's role, state and availability")
def ls(ctx: typer.Context) -> None:
    from provision.swarm import NodeRow, Swarm

    rows = Swarm(machines(ctx)).ls()
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
        raise typer.Exit(1)
