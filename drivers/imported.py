"""The ``imported`` driver: a machine someone else owns, brought in by ``provision import``.

The record holds what the owner's export carried: the engine URL and, when exported ``--with-ssh``,
the SSH endpoint (host, port, user) with the machine's key and pinned host key in the machine directory.
Nothing here acts on a cloud or on the host's power: start, stop, re-provisioning and new server
certificates stay with the owner, and the core refuses them in one line. ``rm`` forgets the machine here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from provision.driver import Capabilities, Driver, DriverContext, MachineState, SSHEndpoint
from provision.errors import NotSupported, UsageError

SSH = "ssh"  # driver_data key: {"host", "port", "user"} when the export carried SSH access
ORIGIN = "origin"  # driver_data key: the owner's machine name, the export's label and date


class ImportedDriver(Driver):
    name = "imported"
    description = ("A machine shared by its owner (provision import): its engine, and SSH when the export "
                   "carried it; created with `provision import`, never with create")
    # Declared for the class; an instance offers SSH only when the export carried it (see __init__).
    capabilities: ClassVar[Capabilities] = Capabilities(ssh=True)

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context)
        # This machine's own capabilities: the core asks the instance before it opens an SSH session.
        self.capabilities = Capabilities(ssh=isinstance(context.data.get(SSH), dict))  # type: ignore[misc]

    def create(self) -> None:
        raise UsageError("the imported driver takes machines from `provision import FILE`, not from create")

    def remove(self) -> None:
        """The machine is its owner's: removing it here forgets the record, its files and its context."""

    def state(self) -> MachineState:
        # As with `none`: the engine is presumed up; `ls` shows the probe's error when it is not.
        return MachineState.RUNNING

    def engine_url(self) -> str:
        return str(self.ctx.data.get("url") or "")

    def ssh_endpoint(self) -> SSHEndpoint:
        ssh = self.ctx.data.get(SSH)
        if not isinstance(ssh, dict):
            raise NotSupported(f'machine "{self.ctx.machine_name}" was imported without SSH access; '
                               "ask its owner for an export made with --with-ssh")
        return SSHEndpoint(host=str(ssh["host"]), port=int(ssh["port"]), user=str(ssh["user"]),
                           key_path=self.ctx.ssh_key_path)

    @classmethod
    def data_for_bundle(cls, url: str, origin: dict[str, Any], ssh: dict[str, Any] | None) -> dict[str, Any]:
        """The record's driver data for a machine imported from a bundle: this driver's own keys, so the
        core (which reaches drivers only through the registry) never spells them."""
        data: dict[str, Any] = {"url": url, ORIGIN: origin}
        if ssh is not None:
            data[SSH] = ssh
        return data

    @classmethod
    def refusal_hint(cls, capability: str) -> str | None:
        if capability == "ssh":
            return "it was exported without --with-ssh; ask its owner for an export made with it"
        if capability == "provisions_engine":
            return "it was imported: the CA key its engine trusts stays with its owner"
        return f"it was imported: its owner can {capability} it with their provision"

    def extra(self) -> dict[str, Any]:
        return {"origin": self.ctx.data.get(ORIGIN), "ssh": self.ctx.data.get(SSH)}
