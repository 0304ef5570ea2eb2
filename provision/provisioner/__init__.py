"""Install and configure Docker Engine on a host over one SSH session (DESIGN §5, steps 2-6).

The work is batched into a few shell scripts rendered from ``templates/engine/`` so a provision takes a
handful of SSH round trips: one probe (cloud-init, OS, what is installed), an install only when Docker is
missing, and one configure script (hostname, certificates, systemd drop-in, restart, facts). The final
``GET /_ping`` over mutual TLS is the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provision.addresses import DEFAULT_ENGINE_PORT
from provision.driver import HostFile
from provision.errors import ProvisioningError, UsageError
from provision.record import EngineSettings

from . import engine
from .osinfo import OSInfo, detect
from .scripts import ScriptOutput, render_script, run_script

__all__ = ["EngineConfig", "ServerCerts", "EngineFacts", "provision_engine", "install_certs", "upgrade_engine",
           "boot_files", "install_client_trust"]

CLOUD_INIT_TIMEOUT = 600  # seconds; a cloud image's first boot may run long package upgrades
LOCK_TIMEOUT = 300  # seconds to wait for another process's apt/dpkg lock
INSTALL_TIMEOUT = 1800
CONFIGURE_TIMEOUT = 300
READY_POLLS = 120  # half-second polls for dockerd to answer after a restart
DOCKER_PACKAGES = {
    "debian": ["docker.io", "docker-ce", "docker-ce-cli", "containerd.io", "containerd", "runc"],
    "fedora": ["moby-engine", "docker-ce", "docker-ce-cli", "containerd", "containerd.io"],
    "amazon": ["docker", "containerd", "runc"],
    "rhel": ["docker-ce", "docker-ce-cli", "containerd.io"],
}
_HOST_LABEL = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


@dataclass(frozen=True)
class EngineConfig:
    """The user's engine settings (as the record keeps them) applied to one host."""

    driver_name: str
    hostname: str
    settings: EngineSettings = field(default_factory=EngineSettings)
    engine_port: int = DEFAULT_ENGINE_PORT
    # Keep containers running while dockerd restarts (certificate rotation, upgrades). Left out on a host
    # already in swarm mode: dockerd refuses to start with both.
    live_restore: bool = True
    # The SSH login user: with the engine reached over SSH it joins the docker group (root needs not).
    ssh_user: str | None = None


@dataclass
class ServerCerts:
    ca_pem: bytes  # the engine's client CA file: the owner's CA and each live export's issuer (provision.trust)
    cert_pem: bytes
    key_pem: bytes


@dataclass
class EngineFacts:
    os_id: str
    os_version: str
    os_pretty: str
    docker_version: str
    storage_driver: str
    installed: bool = False  # True when this run installed Docker
    restarted: bool = True  # False when nothing changed and dockerd kept running


def _cert_files(certs: ServerCerts) -> tuple[HostFile, ...]:
    return (HostFile(engine.CA_PATH, 0o644, certs.ca_pem),
            HostFile(engine.CERT_PATH, 0o644, certs.cert_pem),
            HostFile(engine.KEY_PATH, 0o600, certs.key_pem))


@dataclass
class _Probe:
    os: OSInfo
    dockerd: str
    docker_cli: str
    systemd: bool
    swarm: str
    daemon_json: str


def _probe(session: Any, progress: Callable[[str], None], *, root: str = "") -> _Probe:
    out = run_script(session, render_script("engine/probe.sh.j2", root=root,
                                            cloud_init_timeout=CLOUD_INIT_TIMEOUT),
                     what="inspecting the host", progress=progress, timeout=CLOUD_INIT_TIMEOUT + 120)
    rc = out.facts.get("cloud_init_rc")
    if rc == "124":
        raise ProvisioningError(f"cloud-init did not finish within {CLOUD_INIT_TIMEOUT}s on machine "
                                f"\"{session.machine}\"", hint="see /var/log/cloud-init-output.log on the machine",
                                machine=session.machine)
    os_info = detect(out.blocks.get("os-release", ""), machine=session.machine)
    return _Probe(os_info, out.facts.get("dockerd", ""), out.facts.get("docker_cli", ""),
                  out.facts.get("systemd") == "yes", out.facts.get("swarm", ""), out.blocks.get("daemon.json", ""))


def _install_plan(config: EngineConfig, os_info: OSInfo) -> dict[str, Any]:
    url = config.settings.install_url.strip()
    if url not in ("distro", "none") and not re.match(r"^https?://", url):
        raise UsageError(f'--engine-install-url must be "distro", "none" or an http(s) URL, not {url!r}')
    if url.startswith("http"):
        return {"method": "script", "url": url}
    if os_info.family == "debian":
        return {"method": "apt", "package": os_info.distro_package}
    if os_info.family in ("fedora", "amazon"):
        return {"method": "dnf", "package": os_info.distro_package}
    repo_os = "rhel" if os_info.id == "rhel" else "centos"
    # RHEL and its rebuilds ship no Docker; Docker's own repository is the documented way.
    return {"method": "docker-ce-repo", "repo_url": f"https://download.docker.com/linux/{repo_os}/docker-ce.repo"}


def _facts(os_info: OSInfo, out: ScriptOutput, *, installed: bool) -> EngineFacts:
    return EngineFacts(os_id=os_info.id, os_version=os_info.version, os_pretty=os_info.pretty,
                       docker_version=out.facts.get("docker_version", ""),
                       storage_driver=out.facts.get("storage_driver", ""), installed=installed,
                       restarted=out.facts.get("changed", "1") == "1")


def _check_hostname(name: str) -> None:
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in name.split(".")):
        raise UsageError(f"{name!r} cannot be a hostname (dot-separated labels of letters, digits and inner "
                         "dashes, each at most 63 characters)")


