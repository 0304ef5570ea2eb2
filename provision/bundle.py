"""Sharing a machine with a teammate (DESIGN §9): ``export`` / ``import`` bundles and docker's own
context export.

A bundle carries the engine URL, the CA certificate (which the engine's server certificate comes from)
and a client certificate issued for that export (never the owner's client key, never the CA key, never a
cloud credential), and with SSH the machine's key, endpoint and pinned host key. A revocable export's
client certificate is signed by an issuing certificate made for it alone (``provision.trust``), which the
bundle carries too (payload format 2) so the import can check the pair; the engine trusts that issuer
until the export is revoked. An engine provision cannot reconfigure (the ``none`` driver) gets a
certificate from the store's CA itself (format 1, as before revocation), which cannot be revoked.
The bundle is encrypted with a passphrase by the ``cryptography`` package: scrypt derives the key,
AES-256-GCM encrypts and authenticates the payload, and the header (format version, scrypt parameters,
salt, nonce) is authenticated with it.

File layout (all fixed sizes, 64 bytes of header then the ciphertext with its 16-byte tag)::

    magic "PROVISION-BUNDLE" | version | log2(N) | r | p | salt (16) | passphrase check (16) | nonce (12)

The passphrase check is 16 more bytes of the same scrypt output: it tells a wrong passphrase from a
damaged payload without decrypting anything (a changed salt or scrypt parameter looks like a wrong
passphrase, and the message says so). Nothing here prints or exits; the CLI does.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision.driver import MachineState

from . import addresses, filerules, paths, trust
from .errors import HostNotRunning, MachineExists, NotSupported, ProvisionError, UsageError
from .fsutil import atomic_write, read_regular
from .names import context_name, validate_machine_name
from .record import FOREIGN_CA, Lifecycle, MachineRecord, now_iso

if TYPE_CHECKING:
    from .machines import Machines
    from .tls import IssuedCert

MAGIC = b"PROVISION-BUNDLE"
VERSION = 1
_HEADER = struct.Struct(">16sBBBB16s16s12s")
HEADER_SIZE = _HEADER.size  # 64
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1  # 32 MiB of memory, about 0.1 s here
MAX_LOG2_N, MAX_R, MAX_P = 20, 16, 4
MAX_SCRYPT_MEMORY = 256 << 20  # scrypt takes 128·r·N bytes: a crafted header must not make import use gigabytes
PAYLOAD_FORMAT = 2  # 2 adds "issuer"; a bundle without one is written as format 1, which older provision reads
PAYLOAD_FORMATS = (1, 2)
MIN_PASSPHRASE = 8
MAX_LABEL = 64
MAX_BUNDLE = 1 << 20  # a bundle is a few KiB; anything this large is something else
DRIVER = "imported"
BUNDLE_SUFFIX = ".provision"
DOCKER_CONTEXT_SUFFIX = ".dockercontext"


class BundleError(ProvisionError):
    """A bundle that cannot be read: wrong passphrase, damaged, or not a bundle at all."""


@dataclass(frozen=True)
class SSHAccess:
    host: str
    port: int
    user: str
    key: str  # the machine's private key (OpenSSH PEM)
    host_key: str  # the pinned host key line ("ssh-ed25519 AAAA...")


@dataclass(frozen=True)
class Bundle:
    """What a teammate receives, decrypted."""

    machine: str
    url: str
    label: str
    exported_at: str
    serial: str
    ca: str
    cert: str
    key: str
    ssh: SSHAccess | None = None
    issuer: str | None = None  # the export's own issuing certificate (a revocable export)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": PAYLOAD_FORMAT if self.issuer else 1, "machine": self.machine,
                                "url": self.url, "for": self.label, "exported_at": self.exported_at,
                                "serial": self.serial, "ca": self.ca, "cert": self.cert, "key": self.key}
        if self.issuer:
            data["issuer"] = self.issuer
        if self.ssh is not None:
            data["ssh"] = {"host": self.ssh.host, "port": self.ssh.port, "user": self.ssh.user,
                           "key": self.ssh.key, "host_key": self.ssh.host_key}
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Bundle:
        bad = BundleError(f"{source} decrypted but its contents are not a provision bundle this version reads")
        if not isinstance(data, dict) or data.get("format") not in PAYLOAD_FORMATS:
            raise bad
        try:
            ssh = data.get("ssh")
            issuer = _text(data["issuer"]) if data["format"] >= 2 else None
            return cls(
                machine=_text(data["machine"]), url=_text(data["url"]), label=_text(data["for"]),
                exported_at=_text(data["exported_at"]), serial=_text(data["serial"]), ca=_text(data["ca"]),
                cert=_text(data["cert"]), key=_text(data["key"]),
                ssh=None if ssh is None else SSHAccess(_text(ssh["host"]), int(ssh["port"]), _text(ssh["user"]),
                                                       _text(ssh["key"]), _text(ssh["host_key"])),
                issuer=issuer)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad from exc


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


@dataclass(frozen=True)
class ExportResult:
    path: Path
    label: str
    serial: str
    not_after: str
    with_ssh: bool
    warnings: list[str] = field(default_factory=list)
    revocable: bool = True


@dataclass(frozen=True)
class RevokeResult:
    machine: str
    label: str
    serial: str
    seconds: float  # from the machine's lock taken to the engine answering the owner again
    warnings: list[str] = field(default_factory=list)


# -- encryption ------------------------------------------------------------------------------------

def _derive(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    out = Scrypt(salt=salt, length=48, n=1 << log2_n, r=r, p=p).derive(passphrase)
    return out[:32], out[32:]


def encrypt(payload: bytes, passphrase: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    key, check = _derive(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    header = _HEADER.pack(MAGIC, VERSION, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, salt, check, nonce)
    return header + AESGCM(key).encrypt(nonce, payload, header)


def decrypt(blob: bytes, passphrase: bytes, source: str = "the bundle") -> bytes:
    import hmac

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < len(MAGIC) or blob[:len(MAGIC)] != MAGIC:
        raise BundleError(f"{source} is not a provision bundle")
    if len(blob) < HEADER_SIZE + 16:
        raise BundleError(f"{source} is truncated")
    header = blob[:HEADER_SIZE]
    _, version, log2_n, r, p, salt, check, nonce = _HEADER.unpack(header)
    if version != VERSION:
        raise BundleError(f"{source} is a version {version} bundle; this provision reads version {VERSION}"
                          + ("; upgrade provision" if version > VERSION else ""))
    if not (10 <= log2_n <= MAX_LOG2_N and 1 <= r <= MAX_R and 1 <= p <= MAX_P) \
            or 128 * r * (1 << log2_n) > MAX_SCRYPT_MEMORY:
        raise BundleError(f"{source} is damaged (its key-derivation parameters are out of range)")
    key, expected = _derive(passphrase, salt, log2_n, r, p)
    if not hmac.compare_digest(check, expected):
        raise BundleError(f"wrong passphrase for {source} (or its header was changed)")
    try:
        return AESGCM(key).decrypt(nonce, blob[HEADER_SIZE:], header)
    except InvalidTag as exc:
        raise BundleError(f"{source} is damaged: truncated or changed after export") from exc


# -- export ----------------------------------------------------------------------------------------

def default_label(name: str) -> str:
    return f"{name} export {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def validate_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > MAX_LABEL or not label.isprintable():
        raise UsageError(f"--for wants a label of 1 to {MAX_LABEL} printable characters, not {label!r}")
    return label


def check_passphrase(passphrase: bytes) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(f"the passphrase is too short: use at least {MIN_PASSPHRASE} characters")
    return passphrase


class Sharing:
    """Export and import over a ``Machines`` service (its store, CA and docker config)."""

    def __init__(self, service: Machines) -> None:
        self.service = service
        self.store = service.store

    def _check_output(self, output: Path) -> None:
        if output.exists():
            raise ProvisionError(f"{output} already exists; remove it or choose another file with -o")
        if not output.parent.is_dir():
            raise ProvisionError(f"cannot write {output}: {output.parent} is not a directory")

    def _exportable(self, name: str, label: str | None) -> tuple[MachineRecord, str, str, bool]:
        """The machine, its engine URL, the export's label, and whether the export will be revocable:
        everything that can refuse is checked before a passphrase is asked or a key made."""
        record = self.service.get(name)
        if record.lifecycle != Lifecycle.READY:
            raise ProvisionError(f'machine "{record.name}" is not ready ({record.lifecycle}); see `provision ls`')
        if record.engine.over_ssh:
            raise NotSupported(f'machine "{record.name}" is reached over SSH (--engine-endpoint ssh): there is no '
                               "TLS endpoint to share; share its SSH access instead")
        url = self.service.connection(record).url  # "Host is not running" without a URL
        if record.facts.get(FOREIGN_CA):
            raise NotSupported(f'machine "{record.name}" still trusts {record.facts[FOREIGN_CA]}\'s CA, whose key this '
                               f"store does not hold; `provision regenerate-certs --client-certs {record.name}` "
                               "moves it to provision's CA")
        machine_ca = self.store.machine_dir(record.name) / paths.CA_CERT
        store_ca = self.service.ca.ca_cert_path
        if not store_ca.exists() or not machine_ca.exists() or machine_ca.read_bytes() != store_ca.read_bytes():
            raise NotSupported(
                f'machine "{record.name}" trusts a CA whose key this store does not hold (an imported or '
                "migrated machine): only its owner can issue certificates for it")
        label = validate_label(label) if label else _unused_default_label(record)
        _refuse_live_label(record, label)
        driver = self.service.driver_for(record)
        revocable = driver.capabilities.provisions_engine and driver.capabilities.ssh
        if revocable and driver.state() != MachineState.RUNNING:
            raise HostNotRunning(record.name)  # the engine must learn to trust the export now
        return record, url, label, revocable

    def _issue(self, label: str, kind: str, with_ssh: bool,
               revocable: bool) -> tuple[IssuedCert, str | None, dict[str, Any]]:
        """The export's client certificate, its issuing certificate (None: signed by the store's CA, not
        revocable) and its record entry."""
        from .tls import issue_export

        issuer: str | None = None
        if revocable:
            made = issue_export(label)
            issued, issuer = made.client, made.issuer_pem.decode()
        else:
            issued = self.service.ca.issue_client_for(label)
        entry = {"for": label, "kind": kind, "serial": format(issued.serial, "x"),
                 "issued_at": now_iso(), "not_after": issued.not_after.replace(microsecond=0).isoformat(),
                 "with_ssh": with_ssh}
        if issuer:
            entry[trust.ISSUER] = issuer
        return issued, issuer, entry

    def _export(self, record: MachineRecord, label: str, kind: str, with_ssh: bool, revocable: bool,
                write: Callable[[IssuedCert, str | None, dict[str, Any]], None]) -> dict[str, Any]:
        """Issue, make the engine trust it (a revocable export), ``write`` the file, then record it, all under
        the machine's lock: a revoke, a regenerate-certs or another export in between would otherwise
        write the engine's CA file from a list that misses this one."""
        with self.store.edit(record.name) as fresh:
            _refuse_live_label(fresh, label)
            issued, issuer, entry = self._issue(label, kind, with_ssh, revocable)
            if issuer:
                fresh = self.service.apply_client_trust(
                    fresh, (*fresh.exports, entry), f'Making the engine of {fresh.name} trust the export for "{label}"')
            write(issued, issuer, entry)
            self.store.save(fresh.evolve(exports=(*fresh.exports, entry)))
        return entry

    def export_bundle(self, name: str, output: Path | None, passphrase: Callable[[], bytes], *,
                      label: str | None = None, with_ssh: bool = False) -> ExportResult:
        """``passphrase`` is asked for once the machine, the output file and SSH access are found good."""
        record, url, label, revocable = self._exportable(name, label)
        output = output or Path(record.name + BUNDLE_SUFFIX)
        self._check_output(output)
        ssh = self._ssh_access(record) if with_ssh else None
        secret = check_passphrase(passphrase())

        def write(issued: IssuedCert, issuer: str | None, entry: dict[str, Any]) -> None:
            bundle = Bundle(machine=record.name, url=url, label=label, exported_at=entry["issued_at"],
                            serial=entry["serial"], ca=self.service.ca.ca_cert_path.read_text(),
                            cert=issued.cert_pem.decode(), key=issued.key_pem.decode(), ssh=ssh, issuer=issuer)
            atomic_write(output, encrypt(json.dumps(bundle.to_dict()).encode(), secret), 0o600)

        entry = self._export(record, label, "bundle", with_ssh, revocable, write)
        return self._result(output, entry, url, revocable)

    def _result(self, output: Path, entry: dict[str, Any], url: str, revocable: bool) -> ExportResult:
        warnings = _url_warnings(url)
        if not revocable:
            warnings.append(f"the engine's trust is not provision's to change, so this export cannot be revoked: "
                            f"the engine accepts its certificate until {entry['not_after']}")
        return ExportResult(output, entry["for"], entry["serial"], entry["not_after"], entry["with_ssh"], warnings,
                            revocable)

    def _ssh_access(self, record: MachineRecord) -> SSHAccess:
        driver = self.service.driver_for(record)
        if not driver.capabilities.ssh:
            raise NotSupported(f'the {record.driver} driver offers no SSH access to "{record.name}"; '
                               "export it without --with-ssh")
        if not record.host_key:
            raise ProvisionError(f'machine "{record.name}" has no pinned host key yet; run `provision provision '
                                 f'{record.name}` to contact it first')
        endpoint = driver.ssh_endpoint()
        try:
            key = endpoint.key_path.read_text()
        except OSError as exc:
            raise ProvisionError(f'cannot read the SSH key of "{record.name}" ({endpoint.key_path}): '
                                 f"{exc.strerror}") from exc
        return SSHAccess(endpoint.host, endpoint.port, endpoint.user, key, record.host_key)

    def export_docker_context(self, name: str, output: Path | None, *, label: str | None = None) -> ExportResult:
        """docker's own ``docker context export`` format: a tar holding meta.json and tls/docker/*.pem.

        Unencrypted, as docker's format is: the file holds a client key."""
        record, url, label, revocable = self._exportable(name, label)
        output = output or Path(record.name + DOCKER_CONTEXT_SUFFIX)
        self._check_output(output)
        meta = {"Name": context_name(record.name),
                "Metadata": {"Description": f"provision machine {record.name}, shared for {label}"},
                "Endpoints": {"docker": {"Host": url, "SkipTLSVerify": False}}}

        def write(issued: IssuedCert, issuer: str | None, entry: dict[str, Any]) -> None:
            files = [("meta.json", json.dumps(meta).encode(), 0o644),
                     ("tls/docker/ca.pem", self.service.ca.ca_cert_path.read_bytes(), 0o600),
                     ("tls/docker/cert.pem", issued.cert_pem, 0o600),
                     ("tls/docker/key.pem", issued.key_pem, 0o600)]
            atomic_write(output, _tar(files), 0o600)

        entry = self._export(record, label, "docker-context", False, revocable, write)
        return self._result(output, entry, url, revocable)

    # -- revoke ------------------------------------------------------------------------------------
    def revoke(self, name: str, wanted: str) -> RevokeResult:
        """Make the engine refuse one export's certificate from now on: its issuing certificate leaves the
        engine's client CA file and dockerd restarts, containers kept. Nobody else is affected."""
        import time

        record = self.service.get(name)
        started = time.monotonic()
        with self.store.edit(record.name) as record:
            index = _revocable_export(record, wanted)
            entry = {**record.exports[index], trust.REVOKED_AT: now_iso()}
            exports = (*record.exports[:index], entry, *record.exports[index + 1:])
            record = self.service.apply_client_trust(record, exports, f'Revoking the export for "{entry["for"]}" '
                                                     f'(serial {entry["serial"]}) of {record.name}')
            self.store.save(record.evolve(exports=exports))
        warnings = []
        if entry.get("with_ssh"):
            warnings.append(f'the export for "{entry["for"]}" carried the SSH key of {record.name}: revoking its '
                            "certificate does not take that back (SSH reaches the engine through its socket); only "
                            "a new SSH key on the machine, yours too, ends it")
        return RevokeResult(record.name, str(entry["for"]), str(entry["serial"]), time.monotonic() - started,
                            warnings)

    # -- import ------------------------------------------------------------------------------------
    def read(self, path: Path, passphrase: bytes) -> Bundle:
        try:
            blob = read_regular(str(path), MAX_BUNDLE)
        except OSError as exc:
            raise ProvisionError(f"cannot read {path}: {exc.strerror}") from exc
        payload = decrypt(blob, passphrase, str(path))
        try:
            data = filerules.loads(payload)
        except ValueError as exc:
            raise BundleError(f"{path} decrypted but does not hold a provision bundle") from exc
        bundle = Bundle.from_dict(data, str(path))
        _verify(bundle, str(path))
        return bundle

    def import_bundle(self, bundle: Bundle, name: str | None = None) -> MachineRecord:
        """A new machine in this store (driver ``imported``): record, certificates, SSH files, context.

        Everything is checked before anything is written; a failure part way removes what was written."""
        name = validate_machine_name(name or bundle.machine)
        if self.store.exists(name):
            clash = MachineExists(name)
            clash.hint = "import it under another name with --name"
            raise clash
        context = context_name(name)
        if self.service.docker.read_context(context) is not None and self.service.docker.owner(context) != name:
            raise ProvisionError(f'docker context "{context}" already exists and was not created by provision; '
                                 "import under another name with --name")
        from . import registry

        origin = {"machine": bundle.machine, "for": bundle.label, "exported_at": bundle.exported_at,
                  "serial": bundle.serial, trust.REVOCABLE: bundle.issuer is not None}
        ssh = None if bundle.ssh is None else {"host": bundle.ssh.host, "port": bundle.ssh.port,
                                               "user": bundle.ssh.user}
        driver_cls: Any = registry.load(DRIVER)  # the imported driver, through the registry's door
        data: dict[str, Any] = driver_cls.data_for_bundle(bundle.url, origin, ssh)
        record = MachineRecord(name=name, driver=DRIVER, lifecycle=Lifecycle.CREATING, driver_data=data,
                               url=bundle.url, host_key=bundle.ssh.host_key if bundle.ssh else None)
        self.store.claim(record)  # refuses a name taken since the check above
        try:
            with self.store.lock(name):
                self.store.write_file(name, paths.CA_CERT, bundle.ca, 0o644)
                self.store.write_file(name, paths.CLIENT_CERT, bundle.cert, 0o644)
                self.store.write_file(name, paths.CLIENT_KEY, bundle.key, 0o600)
                if bundle.ssh is not None:
                    from .ssh import known_hosts_line

                    self.store.write_file(name, paths.SSH_KEY, bundle.ssh.key, 0o600)
                    self.store.write_file(name, paths.KNOWN_HOSTS, known_hosts_line(
                        bundle.ssh.host, bundle.ssh.port, bundle.ssh.host_key) + "\n", 0o600)
                record = record.evolve(lifecycle=Lifecycle.READY)
                self.service.write_context(record)
                self.store.save(record)
        except BaseException:
            self.service.docker.remove_context(context, name)
            self.store.delete(name)
            raise
        return record


