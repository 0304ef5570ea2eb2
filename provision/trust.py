"""Whom a machine's engine accepts as a client (DESIGN §13), and the state of each export.

dockerd checks a client certificate against the certificates in its ``--tlscacert`` file and nothing
else: it has no revocation list. So the engine trusts one certificate per party rather than one CA above
all: the owner's CA (the store's, which signs the owner's client certificate), and for each live export
its own issuing certificate, made for that export alone, whose key was thrown away once it had signed
the export's one client certificate. Revoking an export drops its issuing certificate from the file and
restarts dockerd; no other client is affected. The file stays ``/etc/docker/ca.pem``, so the drop-in
is the same and a machine made before revocation moves over when the file is next written.

Exports made before this (``issuer`` absent) were signed by the store's CA itself: they cannot be told
apart from the owner by the engine, and stay valid until they expire. Nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

LIVE, REVOKED, EXPIRED = "live", "revoked", "expired"
ISSUER = "issuer"  # the export's issuing certificate (PEM) in its record entry
REVOKED_AT = "revoked_at"
REVOCABLE = "revocable"


def revocable(entry: Mapping[str, Any]) -> bool:
    """An export has its own issuing certificate only when it was made revocable."""
    return bool(entry.get(ISSUER))


def state(entry: Mapping[str, Any], now: datetime | None = None) -> str:
    if entry.get(REVOKED_AT):
        return REVOKED
    try:
        not_after = datetime.fromisoformat(str(entry.get("not_after")))
    except ValueError:
        return LIVE
    if not_after.tzinfo is None:
        not_after = not_after.replace(tzinfo=timezone.utc)
    return EXPIRED if not_after <= (now or datetime.now(timezone.utc)) else LIVE


def client_trust(ca_pem: bytes, exports: Iterable[Mapping[str, Any]]) -> bytes:
    """The engine's client CA file: the owner's CA, then the issuing certificate of each live export.

    With no revocable export it is the CA file as it always was, byte for byte, so re-provisioning a
    machine that never had one changes nothing on the host and restarts nothing."""
    parts = [ca_pem.strip()]
    parts += [str(e[ISSUER]).encode().strip() for e in exports if revocable(e) and state(e) == LIVE]
    return b"\n".join(parts) + b"\n"


def find(exports: Iterable[Mapping[str, Any]], wanted: str) -> list[int]:
    """Indexes of the exports whose label is ``wanted``, else whose serial is."""
    entries = list(exports)
    by_label = [i for i, e in enumerate(entries) if e.get("for") == wanted]
    if by_label:
        return by_label
    serial = wanted.lower().removeprefix("0x")
    return [i for i, e in enumerate(entries) if str(e.get("serial", "")).lower() == serial]


def describe(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An export as ``inspect`` shows it: its state and whether it can be revoked, not the PEM."""
    shown = {k: v for k, v in entry.items() if k != ISSUER}
    shown["state"] = state(entry)
    shown[REVOCABLE] = revocable(entry)
    if revocable(entry):
        shown["issuer_sha256"] = fingerprint(str(entry[ISSUER]))
    return shown


def fingerprint(pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()
