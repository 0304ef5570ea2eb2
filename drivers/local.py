"""The ``local`` driver: a QEMU virtual machine on this host.

A machine is a qcow2 overlay on a cached base image (see ``drivers.images``), a NoCloud seed ISO that
carries the machine's SSH key (``drivers.seed``), and one daemonized QEMU process (``drivers.qemu``)
with user-mode networking. SSH and the engine port are forwarded from free ports on 127.0.0.1 chosen
at create and kept in the record, so a stop/start never changes the URL or the server certificate.

Why a seed ISO and not a key written into the overlay: writing into a qcow2 needs a mount (root, nbd
or a loop device) on the host, while every cloud image already reads a NoCloud seed; one mechanism
then serves both the Debian build and official cloud images.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, ClassVar

from provision import waiting
from provision.errors import CommandError, DriverError, TimeoutExpired, UsageError

from . import clusternet, qemu, shares
from provision.driver import Capabilities, Driver, HostFile, MachineState, OptionSpec, SSHEndpoint, console_last_line
from provision.sshkeys import new_ed25519
from provision.templating import render
from .images import IMAGE_USER, VARIANTS, BaseImage, ensure_image, host_debian_mirror
from .seed import render_seed_files, write_seed_iso

SSH_USER = IMAGE_USER  # in provision's images; made by cloud-init on others; its key comes from the seed
HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key"
OVERLAY = "disk.qcow2"
SEED = "seed.iso"
CONSOLE_LOG = "console.log"
PIDFILE = "qemu.pid"
# The port of this computer forwarded to the engine's port in the guest. Machines made before it had its
# own name recorded it as "engine_port", the name every other driver gives the engine's port itself.
HOST_ENGINE_PORT = "host_engine_port"
LEGACY_HOST_ENGINE_PORT = "engine_port"
# A hung accelerator shows as a console without the kernel banner; a working one prints it in seconds.
CONSOLE_PROBE_SECONDS = 30.0  # the banner comes within 2-5 s under a working KVM, bootloader included
# A VM killed mid-hang in KVM may hold its forwarded ports this long while the kernel tears it down.
PORT_RELEASE_SECONDS = 30.0
STOP_TIMEOUT = 90.0  # a Debian guest under TCG powers off in 10-30 s
QUIT_TIMEOUT = 10.0
BOOT_LOG_LIMIT = 256 * 1024
# Debian keeps dockerd in /usr/sbin, which is not on a user's PATH over SSH (sshd's default for a command,
# /etc/profile for a login shell): these put the system folders after the user's own. Not a link to dockerd
# in /usr/local/bin: root's PATH has that folder first, and provisioning, finding dockerd there, would
# rewrite the engine's drop-in and restart the engine the first boot had just started.
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
PATH_FILES = (("/etc/ssh/sshd_config.d/20-provision-path.conf", "local/sshd-path.conf.j2"),
              ("/etc/profile.d/provision-path.sh", "local/profile-path.sh.j2"))

_QMP_STATES = {
    "running": MachineState.RUNNING,
    "paused": MachineState.PAUSED,
    "suspended": MachineState.PAUSED,
    "prelaunch": MachineState.STARTING,
    "inmigrate": MachineState.STARTING,
    "restore-vm": MachineState.STARTING,
    "shutdown": MachineState.STOPPING,
    "guest-panicked": MachineState.ERROR,
    "internal-error": MachineState.ERROR,
    "io-error": MachineState.ERROR,
}


class LocalDriver(Driver):
    name: ClassVar[str] = "local"
    description: ClassVar[str] = "QEMU virtual machine on this host, reached through forwarded localhost ports"
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("local-cpus", "Number of virtual CPUs", int, 2, "PROVISION_LOCAL_CPUS"),
        OptionSpec("local-memory", "Memory in MiB", int, 2048, "PROVISION_LOCAL_MEMORY"),
        OptionSpec("local-disk-size", "Disk size in GB", int, 20, "PROVISION_LOCAL_DISK_SIZE"),
        OptionSpec("local-image",
                   "Base image: 'debian-docker' (built from the Debian archive with docker.io preinstalled, "
                   "like boot2docker: creates need no package install), 'debian' (the same without Docker: "
                   "provisioning installs it), or the http(s) URL of a cloud image with SHA512SUMS beside it",
                   str, "debian-docker", "PROVISION_LOCAL_IMAGE"),
        OptionSpec("local-accel", "Accelerator: auto (KVM on Linux, HVF on macOS, else TCG), kvm, hvf or tcg",
                   str, "auto", "PROVISION_LOCAL_ACCEL", choices=qemu.ACCELERATORS),
        OptionSpec("local-network",
                   "Cluster network: a virtual network over 127.0.0.1 shared by the local machines named to it "
                   "(guest to guest only), each with a fixed address from 10.213.0.0/16 (default: one network shared "
                   "by all: 'default')", str, None, "PROVISION_LOCAL_NETWORK"),
        OptionSpec("local-mirror",
                   "Debian mirror for building the base image (default: the host's apt sources, "
                   "else http://deb.debian.org/debian)", str, None, "PROVISION_LOCAL_MIRROR"),
        OptionSpec("local-share-folder",
                   "HOST_DIR[:GUEST_DIR]: a host folder shared read-write into the machine, at the same path "
                   "unless GUEST_DIR is given; repeatable (default: your home directory)",
                   str, None, "PROVISION_LOCAL_SHARE_FOLDER", multiple=True),
        OptionSpec("local-no-share", "Share no host folder with the machine", bool, False,
                   "PROVISION_LOCAL_NO_SHARE"),
        OptionSpec("local-no-forward-ports", "Do not forward the ports containers publish to 127.0.0.1 on this "
                   "computer (a host agent does it by default)", bool, False, "PROVISION_LOCAL_NO_FORWARD_PORTS"),
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        provisions_engine=True, ssh=True, start=True, stop=True, restart=True, kill=True, engine_files_at_boot=True,
        cluster=True, forward_ports=True)
    # How long a boot may take until SSH and the engine answer: TCG on a busy host needs minutes.
    boot_timeout: ClassVar[float] = 600.0

    # -- files -----------------------------------------------------------------------------------------
    @property
    def _dir(self) -> Path:
        return self.ctx.machine_dir

    @property
    def _overlay(self) -> Path:
        return self._dir / OVERLAY

    @property
    def _pidfile(self) -> Path:
        return self._dir / PIDFILE

    @property
    def _console(self) -> Path:
        return self._dir / CONSOLE_LOG

    @property
    def _qmp_socket(self) -> Path:
        # Derived, never read back from the record: a store moved to another path must not talk to (or
        # delete) a socket where the machine used to be.
        return qemu.socket_path_for(self._dir)

    @property
    def _marker(self) -> str:
        # Our QEMU's command line names this overlay; a recycled pid's does not.
        return str(self._overlay)

    # -- create ----------------------------------------------------------------------------------------
    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        # The folders named on the command line; the default (the home directory) is checked by create,
        # which knows the machine's environment.
        folders = list(options.get("local_share_folder") or ())
        if folders or options.get("local_no_share"):
            shares.plan(folders, bool(options.get("local_no_share")), None, os.getcwd())

    def _plan_shares(self) -> list[shares.Share]:
        home = self.ctx.environ.get("HOME") or str(Path.home())
        return shares.plan(list(self.ctx.option("local_share_folder") or ()), bool(self.ctx.option("local_no_share")),
                           home, os.getcwd())

    def create(self) -> None:
        data = self.ctx.data
        cpus, memory, disk_gb = (int(self.ctx.option(k)) for k in ("local_cpus", "local_memory", "local_disk_size"))
        if cpus < 1 or memory < 256 or disk_gb < 2:
            raise UsageError("the local driver needs at least 1 CPU, 256 MiB of memory and a 2 GB disk")
        planned = self._plan_shares()
        requested = str(self.ctx.option("local_accel"))
        accel = qemu.choose_accelerator(requested)
        image_spec = str(self.ctx.option("local_image"))
        mirror = str(self.ctx.option("local_mirror") or host_debian_mirror()).rstrip("/")

        data.update({
            "cpus": cpus, "memory_mib": memory, "disk_size_gb": disk_gb, "requested_accel": requested,
            "accel": accel, **self._fresh_ports(), "ssh_user": SSH_USER,
            "image_spec": image_spec, "qmp_socket": str(qemu.socket_path_for(self._dir)),
            "instance_id": f"provision-{self.ctx.machine_name}-{secrets.token_hex(4)}",
            "shares": [share.to_data() for share in planned],
        })
        self.ctx.checkpoint()
        self._allocate_cluster_address()

        image = ensure_image(image_spec, cache_dir=self.ctx.cache_dir, mirror=mirror, progress=self.ctx.progress)
        data["image"] = image.to_data(self.ctx.cache_dir)
        self.ctx.checkpoint()

        self._dir.mkdir(parents=True, exist_ok=True)
        qemu.create_overlay(self._overlay, image, disk_gb)
        self.ctx.checkpoint()
        self._write_seed(image)
        self.ctx.progress(f"booting the virtual machine ({accel})")
        self._boot(fresh_ports=True)

    def _allocate_cluster_address(self) -> None:
        """The lowest address free among the machines of this network, recorded before the lock goes."""
        network = str(self.ctx.option("local_network") or clusternet.DEFAULT_NETWORK)
        with self.ctx.store_lock():
            used = [str(peer["cluster_ip"]) for peer in self.ctx.peers()
                    if peer.get("cluster_network") == network and peer.get("cluster_ip")]
            address = clusternet.lowest_free_address(used)
            # Addresses are unique within this store only: another store's machines (another project, another
            # user) must be on another segment. Recorded, so a moved store's machines keep meeting each other.
            segment = clusternet.store_segment(self.ctx.machine_dir.parent.parent)
            self.ctx.data.update({"cluster_network": network, "cluster_segment": segment, "cluster_ip": address,
                                  "cluster_mac": clusternet.mac_for(address)})
            self.ctx.checkpoint()

    def _cluster_nic(self) -> tuple[str, str] | None:
        data = self.ctx.data
        return (str(data["cluster_mac"]), str(data["cluster_ip"])) if data.get("cluster_ip") else None

    def _write_seed(self, image: BaseImage) -> None:
        public_key = self.ctx.ssh_key_path.with_name(self.ctx.ssh_key_path.name + ".pub")
        try:
            key_text = public_key.read_text().strip()
        except OSError as exc:
            raise DriverError(f"the machine's public key {public_key} is unreadable: {exc.strerror}",
                              driver=self.name, machine=self.ctx.machine_name) from exc
        engine_files = (*self.ctx.engine_files, *shares.boot_files(self._shares()))
        if image.kind in VARIANTS:
            engine_files = (*engine_files, *(HostFile(path, 0o644, render(template, path=USER_PATH).encode())
                                             for path, template in PATH_FILES))
            # provision's own image takes its host key from the seed: made here, it is known before the
            # first contact, so the first SSH login verifies the machine instead of trusting whoever answers.
            private, public = new_ed25519(f"root@{self.ctx.machine_name}")
            engine_files = (*engine_files, HostFile(HOST_KEY_PATH, 0o600, private),
                            HostFile(HOST_KEY_PATH + ".pub", 0o644, public.encode() + b"\n"))
            self.ctx.data["host_key"] = public
            self.ctx.checkpoint()
        files = render_seed_files(instance_id=self.ctx.data["instance_id"], hostname=self.ctx.machine_name,
                                  user=SSH_USER, ssh_public_key=key_text, with_network_config=True,
                                  engine_files=engine_files, cluster_nic=self._cluster_nic())
        write_seed_iso(self._dir / SEED, files)

    def _shares(self) -> list[shares.Share]:
        return [shares.Share.from_data(item) for item in self.ctx.data.get("shares") or ()]

    # -- booting ---------------------------------------------------------------------------------------
    def _config(self) -> qemu.QemuConfig:
        data = self.ctx.data
        if "image" not in data or "ssh_port" not in data:
            raise DriverError("this machine was never fully created; remove it and create it again",
                              driver=self.name, machine=self.ctx.machine_name)
        return qemu.QemuConfig(
            name=self.ctx.machine_name, cpus=int(data["cpus"]), memory_mib=int(data["memory_mib"]),
            accel=str(data["accel"]), image=BaseImage.from_data(data["image"], self.ctx.cache_dir),
            overlay=self._overlay,
            seed=self._dir / SEED, ssh_port=int(data["ssh_port"]),
            host_engine_port=_host_engine_port(data), guest_engine_port=self.engine_port(),
            console_log=self._console,
            qmp_socket=self._qmp_socket, pidfile=self._pidfile,
            cluster_nic=(clusternet.segment_key(str(data["cluster_network"]), data.get("cluster_segment")),
                         str(data["cluster_mac"])) if data.get("cluster_ip") else None,
            # A folder deleted since create is left out (QEMU would refuse to start); _boot says so.
            shares=tuple((share.host, share.tag) for share in self._shares() if Path(share.host).is_dir()),
        )

    def _boot(self, *, fresh_ports: bool = False) -> None:
        """Launch QEMU; under a hardware accelerator, prove the guest runs or fall back to TCG."""
        config = self._config()
        missing = [str(p) for p in config.image.missing() + [config.overlay, config.seed] if not p.exists()]
        if missing:
            raise DriverError(f"files this machine boots from are gone: {', '.join(missing)}",
                              driver=self.name, machine=self.ctx.machine_name,
                              hint="the image cache was cleared; remove the machine and create it again")
        # The store (or the image cache) may have moved since the overlay was made: point it at the image.
        qemu.ensure_backing_file(config.overlay, config.image)
        for share in self._shares():
            if not Path(share.host).is_dir():
                self.ctx.progress(f"the shared folder {share.host} is gone; {share.guest} stays empty in the machine")
        self.ctx.data["qmp_socket"] = str(config.qmp_socket)
        if config.accel == "tcg":
            pid = self._launch(fresh_ports, wait=0.0)
            self._ensure_alive(pid, "right after launch")
            return
        reason = self._hardware_boot_failure(config.accel, fresh_ports)
        if reason is None:
            return
        verdict = qemu.probe_verdict(accel=config.accel, requested=str(self.ctx.data.get("requested_accel")),
                                     console="", exited=True)
        if verdict is qemu.ProbeVerdict.FAIL:
            raise DriverError(f"{reason}: the accelerator does not run guests on this host",
                              driver=self.name, machine=self.ctx.machine_name,
                              hint="use --local-accel tcg (or PROVISION_LOCAL_ACCEL=tcg)")
        self.ctx.progress(f"{reason}; falling back to tcg (slower, but it runs)")
        self.ctx.data.update({"accel": "tcg", "accel_fallback": reason})
        self.ctx.checkpoint()
        pid = self._launch(fresh_ports, wait=PORT_RELEASE_SECONDS)
        self._ensure_alive(pid, "after falling back to tcg")

    def _hardware_boot_failure(self, accel: str, fresh_ports: bool) -> str | None:
        """None once the guest kernel runs under ``accel``; else why it cannot, with QEMU ended.

        Three ways a hardware accelerator fails here: QEMU refuses or aborts before it detaches (an
        assertion in its KVM code on some nested hosts), QEMU dies while the guest boots, or the guest
        hangs without printing its kernel banner.
        """
        try:
            pid = self._launch(fresh_ports, wait=0.0)
        except CommandError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                raise  # QEMU is not installed: TCG would meet the same
            detail = console_last_line(exc.stderr) or exc.message
            return f"QEMU failed to start under {accel} ({_exit_status(exc.returncode)}: {detail})"

        def booted_or_died() -> str | None:
            """An empty string once the kernel runs, why not once QEMU has died, None until then."""
            console = self.boot_log() or ""
            alive = qemu.pid_alive(pid, self._marker)
            verdict = qemu.probe_verdict(accel=accel, requested="auto", console=console, exited=not alive)
            if verdict is qemu.ProbeVerdict.OK:
                return ""
            if not alive:
                return f"QEMU exited while the guest booted under {accel} ({console_last_line(console) or 'empty console'})"
            return None

        try:
            return waiting.wait_for(f"see the guest kernel boot under {accel}", booted_or_died,
                                    timeout=CONSOLE_PROBE_SECONDS, interval=0.5) or None
        except TimeoutExpired:
            qemu.kill(pid, self._marker)
            return (f"the guest kernel printed no banner on the serial console within "
                    f"{int(CONSOLE_PROBE_SECONDS)} s under {accel}")

    def _launch(self, fresh_ports: bool, wait: float) -> int:
        """Launch QEMU on the recorded ports, waiting up to ``wait`` s for them to come free.

        While the machine is being created nothing outside knows its ports yet, so a port still held
        (by a QEMU torn down slowly, or by another program's connection since the ports were picked)
        is swapped for a fresh one rather than failing the create.
        """
        data = self.ctx.data
        recorded = tuple(port for port in (int(data.get("ssh_port") or 0), _host_engine_port(data)) if port)
        if not qemu.wait_ports_free(recorded, wait) and fresh_ports:
            data.update(self._fresh_ports())
            self.ctx.checkpoint()
        pid = qemu.launch(self._config())
        data["pid"] = pid
        self.ctx.checkpoint()
        return pid

    def _fresh_ports(self) -> dict[str, int]:
        """Free ports on 127.0.0.1 for SSH and, unless the engine is reached over SSH, the engine."""
        if self.exposed_engine_port() is None:
            return {"ssh_port": qemu.free_ports(1)[0]}
        ssh_port, engine_port = qemu.free_ports(2)
        self.ctx.data.pop(LEGACY_HOST_ENGINE_PORT, None)
        return {"ssh_port": ssh_port, HOST_ENGINE_PORT: engine_port}

    def _ensure_alive(self, pid: int, when: str) -> None:
        if qemu.pid_alive(pid, self._marker):
            return
        tail = "\n".join((self.boot_log() or "").strip().splitlines()[-5:]) or "empty console"
        raise DriverError(f"QEMU exited {when}; console: {tail}", driver=self.name, machine=self.ctx.machine_name)

    def _pid(self) -> int | None:
        pid = qemu.read_pid(self._pidfile)
        if pid is not None and qemu.pid_alive(pid, self._marker):
            return pid
        return None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._pid() is not None:
            return
        self._boot()

    def stop(self) -> None:
        """ACPI power button, a bounded wait for the guest to power off, then QEMU is ended."""
        pid = self._pid()
        if pid is None:
            return
        try:
            qemu.qmp(self._qmp_socket, "system_powerdown")
        except (OSError, ValueError, qemu.QMPError):
            pass  # no monitor: the bounded wait below ends in a kill all the same
        if qemu.wait_exit(pid, self._marker, STOP_TIMEOUT):
            self._forget_process()
            return
        self.ctx.progress(f"the guest did not power off within {int(STOP_TIMEOUT)} s; ending QEMU")
        self._end_process(pid)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            self._end_process(pid)
        self._forget_process()

    def _end_process(self, pid: int) -> None:
        try:
            qemu.qmp(self._qmp_socket, "quit")
        except (OSError, ValueError, qemu.QMPError):
            pass
        if not qemu.wait_exit(pid, self._marker, QUIT_TIMEOUT):
            qemu.kill(pid, self._marker)
        self._forget_process()

    def _forget_process(self) -> None:
        self._pidfile.unlink(missing_ok=True)
        self._qmp_socket.unlink(missing_ok=True)
        self.ctx.data.pop("pid", None)

    def remove(self) -> None:
        pid = self._pid()
        if pid is None and self.ctx.data.get("pid"):
            # The pidfile may be gone while QEMU still runs (a crash mid-create): trust the record too.
            recorded = int(self.ctx.data["pid"])
            pid = recorded if qemu.pid_alive(recorded, self._marker) else None
        if pid is not None:
            self._end_process(pid)
        self._forget_process()
        for name in (OVERLAY, SEED, SEED + ".tmp", CONSOLE_LOG, PIDFILE):
            (self._dir / name).unlink(missing_ok=True)

    # -- facts -----------------------------------------------------------------------------------------
    def state(self) -> MachineState:
        pid = self._pid()
        if pid is None:
            return MachineState.STOPPED if self._overlay.exists() else MachineState.NOT_FOUND
        try:
            status = qemu.qmp(self._qmp_socket, "query-status", timeout=3.0)
        except (OSError, ValueError, qemu.QMPError):
            return MachineState.STARTING  # the process runs but its monitor is not up yet
        return _QMP_STATES.get(str((status or {}).get("status")), MachineState.UNKNOWN)

    def forward_port(self, protocol: str, port: int) -> None:
        self._hostfwd(protocol, port, add=True)

    def unforward_port(self, protocol: str, port: int) -> None:
        self._hostfwd(protocol, port, add=False)

    def wants_port_agent(self) -> bool:
        return not self.ctx.option("local_no_forward_ports")

    def _hostfwd(self, protocol: str, port: int, *, add: bool) -> None:
        try:
            qemu.hostfwd(self._qmp_socket, protocol, port, add=add)
        except (OSError, ValueError, qemu.QMPError) as exc:
            reason = str(exc) if isinstance(exc, qemu.QMPError) else f"QEMU's monitor did not answer ({exc})"
            if add and port in (self.ctx.data.get("ssh_port"), _host_engine_port(self.ctx.data)):
                reason = "the machine's own SSH or engine forward uses that port here"
            elif add and protocol == "tcp" and qemu.port_in_use(port):
                reason = f"127.0.0.1:{port} is already in use on this computer"
            raise DriverError(reason, driver=self.name, machine=self.ctx.machine_name) from exc

    def _port(self, key: str) -> int:
        port = self.ctx.data.get(key)
        if not port:
            raise DriverError("this machine has no forwarded ports recorded (create did not get that far)",
                              driver=self.name, machine=self.ctx.machine_name)
        return int(port)

    def engine_url(self) -> str:
        port = _host_engine_port(self.ctx.data)
        if not port:
            self._port(HOST_ENGINE_PORT)  # says why
        return f"tcp://127.0.0.1:{port}"

    def ssh_endpoint(self) -> SSHEndpoint:
        return SSHEndpoint(host="127.0.0.1", port=self._port("ssh_port"),
                           user=str(self.ctx.data.get("ssh_user", SSH_USER)), key_path=self.ctx.ssh_key_path)

    def host_key(self) -> str | None:
        return self.ctx.data.get("host_key")

    def ip(self) -> str:
        return "127.0.0.1"

    def cluster_address(self) -> str:
        address = self.ctx.data.get("cluster_ip")
        if not address:
            raise DriverError("this machine has no cluster network (it was created before provision had them); "
                              "create it again to join a cluster", driver=self.name, machine=self.ctx.machine_name)
        return str(address)

    def join_cluster(self, cluster: str) -> None:
        """The cluster NIC is there from the first boot; make sure networkd has applied its file (it may
        have started before the first-boot step wrote it) and the address is up."""
        address = self.cluster_address()
        if self.ctx.remote is None:
            return
        with self.ctx.remote() as session:
            check = f"ip -4 -o addr show to {address}/32 | grep -q ."
            session.run(f"{check} || {{ networkctl reload; for i in $(seq 1 30); do {check} && exit 0; "
                        f"sleep 1; done; exit 1; }}", sudo=True, timeout=60)

    def addresses(self) -> list[str]:
        return ["127.0.0.1", "localhost"]

    def boot_log(self) -> str | None:
        try:
            with open(self._console, "rb") as log:
                size = log.seek(0, 2)
                log.seek(max(0, size - BOOT_LOG_LIMIT))
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return None

    def extra(self) -> dict[str, Any]:
        data = self.ctx.data
        facts: dict[str, Any] = {key: data[key] for key in (
            "accel", "requested_accel", "accel_fallback", "cpus", "memory_mib", "disk_size_gb", "ssh_port",
            HOST_ENGINE_PORT, LEGACY_HOST_ENGINE_PORT, "image_spec", "pid", "cluster_network", "cluster_ip", "cluster_mac", "shares")
            if key in data}
        facts["console_log"] = str(self._console)
        return facts


def _host_engine_port(data: dict[str, Any]) -> int | None:
    port = data.get(HOST_ENGINE_PORT) or data.get(LEGACY_HOST_ENGINE_PORT)
    return int(port) if port else None


def _exit_status(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        import signal

        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


__all__ = ["LocalDriver", "SSH_USER", "VARIANTS"]
