"""Which operating system a host runs, from its ``/etc/os-release``, and how Docker gets installed there."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from provision.errors import ProvisioningError

# Distro families we know how to install Docker on; the value names the install recipe in
# templates/engine/install.sh.j2.
DEBIAN_IDS = {"debian", "ubuntu", "raspbian", "linuxmint", "pop"}
FEDORA_IDS = {"fedora"}
RHEL_IDS = {"rhel", "centos", "rocky", "almalinux", "ol"}
AMAZON_IDS = {"amzn"}


@dataclass(frozen=True)
class OSInfo:
    id: str
    version: str
    pretty: str
    id_like: tuple[str, ...]
    family: str  # debian | fedora | rhel | amazon

    @property
    def distro_package(self) -> str:
        """The package that holds Docker Engine in this family's own (or recommended) repositories."""
        return {"debian": "docker.io", "fedora": "moby-engine", "amazon": "docker", "rhel": "docker-ce"}[self.family]


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5): KEY=value lines, values optionally shell-quoted."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        fields[key.strip()] = parts[0] if parts else ""
    return fields


def detect(text: str, *, machine: str | None = None) -> OSInfo:
    """Classify a host from its os-release text; an unsupported system is a clear error, not a guess."""
    fields = parse_os_release(text)
    os_id = fields.get("ID", "").lower()
    id_like = tuple(fields.get("ID_LIKE", "").lower().split())
    pretty = fields.get("PRETTY_NAME") or fields.get("NAME") or os_id or "unknown"
    version = fields.get("VERSION_ID", "")
    if not os_id:
        raise ProvisioningError("cannot tell the operating system: /etc/os-release has no ID", machine=machine)
    family = _family(os_id, id_like)
    if family is None:
        raise ProvisioningError(
            f"unsupported operating system {pretty!r} (ID={os_id}); provision installs Docker on Debian, "
            "Ubuntu, Fedora, RHEL-compatible systems and Amazon Linux",
            hint="install Docker yourself and pass --engine-install-url none, or give an install script URL "
                 "with --engine-install-url",
            machine=machine,
        )
    return OSInfo(os_id, version, pretty, id_like, family)


def _family(os_id: str, id_like: tuple[str, ...]) -> str | None:
    for candidate in (os_id, *id_like):
        if candidate in DEBIAN_IDS:
            return "debian"
        if candidate in AMAZON_IDS:
            return "amazon"
        if candidate in FEDORA_IDS and os_id in FEDORA_IDS:
            return "fedora"
        if candidate in RHEL_IDS or (candidate == "fedora" and os_id not in FEDORA_IDS):
            # ID_LIKE="rhel centos fedora" (Rocky, Alma, CentOS Stream): RHEL-compatible, not Fedora.
            return "rhel"
    return None
