"""The driver interface: what every driver must do, and what it declares as data.

A driver creates and manages one machine. It never touches the store or the CLI: the core hands it a
``DriverContext`` holding its option values, a directory for its files, a mutable ``data`` dict that the
core persists in the machine record, and two callbacks: ``checkpoint()`` to persist ``data`` at once
(call it as soon as a cloud resource exists, so a crash never leaves an untracked resource) and
``progress(msg)`` for long work.
"""

from __future__ import annotations

import enum
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import NotSupported
from .optionspec import OptionSpec  # noqa: F401  (drivers import it from here; declared where the CLI reads it cheaply)


class MachineState(str, enum.Enum):
    RUNNING = "Running"
    STOPPED = "Stopped"
    STARTING = "Starting"
    STOPPING = "Stopping"
    PAUSED = "Paused"
    ERROR = "Error"
    NOT_FOUND = "NotFound"
    TIMEOUT = "Timeout"
    UNKNOWN = "Unknown"

    def __str__(self) -> str:
        return self.value


# A ``ctx.data`` flag: the machine came from Docker Machine, whose shared resources (its security group,
# firewall rule, a key pair the user named) other machines still use; ``remove`` must leave them alone.
KEEP_SHARED = "keep_shared"

@dataclass(frozen=True)
class Capabilities:
    """What a driver can do beyond create/remove/state/engine_url, declared up front.

    Everything defaults to False: a driver promises only what it implements, and the registry refuses
    a driver that declares a capability whose method it does not override.
    """

    provisions_engine: bool = False  # True: the core installs and configures Docker over SSH (needs ssh)
    start: bool = False
    stop: bool = False
    restart: bool = False
    kill: bool = False
    ssh: bool = False
    # The machine's key reaches it at first boot (cloud-init, a guest agent) and sshd may answer before
    # it is there: the first login retries authentication failures for a while instead of failing.
    keys_at_boot: bool = False
    # The machine can take the engine's certificates and systemd drop-in at first boot (``ctx.engine_files``),
    # so dockerd starts with mutual TLS right away and provisioning finds nothing left to restart.
    engine_files_at_boot: bool = False
    # The driver gives a cluster address (``cluster_address``) and opens the swarm ports (2377/tcp,
    # 7946/tcp+udp, 4789/udp) between the members of a cluster (``join_cluster``/``leave_cluster``).
    cluster: bool = False
    # Ports the machine's containers publish can be forwarded to the same ports on 127.0.0.1 of this
    # computer at run time (``forward_port``/``unforward_port``): the core runs a host agent that does it.
    forward_ports: bool = False


# The method that backs each capability: declared True, it must be overridden.
CAPABILITY_METHODS = {"start": "start", "stop": "stop", "restart": "restart", "kill": "kill",
                      "ssh": "ssh_endpoint", "cluster": "cluster_address", "forward_ports": "forward_port"}


@dataclass(frozen=True)
class SSHEndpoint:
    host: str
    port: int
    user: str
    key_path: Path


@dataclass(frozen=True)
class HostFile:
    """A file for the machine: where it goes, its mode and content. The provisioner uploads the engine's
    over SSH; a driver with ``engine_files_at_boot`` hands them, and its own (an sshd host key, a network
    unit), to the machine's first boot."""

    path: str
    mode: int
    content: bytes

    @property
    def b64(self) -> str:
        """The content as base64, so any byte survives a shell script or a line-based manifest."""
        import base64

        return base64.b64encode(self.content).decode()


EngineFile = HostFile  # its first name in the driver contract: a third-party driver may still use it


