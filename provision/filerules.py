"""File rules: what both the quick tier (``provision.cli.quick``) and the full core apply to files.

Where the store lives, what makes a record ready, where docker keeps its config and contexts, which
machine owns a context, how ``config.json`` is read and written, and which machine is active. Each rule
is written once, here, as plain functions on ``str`` paths with the standard library only, because
the quick tier imports this module on every ``env``, ``url``, ``config``, ``active`` and ``use``, which
must start in a few milliseconds. Readers raise ``OSError``/``ValueError`` rather than explain: the core
turns them into errors a user reads, and the quick tier takes them as "let the core answer".
"""

from __future__ import annotations

import json
import os

from . import paths
from .fsutil import JSON_LIMIT, atomic_write, read_regular

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

LS_TIMEOUT = 10.0  # seconds for each machine's probe in `ls`
CONFIG_FILE = "config.json"
CURRENT = "currentContext"


class NotAnObject(ValueError):
    """A JSON file that parsed but is not the object the docker CLI or the store expects."""


# -- the store ------------------------------------------------------------------------------------
def store_root(storage: str | None, environ: Mapping[str, str]) -> str:
    """``-s``, else ``PROVISION_STORAGE_PATH``, else Docker Machine's ``MACHINE_STORAGE_PATH`` (so scripts
    that set it keep working), else the platform's user data dir; absolute."""
    root = storage or environ.get(paths.STORAGE_ENV) or environ.get(paths.MACHINE_STORAGE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_data_dir("provision", appauthor=False)
    return absolute(root)


def absolute(path: str) -> str:
    """``Path(path).expanduser().absolute()`` without pathlib: ``..`` kept (symlinks), ``.`` and ``//`` dropped."""
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
    head = "//" if path.startswith("//") and not path.startswith("///") else "/"  # as POSIX pathlib keeps it
    return head + "/".join(part for part in path.split("/") if part not in ("", "."))


def machine_dir(root: str, name: str) -> str:
    return os.path.join(root, paths.MACHINES_DIR, name)


def record_path(root: str, name: str) -> str:
    return os.path.join(machine_dir(root, name), paths.RECORD)


def read_json(path: str, *, follow: bool = True) -> object:
    """A JSON file read as a bounded regular file (``fsutil.read_regular``); ``follow=False`` for the
    store's own files, which provision never writes as links."""
    return loads(read_regular(path, JSON_LIMIT, follow=follow))


def loads(data: bytes) -> object:
    """``json.loads``, with JSON nested too deep for the parser a ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_record(root: str, name: str) -> object:
    """A machine's record as JSON, read only from a real machine directory and a real file in it."""
    if os.path.islink(machine_dir(root, name)):
        raise ValueError("the machine directory is a symbolic link")
    return read_json(record_path(root, name), follow=False)


def ready_url(record: object, name: str) -> str | None:
    """The engine URL of a ready record of the current schema that names ``name``, else None."""
    if (not isinstance(record, dict) or record.get("schema_version") != paths.RECORD_SCHEMA_VERSION
            or record.get("name") != name or not isinstance(record.get("driver"), str)
            or record.get("lifecycle") != "ready"):
        return None
    url = record.get("url")
    return url if isinstance(url, str) and url else None


# -- docker's config dir, contexts and config.json ------------------------------------------------
def docker_config_dir(environ: Mapping[str, str]) -> str:
    """``$DOCKER_CONFIG``, else ``~/.docker``, found the way the docker CLI finds it."""
    return os.path.expanduser(environ.get(paths.DOCKER_CONFIG_ENV) or os.path.join("~", ".docker"))


def context_id(context: str) -> str:
    import hashlib  # ~8 ms that `env` and `url` never need

    return hashlib.sha256(context.encode()).hexdigest()


def context_meta_path(config_dir: str, context: str) -> str:
    return os.path.join(config_dir, "contexts", "meta", context_id(context), "meta.json")


def context_tls_dir(config_dir: str, context: str) -> str:
    return os.path.join(config_dir, "contexts", "tls", context_id(context))


def read_context(config_dir: str, context: str) -> object | None:
    """A context's meta.json, or None when docker has no such context."""
    try:
        return read_json(context_meta_path(config_dir, context))
    except FileNotFoundError:
        return None


def owner(meta: object | None) -> str | None:
    """The machine whose ownership marker a context carries; None for an absent or foreign context.

    A meta.json that is not an object raises ``AttributeError``, as it always has.
    """
    if not meta:
        return None
    name = (meta.get("Metadata") or {}).get(paths.CONTEXT_MARKER)  # type: ignore[attr-defined]
    return name if isinstance(name, str) else None


def read_config(config_dir: str) -> dict[str, object]:
    """``config.json`` as an object; absent or blank is ``{}``. Raises ``NotAnObject`` for other JSON."""
    try:
        text = read_regular(os.path.join(config_dir, CONFIG_FILE), JSON_LIMIT)
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    data = loads(text)
    if not isinstance(data, dict):
        raise NotAnObject("not a JSON object")
    return data


def current_context(config: Mapping[str, object]) -> str | None:
    value = config.get(CURRENT)
    return value if isinstance(value, str) and value else None


def write_current_context(config_dir: str, config: dict[str, object], context: str | None) -> None:
    """Select ``context`` (None: docker's default) in ``config.json``, keeping every other key and the mode."""
    if context is None:
        if CURRENT not in config:
            return
        del config[CURRENT]
    else:
        config[CURRENT] = context
    # Written through a symlink (a dotfile manager's), as the docker CLI does: the link stays a link.
    path = os.path.realpath(os.path.join(config_dir, CONFIG_FILE))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    # The docker CLI writes this file with tab indentation; keep the same look.
    atomic_write(path, json.dumps(config, indent="\t") + "\n", mode)


# -- the active machine ---------------------------------------------------------------------------
def active_name(environ: Mapping[str, str], *, machine_at: Callable[[str], str | None],
                selected_context: Callable[[], str | None], owner_of: Callable[[str], str | None],
                exists: Callable[[str], bool]) -> str | None:
    """The machine the shell or the docker CLI points at: ``DOCKER_HOST`` wins over any context.

    The lookups are passed in because the core reads records and files with full validation and
    explained errors, while the quick tier reads them raw and gives up at the first doubt.
    """
    host = environ.get("DOCKER_HOST")
    if host:
        return machine_at(host)
    context = environ.get("DOCKER_CONTEXT") or selected_context()
    if not context:
        return None
    name = owner_of(context)
    return name if name and exists(name) else None
