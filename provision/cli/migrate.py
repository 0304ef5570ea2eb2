"""``migrate``: Docker Machine's machines made provision machines (the work is ``provision.migrate``)."""

from __future__ import annotations

from pathlib import Path

from provision.errors import ProvisionError

from .call import Call, out, warn


def migrate(call: Call, names: list[str], source: str | None, rename: list[str]) -> None:
    from provision import migrate as core

    service = call.machines()
    origin = Path(source).expanduser() if source else core.default_source(service.environ)
    outcomes = core.migrate(service, origin.absolute(), names or None, core.parse_renames(rename))
    for outcome in outcomes:
        if outcome.ok:
            out(f'Migrated "{outcome.name}" as "{outcome.target}" ({outcome.driver} driver, '
                f"docker context {_context(outcome.target)})\n")
            for note in outcome.notes:
                out(f"  {outcome.target}: {note}\n")
        else:
            warn(f'Error migrating "{outcome.name}": {outcome.error}')
    if not outcomes:
        out(f"No machines in {origin}\n")
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        raise ProvisionError(f"{len(failed)} of {len(outcomes)} machines not migrated: {', '.join(failed)}")


def _context(name: str | None) -> str:
    from provision.names import context_name

    return context_name(name or "")
