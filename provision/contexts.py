"""Docker CLI contexts and ``config.json`` (DESIGN §2), written exactly where the docker CLI reads them.

A context this tool writes carries a ``ProvisionMachine`` metadata field; a context without it belongs
to the user and is never overwritten or removed. Every other key of ``config.json`` is kept as it was.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProvisionError
from .fsutil import atomic_write, ensure_dir

from .paths import CONTEXT_MARKER as MARKER
CONFIG_FILE = "config.json"


def context_id(name: str) -> str:
    import hashlib  # only context look-ups pay for it: `ls` without a current context never does

    return hashlib.sha256(name.encode()).hexdigest()


@dataclass(frozen=True)
class ContextTLS:
    ca: bytes
    cert: bytes
    key: bytes


class DockerConfig:
    def __init__(self, config_dir: Path) -> None:
        self.dir = config_dir

    # -- contexts --------------------------------------------------------------------------------
    def meta_path(self, name: str) -> Path:
        return self.dir / "contexts" / "meta" / context_id(name) / "meta.json"

    def tls_dir(self, name: str) -> Path:
        return self.dir / "contexts" / "tls" / context_id(name)

    def read_context(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path(name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ProvisionError(f"docker context {name!r} is unreadable: {exc}") from exc

    def owner(self, name: str) -> str | None:
        """The machine that owns context ``name``, or None when it is absent or not ours."""
        meta = self.read_context(name)
        if not meta:
            return None
        owner = (meta.get("Metadata") or {}).get(MARKER)
        return owner if isinstance(owner, str) else None

    def write_context(self, name: str, machine: str, host: str, tls: ContextTLS, description: str) -> None:
        existing = self.read_context(name)
        if existing is not None and (existing.get("Metadata") or {}).get(MARKER) != machine:
            raise ProvisionError(
                f'docker context "{name}" already exists and was not created by provision for machine '
                f'"{machine}"; remove it with `docker context rm {name}` or pick another machine name')
        meta = {
            "Name": name,
            "Metadata": {"Description": description, MARKER: machine},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
        }
        tls_dir = self.tls_dir(name) / "docker"
        for directory in (self.dir, self.dir / "contexts", self.meta_path(name).parent.parent,
                          self.meta_path(name).parent, self.tls_dir(name).parent, self.tls_dir(name), tls_dir):
            ensure_dir(directory, 0o700)
        atomic_write(tls_dir / "ca.pem", tls.ca, 0o600)
        atomic_write(tls_dir / "cert.pem", tls.cert, 0o600)
        atomic_write(tls_dir / "key.pem", tls.key, 0o600)
        atomic_write(self.meta_path(name), json.dumps(meta), 0o600)

    def remove_context(self, name: str, machine: str) -> bool:
        """Remove the context if this tool made it for ``machine``; reset currentContext if it was it."""
        if self.owner(name) != machine:
            return False
        shutil.rmtree(self.meta_path(name).parent, ignore_errors=True)
        shutil.rmtree(self.tls_dir(name), ignore_errors=True)
        if self.current_context() == name:
            self.set_current_context(None)
        return True

    # -- config.json -----------------------------------------------------------------------------
    def _config_path(self) -> Path:
        return self.dir / CONFIG_FILE

    def _read_config(self) -> dict[str, Any]:
        path = self._config_path()
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ProvisionError(f"cannot read {path}: {exc.strerror}") from exc
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProvisionError(f"{path} is not valid JSON; fix or remove it ({exc})") from exc
        if not isinstance(data, dict):
            raise ProvisionError(f"{path} is not a JSON object")
        return data

    def current_context(self) -> str | None:
        value = self._read_config().get("currentContext")
        return value if isinstance(value, str) and value else None

    def set_current_context(self, name: str | None) -> None:
        path = self._config_path()
        config = self._read_config()
        if name is None:
            if "currentContext" not in config:
                return
            del config["currentContext"]
        else:
            config["currentContext"] = name
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        ensure_dir(self.dir, 0o700)
        # The docker CLI writes this file with tab indentation; keep the same look.
        atomic_write(path, json.dumps(config, indent="\t") + "\n", mode)
