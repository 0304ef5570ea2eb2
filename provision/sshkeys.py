"""The machine's own SSH key pair, made with ``cryptography``."""

from __future__ import annotations

from pathlib import Path

from .fsutil import atomic_write


def new_ed25519(comment: str) -> tuple[bytes, str]:
    """A fresh ed25519 key pair in memory: the private key in OpenSSH format and the public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}"


def generate_ed25519(private_path: Path, comment: str) -> str:
    """Write an OpenSSH ed25519 key pair; return the public key line."""
    private, line = new_ed25519(comment)
    atomic_write(private_path, private, 0o600)
    atomic_write(private_path.with_name(private_path.name + ".pub"), line + "\n", 0o644)
    return line


def public_line(private_pem: bytes, comment: str) -> str:
    """The OpenSSH public key line of a private key (PEM or OpenSSH format, no passphrase)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_ssh_private_key(private_pem, password=None)
    except ValueError:
        key = serialization.load_pem_private_key(private_pem, password=None)  # type: ignore[assignment]
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,  # type: ignore[union-attr]
                                           serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}"
