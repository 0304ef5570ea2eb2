"""The quick tier: the commands shells run often (those declared ``quick``) without loading click.

Importing click costs more than these commands' whole budget. Their simple forms are parsed here from
their declarations (``provision.cli.commands``) with ``flagparse``; anything the parser doubts
(``--help``, ``--debug``, an unknown flag, a missing value, a flag given a value it takes none of,
several names) returns None, and the click application answers and owns every usage message.

A parsed command is answered straight from a ready record when everything is as expected: the file
rules are ``provision.filerules``, the text ``provision.shellenv``. Any doubt goes to the command's
handler, the same function the click application calls, which asks the core service and explains.
"""

from __future__ import annotations

import os
import sys

from provision import filerules, paths
from provision.addresses import BadAddress, url_host
from provision.errors import UsageError
from provision.names import context_name, is_machine_name
from provision.shellenv import UnsafeValue, config_flags, env_script, override_warnings

from . import flagparse
from .call import Call, command_line
from .commands import COMMANDS

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .commands import Command

QUICK = {command.name: command for command in COMMANDS if command.quick}


def parse(args: list[str], scanned: tuple[dict[str, Any], int] | None
          ) -> tuple[Command, str | None, dict[str, Any]] | None:
    """The quick command in ``args``, its store (``-s``) and its handler's keyword arguments; None when
    the click application should answer. ``scanned`` is ``flagparse.leading``'s reading of ``args``."""
    if scanned is None:
        return None
    globals_given, index = scanned
    command = QUICK.get(args[index]) if index < len(args) and not globals_given.get("debug") else None
    if command is None:
        return None  # --debug shows the full CLI's traces
    try:
        given, positional = flagparse.parse(args[index + 1:], command.options)
    except UsageError:
        return None
    if len(positional) > len(command.arguments):  # one value per argument here; more is click's to refuse
        return None
    kwargs: dict[str, Any] = {}
    for spec in command.options:
        if spec.envvar and spec.key not in given and os.environ.get(spec.envvar):
            return None  # click reads the variable
        value = given.get(spec.key, spec.default_value())
        if spec.key in given:
            if spec.choices and value not in spec.choices:
                return None
            if not spec.takes_value and value is not True:
                return None  # `--unset=yes`: click explains
            if spec.type is not str and spec.takes_value:
                try:
                    value = spec.type(value)
                except ValueError:
                    return None
        kwargs[spec.key] = value
    for n, arg in enumerate(command.arguments):
        value = positional[n] if n < len(positional) else None
        kwargs[arg.name] = ([] if value is None else [value]) if arg.many else value
    return command, globals_given.get("storage_path"), kwargs


def run_quick(args: list[str], scanned: tuple[dict[str, Any], int] | None) -> int | None:
    parsed = parse(args, scanned)
    if parsed is None:
        return None
    command, storage, kwargs = parsed
    if command.name != "ls" and from_record(storage, command.name, kwargs) is not None:
        return 0
    call = Call(storage)
    try:
        command.load()(call, **kwargs)
    finally:
        call.close()
    return 0


class _Unsure(Exception):
    """Something the core must look at: give up and let it answer."""


def from_record(storage: str | None, command: str, kwargs: dict[str, Any]) -> int | None:
    """Answer ``env``, ``url``, ``config``, ``active`` or ``use`` from a ready record and return 0, or
    return None having printed nothing."""
    root = filerules.store_root(storage, os.environ)
    names = kwargs.get("names")
    name = names[0] if names else kwargs.get("name")
    unset, shell, no_proxy = bool(kwargs.get("unset")), kwargs.get("shell"), bool(kwargs.get("no_proxy"))
    if kwargs.get("swarm"):
        return None
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
        if not os.path.isdir(filerules.machine_dir(root, "default")):
            return None
        name = "default"
    url = _ready_url(root, name)
    if url is None:
        return None
    cert_path = filerules.machine_dir(root, name)
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


def _ready_url(root: str, name: str) -> str | None:
    if not is_machine_name(name):
        return None
    try:
        record = filerules.read_record(root, name)
    except (OSError, ValueError, RecursionError):
        return None
    url = filerules.ready_url(record, name)
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
            record = filerules.read_record(root, name)
        except (OSError, ValueError):
            continue  # the core lists it as broken, and a broken record never matches
        if not is_machine_name(name) or not isinstance(record, dict) or record.get("url") != host:
            continue
        if filerules.ready_url(record, name) is None:
            raise _Unsure  # a record of another lifecycle may still match in the core
        return name
    return None


def _owner(config_dir: str, context: str) -> str | None:
    try:
        return filerules.owner(filerules.read_context(config_dir, context))
    except (OSError, ValueError, AttributeError):
        raise _Unsure from None


def _config(config_dir: str) -> dict[str, object]:
    try:
        return filerules.read_config(config_dir)
    except (OSError, ValueError):
        raise _Unsure from None


def _active(root: str) -> str | None:
    config_dir = filerules.docker_config_dir(os.environ)
    try:
        return filerules.active_name(
            os.environ, machine_at=lambda host: _machine_at(root, host),
            selected_context=lambda: filerules.current_context(_config(config_dir)),
            owner_of=lambda context: _owner(config_dir, context),
            exists=lambda name: os.path.isdir(filerules.machine_dir(root, name)))
    except _Unsure:
        return None


def _use(name: str) -> int | None:
    context = context_name(name)
    config_dir = filerules.docker_config_dir(os.environ)
    try:
        if _owner(config_dir, context) != name:
            return None  # the core writes the missing context
        config = _config(config_dir)
    except _Unsure:
        return None
    filerules.write_current_context(config_dir, config, context)
    sys.stdout.write(f'Current context is now "{context}"\n')
    for line in override_warnings(os.environ, context):
        sys.stderr.write("Warning: " + line + "\n")
    return 0
