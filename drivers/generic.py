"""The ``generic`` driver: an existing Linux host reached over SSH.

Nothing is created: ``create`` records where the host is and copies the SSH key into the machine
directory (as Docker Machine did, so the machine keeps working if the original key moves). The host
itself is never touched by ``remove``. Its state is whether the SSH port answers, as in Docker Machine.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any, ClassVar

from provision import addresses, waiting
from provision.errors import DriverError, ProvisionError, UsageError

from provision.driver import Capabilities, Driver, MachineState, OptionSpec, SSHEndpoint

STATE_TIMEOUT = 3.0  # seconds for the SSH-port probe: `ls` must stay fast for an unreachable host
REBOOT_TIMEOUT = 600.0  # seconds for a rebooted host to accept SSH again
COPIED_KEY = "generic_ssh_key"
# Tried in this order when --generic-ssh-key is not given (Docker Machine used ~/.ssh/id_rsa).
DEFAULT_USER_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


class GenericDriver(Driver):
    name = "generic"
    description = "An existing Linux host reached over SSH; provision installs and configures Docker on it"
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("generic-ip-address", "IP address or DNS name of the host", required=True,
                   envvar="GENERIC_IP_ADDRESS"),
        OptionSpec("generic-ssh-user", "SSH user (root, or a user with passwordless sudo)", default="root",
                   envvar="GENERIC_SSH_USER"),
        OptionSpec("generic-ssh-key", "private key to log in with; copied into the machine directory "
                   "(default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa, else the machine's own generated key)",
                   envvar="GENERIC_SSH_KEY"),
        OptionSpec("generic-ssh-port", "SSH port", type=int, default=22, envvar="GENERIC_SSH_PORT"),
        OptionSpec("generic-engine-port", "port Docker listens on (TLS)", type=int, default=addresses.DEFAULT_ENGINE_PORT,
                   envvar="GENERIC_ENGINE_PORT"),
    )
    # The host's power is not ours to control; a restart is a reboot over SSH.
    capabilities = Capabilities(provisions_engine=True, ssh=True, restart=True)

    # -- create / remove ----------------------------------------------------------------------------
    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        cls._address(options)
        _port(options.get("generic_ssh_port"), "--generic-ssh-port")
        _port(options.get("generic_engine_port"), "--generic-engine-port")

    @staticmethod
    def _address(options: dict[str, Any]) -> tuple[str, str]:
        """The host and SSH user, checked: both reach ssh's command line and the engine URL."""
        ip = str(options.get("generic_ip_address") or "").strip()
        if not ip:
            raise UsageError("--generic-ip-address is required")
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        user = str(options.get("generic_ssh_user")).strip()
        try:
            return addresses.check_host(ip), addresses.check_user(user)
        except addresses.BadAddress as exc:
            raise UsageError(f"--generic-ip-address/--generic-ssh-user: {exc.message}") from exc

    def create(self) -> None:
        ip, user = self._address(self.ctx.options)
        ssh_port = _port(self.ctx.option("generic_ssh_port"), "--generic-ssh-port")
        engine_port = _port(self.ctx.option("generic_engine_port"), "--generic-engine-port")
        self.ctx.data.update({"ip": ip, "ssh_user": user, "ssh_port": ssh_port, "engine_port": engine_port})
        key_file = self._choose_key()
        self.ctx.data["ssh_key_file"] = key_file
        self.ctx.checkpoint()
        if key_file == self.ctx.ssh_key_path.name:
            public = Path(f"{self.ctx.ssh_key_path}.pub")
            self.ctx.progress(f"No SSH key given or found in ~/.ssh: the host must accept the machine's own key "
                              f"{public} (add it to ~{user}/.ssh/authorized_keys on {ip})")
        else:
            self.ctx.progress(f"Using SSH key {self.ctx.data.get('ssh_key_source')} (copied to the machine directory)")

    def _choose_key(self) -> str:
        """Copy the key the user named (or found in ~/.ssh) into the machine dir; return its file name."""
        given = self.ctx.option("generic_ssh_key")
        if given:
            source = Path(os.path.expanduser(str(given)))
            if not source.is_file():
                raise UsageError(f"--generic-ssh-key: {source} is not a file")
        else:
            home = Path(self.ctx.environ.get("HOME") or Path.home())
            candidates = [home / ".ssh" / name for name in DEFAULT_USER_KEYS]
            source = next((c for c in candidates if c.is_file()), None)  # type: ignore[assignment]
            if source is None:
                return self.ctx.ssh_key_path.name
        target = self.ctx.machine_dir / COPIED_KEY
        try:
            self.ctx.machine_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(source.read_bytes())
            os.chmod(target, 0o600)
            public = Path(f"{source}.pub")
            if public.is_file():
                shutil.copyfile(public, f"{target}.pub")
        except OSError as exc:
            raise DriverError(f"cannot copy SSH key {source}: {exc}", driver=self.name) from exc
        self.ctx.data["ssh_key_source"] = str(source)
        return COPIED_KEY

    def remove(self) -> None:
        """Forget the host: only the copied key goes; the host and its Docker are left as they are."""
        for path in (self.ctx.machine_dir / COPIED_KEY, self.ctx.machine_dir / f"{COPIED_KEY}.pub"):
            path.unlink(missing_ok=True)

    # -- facts from ctx.data only -------------------------------------------------------------------
    def _ip(self) -> str:
        return str(self.ctx.data.get("ip") or self.ctx.option("generic_ip_address") or "")

    def ip(self) -> str:
        return self._ip()

    def addresses(self) -> list[str]:
        return [self._ip()]

    def engine_port(self) -> int:
        return int(self.ctx.data.get("engine_port") or self.ctx.option("generic_engine_port"))

    def engine_url(self) -> str:
        return addresses.tcp_url(self._ip(), self.engine_port())

    def ssh_endpoint(self) -> SSHEndpoint:
        key_file = self.ctx.data.get("ssh_key_file") or self.ctx.ssh_key_path.name
        # ``ssh_host``: SSH reached elsewhere than the engine (a VirtualBox VM migrated from Docker Machine).
        host = str(self.ctx.data.get("ssh_host") or self._ip())
        return SSHEndpoint(host=host, port=int(self.ctx.data.get("ssh_port") or 22),
                           user=str(self.ctx.data.get("ssh_user") or "root"),
                           key_path=self.ctx.machine_dir / key_file)

    def extra(self) -> dict[str, Any]:
        return {"ssh_user": self.ctx.data.get("ssh_user"), "ssh_port": self.ctx.data.get("ssh_port"),
                "ssh_key_source": self.ctx.data.get("ssh_key_source")}

    # -- state and lifecycle ------------------------------------------------------------------------
    def state(self) -> MachineState:
        """Running when the SSH port accepts a TCP connection, else Stopped (Docker Machine's rule)."""
        endpoint = self.ssh_endpoint()
        try:
            socket.create_connection((endpoint.host, endpoint.port), timeout=STATE_TIMEOUT).close()
        except OSError:
            return MachineState.STOPPED
        return MachineState.RUNNING

    def restart(self) -> None:
        """Reboot the host over SSH and return once it accepts SSH again with a new boot id."""
        if self.ctx.remote is None:
            raise DriverError("the machine has no SSH session to reboot it through", driver=self.name)
        with self.ctx.remote() as session:
            boot_id = session.run(["cat", "/proc/sys/kernel/random/boot_id"]).out.strip()
            # Detached and delayed, so the command returns before sshd goes down with the host.
            session.run("nohup sh -c 'sleep 1; systemctl reboot || reboot' >/dev/null 2>&1 &", sudo=True)
        self.ctx.progress("Rebooting the host")
        remote = self.ctx.remote

        def rebooted() -> bool:
            with remote() as session:
                if session.run(["cat", "/proc/sys/kernel/random/boot_id"]).out.strip() == boot_id:
                    raise waiting.NotYet("the host has not gone down yet")
            return True

        # Failing to connect is the host being down or still booting: retried.
        waiting.wait_for("see the host back from its reboot", rebooted, timeout=REBOOT_TIMEOUT, interval=2.0,
                         start_after=2.0, retry_on=(ProvisionError,), error=lambda expired: DriverError(
                             f"the host did not come back from its reboot within {REBOOT_TIMEOUT:.0f}s: "
                             f"{expired.reason}", driver=self.name))

    @classmethod
    def refusal_hint(cls, capability: str) -> str | None:
        # The host is the user's own: provision reaches it over SSH but has no power switch for it.
        return {"start": "power the host on yourself", "stop": "shut the host down yourself",
                "kill": "power the host off yourself"}.get(capability)


def _port(value: Any, flag: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{flag} must be a port number, not {value!r}") from exc
    if not 0 < port < 65536:
        raise UsageError(f"{flag} must be between 1 and 65535, not {port}")
    return port


