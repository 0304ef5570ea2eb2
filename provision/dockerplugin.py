"""The docker CLI plugin ``docker machine``: an executable ``docker-machine`` in the docker config's
``cli-plugins`` directory that answers the docker CLI's metadata call and otherwise runs provision.

The docker CLI finds plugins in ``$DOCKER_CONFIG/cli-plugins``, runs ``docker-machine
docker-cli-plugin-metadata`` to list it, and runs ``docker-machine machine ARGS...`` for ``docker machine
ARGS...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import __version__
from .errors import ProvisionError

PLUGIN_NAME = "machine"
PLUGIN_FILE = "docker-machine"
METADATA_COMMAND = "docker-cli-plugin-metadata"
PLUGINS_DIR = "cli-plugins"
MARKER = "provision.cli.pluginmain"  # in every plugin file we write: one that lacks it is someone else's


def metadata() -> dict[str, str]:
    return {"SchemaVersion": "0.1.0", "Vendor": "provision", "Version": __version__,
            "ShortDescription": "Docker hosts anywhere: create machines and fleets (provision)"}


def metadata_json() -> str:
    return json.dumps(metadata())


def plugin_path(docker_config: Path) -> Path:
    return docker_config / PLUGINS_DIR / PLUGIN_FILE


def install(docker_config: Path, python: str | None = None) -> Path:
    """Write the plugin for this interpreter; an existing ``docker-machine`` that is not ours (Docker
    Machine's own binary, say) is never overwritten."""
    from .fsutil import atomic_write, ensure_dir
    from .templating import render

    python = python or sys.executable
    if any(c.isspace() for c in python) or not python.startswith("/"):
        raise ProvisionError(f"Error: the plugin's first line cannot name this interpreter ({python!r}): "
                             "it needs an absolute path without spaces")
    path = plugin_path(docker_config)
    _refuse_foreign(path)
    ensure_dir(path.parent)
    atomic_write(path, render("plugin/docker-machine.j2", python=python, version=__version__), 0o755)
    return path


def uninstall(docker_config: Path) -> Path | None:
    path = plugin_path(docker_config)
    if not path.exists():
        return None
    _refuse_foreign(path)
    path.unlink()
    return path


def _refuse_foreign(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    try:
        ours = path.is_file() and not path.is_symlink() and MARKER.encode() in path.read_bytes()[:4096]
    except OSError:
        ours = False
    if not ours:
        raise ProvisionError(f"Error: {path} exists and was not written by provision; move it away first")
