"""Commands that work over SSH: ``ssh``, ``scp``, ``provision``, ``upgrade``, ``regenerate-certs``."""

from __future__ import annotations

import typer

from .app import app, machines, out
from .lifecycle import NAMES, for_each


# Everything after NAME is the ssh client's (its flags, then the command): click parses nothing there.
@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "allow_interspersed_args": False},
             help="Log into or run a command on a machine with SSH (pinned host key). ssh client flags may "
                  "follow NAME (provision ssh dev -L 8080:localhost:80); -- ends them")
def ssh(ctx: typer.Context, name: str = typer.Argument(None, metavar="NAME [SSH-FLAGS] [CMD...]")) -> None:
    from provision.ssh import interactive_argv, split_client_args

    service = machines(ctx)
    flags, command = split_client_args(list(ctx.args))
    endpoint, known_hosts = service.ssh_target(name)
    _exec(interactive_argv(endpoint, known_hosts, command, flags))


@app.command(help="Copy files between machines and this host (machine:path on either side)")
def scp(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="SRC"),
    destination: str = typer.Argument(..., metavar="DST"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Copy directories recursively"),
    delta: bool = typer.Option(False, "--delta", "-d", help="Copy only what changed (rsync)"),
) -> None:
    from provision.transfer import copy_argv

    _exec(copy_argv(machines(ctx), source, destination, recursive=recursive, delta=delta))


def _exec(argv: list[str]) -> None:
    from provision.run import replace_process

    replace_process(argv, missing_hint="install the OpenSSH client")


@app.command("provision", help="Re-run provisioning: configure Docker and install certificates again")
def provision_command(ctx: typer.Context, names: list[str] = NAMES) -> None:
    service = machines(ctx)
    for_each(names or [service.resolve_name(None)], service.reprovision, "Provisioned machine")


@app.command(help="Upgrade Docker Engine on machines in place")
def upgrade(ctx: typer.Context, names: list[str] = NAMES) -> None:
    service = machines(ctx)
    for_each(names or [service.resolve_name(None)], service.upgrade, "Upgraded machine")


@app.command("regenerate-certs", help="Issue new server certificates (no reinstall; containers keep running)")
def regenerate_certs(
    ctx: typer.Context,
    names: list[str] = NAMES,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation"),
    client_certs: bool = typer.Option(False, "--client-certs", help="Also issue a new client certificate"),
) -> None:
    service = machines(ctx)
    targets = names or [service.resolve_name(None)]
    if not force and not typer.confirm(f"Regenerate TLS machine certs for {', '.join(targets)}?"):
        raise typer.Exit(1)
    if client_certs:  # once, before fanning out: per-machine threads would each rewrite the shared pair
        service.regenerate_client_cert()
    # --client-certs also moves a machine migrated from Docker Machine to provision's CA.
    for_each(targets, lambda name: service.regenerate_certs(name, adopt_ca=client_certs),
             "Regenerated certificates for")
