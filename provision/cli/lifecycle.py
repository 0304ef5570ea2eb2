"""``start``, ``stop``, ``restart``, ``kill`` (several names run concurrently) and ``rm``."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import typer

from provision.errors import ProvisionError

from .app import app, machines, out, warn

NAMES = typer.Argument(None, metavar="[NAME...]")


def for_each(names: list[str], action: Callable[[str], object], done: str) -> None:
    """Run ``action`` on every name at once; report each failure; fail if any did."""
    if len(names) == 1:
        action(names[0])
        out(f'{done} "{names[0]}".\n')
        return
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        futures = {name: pool.submit(action, name) for name in names}
        for name, future in futures.items():
            try:
                future.result()
                out(f'{done} "{name}".\n')
            except ProvisionError as exc:
                failures.append(name)
                warn(f'Error with "{name}": {exc.message}')
    if failures:
        raise ProvisionError(f"failed for {', '.join(failures)}")


def _lifecycle(ctx: typer.Context, names: list[str] | None, method: str, done: str) -> None:
    service = machines(ctx)
    targets = names or [service.resolve_name(None)]
    for_each(targets, getattr(service, method), done)


@app.command(help="Start machines")
def start(ctx: typer.Context, names: list[str] = NAMES) -> None:
    _lifecycle(ctx, names, "start", "Started machine")


@app.command(help="Stop machines gracefully")
def stop(ctx: typer.Context, names: list[str] = NAMES) -> None:
    _lifecycle(ctx, names, "stop", "Stopped machine")


@app.command(help="Restart machines")
def restart(ctx: typer.Context, names: list[str] = NAMES) -> None:
    _lifecycle(ctx, names, "restart", "Restarted machine")


@app.command(help="Kill machines (forced stop)")
def kill(ctx: typer.Context, names: list[str] = NAMES) -> None:
    _lifecycle(ctx, names, "kill", "Killed machine")


@app.command("rm", help="Remove machines: their resources, docker context and record")
def rm(
    ctx: typer.Context,
    names: list[str] = NAMES,
    force: bool = typer.Option(False, "--force", "-f", help="Remove the local record even if the driver fails"),
    yes: bool = typer.Option(False, "-y", help="Do not ask for confirmation"),
) -> None:
    service = machines(ctx)
    targets = names or [service.resolve_name(None)]
    for name in targets:
        if not service.store.exists(service.resolve_name(name)):
            service.store.load(name)  # raises Docker Machine's "does not exist" error
    if not yes and not typer.confirm(f"About to remove {', '.join(targets)}\n"
                                     "WARNING: This action will delete both local reference and remote "
                                     "instance.\nAre you sure?"):
        raise typer.Exit(1)
    if len(targets) == 1:
        service.remove(targets[0], force=force)
        out(f"Successfully removed {targets[0]}\n")
        return
    failures = []
    for name in targets:
        try:
            service.remove(name, force=force)
            out(f"Successfully removed {name}\n")
        except ProvisionError as exc:
            failures.append(name)
            warn(f'Error removing "{name}": {exc.message}')
    if failures:
        raise ProvisionError(f"could not remove {', '.join(failures)}")