def provision_engine(session: Any, config: EngineConfig, certs: ServerCerts,
                     progress: Callable[[str], None]) -> EngineFacts:
    """Make the host run Docker Engine listening on ``config.engine_port`` with mutual TLS."""
    _check_hostname(config.hostname)
    progress("Inspecting the host")
    probe = _probe(session, progress)
    if not probe.systemd:
        raise ProvisioningError(f"machine \"{session.machine}\" does not run systemd; provision configures "
                                "dockerd through a systemd drop-in", machine=session.machine)
    dockerd, installed = probe.dockerd, False
    if not dockerd:
        if config.settings.install_url.strip() == "none":
            raise ProvisioningError(f"Docker is not installed on machine \"{session.machine}\" and "
                                    "--engine-install-url none asks provision not to install it",
                                    machine=session.machine)
        plan = _install_plan(config, probe.os)
        script = render_script("engine/install.sh.j2", lock_timeout=LOCK_TIMEOUT, **{
            "package": "", "url": "", "repo_url": "", **plan})
        out = run_script(session, script, what="installing Docker", progress=progress, timeout=INSTALL_TIMEOUT)
        dockerd, installed = out.facts.get("dockerd", ""), True
        if not dockerd:
            raise ProvisioningError(f"Docker was installed on machine \"{session.machine}\" but dockerd is not "
                                    "on the PATH", machine=session.machine)
    else:
        progress(f"Docker is already installed ({dockerd}); configuring it")
    files = _engine_files(config, certs, machine=session.machine, dockerd=dockerd, daemon_json=probe.daemon_json,
                          swarm=probe.swarm)
    script = render_script("engine/configure.sh.j2", hostname=config.hostname, set_runtime=True, root="",
                           files=files, files_message="Installing certificates and the docker.service drop-in",
                           dropin_dir=engine.DROPIN_DIR, ready_polls=READY_POLLS,
                           docker_user=config.ssh_user if config.settings.over_ssh else None)
    out = run_script(session, script, what="configuring Docker", progress=progress, timeout=CONFIGURE_TIMEOUT)
    return _facts(probe.os, out, installed=installed)


def _engine_files(config: EngineConfig, certs: ServerCerts, *, machine: str, dockerd: str, daemon_json: str,
                  swarm: str) -> tuple[HostFile, ...]:
    """The certificates and the docker.service drop-in, as the configure step puts them on the host."""
    flags = engine.dockerd_flags(config.driver_name, config.engine_port, config.settings,
                                 live_restore=config.live_restore and swarm not in ("active", "pending"))
    flags = engine.reconcile_with_daemon_json(flags, daemon_json, machine=machine)
    dropin = engine.render_dropin(machine=machine, dockerd=dockerd, flags=flags, env=config.settings.env)
    return (*_cert_files(certs), HostFile(engine.DROPIN_PATH, 0o644, dropin.encode()))


def boot_files(config: EngineConfig, certs: ServerCerts, *, machine: str,
               dockerd: str = engine.DISTRO_DOCKERD) -> tuple[HostFile, ...]:
    """What the configure step would upload to a fresh host with Docker from its distribution: a machine
    that places these files at first boot starts dockerd with TLS at once, and the configure step then
    finds them unchanged (anything that differs is corrected there as usual)."""
    _check_hostname(config.hostname)
    return _engine_files(config, certs, machine=machine, dockerd=dockerd, daemon_json="", swarm="")


def install_certs(session: Any, certs: ServerCerts, progress: Callable[[str], None]) -> None:
    """Put new server certificates in place and restart dockerd: no reinstall, containers keep running
    (the drop-in enables live-restore)."""
    _install_files(session, _cert_files(certs), "Installing the new certificates", "installing certificates",
                   progress)


def install_client_trust(session: Any, ca_pem: bytes, progress: Callable[[str], None]) -> None:
    """Replace the engine's client CA file and restart dockerd, only when the file changed: containers
    keep running (live-restore). dockerd reads its TLS files at start only; SIGHUP does not reload them."""
    _install_files(session, (HostFile(engine.CA_PATH, 0o644, ca_pem),), "Installing the engine's client CA file",
                   "installing the client CA file", progress)


def _install_files(session: Any, files: tuple[HostFile, ...], message: str, what: str,
                   progress: Callable[[str], None]) -> None:
    script = render_script("engine/configure.sh.j2", hostname="", set_runtime=False, root="", files=files,
                           files_message=message, dropin_dir=engine.DROPIN_DIR, ready_polls=READY_POLLS)
    run_script(session, script, what=what, progress=progress, timeout=CONFIGURE_TIMEOUT)


def upgrade_engine(session: Any, config: EngineConfig, progress: Callable[[str], None]) -> EngineFacts:
    """Upgrade Docker Engine in place, from the packages or script it came from."""
    progress("Inspecting the host")
    probe = _probe(session, progress)
    if not probe.dockerd:
        raise ProvisioningError(f"Docker is not installed on machine \"{session.machine}\"; nothing to upgrade",
                                hint=f"run `provision provision {session.machine}` to install it",
                                machine=session.machine)
    url = config.settings.install_url.strip()
    method = "script" if url.startswith("http") else "packages"
    script = render_script("engine/upgrade.sh.j2", method=method, url=url, family=probe.os.family,
                           packages=DOCKER_PACKAGES[probe.os.family], lock_timeout=LOCK_TIMEOUT,
                           ready_polls=READY_POLLS)
    out = run_script(session, script, what="upgrading Docker", progress=progress, timeout=INSTALL_TIMEOUT)
    return _facts(probe.os, out, installed=False)
