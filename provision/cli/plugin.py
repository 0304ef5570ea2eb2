"""``provision install-docker-plugin`` and ``provision completion SHELL`` (the installed plugin runs
``provision.cli.pluginmain``)."""

from __future__ import annotations

import sys

import typer

from .app import app, machines, out

# Commands whose positional arguments are not machine names (or that have none to complete).
NOT_NAMES = frozenset({"create", "import", "completion", "scp", "migrate", "install-docker-plugin"})


@app.command("install-docker-plugin", help="Install `docker machine` as a docker CLI plugin ($DOCKER_CONFIG/cli-plugins)")
def install_docker_plugin(ctx: typer.Context, uninstall: bool = typer.Option(False, "--uninstall",
                                                                             help="Remove the plugin instead")) -> None:
    from provision import dockerplugin

    config = machines(ctx).docker.dir
    if uninstall:
        path = dockerplugin.uninstall(config)
        out(f"Removed {path}\n" if path else "The docker CLI plugin was not installed.\n")
        return
    path = dockerplugin.install(config, sys.executable)
    out(f"Installed {path}: try `docker machine ls`.\n")


@app.command("completion", help="Print shell completion for bash, zsh or fish (knows machine names)")
def completion(shell: str = typer.Argument(..., metavar="SHELL", help="bash, zsh or fish")) -> None:
    from provision.completion import Command, script

    group = typer.main.get_command(app)
    commands = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if command.hidden:
            continue
        takes = name not in NOT_NAMES and any(p.param_type_name == "argument" for p in command.params)
        commands.append(Command(name, command.get_short_help_str(limit=80), takes))
    out(script(shell, commands))
