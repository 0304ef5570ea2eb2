"""``provision scp``: turn ``machine:path`` arguments into an scp (or rsync over ssh) command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.base import SSHEndpoint

from .errors import UsageError

if TYPE_CHECKING:
    from .machines import Machines

_REMOTE = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9.-]*):(.*)$")


def split_location(arg: str) -> tuple[str | None, str]:
    """``name:path`` -> (name, path); a local path (``./a:b`` or ``/x``) -> (None, arg)."""
    match = _REMOTE.match(arg)
    if match and not arg.startswith(("/", ".")):
        return match.group(1), match.group(2)
    return None, arg


def ssh_options(endpoints: list[tuple[SSHEndpoint, Path]]) -> list[str]:
    """Options that make ssh use each machine's key and pinned host key, and nothing else."""
    options = ["-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", "UserKnownHostsFile=" + " ".join(str(k) for _, k in endpoints), "-o", "LogLevel=ERROR"]
    for endpoint, _ in endpoints:
        options += ["-i", str(endpoint.key_path)]
    return options


def copy_argv(service: Machines, source: str, destination: str, *, recursive: bool, delta: bool) -> list[str]:
    src_name, src_path = split_location(source)
    dst_name, dst_path = split_location(destination)
    if src_name is None and dst_name is None:
        raise UsageError("Error: one of SRC and DST must be machine:path")
    endpoints: dict[str, tuple[SSHEndpoint, Path]] = {}
    for name in {n for n in (src_name, dst_name) if n}:
        endpoints[name] = service.ssh_target(name)
    if delta and len(endpoints) > 1:
        raise UsageError("Error: --delta copies between this host and one machine, not two machines")

    def location(name: str | None, path: str) -> str:
        if name is None:
            return path
        endpoint = endpoints[name][0]
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        return f"{endpoint.user}@{host}:{path}"

    options = ssh_options(list(endpoints.values()))
    if delta:
        endpoint = next(iter(endpoints.values()))[0]
        remote_shell = shlex.join(["ssh", "-p", str(endpoint.port), *options])
        argv = ["rsync", "-a" if recursive else "-t", "--progress", "-e", remote_shell]
        return argv + ["--", location(src_name, src_path), location(dst_name, dst_path)]
    ports = {e.port for e, _ in endpoints.values()}
    if len(ports) > 1:
        raise UsageError("Error: copying between two machines on different SSH ports is not supported; "
                         "copy through this host in two steps")
    argv = ["scp", "-P", str(ports.pop()), *options]
    if recursive:
        argv.append("-r")
    if len(endpoints) > 1:
        argv.append("-3")
    return argv + ["--", location(src_name, src_path), location(dst_name, dst_path)]