def _unused_default_label(record: MachineRecord) -> str:
    """``NAME export DATE``, numbered when two exports come within one second (labels name one export)."""
    base = default_label(record.name)
    taken = {e.get("for") for e in record.exports}
    label, n = base, 1
    while label in taken:
        n += 1
        label = f"{base} #{n}"
    return label


def _refuse_live_label(record: MachineRecord, label: str) -> None:
    """One live export per label, so ``--revoke LABEL`` names one certificate."""
    if any(e.get("for") == label and trust.state(e) == trust.LIVE for e in record.exports):
        raise ProvisionError(f'machine "{record.name}" already has a live export for "{label}"; choose another '
                             f"--for, or revoke that one first (provision export --revoke {shlex.quote(label)} "
                             f"{record.name})")


def _revocable_export(record: MachineRecord, wanted: str) -> int:
    """The index of the one live, revocable export named by label (else serial), or a one-line refusal."""
    matches = trust.find(record.exports, wanted)
    if not matches:
        raise ProvisionError(f'machine "{record.name}" has no export for "{wanted}"; `provision inspect '
                             f'{record.name}` lists its exports')
    live = [i for i in matches if trust.state(record.exports[i]) == trust.LIVE]
    if len(live) > 1:
        serials = ", ".join(str(record.exports[i]["serial"]) for i in live)
        raise UsageError(f'machine "{record.name}" has {len(live)} live exports for "{wanted}"; revoke one by its '
                         f"serial: {serials}")
    if not live:
        last = record.exports[matches[-1]]
        if trust.state(last) == trust.REVOKED:
            raise ProvisionError(f'the export for "{wanted}" of machine "{record.name}" was already revoked on '
                                 f"{last[trust.REVOKED_AT]}")
        raise ProvisionError(f'the export for "{wanted}" of machine "{record.name}" expired on {last["not_after"]}; '
                             "the engine refuses it already")
    entry = record.exports[live[0]]
    if not trust.revocable(entry):
        raise ProvisionError(f'the export for "{wanted}" of machine "{record.name}" cannot be revoked: its '
                             "certificate was signed by the store's CA itself (made before revocation existed, or "
                             f"for an engine provision does not configure), which the engine trusts for you too; "
                             f"it expires on {entry['not_after']}")
    return live[0]


