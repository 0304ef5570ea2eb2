"""A fast path for the commands shells run often (``env``, ``url``, ``config``, ``active``, ``use``, ``ls``).

Importing typer costs about 100 ms, more than these commands' whole budget. Their simple forms are
parsed here; anything unusual (``--help``, an unknown flag, a typo) returns None and goes to the full
typer CLI, which owns every usage message. ``run_light`` then answers straight from the record when it
is ready and well formed; any doubt falls through to the core service, which explains errors.
"""

from __future__ import annotations

import sys

from .light import run_light

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


def _split(args: list[str]) -> tuple[str | None, str, dict[str, str | bool | list[str]], list[str]] | None:
    storage: str | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("-s", "--storage-path") and i + 1 < len(args):
            storage = args[i + 1]
            i += 2
        elif args[i].startswith("--storage-path="):
            storage = args[i].split("=", 1)[1]
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


def run_fast(args: list[str]) -> int | None:
    parsed = _split(args)
    if parsed is None:
        return None
    storage, command, flags, positional = parsed
    if command in ("active", "ls") and positional:
        return None
    if command != "ls":
        code = run_light(storage, command, flags, positional)
        if code is not None:
            return code
    from pathlib import Path

    from provision.machines import Machines

    from .texts import active_text, config_text, env_text, use_text

    service = Machines.open(Path(storage) if storage else None)
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
