"""``env``, ``use`` and ``active``: point a shell or the docker CLI at a machine."""

from __future__ import annotations

import typer

from .app import app, machines, out, warn
from .texts import active_text, env_name, env_text, use_text


@app.command(help="Print the shell commands that point docker at a machine (eval them)")
def env(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, metavar="[NAME]"),
    shell: str = typer.Option(None, "--shell", help="bash, zsh, sh, fish, powershell, cmd, tcsh or emacs "
                                                   "(default: from $SHELL)"),
    unset: bool = typer.Option(False, "--unset", "-u", help="Print commands that undo the settings"),
    no_proxy: bool = typer.Option(False, "--no-proxy", help="Add the machine's IP to NO_PROXY/no_proxy"),
    swarm: bool = typer.Option(False, "--swarm", help="Point at a manager of NAME's swarm cluster"),
) -> None:
    service = machines(ctx)
    name = env_name(names, unset)
    if swarm and not unset:
        from provision.swarm import Swarm

        name = Swarm(service).manager_of(service.resolve_name(name))
    out(env_text(service, name, shell, unset, no_proxy))


@app.command(help="Make NAME the docker CLI's current context (use --unset to go back to default)")
def use(
    ctx: typer.Context,
    name: str = typer.Argument(None, metavar="NAME"),
    unset: bool = typer.Option(False, "--unset", "-u", help="Go back to docker's default context"),
) -> None:
    text, warnings = use_text(machines(ctx), name, unset)
    out(text)
    for line in warnings:
        warn("Warning: " + line)


@app.command(help="Print the machine the shell or the docker CLI points at")
def active(ctx: typer.Context) -> None:
    out(active_text(machines(ctx)))