@dataclass
class DriverContext:
    """Everything a driver may use. Built by the core; ``data`` is persisted in the machine record."""

    machine_name: str
    machine_dir: Path
    cache_dir: Path
    options: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    checkpoint: Callable[[], None] = lambda: None
    progress: Callable[[str], None] = lambda message: None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Opens an SSH session to this machine with its pinned host key (a ``provision.ssh.RemoteSession``
    # used as a context manager); set by the core once the machine has an SSH endpoint.
    remote: Callable[[], Any] | None = None
    # Set by the core on create when the driver declares ``engine_files_at_boot``.
    engine_files: tuple[HostFile, ...] = ()
    # False when the engine is reached over SSH (--engine-endpoint ssh): no firewall rule, security-group
    # rule or port forward for the engine port.
    engine_port_exposed: bool = True
    # The cluster the machine belongs to, set by the core from the record (for ``local`` which virtual
    # network, for clouds which shared group or tag), so ``create`` can attach it. None: no cluster.
    cluster: str | None = None
    # The driver data of the store's other machines of this driver, and a store-wide lock to hold while
    # choosing something unique among them (a cluster address) and checkpointing it: both set by the core.
    peers: Callable[[], list[dict[str, Any]]] = lambda: []
    store_lock: Callable[[], AbstractContextManager[Any]] = nullcontext

    def option(self, key: str) -> Any:
        return self.options.get(key)

    @property
    def ssh_key_path(self) -> Path:
        return self.machine_dir / "id_ed25519"


class Driver(ABC):
    """Base class. Subclasses set ``name``, ``description``, ``options`` and ``capabilities``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()
    # Distributions the driver imports lazily (its cloud SDK): checked when the driver is loaded.
    requires: ClassVar[tuple[str, ...]] = ()
    # How long a boot may take until SSH and the engine answer (a VM under software emulation is slow).
    boot_timeout: ClassVar[float] = 120.0

    def __init__(self, context: DriverContext) -> None:
        # The core hands over resolved options; one missing (a record written before the option existed)
        # takes its default here, so a driver never re-states a default in code.
        context.options = {**{spec.key: spec.default_value() for spec in self.options}, **context.options}
        self.ctx = context

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse (``UsageError``) option values that could never work, before anything is made: the core
        calls this before it claims the name, so a bad flag is one line and leaves nothing behind."""

    # -- required -------------------------------------------------------------------------------
    @abstractmethod
    def create(self) -> None:
        """Create the machine, recording every resource in ``ctx.data`` and calling ``checkpoint``
        as soon as it exists. On failure, raise; the core then calls ``remove`` to roll back."""

    @abstractmethod
    def remove(self) -> None:
        """Remove everything ``create`` made, tolerating a half-made machine and resources already gone."""

    @abstractmethod
    def state(self) -> MachineState:
        ...

    @abstractmethod
    def engine_url(self) -> str:
        """``tcp://HOST:PORT`` that the docker client uses."""

    # -- optional, guarded by ``capabilities`` -------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def ssh_endpoint(self) -> SSHEndpoint:
        raise NotImplementedError

    def host_key(self) -> str | None:
        """The public SSH host key the machine will present, when the driver chose it at create (an OpenSSH
        public key line). The first login then verifies it; None: the key is learned at first contact."""
        return None

    def forward_port(self, protocol: str, port: int) -> None:
        """Make 127.0.0.1:PORT (``tcp`` or ``udp``) on this computer reach PORT on the machine; raise a
        ``DriverError`` saying why when it cannot (the port is taken here)."""
        raise NotImplementedError

    def unforward_port(self, protocol: str, port: int) -> None:
        raise NotImplementedError

    def wants_port_agent(self) -> bool:
        """Whether the core should run the port-forwarding agent for this machine (the user may turn it off)."""
        return self.capabilities.forward_ports

    def cluster_address(self) -> str:
        """The address the other members of a cluster reach this machine at (its swarm advertise address)."""
        raise NotSupported(f"the {self.name} driver gives no cluster address")

    def join_cluster(self, cluster: str) -> None:
        """Open the doors (2377/tcp, 7946/tcp+udp, 4789/udp) between this machine and the other members
        of ``cluster``. Idempotent. The core calls it before the machine joins a swarm."""

    def leave_cluster(self, cluster: str, *, last: bool) -> None:
        """Close what ``join_cluster`` opened for this machine; with ``last`` (no other record of this
        cluster and driver remains) also delete what the cluster's members shared. Idempotent."""

    def ip(self) -> str:
        """The address the user reaches the machine at (as ``provision ip`` prints)."""
        from urllib.parse import urlsplit

        return urlsplit(self.engine_url()).hostname or ""

    def addresses(self) -> list[str]:
        """Every address or DNS name a client may use for the engine: the server cert's SANs."""
        return [self.ip()]

    def engine_port(self) -> int:
        """The port dockerd listens on inside the machine (a client may reach it through another: the
        local driver forwards a free port of this computer to it)."""
        from .addresses import DEFAULT_ENGINE_PORT

        return DEFAULT_ENGINE_PORT

    def exposed_engine_port(self) -> int | None:
        """The engine port to open to clients, or None when the engine is reached over SSH only."""
        return self.engine_port() if self.ctx.engine_port_exposed else None

    def refresh(self) -> bool:
        """Re-read addresses after a start (clouds hand out a new public IP). True if they changed."""
        return False

    def boot_log(self) -> str | None:
        """A console log for ``inspect`` and errors, where the driver keeps one."""
        return None

    def extra(self) -> dict[str, Any]:
        """Driver-specific facts for ``inspect``."""
        return {}

    @classmethod
    def refusal_hint(cls, capability: str) -> str | None:
        """Why a machine of this driver lacks ``capability`` (a ``Capabilities`` field), in a few words the
        core adds to its one-line refusal; None for the core's line alone."""
        return None


def console_last_line(log: str | None, limit: int = 200) -> str:
    """The last line a console printed, as one printable line (a guest's console carries escapes)."""
    lines = [line for line in (log or "").splitlines() if line.strip()]
    if not lines:
        return ""
    import re

    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", lines[-1])  # colours and cursor moves
    text = "".join(ch if ch.isprintable() else " " for ch in plain).strip()
    return text if len(text) <= limit else text[:limit] + "…"
