"""dockerd's command line for the systemd drop-in, built from the user's ``--engine-*`` flags.

Every setting goes on the command line of the drop-in rather than into ``/etc/docker/daemon.json``:
that file may belong to the host's owner (the generic driver), and dockerd refuses to start when one
setting is given both ways. So we read the existing file and refuse clearly, or leave out our own
default, instead of letting dockerd fail at restart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from provision.errors import ProvisioningError, UsageError
from provision.record import EngineSettings

CERT_DIR = "/etc/docker"
CA_PATH = f"{CERT_DIR}/ca.pem"
CERT_PATH = f"{CERT_DIR}/server.pem"
KEY_PATH = f"{CERT_DIR}/server-key.pem"
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
DROPIN_PATH = f"{DROPIN_DIR}/10-provision.conf"
UNIX_SOCKET = "unix:///var/run/docker.sock"
DISTRO_DOCKERD = "/usr/sbin/dockerd"  # Debian's and Ubuntu's docker.io

# daemon.json keys that dockerd treats as the same setting as a flag we pass.
_REQUIRED_KEYS = ("hosts", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey")


@dataclass(frozen=True)
class Flag:
    """One dockerd flag, with the daemon.json key it clashes with and whether the user asked for it."""

    args: tuple[str, ...]
    json_key: str | None
    from_user: bool


def opt_to_args(opt: str) -> tuple[str, tuple[str, ...]]:
    """``--engine-opt k=v`` -> ``--k=v``; ``k`` alone -> ``--k`` (Docker Machine's convention)."""
    opt = opt.strip().lstrip("-")
    if not opt:
        raise UsageError("empty --engine-opt")
    key, sep, value = opt.partition("=")
    return key, ((f"--{key}={value}",) if sep else (f"--{key}",))


def dockerd_flags(driver_name: str, engine_port: int, settings: EngineSettings, *, live_restore: bool) -> list[Flag]:
    if settings.over_ssh:  # the socket only: the docker CLI comes in over SSH, no port listens
        flags = [Flag(("-H", UNIX_SOCKET), "hosts", False)]
    else:
        flags = [
            Flag(("-H", UNIX_SOCKET, "-H", f"tcp://0.0.0.0:{engine_port}"), "hosts", False),
            Flag(("--tlsverify", "--tlscacert", CA_PATH, "--tlscert", CERT_PATH, "--tlskey", KEY_PATH), "tlsverify",
                 False),
        ]
    flags.append(Flag(("--label", f"provider={driver_name}"), "labels", False))
    flags += [Flag(("--label", label), "labels", True) for label in settings.labels]
    if settings.storage_driver:
        flags.append(Flag(("--storage-driver", settings.storage_driver), "storage-driver", True))
    flags += [Flag(("--registry-mirror", m), "registry-mirrors", True) for m in settings.registry_mirrors]
    flags += [Flag(("--insecure-registry", r), "insecure-registries", True) for r in settings.insecure_registries]
    user_keys = set()
    for opt in settings.opts:
        key, args = opt_to_args(opt)
        user_keys.add(key)
        flags.append(Flag(args, key, True))
    if live_restore and "live-restore" not in user_keys:
        # Containers keep running while dockerd restarts (new certificates, upgrades).
        flags.append(Flag(("--live-restore",), "live-restore", False))
    return flags


def reconcile_with_daemon_json(flags: list[Flag], daemon_json: str, *, machine: str | None = None) -> list[Flag]:
    """Drop our own defaults that the host's daemon.json already sets; refuse real clashes."""
    if not daemon_json.strip():
        return flags
    try:
        config = json.loads(daemon_json)
    except json.JSONDecodeError as exc:
        raise ProvisioningError(f"/etc/docker/daemon.json on the machine is not valid JSON ({exc}); "
                                "dockerd would not start", machine=machine) from exc
    if not isinstance(config, dict):
        raise ProvisioningError("/etc/docker/daemon.json on the machine is not a JSON object", machine=machine)
    clash = [k for k in _REQUIRED_KEYS if k in config]
    if clash:
        raise ProvisioningError(
            f"/etc/docker/daemon.json on the machine sets {', '.join(clash)}, which provision must set itself "
            "(dockerd refuses a setting given both in the file and as a flag)",
            hint="remove those keys from /etc/docker/daemon.json", machine=machine)
    kept: list[Flag] = []
    for flag in flags:
        if flag.json_key in config and flag.json_key not in ("hosts", "tlsverify"):
            if flag.from_user:
                raise ProvisioningError(
                    f'/etc/docker/daemon.json on the machine already sets "{flag.json_key}", and so does '
                    f"{' '.join(flag.args)}; dockerd refuses a setting given both ways",
                    hint=f'drop the flag or remove "{flag.json_key}" from /etc/docker/daemon.json', machine=machine)
            continue  # the host owner's setting wins over our default
        kept.append(flag)
    return kept


_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def systemd_quote(arg: str) -> str:
    """Quote one ExecStart= argument: systemd expands ``%`` specifiers and ``$`` variables itself."""
    if "\n" in arg or "\r" in arg:
        raise UsageError(f"engine setting contains a line break: {arg!r}")
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.match(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def environment_line(assignment: str) -> str:
    """``--engine-env K=V`` -> a quoted value for an ``Environment=`` line."""
    if "=" not in assignment or assignment.startswith("="):
        raise UsageError(f"--engine-env wants KEY=VALUE, got {assignment!r}")
    return systemd_quote(assignment)


def render_dropin(*, machine: str, dockerd: str, flags: list[Flag], env: Sequence[str]) -> str:
    from provision.templating import render

    args = [systemd_quote(a) for f in flags for a in f.args]
    # One flag (with its value) per continued line keeps the file readable for the host's owner.
    lines: list[str] = []
    i = 0
    while i < len(args):
        if i + 1 < len(args) and args[i].startswith("-") and not args[i + 1].startswith("-"):
            lines.append(f"{args[i]} {args[i + 1]}")
            i += 2
        else:
            lines.append(args[i])
            i += 1
    return render("engine/10-provision.conf.j2", machine=machine, dockerd=systemd_quote(dockerd),
                  arg_lines=lines, environment=[environment_line(e) for e in env])
