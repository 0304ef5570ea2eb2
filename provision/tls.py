"""The store's certificate authority (DESIGN §6), built on ``cryptography``.

One CA and one client certificate per store, created on first use under a lock; a server certificate
per machine with a SAN for every address a client may use. ECDSA P-256 throughout.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from . import paths
from .errors import StoreError
from .fsutil import atomic_write, ensure_dir

if TYPE_CHECKING:
    from cryptography import x509

CA_DAYS = 3650
CLIENT_DAYS = 1095
SERVER_DAYS = 825
BACKDATE = timedelta(minutes=5)  # clocks on fresh VMs run behind
EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: bytes
    key_pem: bytes
    not_before: datetime
    not_after: datetime
    serial: int
    sans: tuple[str, ...]


def _new_key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "provision"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def san_entries(names: list[str] | tuple[str, ...]) -> list[x509.GeneralName]:
    import ipaddress

    from cryptography import x509

    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in names:
        value = raw.strip()
        if not value or value in seen:
            continue
        seen.add(value)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            entries.append(x509.DNSName(value))
    return entries


class CertificateAuthority:
    def __init__(self, certs_dir: Path) -> None:
        self.dir = certs_dir

    @property
    def ca_cert_path(self) -> Path:
        return self.dir / paths.CA_CERT

    @property
    def client_cert_path(self) -> Path:
        return self.dir / paths.CLIENT_CERT

    @property
    def client_key_path(self) -> Path:
        return self.dir / paths.CLIENT_KEY

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import filelock

        ensure_dir(self.dir)
        with filelock.FileLock(str(self.dir / paths.LOCK), timeout=60):
            yield

    def ensure(self) -> None:
        """Create the CA and the client certificate unless they exist."""
        files = [self.dir / paths.CA_CERT, self.dir / paths.CA_KEY, self.client_cert_path, self.client_key_path]
        if all(f.exists() for f in files):
            return
        with self._locked():
            if not (self.dir / paths.CA_CERT).exists():
                self._create_ca()
            if not self.client_cert_path.exists() or not self.client_key_path.exists():
                self._write_client(self._issue_client())

    def _create_ca(self) -> None:
        from cryptography.hazmat.primitives import serialization

        key = _new_key()
        cert = _self_signed_ca(key, "provision CA", datetime.now(timezone.utc) + timedelta(days=CA_DAYS))
        atomic_write(self.dir / paths.CA_KEY, _key_pem(key), 0o600)
        atomic_write(self.dir / paths.CA_CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _load_ca(self):  # type: ignore[no-untyped-def]
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            cert = x509.load_pem_x509_certificate((self.dir / paths.CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((self.dir / paths.CA_KEY).read_bytes(), None)
        except (OSError, ValueError) as exc:
            raise StoreError(f"the store's certificate authority in {self.dir} is unreadable: {exc}") from exc
        return cert, key

    def ca_pem(self) -> bytes:
        self.ensure()
        return self.ca_cert_path.read_bytes()

    def _issue(self, common_name: str, sans: tuple[str, ...], days: int, server: bool) -> IssuedCert:
        ca_cert, ca_key = self._load_ca()
        now = datetime.now(timezone.utc)
        return _sign_leaf(ca_cert, ca_key, common_name, sans, now + timedelta(days=days), server=server)

    def regenerate_client(self) -> IssuedCert:
        """A new client key and certificate, written under the CA's lock so no reader sees a mix."""
        issued = self._issue_client()
        with self._locked():
            self._write_client(issued)
        return issued

    def _issue_client(self) -> IssuedCert:
        return self._issue("provision client", (), CLIENT_DAYS, server=False)

    def _write_client(self, issued: IssuedCert) -> None:  # the caller holds the CA's lock
        atomic_write(self.client_key_path, issued.key_pem, 0o600)
        atomic_write(self.client_cert_path, issued.cert_pem, 0o644)

    def client_files(self) -> tuple[bytes, bytes, bytes]:
        """The CA certificate, client certificate and client key, read together under the CA's lock."""
        with self._locked():
            return (self.ca_cert_path.read_bytes(), self.client_cert_path.read_bytes(),
                    self.client_key_path.read_bytes())

    def issue_client_for(self, label: str) -> IssuedCert:
        """A client certificate signed by the store's CA itself whose subject names ``label``: what an
        export was before revocation, and still is for an engine whose trust provision cannot change (the
        ``none`` driver). The engine accepts it until it expires, as long as it trusts the store's CA.

        Nothing is written: the key leaves with the export and the store keeps only the owner's pair.
        The CA must already exist; an export never creates one the engine would not trust."""
        for required in (self.ca_cert_path, self.dir / paths.CA_KEY):
            if not required.exists():
                raise StoreError(f"the store's certificate authority has no {required.name} in {self.dir}")
        return self._issue(label, (), CLIENT_DAYS, server=False)

    def issue_server(self, machine: str, sans: list[str] | tuple[str, ...]) -> IssuedCert:
        self.ensure()
        unique = tuple(dict.fromkeys(s.strip() for s in sans if s and s.strip()))
        return self._issue(machine, unique, SERVER_DAYS, server=True)


@dataclass(frozen=True)
class ExportCert:
    """A revocable export: a client certificate and the issuing certificate made only for it."""

    issuer_pem: bytes  # what the engine trusts for this export, beside the owner's CA
    client: IssuedCert


def issue_export(label: str, days: int = CLIENT_DAYS) -> ExportCert:
    """A fresh self-signed issuing certificate that signs exactly one client certificate for ``label``.

    The issuing key lives only in this function's frame and is never serialized: nobody, the owner
    included, can sign another certificate under it. An engine that trusts the issuing certificate
    accepts this one client; dropping it from the engine's CA file refuses that client and no other."""
    now = datetime.now(timezone.utc)
    not_after = now + timedelta(days=days)
    issuer_key = _new_key()
    issuer = _self_signed_ca(issuer_key, f"provision export {label}", not_after)
    client = _sign_leaf(issuer, issuer_key, label, (), not_after, server=False)
    del issuer_key
    from cryptography.hazmat.primitives import serialization

    return ExportCert(issuer.public_bytes(serialization.Encoding.PEM), client)


def _self_signed_ca(key, common_name: str, not_after: datetime) -> x509.Certificate:  # type: ignore[no-untyped-def]
    """A root that signs leaves only (``path_length=0``), valid from a few minutes ago until ``not_after``."""
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(timezone.utc) - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _hash())
    )


def _sign_leaf(issuer: x509.Certificate, issuer_key, common_name: str,  # type: ignore[no-untyped-def]
               sans: tuple[str, ...], not_after: datetime, *, server: bool) -> IssuedCert:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    not_before = datetime.now(timezone.utc) - BACKDATE
    serial = x509.random_serial_number()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=True, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(san_entries(sans)), critical=False)
    cert = builder.sign(issuer_key, _hash())
    return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key),
                      not_before, not_after, serial, sans)


def _hash():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def describe_certificate(pem: bytes) -> dict[str, object]:
    """Subject, validity and SANs of a PEM certificate, for ``inspect``."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem)
    try:
        sans = [str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                .get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                 .get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    return {"subject": cert.subject.rfc4514_string(),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(), "sans": sans,
            "serial": format(cert.serial_number, "x")}
