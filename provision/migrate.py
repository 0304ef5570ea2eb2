"""Docker Machine's store (``~/.docker/machine``) made into provision machines, read only (issue 9 §1).

Docker Machine keeps one ``machines/NAME/config.json`` per machine. Its shape changed over four
``ConfigVersion``s, read here as Docker Machine's own migration reads them:

- 0: the certificate paths sit at the top level (``CaCertPath``, ``ClientCertPath``, ``ClientKeyPath``,
  ``StorePath`` = the machine's directory); the name is the directory's;
- 1: they moved into ``HostOptions.AuthOptions`` (the CA key there is ``PrivateKeyPath``); the name is
  still the directory's and the driver's ``StorePath`` is the machine's directory;
- 2: ``Name`` is written; ``AuthOptions`` has its current fields (``CertDir``, ``CaPrivateKeyPath``...);
- 3 (the last): the driver's ``StorePath`` is the store root and its files are under ``machines/NAME/``.

Every path in it is absolute and names wherever the store was when the machine was made; each is read
from under the store being migrated (the part after ``/machines/NAME/`` or ``/certs/``), or as written when
that lies under it too. Nothing outside that store is ever opened: no path that leads out of it, no
symlink, nothing but a regular file, each read up to a bound. Nothing in that store is ever written.

The engine trusts Docker Machine's CA, so each machine keeps that CA and its client certificate in its own
directory, marked in the record (``FOREIGN_CA``) until ``regenerate-certs --client-certs`` moves it to
provision's CA. The host key is unknown: it is pinned at the first SSH contact (``MIGRATED_FROM``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from . import addresses, paths
from .driver import KEEP_SHARED
from .errors import MachineExists, ProvisionError, StoreError, UsageError
from .fsutil import JSON_LIMIT, PEM_LIMIT, read_inside
from .filerules import loads
from .names import validate_machine_name
from .record import FOREIGN_CA, MIGRATED_FROM, CertInfo, EngineSettings, Lifecycle, MachineRecord

STORAGE_ENV = "MACHINE_STORAGE_PATH"
CONFIG = "config.json"
NEWEST_CONFIG_VERSION = 3
DM_SSH_KEY = "id_rsa"
# Drivers whose machines keep their lifecycle here: Docker Machine's name → provision's.
MAPPED = ("generic", "none", "amazonec2", "google", "digitalocean")


class MigrationError(ProvisionError):
    """One machine that cannot be migrated; the others go on."""


class _Missing(MigrationError):
    """No candidate for a file exists (as opposed to one that is refused)."""


def default_source(environ: dict[str, str]) -> Path:
    given = environ.get(STORAGE_ENV)
    if given:
        return Path(given).expanduser()
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "machine"


@dataclass(frozen=True)
class Outcome:
    """What happened to one Docker Machine machine: ``target`` is its name here when it was migrated."""

    name: str
    target: str | None
    error: str | None = None
    driver: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Plan:
    """Everything read from the Docker Machine store for one machine, before anything is written."""

    record: MachineRecord
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- reading the store ---------------------------------------------------------------------------
def list_machines(source: Path) -> list[str]:
    """The machine names in the store; an unreadable store is one error for the whole command.

    A name that is a symlink is listed too, so that it is reported (and skipped), never followed."""
    machines_dir = source / paths.MACHINES_DIR
    if not source.is_dir():
        raise StoreError(f"Docker Machine store {source} does not exist (give --from DIR or set {STORAGE_ENV})")
    try:
        return sorted(p.name for p in machines_dir.iterdir()
                      if (p.is_symlink() or p.is_dir()) and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read the Docker Machine store {machines_dir}: {exc.strerror}") from exc


def _read(source: Path, path: Path, limit: int) -> bytes:
    """A file of the store, never one outside it, never through a symlink, never more than ``limit``
    bytes; ``FileNotFoundError`` when it is missing, one line naming it for anything else."""
    try:
        return read_inside(str(source), str(path), limit)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise MigrationError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_config(source: Path, name: str) -> dict[str, Any]:
    path = source / paths.MACHINES_DIR / name / CONFIG
    try:
        data = loads(_read(source, path, JSON_LIMIT))
    except FileNotFoundError as exc:
        raise MigrationError(f"{path} is missing") from exc
    except ValueError as exc:  # not UTF-8 is a ValueError too
        raise MigrationError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Driver"), dict):
        raise MigrationError(f"{path} is not a Docker Machine host config (no Driver object)")
    version = data.get("ConfigVersion", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise MigrationError(f"{path} has an invalid ConfigVersion {version!r}")
    if version > NEWEST_CONFIG_VERSION:
        raise MigrationError(f"{path} has ConfigVersion {version}, newer than Docker Machine's last ({NEWEST_CONFIG_VERSION})")
    if not _text(data, "DriverName", ""):
        raise MigrationError(f"{path} names no DriverName")
    return data


# -- the fields of config.json, each checked for its type --------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _malformed(where: str, key: str, value: Any, wanted: str) -> MigrationError:
    return MigrationError(f"config.json is malformed: {where}{key} is {_kind(value)}, not {wanted}")


def _object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _malformed(where, key, value, "an object")
    return value


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    """A string field; absent or null is ``""``. A control character (a newline in a systemd line) is refused."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(where, key, value, "a string")
    if _CONTROL.search(value):
        raise MigrationError(f"config.json is malformed: {where}{key} holds a control character")
    return value


