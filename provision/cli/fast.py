"""A fast path for the commands shells run often (``env``, ``url``, ``config``, ``active``, ``use``, ``ls``).

Importing typer costs about 100 ms, more than these commands' whole budget. Their simple forms are
parsed here with ``flagparse.split``; anything unusual (``--help``, ``--debug``, an unknown flag, a
missing value) returns None and goes to the full typer CLI, which owns every usage message. ``run_light``
then answers straight from the record when it is ready and well formed; any doubt falls through to the
core service, which explains errors.
"""

from __future__ import annotations

import sys

from provision.errors import UsageError
from provision.lean import LS_TIMEOUT

from .flagparse import split
from .light import run_light

# flag (without dashes) -> takes a value; "filter" may repeat and collects a list.
_FLAGS: dict[str, dict[str, bool]] = {
    "env": {"shell": True, "unset": False, "no-proxy": False},
    "url": {},
    "config": {},
    "active": {},
    "use": {"unset": False},
    "ls": {"quiet": False, "json": False, "format": True, "timeout": True, "filter": True},
}
_SHORT = {"-u": "unset", "-q": "quiet", "-t": "timeout", "-f": "filter"}
NATIVE_SSH = "--native-ssh"


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
        elif args[i] == NATIVE_SSH:  # Docker Machine's; ignored, as in the full CLI
            i += 1
        else:
            return None  # --debug and friends: the full CLI
    if i >= len(args) or args[i] not in _FLAGS:
        return None
    command, known = args[i], _FLAGS[args[i]]
    try:
        given, positional = split(args[i + 1:], known, {k: v for k, v in _SHORT.items() if v in known})
    except UsageError:
        return None
    flags: dict[str, str | bool | list[str]] = {}
    for name, value in given:
        if not known[name]:
            if value is not None:
                return None  # `--unset=yes`: typer explains
            flags["--" + name] = True
        elif name == "filter":
            flags.setdefault("--filter", []).append(value)  # type: ignore[union-attr,arg-type]
        else:
            flags["--" + name] = value  # type: ignore[assignment]
    if len(positional) > 1 or (positional and command in ("active", "ls")):
        return None
    return storage, command, flags, positional


def run_fast(args: list[str]) -> int | None:
    parsed = _split(args)
    if parsed is None:
        return None
    storage, command, flags, positional = parsed
    if command != "ls":
        code = run_light(storage, command, flags, positional)
        if code is not None:
            return code
    from pathlib import Path

    from provision.machines import Machines

    from .texts import active_text, config_text, env_name, env_text, use_text

    service = Machines.open(Path(storage) if storage else None)
    name = positional[0] if positional else None
    unset = bool(flags.get("--unset"))
    if command == "env":
        shell = flags.get("--shell")
        text = env_text(service, env_name(positional, unset), shell if isinstance(shell, str) else None, unset,
                        bool(flags.get("--no-proxy")))
    elif command == "url":
        text = service.connection(service.get(name)).url + "\n"
    elif command == "config":
        text = config_text(service, name)
    elif command == "active":
        text = active_text(service)
    elif command == "ls":
        from .lsview import ls_text

        try:
            seconds = float(flags.get("--timeout", LS_TIMEOUT))  # type: ignore[arg-type]
        except ValueError:
            return None  # the full CLI explains the bad value
        fmt = flags.get("--format")
        text = ls_text(service, quiet=bool(flags.get("--quiet")),
                       filters=list(flags.get("--filter") or []),  # type: ignore[arg-type]
                       fmt=fmt if isinstance(fmt, str) else None, timeout=seconds,
                       as_json=bool(flags.get("--json")))
    else:
        text, warnings = use_text(service, name, unset)
        for line in warnings:
            sys.stderr.write("Warning: " + line + "\n")
    sys.stdout.write(text)
    return 0
