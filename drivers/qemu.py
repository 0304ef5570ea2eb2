"""Running one QEMU process: accelerator choice, forwarded ports, the command line, QMP, and the pid.

QEMU runs daemonized (``-daemonize``), so a machine outlives the CLI process that started it; the
pidfile plus QMP's ``query-status`` tell its state later. Nothing here knows about machine records:
``drivers.local`` decides what to run and keeps the facts.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import json
import os
import platform
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision import waiting
from provision.errors import DriverError, UsageError
# pid_alive and read_pid are used as qemu.pid_alive/qemu.read_pid by the local driver.
from provision.run import pid_alive, process_exists, read_pid, run  # noqa: F401

from . import clusternet
from .images import BaseImage

QEMU_BINARY = "qemu-system-x86_64"
ACCELERATORS = ("auto", "kvm", "hvf", "tcg")
GUEST_SSH_PORT = 22
# A unix socket path must fit sun_path (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100
TOOL_TIMEOUT = 120.0  # qemu-img on a large image, or QEMU until it has detached
INSTALL_HINT = "apt-get install qemu-system-x86 qemu-utils"


# The CPU QEMU emulates under TCG: x86-64-v2 (what current distributions and container images require)
# and no more. "max" adds AVX, XSAVE state and 5-level paging that cost every context switch and memory
# access in emulation: a create from the cached image took 35 s with it and 31 s with this (bench/).
TCG_CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt"

# -- accelerator ------------------------------------------------------------------------------------

def kvm_usable(device: str = "/dev/kvm") -> bool:
    """True when the KVM device opens read-write (present and permitted)."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def choose_accelerator(requested: str, *, system: str | None = None, kvm_ok: bool | None = None) -> str:
    """The accelerator to start with: the one asked for, or for ``auto`` the best the host offers."""
    if requested not in ACCELERATORS:
        raise DriverError(f'unknown accelerator "{requested}": use one of {", ".join(ACCELERATORS)}',
                          driver="local")
    if requested != "auto":
        return requested
    system = system or platform.system()
    if system == "Linux":
        return "kvm" if (kvm_usable() if kvm_ok is None else kvm_ok) else "tcg"
    if system == "Darwin":
        return "hvf"
    return "tcg"


class ProbeVerdict(enum.Enum):
    OK = "ok"
    FALL_BACK_TO_TCG = "fall back to tcg"
    FAIL = "fail"


# The kernel's first console line. Under a hung accelerator the console may still show the boot
# stub's own output ("Probing EDD ... ok", seen on nested KVM here) and then nothing: bytes alone prove
# nothing, the kernel's banner does.
KERNEL_BANNER = "Linux version"


def probe_verdict(*, accel: str, requested: str, console: str, exited: bool = False) -> ProbeVerdict:
    """What to do once the console probe has ended, given what the console showed and whether QEMU died.

    A guest whose kernel never prints its banner under a hardware accelerator is hung (nested KVM can
    accept a guest and never run it), and a QEMU that dies under one (an assertion in its KVM code on
    some hosts) cannot use it at all. With ``auto`` we retry under TCG; an accelerator the user asked
    for by name fails with an explanation instead of silently becoming another. TCG has no slower
    fallback, so it is never judged here: the SSH wait bounds it.
    """
    if accel == "tcg" or (KERNEL_BANNER in console and not exited):
        return ProbeVerdict.OK
    if requested == "auto":
        return ProbeVerdict.FALL_BACK_TO_TCG
    return ProbeVerdict.FAIL


# -- ports -----------------------------------------------------------------------------------------

