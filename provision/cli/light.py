"""Answer ``env``, ``url``, ``config``, ``active`` and ``use`` straight from a ready record.

Dispatch only: the rules live in ``provision.lean``, the text in ``provision.shellenv``. This answers
only when everything is as expected and returns None otherwise, so the core service handles every
error and its wording in one place.
"""

from __future__ import annotations

import os
import sys

from provision import lean, paths
from provision.names import context_name, is_machine_name
from provision.addresses import BadAddress, url_host
from provision.shellenv import UnsafeValue, config_flags, env_script, override_warnings


class _Unsure(Exception):
    """Something the core must look at: give up and let it answer."""


def command_line(argv: list[str] | None = None) -> str:
    """The invocation as the user typed it, for the "Run this command" hint (Docker Machine used os.Args)."""
    import shlex

    args = (sys.argv if argv is None else argv)[1:]
    return " ".join(["provision", *(shlex.quote(a) for a in args)])


def _ready_url(root: str, name: str) -> str | None:
    if not is_machine_name(name):
        return None
    try:
        record = lean.read_record(root, name)
    except (OSError, ValueError, RecursionError):
        return None
    url = lean.ready_url(record, name)
    try:
        return url and url_host(url) and url
    except BadAddress:
        return None  # the core reports the record as broken


def _machine_at(root: str, host: str) -> str | None:
    """The first machine, in name order, whose record has URL ``host``; unsure at a record not ready."""
    try:
        names = sorted(os.listdir(os.path.join(root, paths.MACHINES_DIR)))
    except OSError:
        raise _Unsure from None
    for name in names:
        try:
            record = lean.read_record(root, name)
        except (OSError, ValueError):
            continue  # the core lists it as broken, and a broken record never matches
        if not is_machine_name(name) or not isinstance(record, dict) or record.get("url") != host:
            continue
        if lean.ready_url(record, name) is None:
            raise _Unsure  # a record of another lifecycle may still match in the core
        return name
    return None


def _owner(config_dir: str, context: str) -> str | None:
    try:
        return lean.owner(lean.read_context(config_dir, context))
    except (OSError, ValueError, AttributeError):
        raise _Unsure from None


def _config(config_dir: str) -> dict[str, object]:
    try:
        return lean.read_config(config_dir)
    except (OSError, ValueError):
        raise _Unsure from None


def _active(root: str) -> str | None:
    config_dir = lean.docker_config_dir(os.environ)
    try:
        return lean.active_name(
            os.environ, machine_at=lambda host: _machine_at(root, host),
            selected_context=lambda: lean.current_context(_config(config_dir)),
            owner_of=lambda context: _owner(config_dir, context),
            exists=lambda name: os.path.isdir(lean.machine_dir(root, name)))
    except _Unsure:
        return None


def _use(name: str) -> int | None:
    context = context_name(name)
    config_dir = lean.docker_config_dir(os.environ)
    try:
        if _owner(config_dir, context) != name:
            return None  # the core writes the missing context
        config = _config(config_dir)
    except _Unsure:
        return None
    lean.write_current_context(config_dir, config, context)
    sys.stdout.write(f'Current context is now "{context}"\n')
    for line in override_warnings(os.environ, context):
        sys.stderr.write("Warning: " + line + "\n")
    return 0


def run_light(storage: str | None, command: str, flags: dict, positional: list[str]) -> int | None:  # type: ignore[type-arg]
    root = lean.store_root(storage, os.environ)
    name = positional[0] if positional else None
    unset = bool(flags.get("--unset"))
    shell = flags.get("--shell")
    shell = shell if isinstance(shell, str) else None
    no_proxy = bool(flags.get("--no-proxy"))
    if command == "env" and unset:
        if name is not None:
            return None  # an error: the core words it
        sys.stdout.write(env_script(shell=shell, unset=True, no_proxy=no_proxy, command_line=command_line(),
                                    environ=os.environ, connection=None))
        return 0
    if command == "active":
        active = _active(root)
        if active is None:
            return None
        sys.stdout.write(active + "\n")
        return 0
    if command == "use" and unset:
        return None
    if name is None:
        if not os.path.isdir(lean.machine_dir(root, "default")):
            return None
        name = "default"
    url = _ready_url(root, name)
    if url is None:
        return None
    cert_path = lean.machine_dir(root, name)
    if command == "url":
        text = url + "\n"
    elif command == "config":
        text = config_flags(ca=os.path.join(cert_path, paths.CA_CERT), cert=os.path.join(cert_path, paths.CLIENT_CERT),
                            key=os.path.join(cert_path, paths.CLIENT_KEY), url=url)
    elif command == "env":
        try:
            text = env_script(shell=shell, unset=False, no_proxy=no_proxy, command_line=command_line(),
                              environ=os.environ, connection=(name, url, url_host(url), cert_path))
        except UnsafeValue:
            return None  # a value no shell syntax can carry: the core says which
    elif command == "use":
        return _use(name)
    else:
        return None
    sys.stdout.write(text)
    return 0
