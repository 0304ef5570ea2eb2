"""A fast path for the commands shells run often (``env``, ``url``, ``config``, ``active``, ``use``).

Importing typer costs about 100 ms, twice the budget of these commands. Their simple forms are parsed
here and run through the same core functions; anything unusual (``--help``, an unknown flag, a typo)
returns None and goes to the full typer CLI, which owns every error message about usage.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from provision.errors import ProvisionError, UsageError
from provision.machines import Machines

FAST_COMMANDS = frozenset({"env", "url", "config", "active", "use", "ls"})
# flag -> takes a value (True) or not (False); "multi" flags may repeat and collect a list.
_FLAGS: dict[str, dict[str, bool | str]] = {
    "env": {"--shell": True, "--unset": False, "-u": False, "--no-proxy": False},
    "url": {},
    "config": {},
    "active": {},
    "use": {"--unset": False, "-u": False},
    "ls": {"-q": False, "--quiet": False, "--json": False, "--format": True, "--timeout": True, "-t": True,
           "--filter": "multi", "-f": "multi"},
}


def _split(args: list[str]) -> tuple[Path | None, str, dict[str, str | bool | list[str]], list[str]] | None:
    storage: Path | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("-s", "--storage-path") and i + 1 < len(args):
            storage = Path(args[i + 1])
            i += 2
        elif args[i].startswith("--storage-path="):
            storage = Path(args[i].split("=", 1)[1])
            i += 1
        else:
            return None  # --debug and friends: the full CLI
    if i >= len(args) or args[i] not in FAST_COMMANDS:
        return None
    command, rest = args[i], args[i + 1:]
    known = _FLAGS[command]
    flags: dict[str, str | bool | list[str]] = {}
    positional: list[str] = []
    j = 0
    while j < len(rest):
        arg = rest[j]
        name, eq, value = arg.partition("=")
        if arg.startswith("-"):
            if name not in known:
                return None
            if known[name]:
                if not eq:
                    if j + 1 >= len(rest):
                        return None
                    value = rest[j + 1]
                    j += 1
                if known[name] == "multi":
                    flags.setdefault("--filter", [])
                    flags["--filter"].append(value)  # type: ignore[union-attr]
                else:
                    flags[name] = value
            elif eq:
                return None
            else:
                flags[name] = True
        else:
            positional.append(arg)
        j += 1
    if len(positional) > 1:
        return None
    return storage, command, flags, positional


def command_line(argv: list[str] | None = None) -> str:
    """The invocation as the user typed it, for the "Run this command" hint (Docker Machine used os.Args)."""
    import shlex

    args = (sys.argv if argv is None else argv)[1:]
    return " ".join(["provision", *(shlex.quote(a) for a in args)])


def env_text(service: Machines, name: str | None, shell: str | None, unset: bool, no_proxy: bool) -> str:
    from provision.shellenv import env_script

    connection = None
    if not unset:
        info = service.connection(service.get(name))
        connection = (info.name, info.url, info.ip, str(info.cert_path))
    return env_script(shell=shell, unset=unset, no_proxy=no_proxy, command_line=command_line(),
                      environ=service.environ, connection=connection)


def config_text(service: Machines, name: str | None) -> str:
    info = service.connection(service.get(name))
    return (f'--tlsverify\n--tlscacert="{info.tls.ca}"\n--tlscert="{info.tls.cert}"\n'
            f'--tlskey="{info.tls.key}"\n-H={info.url}\n')


def active_text(service: Machines) -> str:
    active = service.active_name()
    if not active:
        raise ProvisionError("No active host found")
    return active + "\n"


def use_text(service: Machines, name: str | None, unset: bool) -> tuple[str, list[str]]:
    if unset:
        return 'Current context is now "default"\n', service.use_unset()
    if not name:
        raise UsageError("Error: provision use needs a machine NAME (or --unset)")
    context, warnings = service.use(name)
    return f'Current context is now "{context}"\n', warnings


def run_fast(args: list[str]) -> int | None:
    parsed = _split(args)
    if parsed is None:
        return None
    storage, command, flags, positional = parsed
    if command in ("active", "ls") and positional:
        return None
    service = Machines.open(storage)
    name = positional[0] if positional else None
    unset = bool(flags.get("--unset") or flags.get("-u"))
    if command == "env":
        shell = flags.get("--shell")
        text = env_text(service, name, shell if isinstance(shell, str) else None, unset,
                        bool(flags.get("--no-proxy")))
    elif command == "url":
        text = service.connection(service.get(name)).url + "\n"
    elif command == "config":
        text = config_text(service, name)
    elif command == "active":
        text = active_text(service)
    elif command == "ls":
        from .lsview import ls_text

        timeout = flags.get("--timeout", flags.get("-t", "10"))
        try:
            seconds = float(timeout)  # type: ignore[arg-type]
        except ValueError:
            return None  # the full CLI explains the bad value
        fmt = flags.get("--format")
        text = ls_text(service, quiet=bool(flags.get("-q") or flags.get("--quiet")),
                       filters=list(flags.get("--filter") or []),  # type: ignore[arg-type]
                       fmt=fmt if isinstance(fmt, str) else None, timeout=seconds,
                       as_json=bool(flags.get("--json")))
    else:
        text, warnings = use_text(service, name, unset)
        for line in warnings:
            sys.stderr.write("Warning: " + line + "\n")
    sys.stdout.write(text)
    return 0
