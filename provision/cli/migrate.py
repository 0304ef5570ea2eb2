"""``migrate``: Docker Machine's machines made provision machines (the work is ``provision.migrate``)."""

from __future__ import annotations

from pathlib import Path

import typer

from provision.errors import ProvisionError

from .app import app, machines, out, warn


@app.command(help="Make Docker Machine's machines provision machines (its store is only read)")
def migrate(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, metavar="[NAME...]", help="Machines to migrate (default: all)"),
    source: Path = typer.Option(None, "--from", metavar="DIR",
                                help="Docker Machine's store (default: $MACHINE_STORAGE_PATH, else ~/.docker/machine)"),
    rename: list[str] = typer.Option([], "--rename", metavar="OLD=NEW",
                                     help="Migrate machine OLD under the name NEW (repeatable)"),
) -> None:
    from provision import migrate as core

    service = machines(ctx)
    source = source.expanduser() if source else core.default_source(service.environ)
    outcomes = core.migrate(service, source.absolute(), names or None, core.parse_renames(rename))
    for outcome in outcomes:
        if outcome.ok:
            out(f'Migrated "{outcome.name}" as "{outcome.target}" ({outcome.driver} driver, '
                f"docker context {_context(outcome.target)})\n")
            for note in outcome.notes:
                out(f"  {outcome.target}: {note}\n")
        else:
            warn(f'Error migrating "{outcome.name}": {outcome.error}')
    if not outcomes:
        out(f"No machines in {source}\n")
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        raise ProvisionError(f"{len(failed)} of {len(outcomes)} machines not migrated: {', '.join(failed)}")


def _context(name: str | None) -> str:
    from provision.names import context_name

    return context_name(name or "")