def _verify(bundle: Bundle, source: str) -> None:
    """The certificates hang together and the URL is an engine URL, before anything is written."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    from .names import is_machine_name

    damaged = BundleError(f"{source} decrypted but its certificates do not fit together")
    try:
        ca = x509.load_pem_x509_certificate(bundle.ca.encode())
        cert = x509.load_pem_x509_certificate(bundle.cert.encode())
        key = serialization.load_pem_private_key(bundle.key.encode(), None)
        if bundle.issuer is None:
            cert.verify_directly_issued_by(ca)
        else:  # a revocable export: its own issuing certificate, a self-signed CA, signed it
            issuer = x509.load_pem_x509_certificate(bundle.issuer.encode())
            if not issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                raise ValueError("the issuing certificate is not a CA")
            issuer.verify_directly_issued_by(issuer)
            cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound) as exc:
        raise damaged from exc
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise damaged
    try:
        scheme = addresses.split_url(bundle.url)[0]
    except addresses.BadAddress as exc:
        raise BundleError(f"{source} names an engine URL provision cannot use: {exc.message}") from exc
    if scheme != "tcp":
        raise BundleError(f"{source} names an engine URL provision cannot use: {bundle.url!r}")
    if not is_machine_name(bundle.machine):
        raise BundleError(f"{source} names an invalid machine {bundle.machine!r}")
    if bundle.ssh is not None:
        try:
            addresses.check_host(bundle.ssh.host), addresses.check_user(bundle.ssh.user)
            addresses.check_port(bundle.ssh.port)
        except addresses.BadAddress as exc:
            raise BundleError(f"{source} carries SSH access provision cannot use: {exc.message}") from exc
        if len(bundle.ssh.host_key.split()) < 2:
            raise BundleError(f"{source} carries SSH access provision cannot use")


def _url_warnings(url: str) -> list[str]:
    import ipaddress

    host = addresses.url_host(url)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return [f"the engine URL {url} is on this computer only; a teammate elsewhere cannot reach it"]
    return []


def _tar(files: list[tuple[str, bytes, int]]) -> bytes:
    """meta.json, then the tls directories and files, as ``docker context export`` lays them out."""
    buffer = io.BytesIO()
    mtime = int(datetime.now(timezone.utc).timestamp())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in files:
            for directory in ("tls", "tls/docker"):
                if name.startswith(directory + "/") and directory not in tar.getnames():
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, mtime
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
