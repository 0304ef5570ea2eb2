"""The machine record (``machine.json``): what the store knows about one machine.

Frozen where it can be; ``to_dict``/``from_dict`` round-trip exactly, and ``from_dict`` rejects a
record from a newer schema instead of guessing at it.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from . import __version__, addresses
from .addresses import BadAddress
from .errors import BrokenRecord
from .paths import RECORD_SCHEMA_VERSION as SCHEMA_VERSION

# Keys of ``MachineRecord.facts`` set by ``provision migrate``: where the machine came from (its host key
# is pinned at the first SSH contact), and that its engine and client trust another tool's CA, not the
# store's, until ``regenerate-certs --client-certs`` moves it.
MIGRATED_FROM = "migrated_from"
FOREIGN_CA = "foreign_ca"


class Lifecycle(str, enum.Enum):
    CREATING = "creating"
    READY = "ready"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class EngineSettings:
    """The shared ``--engine-*`` create flags, kept so ``provision NAME`` can re-apply them."""

    install_url: str = "distro"
    opts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    storage_driver: str | None = None
    env: tuple[str, ...] = ()
    tls_san: tuple[str, ...] = ()
    # "tcp": mutual TLS on the engine port; "ssh": no engine port, the docker CLI reaches it over SSH.
    endpoint: str = "tcp"

    @property
    def over_ssh(self) -> bool:
        return self.endpoint == "ssh"

    def to_dict(self) -> dict[str, Any]:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if self.endpoint == "tcp":
            del data["endpoint"]  # the default: records of TCP machines keep the JSON they always had
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineSettings:
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class CertInfo:
    not_before: str
    not_after: str
    sans: tuple[str, ...]
    serial: str

    def to_dict(self) -> dict[str, Any]:
        return {"not_before": self.not_before, "not_after": self.not_after, "sans": list(self.sans),
                "serial": self.serial}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CertInfo:
        return cls(data["not_before"], data["not_after"], tuple(data.get("sans", ())), data.get("serial", ""))


CLUSTER_KEYS = ("cluster", "swarm_role", "swarm_manager")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class MachineRecord:
    name: str
    driver: str
    lifecycle: Lifecycle = Lifecycle.CREATING
    created_at: str = field(default_factory=now_iso)
    driver_options: dict[str, Any] = field(default_factory=dict)
    driver_data: dict[str, Any] = field(default_factory=dict)
    engine: EngineSettings = field(default_factory=EngineSettings)
    # Engine URL as last provisioned; drivers answer it from their data, this is for imports and `none`.
    url: str | None = None
    host_key: str | None = None
    server_cert: CertInfo | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # Client certificates issued from this store for other people (``provision export``), newest last:
    # what was handed out, to whom, and until when. Never a key.
    exports: tuple[dict[str, Any], ...] = ()
    # The cluster (virtual network, shared group or tag) the machine belongs to, and its Swarm mode
    # membership: role "manager"/"worker" and the manager machine it joined through. Omitted when unset.
    cluster: str | None = None
    swarm_role: str | None = None
    swarm_manager: str | None = None
    schema_version: int = SCHEMA_VERSION
    provision_version: str = __version__

    def evolve(self, **changes: Any) -> MachineRecord:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema_version": self.schema_version,
            "provision_version": self.provision_version,
            "name": self.name,
            "driver": self.driver,
            "lifecycle": self.lifecycle.value,
            "created_at": self.created_at,
            "driver_options": self.driver_options,
            "driver_data": self.driver_data,
            "engine": self.engine.to_dict(),
            "url": self.url,
            "host_key": self.host_key,
            "server_cert": self.server_cert.to_dict() if self.server_cert else None,
            "facts": self.facts,
            "error": self.error,
            # Omitted when unset: records of machines outside any cluster keep the JSON they always had.
            **{key: value for key in CLUSTER_KEYS if (value := getattr(self, key)) is not None},
        }
        if self.exports:  # a record that never had an export keeps the JSON it always had
            data["exports"] = [dict(e) for e in self.exports]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> MachineRecord:
        if not isinstance(data, dict):
            raise BrokenRecord("the record is not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise BrokenRecord("the record has no schema_version")
        if version > SCHEMA_VERSION:
            raise BrokenRecord(
                f"the record has schema version {version}, newer than this provision understands "
                f"({SCHEMA_VERSION}); upgrade provision")
        try:
            cert = data.get("server_cert")
            return cls(
                name=str(data["name"]),
                driver=str(data["driver"]),
                lifecycle=Lifecycle(data.get("lifecycle", "ready")),
                created_at=str(data.get("created_at", "")),
                driver_options=dict(data.get("driver_options") or {}),
                driver_data=dict(data.get("driver_data") or {}),
                engine=EngineSettings.from_dict(data.get("engine") or {}),
                url=_checked_url(data.get("url")),
                host_key=data.get("host_key"),
                server_cert=CertInfo.from_dict(cert) if cert else None,
                facts=dict(data.get("facts") or {}),
                error=data.get("error"),
                exports=tuple(dict(e) for e in data.get("exports") or ()),
                **{key: str(data[key]) for key in CLUSTER_KEYS if data.get(key) is not None},
                schema_version=version,
                provision_version=str(data.get("provision_version", "")),
            )
        except BadAddress as exc:
            raise BrokenRecord(f"the record's engine URL is not one provision uses: {exc.message}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise BrokenRecord(f"the record is malformed: {exc!r}") from exc


def _checked_url(url: object) -> str | None:
    """The record's URL if it is a valid engine URL: `env` prints it for a shell and contexts carry it."""
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise BadAddress("the engine URL is not text")
    addresses.split_url(url)
    return url
