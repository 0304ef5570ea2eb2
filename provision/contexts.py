"""Docker CLI contexts and ``config.json`` (DESIGN §2), written exactly where the docker CLI reads them.

A context this tool writes carries a ``ProvisionMachine`` metadata field; a context without it belongs
to the user and is never overwritten or removed. Every other key of ``config.json`` is kept as it was.
Docker's files may hold anything (not JSON, JSON of another shape, a FIFO): each read either gives what
it expects or one line naming the file and what to do.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import filerules
from .errors import ProvisionError
from .fsutil import PEM_LIMIT, atomic_write, ensure_dir, read_regular
from .paths import CONTEXT_MARKER as MARKER


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
        return Path(filerules.context_meta_path(str(self.dir), name))

    def tls_dir(self, name: str) -> Path:
        return Path(filerules.context_tls_dir(str(self.dir), name))

    def read_context(self, name: str) -> dict[str, Any] | None:
        """The context's meta.json, None when docker has no such context; anything but a context's object
        (not JSON, a list, a ``Metadata`` that is not an object, a FIFO) is one line naming the file."""
        path = self.meta_path(name)
        what = f"fix it or remove the directory {path.parent}"
        try:
            meta = filerules.read_json(str(path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProvisionError(f"cannot read docker context {name!r} in {path}: {exc.strerror}", hint=what) from exc
        except ValueError as exc:
            raise ProvisionError(f"docker context {name!r}: {path} is not valid JSON", hint=what) from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("Metadata", {}), (dict, type(None))):
            raise ProvisionError(f"docker context {name!r}: {path} is not a context's JSON object", hint=what)
        return meta

    def owner(self, name: str) -> str | None:
        """The machine that owns context ``name``, or None when it is absent or not ours."""
        return filerules.owner(self.read_context(name))

    def tls_matches(self, name: str, tls: ContextTLS | None) -> bool:
        """Whether the context's TLS files are exactly ``tls``: provision wrote them, whatever its meta.json says."""
        if tls is None:
            return False
        directory = self.tls_dir(name) / "docker"
        try:
            found = [read_regular(str(directory / f), PEM_LIMIT) for f in ("ca.pem", "cert.pem", "key.pem")]
        except OSError:
            return False
        return found == [tls.ca, tls.cert, tls.key]

    def check_context_free(self, name: str, machine: str) -> None:
        """Refuse when context ``name`` exists and is not the one provision wrote for ``machine``."""
        existing = self.read_context(name)
        if existing is not None and filerules.owner(existing) != machine:
            raise ProvisionError(
                f'docker context "{name}" already exists and was not created by provision for machine '
                f'"{machine}"; remove it with `docker context rm {name}` or pick another machine name')

    def write_context(self, name: str, machine: str, host: str, tls: ContextTLS | None, description: str) -> None:
        """Write (or rewrite) our context; ``tls`` None for an ``ssh://`` host, which needs no certificates."""
        self.check_context_free(name, machine)
        meta = {
            "Name": name,
            "Metadata": {"Description": description, MARKER: machine},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
        }
        tls_dir = self.tls_dir(name) / "docker"
        for directory in (self.dir, self.dir / "contexts", self.meta_path(name).parent.parent,
                          self.meta_path(name).parent):
            ensure_dir(directory, 0o700)
        if tls is None:
            shutil.rmtree(self.tls_dir(name), ignore_errors=True)
        else:
            for directory in (self.tls_dir(name).parent, self.tls_dir(name), tls_dir):
                ensure_dir(directory, 0o700)
            atomic_write(tls_dir / "ca.pem", tls.ca, 0o600)
            atomic_write(tls_dir / "cert.pem", tls.cert, 0o600)
            atomic_write(tls_dir / "key.pem", tls.key, 0o600)
        atomic_write(self.meta_path(name), json.dumps(meta), 0o600)

    def remove_context(self, name: str, machine: str) -> bool:
        """Undo a context just written for ``machine`` (a failed create or import): removed if it is ours,
        and currentContext reset if it was it. A file it cannot read leaves things as they are."""
        try:
            if self.owner(name) != machine:
                return False
            selected = self.current_context() == name
        except ProvisionError:
            return False
        self.delete_context(name)
        if selected:
            self.set_current_context(None)
        return True

    def delete_context(self, name: str) -> None:
        """The context's directories, whatever is in them: the caller has established it is ours."""
        shutil.rmtree(self.meta_path(name).parent, ignore_errors=True)
        shutil.rmtree(self.tls_dir(name), ignore_errors=True)

    # -- config.json -----------------------------------------------------------------------------
    def _read_config(self) -> dict[str, Any]:
        path = self.dir / filerules.CONFIG_FILE
        try:
            return filerules.read_config(str(self.dir))
        except OSError as exc:
            raise ProvisionError(f"cannot read {path}: {exc.strerror}; fix or remove it") from exc
        except filerules.NotAnObject as exc:
            raise ProvisionError(f"{path} is not a JSON object; fix or remove it") from exc
        except ValueError as exc:
            raise ProvisionError(f"{path} is not valid JSON; fix or remove it ({exc})") from exc

    def current_context(self) -> str | None:
        return filerules.current_context(self._read_config())

    def set_current_context(self, name: str | None) -> None:
        filerules.write_current_context(str(self.dir), self._read_config(), name)
