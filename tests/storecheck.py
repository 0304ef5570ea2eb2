"""The store after a create is private: directories 0700, keys and records 0600, the CA key nowhere but
its own file, no cloud credential or token in any file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

KEY_NAMES = {"id_ed25519", "key.pem", "server-key.pem", "ca-key.pem", "generic_ssh_key", "machine.json"}


def secrets_in_environment() -> list[bytes]:
    """Credential values the SDK chains read in this test, which must never land in the store."""
    found = [os.environ[name] for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
             if os.environ.get(name)]
    adc = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if adc and Path(adc).is_file():
        data = json.loads(Path(adc).read_text())
        found += [data[k] for k in ("private_key", "refresh_token", "client_secret") if data.get(k)]
    return [value.encode() for value in found if len(value) >= 8]


def assert_store_is_private(root: Path, *others: Path) -> list[str]:
    """Walk ``root`` (its image cache aside); ``others`` (docker's config dir) are searched for the CA key.
    Returns the files checked, for the test's own figures."""
    checked: list[str] = []
    ca_key = (root / "certs" / "ca-key.pem").read_bytes().strip()
    secrets = secrets_in_environment()
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        if here == root / "cache":
            subdirs[:] = []
            continue
        assert stat.S_IMODE(here.stat().st_mode) == 0o700, f"{here} is {oct(here.stat().st_mode)}"
        for name in files:
            path = here / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            if name in KEY_NAMES:
                assert mode == 0o600, f"{path} is {oct(mode)}"
            assert not mode & 0o022, f"{path} is writable by others ({oct(mode)})"
            if path.is_socket():
                continue
            content = path.read_bytes()
            if path != root / "certs" / "ca-key.pem":
                assert ca_key not in content, f"the CA key is copied into {path}"
            for secret in secrets:
                assert secret not in content, f"a cloud credential is written into {path}"
            checked.append(str(path.relative_to(root)))
    for other in others:
        for path in other.rglob("*"):
            if path.is_file():
                assert ca_key not in path.read_bytes(), f"the CA key is copied into {path}"
    return checked