def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` now (held open together so they differ)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``port``; TIME_WAIT leftovers of our last boot do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # QEMU's forwarder binds with SO_REUSEADDR too, so this answers what QEMU will meet.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def socket_path_for(machine_dir: Path) -> Path:
    """The QMP socket: in the machine dir when the path fits, else a short name in the temp dir."""
    path = machine_dir / "qmp.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(machine_dir.resolve()).encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir()) / f"provision-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    return base / f"{digest}.qmp"


# -- the command line ------------------------------------------------------------------------------

@dataclass(frozen=True)
class QemuConfig:
    name: str
    cpus: int
    memory_mib: int
    accel: str
    image: BaseImage
    overlay: Path
    seed: Path
    ssh_port: int
    host_engine_port: int | None  # None: the engine is reached over SSH, nothing is forwarded to it
    guest_engine_port: int
    console_log: Path
    qmp_socket: Path
    pidfile: Path
    # The second NIC on a cluster network: (network name, MAC); None for machines made before clusters.
    cluster_nic: tuple[str, str] | None = None
    # Host folders served to the guest over virtio-9p: (host path, mount tag) pairs (drivers/shares.py).
    shares: tuple[tuple[str, str], ...] = ()

    def forwards(self) -> list[str]:
        """QEMU's hostfwd rules: loopback only, SSH always, the engine port unless it is reached over SSH."""
        rules = [f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:{GUEST_SSH_PORT}"]
        if self.host_engine_port is not None:
            rules.append(f"hostfwd=tcp:127.0.0.1:{self.host_engine_port}-:{self.guest_engine_port}")
        return rules

    def argv(self) -> list[str]:
        hardware = self.accel in ("kvm", "hvf")
        argv = [
            QEMU_BINARY,
            "-name", f"{_opt(self.name)},process=provision-{_opt(self.name)}",
            "-machine", "q35",
            "-accel", self.accel,
            "-cpu", "host" if hardware else TCG_CPU,
            "-smp", str(self.cpus),
            "-m", str(self.memory_mib),
            "-nodefaults",
            "-display", "none",
            "-chardev", f"file,id=console,path={_opt(self.console_log)}",
            "-serial", "chardev:console",
            "-qmp", f"unix:{_opt(self.qmp_socket)},server=on,wait=off",
            "-drive", f"if=virtio,file={_opt(self.overlay)},format=qcow2,discard=unmap",
            "-drive", f"if=virtio,file={_opt(self.seed)},format=raw,readonly=on",
            "-netdev", f"user,id=net0,{','.join(self.forwards())}",
            "-device", "virtio-net-pci,netdev=net0",
            # Entropy at boot: without it sshd key generation and TLS can stall for minutes under TCG.
            "-device", "virtio-rng-pci",
            # Last, so the primary NIC keeps its PCI slot (and its name in the guest) with or without it.
            *(clusternet.netdev_args(*self.cluster_nic) if self.cluster_nic else ()),
            # After the NICs, so adding or dropping a share moves no NIC to another PCI slot.
            *virtfs_args(self.shares),
            "-pidfile", str(self.pidfile),
            "-daemonize",
        ]
        if self.image.kernel is not None:
            argv += ["-kernel", str(self.image.kernel)]
            if self.image.initrd is not None:
                argv += ["-initrd", str(self.image.initrd)]
            argv += ["-append", self.image.cmdline or ""]
        return argv


def virtfs_args(shares: tuple[tuple[str, str], ...]) -> list[str]:
    """A virtio-9p device per (host folder, tag). ``security_model=none``: QEMU creates files with its own
    credentials, so what the guest (or a container, as root) writes is the host user's, and a guest's
    ``chown`` is dropped instead of failing."""
    args: list[str] = []
    for host, tag in shares:
        args += ["-fsdev", f"local,id={tag},path={_opt(host)},security_model=none",
                 "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]
    return args


def _opt(value: object) -> str:
    # QEMU option values use ',' as a separator; a literal comma is written twice.
    return str(value).replace(",", ",,")


def create_overlay(overlay: Path, image: BaseImage, size_gb: int) -> None:
    """A qcow2 that reads unwritten blocks from the shared base image and grows to ``size_gb``."""
    info = json.loads(run(["qemu-img", "info", "--output=json", str(image.disk)], what="qemu-img info",
                          timeout=TOOL_TIMEOUT, missing_hint=INSTALL_HINT))
    base_bytes = int(info.get("virtual-size", 0))
    if size_gb * 10**9 < base_bytes:
        # A disk smaller than the base image would cut its filesystem short.
        raise UsageError(f"a {size_gb} GB disk is smaller than the {image.kind} base image "
                         f"({base_bytes / 10**9:.1f} GB); give a larger --local-disk-size")
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", image.disk_format,
         str(overlay), f"{size_gb}G"], what="qemu-img create", timeout=TOOL_TIMEOUT, missing_hint=INSTALL_HINT)


def ensure_backing_file(overlay: Path, image: BaseImage) -> None:
    """Rewrite the overlay's backing-file header when it no longer names the image (a moved store or
    cache). The image's content is unchanged, so only the name is rewritten (``rebase -u``)."""
    info = json.loads(run(["qemu-img", "info", "--output=json", "--force-share", str(overlay)],
                          what="qemu-img info", timeout=TOOL_TIMEOUT, missing_hint=INSTALL_HINT))
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    if backing and Path(backing) == image.disk:
        return
    run(["qemu-img", "rebase", "-u", "-F", image.disk_format, "-b", str(image.disk), str(overlay)],
        what="qemu-img rebase", timeout=TOOL_TIMEOUT, missing_hint=INSTALL_HINT)


# -- the process -----------------------------------------------------------------------------------

def launch(config: QemuConfig) -> int:
    """Start QEMU daemonized and return its pid; QEMU reports setup errors before it detaches."""
    config.console_log.unlink(missing_ok=True)
    config.pidfile.unlink(missing_ok=True)
    config.qmp_socket.unlink(missing_ok=True)
    for port in (config.ssh_port, config.host_engine_port):
        if port is not None and port_in_use(port):
            raise DriverError(f"port {port} on 127.0.0.1, recorded for this machine, is taken by another process",
                              driver="local", machine=config.name,
                              hint="stop whatever listens there, or remove and recreate the machine")
    run(config.argv(), timeout=TOOL_TIMEOUT, missing_hint=INSTALL_HINT)
    pid = read_pid(config.pidfile)
    if pid is None:
        raise DriverError("QEMU started but wrote no pidfile", driver="local", machine=config.name)
    return pid


def wait_exit(pid: int, marker: str | None, timeout: float) -> bool:
    """True once ``pid`` is no longer our QEMU; False if it still is after ``timeout`` seconds."""
    return waiting.until(lambda: not pid_alive(pid, marker), timeout=timeout, interval=0.2)


def kill(pid: int, marker: str | None, timeout: float = 60.0) -> None:
    """SIGKILL the QEMU process if it is still ours, and wait (bounded) until it has let go of everything.

    Its command line empties as soon as it starts to exit, but a QEMU killed while its vCPUs hang inside
    KVM can take a while longer to close its files: its disk lock and forwarded ports with them.
    """
    if not pid_alive(pid, marker):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    waiting.wait_for(f"see QEMU (pid {pid}) let go of its files", lambda: _released(pid), timeout=timeout,
                     interval=0.2, error=lambda expired: DriverError(
                         f"QEMU (pid {pid}) has not finished exiting {int(timeout)} s after SIGKILL",
                         driver="local", hint="the host kernel may be stuck tearing the VM down"))


def _released(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie: the kernel closes a process's files before it turns zombie."""
    if not Path("/proc/self/stat").exists():  # no procfs (macOS): a zombie there still reads as alive
        return not process_exists(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_ports_free(ports: tuple[int, ...], timeout: float) -> bool:
    """True once none of ``ports`` is held; False if one still is after ``timeout`` seconds."""
    return waiting.until(lambda: not any(port_in_use(port) for port in ports), timeout=timeout, interval=0.5)


# -- QMP -------------------------------------------------------------------------------------------

class QMPError(Exception):
    pass


def qmp(socket_path: Path, command: str, arguments: dict[str, Any] | None = None,
        timeout: float = 5.0) -> Any:
    """Run one QMP command and return its ``return`` value (raises ``QMPError``/``OSError``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        stream = sock.makefile("rwb")
        greeting = _qmp_read(stream)
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting}")
        _qmp_send(stream, {"execute": "qmp_capabilities"})
        _qmp_reply(stream)
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        _qmp_send(stream, message)
        return _qmp_reply(stream)


def hostfwd(socket_path: Path, protocol: str, port: int, *, add: bool, netdev: str = "net0") -> None:
    """Add (or remove) the user network's forward from 127.0.0.1:PORT to the guest's PORT while QEMU runs.
    QMP has no command for it; the human monitor's answers are text, empty when all went well."""
    rule = f"{protocol}:127.0.0.1:{port}" + (f"-:{port}" if add else "")
    # A forward that QEMU made but answered late would read as failed, and every retry then as "in use"
    # (QEMU holds the port itself): wait for the answer as long as a busy emulated guest can take.
    answer = qmp(socket_path, "human-monitor-command",
                 {"command-line": f"hostfwd_{'add' if add else 'remove'} {netdev} {rule}"}, timeout=30.0)
    text = str(answer or "").strip()
    if add and text or not add and not text.endswith("removed"):  # QEMU 7 says "host forwarding rule ... removed"
        raise QMPError(text.splitlines()[-1] if text else "QEMU gave no answer")


def _qmp_send(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message).encode() + b"\n")
    stream.flush()


def _qmp_read(stream: Any) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise QMPError("QMP closed the connection")
    return json.loads(line)


def _qmp_reply(stream: Any) -> Any:
    while True:
        message = _qmp_read(stream)
        if "event" in message:  # asynchronous events interleave with replies
            continue
        if "error" in message:
            error = message["error"]
            raise QMPError(f"{error.get('class')}: {error.get('desc')}")
        return message.get("return")
