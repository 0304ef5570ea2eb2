"""The machine's own SSH key pair, made with ``cryptography``."""

from __future__ import annotations

from pathlib import Path

from .fsutil import atomic_write


def generate_ed25519(private_path: Path, comment: str) -> str:
    """Write an OpenSSH ed25519 key pair; return the public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}"
    atomic_write(private_path, private, 0o600)
    atomic_write(private_path.with_name(private_path.name + ".pub"), line + "\n", 0o644)
    return line
