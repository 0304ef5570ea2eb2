"""``provision install-docker-plugin`` and ``provision completion SHELL`` (the installed plugin runs
``provision.cli.pluginmain``)."""

from __future__ import annotations

import sys

from .call import Call, out

# Commands whose positional arguments are not machine names (or that have none to complete).
NOT_NAMES = frozenset({"create", "import", "completion", "scp", "migrate", "install-docker-plugin"})


def install_docker_plugin(call: Call, uninstall: bool) -> None:
    from provision import dockerplugin

    config = call.machines().docker.dir
    if uninstall:
        path = dockerplugin.uninstall(config)
        out(f"Removed {path}\n" if path else "The docker CLI plugin was not installed.\n")
        return
    path = dockerplugin.install(config, sys.executable)
    out(f"Installed {path}: try `docker machine ls`.\n")


def completion(call: Call, shell: str) -> None:
    from provision.completion import Command, script

    from .commands import COMMANDS, GROUPS

    # From the declarations, as the CLI itself is: a command completes machine names when it takes them.
    commands = [Command(c.name, c.help.split(". ")[0][:80], c.name not in NOT_NAMES and bool(c.arguments))
                for c in COMMANDS if " " not in c.name]
    commands += [Command(group, text[:80], False) for group, text in GROUPS.items()]
    out(script(shell, commands))
