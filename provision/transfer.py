"""``provision scp``: resolve ``machine:path`` arguments; ``provision.ssh`` builds the scp/rsync command."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .machines import Machines
    from .ssh import Location

_REMOTE = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9.-]*):(.*)$")


def split_location(arg: str) -> tuple[str | None, str]:
    """``name:path`` -> (name, path); a local path (``./a:b`` or ``/x``) -> (None, arg)."""
    match = _REMOTE.match(arg)
    if match and not arg.startswith(("/", ".")):
        return match.group(1), match.group(2)
    return None, arg


def copy_argv(service: Machines, source: str, destination: str, *, recursive: bool, delta: bool) -> list[str]:
    from .ssh import RemotePath, rsync_argv, scp_argv

    def resolve(arg: str) -> Location:
        name, path = split_location(arg)
        if name is None:
            return path
        endpoint, known_hosts = service.ssh_target(name)
        return RemotePath(endpoint, known_hosts, path)

    src, dst = resolve(source), resolve(destination)
    if isinstance(src, str) and isinstance(dst, str):
        raise UsageError("Error: one of SRC and DST must be machine:path")
    if delta:
        return rsync_argv(src, dst, recursive=recursive)
    return scp_argv(src, dst, recursive=recursive)
