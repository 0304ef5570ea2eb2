"""Answer ``env``, ``url``, ``config``, ``active`` and ``use`` straight from a ready record.

Start-up time is the whole cost of these commands, so this module reads the store with ``os`` and
``json`` alone (no pathlib, dataclasses or typer). It answers only when everything is as expected, and
returns None otherwise, so the core service handles every error and its wording in one place.
"""

from __future__ import annotations

import json
import os
import sys

from provision import paths
from provision.names import MACHINE_NAME, context_name
from provision.shellenv import config_flags, env_script, override_warnings, url_host

SCHEMA_VERSION = paths.RECORD_SCHEMA_VERSION
MARKER = paths.CONTEXT_MARKER


def command_line(argv: list[str] | None = None) -> str:
    """The invocation as the user typed it, for the "Run this command" hint (Docker Machine used os.Args)."""
    import shlex

    args = (sys.argv if argv is None else argv)[1:]
    return " ".join(["provision", *(shlex.quote(a) for a in args)])


def _root(storage: str | None) -> str:
    root = storage or os.environ.get(paths.STORAGE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_data_dir("provision", appauthor=False)
    root = os.path.expanduser(root)
    return root if os.path.isabs(root) else os.path.join(os.getcwd(), root)


def _ready_record(root: str, name: str) -> dict | None:  # type: ignore[type-arg]
    if not MACHINE_NAME.match(name):
        return None
    try:
        with open(os.path.join(root, paths.MACHINES_DIR, name, paths.RECORD), "rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if (not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or data.get("name") != name
            or data.get("lifecycle") != "ready" or not isinstance(data.get("url"), str) or not data["url"]):
        return None
    return data


def _docker_config() -> str:
    return os.path.expanduser(os.environ.get(paths.DOCKER_CONFIG_ENV) or os.path.join("~", ".docker"))


def _context_owner(config_dir: str, context: str) -> str | None:
    import hashlib

    meta = os.path.join(config_dir, "contexts", "meta", hashlib.sha256(context.encode()).hexdigest(), "meta.json")
    try:
        with open(meta, "rb") as handle:
            owner = (json.load(handle).get("Metadata") or {}).get(MARKER)
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


def _read_config(config_dir: str) -> dict | None:  # type: ignore[type-arg]
    try:
        with open(os.path.join(config_dir, "config.json"), "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _active(root: str) -> str | None:
    host = os.environ.get("DOCKER_HOST")
    machines = os.path.join(root, paths.MACHINES_DIR)
    if host:
        try:
            names = sorted(os.listdir(machines))
        except OSError:
            return None
        for name in names:
            record = _ready_record(root, name)
            if record and record["url"] == host:
                return name
        return None
    config_dir = _docker_config()
    context = os.environ.get("DOCKER_CONTEXT")
    if not context:
        config = _read_config(config_dir)
        if config is None:
            return None
        context = config.get("currentContext")
    if not isinstance(context, str) or not context:
        return None
    owner = _context_owner(config_dir, context)
    return owner if owner and os.path.isdir(os.path.join(machines, owner)) else None


def run_light(storage: str | None, command: str, flags: dict, positional: list[str]) -> int | None:  # type: ignore[type-arg]
    root = _root(storage)
    name = positional[0] if positional else None
    unset = bool(flags.get("--unset") or flags.get("-u"))
    if command == "env" and unset:
        shell = flags.get("--shell")
        sys.stdout.write(env_script(shell=shell if isinstance(shell, str) else None, unset=True,
                                    no_proxy=bool(flags.get("--no-proxy")), command_line=command_line(),
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
        if not os.path.isdir(os.path.join(root, paths.MACHINES_DIR, "default")):
            return None
        name = "default"
    record = _ready_record(root, name)
    if record is None:
        return None
    url = record["url"]
    cert_path = os.path.join(root, paths.MACHINES_DIR, name)
    if command == "url":
        text = url + "\n"
    elif command == "config":
        text = config_flags(ca=os.path.join(cert_path, paths.CA_CERT), cert=os.path.join(cert_path, paths.CLIENT_CERT),
                            key=os.path.join(cert_path, paths.CLIENT_KEY), url=url)
    elif command == "env":
        shell = flags.get("--shell")
        text = env_script(shell=shell if isinstance(shell, str) else None, unset=False,
                          no_proxy=bool(flags.get("--no-proxy")), command_line=command_line(),
                          environ=os.environ, connection=(name, url, url_host(url), cert_path))
    elif command == "use":
        return _use(name)
    else:
        return None
    sys.stdout.write(text)
    return 0


def _use(name: str) -> int | None:
    from provision.fsutil import atomic_write

    context = context_name(name)
    config_dir = _docker_config()
    if _context_owner(config_dir, context) != name:
        return None  # the core writes the missing context
    config = _read_config(config_dir)
    if config is None:
        return None
    path = os.path.join(config_dir, "config.json")
    config["currentContext"] = context
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    atomic_write(path, json.dumps(config, indent="\t") + "\n", mode)
    sys.stdout.write(f'Current context is now "{context}"\n')
    for line in override_warnings(os.environ, context):
        sys.stderr.write("Warning: " + line + "\n")
    return 0