def _texts(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _malformed(where, key, value, "a list of strings")
    return tuple(_text({key: item}, key, where) for item in value)


def _number(obj: dict[str, Any], key: str, where: str, default: int) -> int:
    """A port: absent, null or Go's zero value is ``default``."""
    value = obj.get(key)
    if value is None or value == 0:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise _malformed(where, key, value, "a port number")
    return value


def _resource_id(obj: dict[str, Any], key: str, where: str) -> int:
    """A cloud's numeric resource id: absent, null or Go's zero value is 0 (none recorded)."""
    value = obj.get(key)
    if value is None or value == 0:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 63:
        raise _malformed(where, key, value, "a resource id")
    return value


def _flag(obj: dict[str, Any], key: str, where: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _malformed(where, key, value, "true or false")
    return value


def auth_paths(config: dict[str, Any]) -> dict[str, str]:
    """The CA certificate, client certificate and key paths, wherever this ConfigVersion keeps them."""
    keys = ("CaCertPath", "ClientCertPath", "ClientKeyPath", "ServerCertPath", "StorePath")
    if config.get("ConfigVersion", 0) == 0:
        source, where = config, ""
    else:
        source, where = _object(_object(config, "HostOptions", ""), "AuthOptions", "HostOptions."), \
            "HostOptions.AuthOptions."
    return {k: _text(source, k, where) for k in keys}


def _inside(source: Path, path: PurePath) -> bool:
    """Whether ``path``, its ``..`` taken literally, lies under ``source``."""
    resolved = os.path.normpath(path)
    root = os.path.normpath(source)
    return resolved.startswith(root.rstrip(os.sep) + os.sep)


def resolve(source: Path, name: str, recorded: str) -> list[Path]:
    """Where a recorded path may be now: under ``source`` (after ``/machines/NAME/`` or ``/certs/``), then as
    written when that lies under ``source`` too. A path outside the store given is never a candidate."""
    if not recorded:
        return []
    parts = PurePath(recorded).parts
    found: list[Path] = []
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == paths.MACHINES_DIR and index + 1 < len(parts) and parts[index + 1] == name:
            found.append(source.joinpath(paths.MACHINES_DIR, name, *parts[index + 2:]))
            break
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == paths.CERTS_DIR:
            found.append(source.joinpath(paths.CERTS_DIR, *parts[index + 1:]))
            break
    found.append(Path(recorded))
    return [path for path in found if _inside(source, path)]


def _outside(source: Path, name: str, recorded: str) -> bool:
    """A path recorded but not found anywhere under the store: it is never read."""
    return bool(recorded) and not resolve(source, name, recorded)


def _read_first(source: Path, candidates: list[Path], what: str, outside: str = "") -> bytes:
    """The first candidate that exists; one that is a link, not a regular file or too big is one line.
    ``outside``: the recorded path, when it lies outside the store and so was never a candidate."""
    for path in candidates:
        try:
            return _read(source, path, PEM_LIMIT)
        except FileNotFoundError:
            continue
    tried = ", ".join(str(p) for p in dict.fromkeys(candidates)) or "nowhere recorded"
    if outside:
        tried += f"; {outside} is outside {source}, so it is never read"
    raise _Missing(f"{what} is missing (looked at {tried})")


# -- planning one machine ------------------------------------------------------------------------
def plan(source: Path, name: str, target: str) -> _Plan:
    config = read_config(source, name)
    version = int(config.get("ConfigVersion", 0))
    dm_driver = _text(config, "DriverName", "")
    driver: dict[str, Any] = config["Driver"]
    machine_dir = source / paths.MACHINES_DIR / name
    auth = auth_paths(config)
    engine = _engine_settings(config)

    files: dict[str, tuple[bytes, int]] = {}
    # The machine's own copies are what its engine was provisioned with; the AuthOptions paths come next.
    for filename, key, what, mode in ((paths.CA_CERT, "CaCertPath", "the CA certificate", 0o644),
                                      (paths.CLIENT_CERT, "ClientCertPath", "the client certificate", 0o644),
                                      (paths.CLIENT_KEY, "ClientKeyPath", "the client key", 0o600)):
        candidates = [machine_dir / filename, *resolve(source, name, auth[key])]
        outside = auth[key] if _outside(source, name, auth[key]) else ""
        files[filename] = (_read_first(source, candidates, what, outside), mode)
    _check_client_pair(files)
    server_cert = _server_cert(source, name, machine_dir, auth, files)

    notes: list[str] = []
    ssh_key = _ssh_key(source, name, driver, machine_dir, notes) if dm_driver != "none" else None
    try:
        mapped, data, options = _map_driver(dm_driver, driver, ssh_key is not None, name)
    except MigrationError as exc:
        if ssh_key is None and notes:  # the key it names lies outside the store
            raise MigrationError(f"{exc.message}; {notes[-1]}") from exc
        raise
    if ssh_key is not None and mapped != "none":
        private, public = ssh_key
        files[paths.SSH_KEY] = (private, 0o600)
        files[paths.SSH_PUBKEY] = (public, 0o644)
        notes.append(f"its SSH host key will be pinned at the first SSH contact (provision ssh {target})")
    if dm_driver not in MAPPED:
        kept = "its engine URL and SSH access are kept" if mapped == "generic" else "its engine URL is kept"
        notes.append(f"the {dm_driver} driver is not available here: start, stop, kill and removing the "
                     f"machine itself are lost ({kept}; rm only forgets it)")
    if dm_driver == "virtualbox":
        notes.append(_virtualbox_share_note(driver))
    url = _engine_url(dm_driver, driver)
    if not url:
        raise MigrationError("no engine address is recorded (the machine may never have been started)")
    record = MachineRecord(
        name=target, driver=mapped, driver_options=options, driver_data=data, engine=engine, url=url,
        server_cert=server_cert,
        facts={MIGRATED_FROM: {"name": name, "driver": dm_driver, "config_version": version},
               FOREIGN_CA: "Docker Machine"})
    return _Plan(record, files, notes)


def _check_client_pair(files: dict[str, tuple[bytes, int]]) -> None:
    """The CA, client certificate and key must load and belong together: a wrong file is one clear line."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        ca = x509.load_pem_x509_certificate(files[paths.CA_CERT][0])
        cert = x509.load_pem_x509_certificate(files[paths.CLIENT_CERT][0])
        key = serialization.load_pem_private_key(files[paths.CLIENT_KEY][0], password=None)
    except (ValueError, TypeError) as exc:  # TypeError: a key that wants a passphrase
        raise MigrationError(f"a certificate or key is not valid PEM ({exc})") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != cert.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise MigrationError("the client key does not match the client certificate")
    if cert.issuer != ca.subject:
        raise MigrationError("the client certificate was not issued by the CA certificate")


def _server_cert(source: Path, name: str, machine_dir: Path, auth: dict[str, str],
                 files: dict[str, tuple[bytes, int]]) -> CertInfo | None:
    """The engine's certificate, when the store has it: kept for ``inspect`` and the expiry warning."""
    from .tls import describe_certificate

    recorded = auth.get("ServerCertPath") or ""
    try:
        pem = _read_first(source, [machine_dir / paths.SERVER_CERT, *resolve(source, name, recorded)], "server.pem")
        facts = describe_certificate(pem)
    except (MigrationError, ValueError):
        return None  # a `none` machine's engine was never Docker Machine's to provision
    files[paths.SERVER_CERT] = (pem, 0o644)
    return CertInfo(str(facts["not_before"]), str(facts["not_after"]), tuple(facts["sans"]),  # type: ignore[arg-type]
                    str(facts["serial"]))


def _ssh_key(source: Path, name: str, driver: dict[str, Any], machine_dir: Path,
             notes: list[str]) -> tuple[bytes, bytes] | None:
    """The machine's private key and its public line, or None when the store has none.

    An ``SSHKeyPath`` outside the store (any private key on this computer) is never read: the machine's
    own ``id_rsa`` is taken instead, and its line says so."""
    recorded = _text(driver, "SSHKeyPath", "Driver.")
    candidates = [*resolve(source, name, recorded), machine_dir / DM_SSH_KEY]
    outside = _outside(source, name, recorded)
    if outside:
        notes.append(f"its SSHKeyPath {recorded} is outside {source}, so it was not read")
    try:
        private = _read_first(source, candidates, "the SSH key")
    except _Missing:  # a link, a FIFO or a huge file is said, not skipped over
        return None
    if outside:
        notes[-1] += f"; {machine_dir / DM_SSH_KEY} is its key here"
    from .sshkeys import public_line

    try:
        return private, (public_line(private, f"docker-machine-{name}") + "\n").encode()
    except (ValueError, TypeError) as exc:
        raise MigrationError(f"the SSH key is not a private key provision can read ({exc})") from exc


# The engine address Docker Machine recorded ends up in a URL, an ssh command line and a certificate check:
# it passes provision.addresses like every other address.


def _host(driver: dict[str, Any], key: str) -> str:
    host = _text(driver, key, "Driver.")
    if host:
        try:
            addresses.check_host(host)
        except addresses.BadAddress as exc:
            raise MigrationError(f'config.json is malformed: Driver.{key} "{host}" is not a host name or IP '
                                 "address") from exc
    return host


def _ip(driver: dict[str, Any]) -> str:
    return _host(driver, "IPAddress")


def _none_url(driver: dict[str, Any]) -> str | None:
    """The ``none`` driver's URL, checked as strictly as an address: ``tcp://HOST:PORT`` and nothing more."""
    url = _text(driver, "URL", "Driver.")
    if not url:
        return None
    try:
        scheme = addresses.split_url(url)[0]
    except addresses.BadAddress as exc:
        raise MigrationError(f'config.json is malformed: Driver.URL "{url}" is not tcp://HOST:PORT '
                             f"({exc.message})") from exc
    if scheme != "tcp":
        raise MigrationError(f'config.json is malformed: Driver.URL "{url}" is not tcp://HOST:PORT')
    return url


def _virtualbox_share_note(driver: dict[str, Any]) -> str:
    """What becomes of a VirtualBox machine's shared folder: the folder is VirtualBox's, and the VM stays a
    VirtualBox VM that provision reaches as a generic machine, so nothing of it can be carried over."""
    if _flag(driver, "NoShare", "Driver."):
        return "its shared folders were off (--virtualbox-no-share); there is nothing to carry over"
    share = _text(driver, "ShareFolder", "Driver.") or "the home directory (/home as hosthome, /Users on macOS)"
    return (f"its VirtualBox shared folder ({share}) stays with the VirtualBox VM and was not carried over; "
            "a local machine made by provision shares folders with --local-share-folder HOST_DIR[:GUEST_DIR]")


def _engine_url(dm_driver: str, driver: dict[str, Any]) -> str | None:
    if dm_driver == "none":
        return _none_url(driver)
    if dm_driver == "amazonec2" and (_flag(driver, "PrivateIPOnly", "Driver.") or _flag(driver, "UsePrivateIP", "Driver.")):
        host = _host(driver, "PrivateIPAddress")
    else:
        host = _ip(driver)
    if not host:
        return None
    port = (_number(driver, "EnginePort", "Driver.", addresses.DEFAULT_ENGINE_PORT) if dm_driver == "generic"
            else addresses.DEFAULT_ENGINE_PORT)
    try:
        return addresses.tcp_url(host, port)
    except addresses.BadAddress as exc:
        raise MigrationError(f"config.json is malformed: Driver.EnginePort {exc.message}") from exc


def _ssh_user(d: dict[str, Any], default: str) -> str:
    user = _text(d, "SSHUser", "Driver.") or default
    try:
        return addresses.check_user(user)
    except addresses.BadAddress as exc:
        raise MigrationError(f"config.json is malformed: Driver.SSHUser {exc.message}") from exc


def _map_driver(dm_driver: str, d: dict[str, Any], has_key: bool,
                name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Provision's driver, its ``driver_data`` and ``driver_options`` for a Docker Machine driver's JSON."""
    at = "Driver."
    ssh_port = _number(d, "SSHPort", at, 22)
    if dm_driver == "none":
        url = _engine_url(dm_driver, d)
        return "none", {"url": url}, {"url": url}
    if not has_key and dm_driver in MAPPED:
        raise MigrationError("its SSH key is missing (no SSHKeyPath file and no id_rsa in the machine directory)")
    if dm_driver == "amazonec2":
        if not _text(d, "InstanceId", at):
            raise MigrationError("no InstanceId is recorded")
        group = _text(d, "SecurityGroupId", at)
        groups = [*_texts(d, "SecurityGroupIds", at), *([group] if group else [])]
        use_private = _flag(d, "PrivateIPOnly", at) or _flag(d, "UsePrivateIP", at)
        data = {
            "region": _text(d, "Region", at) or None, "endpoint": _text(d, "Endpoint", at) or None,
            "zone": _text(d, "Zone", at) or None, "instance_id": _text(d, "InstanceId", at),
            "instance_type": _text(d, "InstanceType", at) or None, "image_id": _text(d, "AMI", at) or None,
            "vpc_id": _text(d, "VpcId", at) or None, "subnet_id": _text(d, "SubnetId", at) or None,
            "key_pair_name": _text(d, "KeyName", at) or None,
            # A key pair the user named (ExistingKey) is theirs; one Docker Machine made is the machine's.
            "key_pair_owned": bool(_text(d, "KeyName", at)) and not _flag(d, "ExistingKey", at),
            "public_ip": _ip(d) or None, "private_ip": _host(d, "PrivateIPAddress") or None,
            "use_private": use_private,
            "ssh_user": _ssh_user(d, "ubuntu"), "ssh_port": ssh_port,
            "docker_machine_security_groups": sorted(set(groups) | set(_texts(d, "SecurityGroupNames", at))),
            KEEP_SHARED: True,
        }
        return "amazonec2", data, {"amazonec2_region": data["region"]}
    if dm_driver == "google":
        project, zone = _text(d, "Project", at), _text(d, "Zone", at)
        if not project or not zone:
            raise MigrationError("no Project or Zone is recorded")
        instance = _text(d, "MachineName", at) or name
        internal = _flag(d, "UseInternalIP", at) or _flag(d, "UseInternalIPOnly", at)
        data = {
            "project": project, "zone": zone, "instance": instance,
            "ssh_user": _ssh_user(d, "docker-user"), "use_internal_ip": internal,
            ("internal_ip" if internal else "external_ip"): _ip(d) or None,
            # Docker Machine's one firewall rule and tag serve all its machines: recorded, never deleted.
            "firewall": "docker-machines", "network_tag": "docker-machine", KEEP_SHARED: True,
        }
        if not _flag(d, "UseExisting", at):
            data["boot_disk"] = f"{instance}-disk"  # Docker Machine made it with the instance
        return "google", data, {"google_project": project, "google_zone": zone}
    if dm_driver == "digitalocean":
        droplet = _resource_id(d, "DropletID", at)
        if not droplet:
            raise MigrationError("no DropletID is recorded")
        key_id = _resource_id(d, "SSHKeyID", at)
        fingerprint = _text(d, "SSHKeyFingerprint", at)
        data = {
            "droplet_id": droplet, "droplet_name": _text(d, "DropletName", at) or name,
            "region": _text(d, "Region", at) or None, "size": _text(d, "Size", at) or None,
            "image": _text(d, "Image", at) or None,
            # The key Docker Machine added for this machine alone is the machine's; one the user named by
            # fingerprint is the user's and stays.
            "key_id": key_id or None, "key_fingerprint": fingerprint or None,
            "key_owned": bool(key_id) and not fingerprint,
            "public_ip": _ip(d) or None, "private_ip": _host(d, "PrivateIPAddress") or None,
            "ssh_user": _ssh_user(d, "root"), "ssh_port": ssh_port, KEEP_SHARED: True,
        }
        return "digitalocean", data, {"digitalocean_region": data["region"]}
    if dm_driver != "generic" and not (has_key and _ip(d)):
        url = _engine_url(dm_driver, d)
        return "none", {"url": url}, {"url": url}
    # generic, and any other driver with an address and a key: SSH and the engine, lifecycle left alone.
    data = {"ip": _ip(d), "ssh_user": _ssh_user(d, _default_user(dm_driver)), "ssh_port": ssh_port,
            "engine_port": (_number(d, "EnginePort", at, addresses.DEFAULT_ENGINE_PORT) if dm_driver == "generic"
                            else addresses.DEFAULT_ENGINE_PORT),
            "ssh_key_file": paths.SSH_KEY}
    if dm_driver == "virtualbox":
        data["ssh_host"] = "127.0.0.1"  # VirtualBox forwards SSH from the host's loopback (SSHPort)
    options = {"generic_ip_address": data["ip"], "generic_ssh_user": data["ssh_user"],
               "generic_ssh_port": data["ssh_port"], "generic_engine_port": data["engine_port"]}
    return "generic", data, options


def _default_user(dm_driver: str) -> str:
    return {"virtualbox": "docker", "hyperv": "docker", "vmwarefusion": "docker",
            "vmwarevsphere": "docker", "digitalocean": "root"}.get(dm_driver, "root")


def _engine_settings(config: dict[str, Any]) -> EngineSettings:
    options = _object(config, "HostOptions", "")
    engine = _object(options, "EngineOptions", "HostOptions.")
    auth = _object(options, "AuthOptions", "HostOptions.")
    at, auth_at = "HostOptions.EngineOptions.", "HostOptions.AuthOptions."
    return EngineSettings(
        install_url=_text(engine, "InstallURL", at) or "distro", opts=_texts(engine, "ArbitraryFlags", at),
        labels=_texts(engine, "Labels", at), insecure_registries=_texts(engine, "InsecureRegistry", at),
        registry_mirrors=_texts(engine, "RegistryMirror", at),
        storage_driver=_text(engine, "StorageDriver", at) or None, env=_texts(engine, "Env", at),
        tls_san=_texts(auth, "ServerCertSANs", auth_at))


# -- writing --------------------------------------------------------------------------------------
def parse_renames(rules: list[str]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for rule in rules:
        old, sep, new = rule.partition("=")
        if not sep or not old or not new:
            raise UsageError(f'--rename takes OLD=NEW, not "{rule}"')
        renames[old] = validate_machine_name(new)
    return renames


def migrate(machines: Any, source: Path, names: list[str] | None = None,
            renames: dict[str, str] | None = None) -> list[Outcome]:
    """Migrate the named machines (all when none are named). Never raises for one machine: each gets an
    ``Outcome``; only an unreadable store raises."""
    renames = renames or {}
    if source.resolve() == machines.store.root.resolve():
        raise UsageError(f"{source} is provision's own store too; give provision another one "
                         "(-s DIR or PROVISION_STORAGE_PATH) to migrate into")
    available = list_machines(source)
    outcomes: list[Outcome] = []
    for name in names or available:
        target = renames.get(name, name)
        try:
            if not name.isprintable():  # a directory name with a newline must not become two lines
                name = name.encode("unicode_escape").decode()
                raise MigrationError("its directory's name is not a machine name")
            if name not in available:
                raise MigrationError(f"no such machine in {source / paths.MACHINES_DIR}")
            if (source / paths.MACHINES_DIR / name).is_symlink():
                raise MigrationError(f"{source / paths.MACHINES_DIR / name} is a symbolic link; migrate reads "
                                     "nothing through a link (copy the directory in its place)")
            validate_machine_name(target)
            if machines.store.exists(target):
                raise MachineExists(target)
            planned = plan(source, name, target)
            _write(machines, planned)
            outcomes.append(Outcome(name, target, driver=planned.record.driver, notes=tuple(planned.notes)))
        except MachineExists:
            outcomes.append(Outcome(name, None, f'Docker machine "{target}" already exists here; skipped '
                                                f"(--rename {name}=NEW migrates it under another name)"))
        except ProvisionError as exc:
            outcomes.append(Outcome(name, None, exc.message))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # a check this module lacks
            outcomes.append(Outcome(name, None, f"its config.json could not be read ({type(exc).__name__}: {exc})"))
    return outcomes


def _write(machines: Any, planned: _Plan) -> None:
    """Claim the name, write the files and the record, then the docker context; undo it all on failure."""
    from .names import context_name

    record = planned.record
    store = machines.store
    store.claim(record.evolve(lifecycle=Lifecycle.CREATING))
    context_written = False
    try:
        with store.lock(record.name):
            for filename, (content, mode) in planned.files.items():
                store.write_file(record.name, filename, content, mode)
            ready = record.evolve(lifecycle=Lifecycle.READY)
            store.save(ready)
            context_written = True
            machines.write_context(ready)
    except BaseException:
        if context_written:
            machines.docker.remove_context(context_name(record.name), record.name)
        store.delete(record.name)
        raise


__all__ = ["KEEP_SHARED", "Outcome", "default_source", "migrate", "parse_renames", "plan"]
