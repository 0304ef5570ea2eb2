"""Read back what provision wrote, the way a person checking it would: the files of a seed ISO, the parts
of EC2 user data, a file on a machine over an SSH session. provision itself never reads these back."""

from __future__ import annotations

import base64
import email
import gzip
import io
from pathlib import Path
from typing import Any

from provision_drivers.seed import _ISO_NAMES, BINARY_FILES, SeedFiles


def read_seed_iso(path: Path) -> SeedFiles:
    """The files of a seed ISO by their Rock Ridge names."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        found: SeedFiles = {}
        for name in _ISO_NAMES:
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            found[name] = out.getvalue() if name in BINARY_FILES else out.getvalue().decode("utf-8")
        return found
    finally:
        iso.close()


def parse_user_data(data: bytes) -> dict[str, Any]:
    """User data made by ``merge_user_data`` split back into ``{filename: (content type, text)}``."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    if text.startswith("#cloud-config"):
        return {"provision.cfg": ("text/cloud-config", text)}
    message = email.message_from_bytes(data)
    parts: dict[str, Any] = {}
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        name = part.get_filename() or f"part-{index}"
        payload = part.get_payload(decode=True)
        parts[name] = (part.get_content_type(), payload.decode("utf-8") if payload is not None else "")
    return parts


def read_remote(session: Any, path: str, *, sudo: bool = False) -> bytes:
    """A file on the machine, byte for byte (through base64: the session's output is text); a missing or
    unreadable file raises the session's ``RemoteCommandError``."""
    return base64.b64decode(session.run(["base64", "-w0", "--", path], sudo=sudo).out)
