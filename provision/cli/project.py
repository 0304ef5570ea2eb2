"""``provision up | plan | down | ps``: a fleet from a project file (the work is in ``provision.project``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from provision import formatting

from .call import Call, out, warn


def _load(call: Call, file: str | None, name: str | None, *, required: bool = True):  # type: ignore[no-untyped-def]
    from provision import projectfile
    from provision.errors import UsageError
    from provision.project import Project

    service = call.machines()
    here = Path.cwd()
    try:
        path = projectfile.find(here, file)
    except UsageError:
        if required or file:
            raise
        # down and ps need only the project's name: its machines carry it
        return Project(service, name or projectfile.default_project_name(here)), service
    spec = projectfile.load(path, environ=service.environ, project_name=name)
    return Project(service, spec.name, spec), service


def _plan_text(plan) -> str:  # type: ignore[no-untyped-def]
    rows = [["ACTION", "MACHINE", "GROUP", "ROLE", "WHY"]]
    rows += [[a.kind, a.machine, a.group, a.role or "-", a.reason] for a in plan.machines]
    rows += [[s.kind, s.machine, "", s.role, "swarm"] for s in plan.swarm]
    rows += [[s.kind, f"stack {s.stack}", "", "", s.reason] for s in plan.stacks]
    return formatting.columns(rows)


def plan(call: Call, file: str | None, name: str | None, as_json: bool, recreate: bool) -> None:
    project, _ = _load(call, file, name)
    result = project.plan(recreate=recreate)
    out(json.dumps(result.to_dict(), indent=2) + "\n" if as_json else _plan_text(result))


def up(call: Call, file: str | None, name: str | None, parallel: int, recreate: bool, dry_run: bool,
       as_json: bool) -> None:
    from provision.errors import UsageError

    if parallel < 1:
        raise UsageError("Error: --parallel must be at least 1")
    project, _ = _load(call, file, name)
    project.parallel = parallel
    result = project.plan(recreate=recreate)
    if dry_run:
        out(json.dumps(result.to_dict(), indent=2) + "\n" if as_json else _plan_text(result))
        return
    for action in result.of_kind("drift"):
        warn(f"{action.machine}: drift: {action.reason}")
    if result.changes_nothing:
        kept = len(result.of_kind("leave", "drift"))
        extra = f", {len(result.stacks)} stack(s)" if result.stacks else ""
        conflicts = result.of_kind("conflict")
        out(f'Project "{project.name}" is up to date: nothing to do ({kept} machine(s){extra}).\n')
        for action in conflicts:
            warn(f"{action.machine}: {action.reason}")
        if conflicts:
            raise click.exceptions.Exit(1)
        return
    from .progress import MachineLines

    rows = [a.machine for a in result.of_kind("make", "replace", "remove")]
    rows += [s.machine for s in result.swarm if s.machine not in rows] + [f"stack {s.stack}" for s in result.stacks
                                                                           if s.kind == "deploy"]
    with MachineLines(rows) as lines:
        project.progress = lines.step
        done = project.up(result)
    summary = [f"{len(done.made)} made", f"{len(done.joined)} joined the swarm", f"{len(done.removed)} removed",
               f"{len(done.deployed)} stack(s) deployed"]
    out(f'Project "{project.name}": ' + ", ".join(summary) + ".\n")
    if done.failed:
        for what, why in done.failed.items():
            warn(f"{what}: {why}")
        warn("Run `provision up` again to finish the job.")
        raise click.exceptions.Exit(1)


def down(call: Call, file: str | None, name: str | None, yes: bool, parallel: int) -> None:
    project, _ = _load(call, file, name, required=False)
    project.parallel = max(1, parallel)
    names = [r.name for r in project.records()]
    if not names:
        out(f'Project "{project.name}" has no machines.\n')
        return
    if not yes:
        from .lifecycle import _confirm_removal

        _confirm_removal(names)
    from .progress import MachineLines

    with MachineLines(names) as lines:
        project.progress = lines.step
        done = project.down()
    out(f'Project "{project.name}": {len(done.removed)} machine(s) removed.\n')
    if done.failed:
        for what, why in done.failed.items():
            warn(f"{what}: {why}")
        raise click.exceptions.Exit(1)


def ps(call: Call, file: str | None, name: str | None, as_json: bool, quiet: bool) -> None:
    project, _ = _load(call, file, name, required=False)
    rows = project.machines()
    if as_json:
        out(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    elif quiet:
        out("".join(r.name + "\n" for r in rows))
    else:
        table = [["NAME", "GROUP", "ROLE", "STATE", "URL", "DOCKER", "ERRORS"]]
        table += [[r.name, r.group, r.role or "-", r.state, r.url, r.docker, r.error] for r in rows]
        out(formatting.columns(table))


__all__ = ["down", "plan", "ps", "up"]
