"""The store's ssh config file for machines whose engine is reached over SSH, and the one ``Include``
line in the user's ``~/.ssh/config`` that makes the docker CLI (and plain ``ssh``) use it.

The docker CLI runs ``ssh -l USER -p PORT HOST docker system dial-stdio`` for an ``ssh://`` host: the
included file gives that command the machine's key and its pinned host key. Local machines share
127.0.0.1, so each block matches host, user and port together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write, ensure_dir
from .templating import render

FILE = "ssh_config"
# Beside FILE in the store: the path that the user's ~/.ssh/config was given in our Include line, written
# when the user agreed to it. A store moved (or restored) elsewhere finds the old path here, and the next
# write of FILE moves the Include line along, so machines reached over SSH keep working.
INCLUDED = "ssh_config.included"
INCLUDE_COMMENT = "# added by provision: machines reached over SSH (`provision rm` of the last one removes it)"


@dataclass(frozen=True)
class SSHMachine:
    name: str
    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path


def write(path: Path, machines: list[SSHMachine]) -> None:
    """The store's file with a block per machine; gone when no machine needs it."""
    if not machines:
        path.unlink(missing_ok=True)
        return
    atomic_write(path, render("local/ssh_config.j2", machines=sorted(machines, key=lambda m: m.name)), 0o600)


def include_line(path: Path) -> str:
    return f'Include "{path}"'


def is_included(user_config: Path, path: Path) -> bool:
    try:
        return include_line(path) in user_config.read_text().splitlines()
    except FileNotFoundError:
        return False


def add_include(user_config: Path, path: Path) -> bool:
    """Put the Include line at the top of ``~/.ssh/config`` (an Include below a Host block would apply to
    that block only). True if the file changed."""
    if is_included(user_config, path):
        return False
    ensure_dir(user_config.parent, 0o700)
    try:
        text = user_config.read_text()
    except FileNotFoundError:
        text = ""
    atomic_write(user_config, f"{INCLUDE_COMMENT}\n{include_line(path)}\n\n{text}", 0o600)
    return True


def follow_store(user_config: Path, path: Path, marker: Path, *, needed: bool) -> None:
    """Keep the Include line pointing at ``path`` while ``needed``, wherever the store lived when the user
    agreed to it (``marker`` remembers that path); take it and the marker out when no machine needs it."""
    try:
        agreed = marker.read_text().strip()
    except FileNotFoundError:
        agreed = str(path) if is_included(user_config, path) else ""  # agreed before markers were kept
    if not agreed:
        return
    if not needed:
        remove_include(user_config, Path(agreed))
        remove_include(user_config, path)
        marker.unlink(missing_ok=True)
        return
    if agreed != str(path):
        remove_include(user_config, Path(agreed))
    add_include(user_config, path)
    if not marker.exists() or agreed != str(path):
        atomic_write(marker, f"{path}\n", 0o600)


def agree_to_include(user_config: Path, path: Path, marker: Path) -> None:
    """The user said yes: add the Include line and remember where it points."""
    add_include(user_config, path)
    atomic_write(marker, f"{path}\n", 0o600)


def remove_include(user_config: Path, path: Path) -> bool:
    """Take our Include line (and its comment) out again, keeping everything else. True if it was there."""
    if not is_included(user_config, path):
        return False
    lines = user_config.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.rstrip("\n") not in (include_line(path), INCLUDE_COMMENT)]
    if kept and kept[0].strip() == "" and lines[0].rstrip("\n") == INCLUDE_COMMENT:
        kept = kept[1:]  # the blank line add_include put after the Include
    atomic_write(user_config, "".join(kept), 0o600)
    return True
