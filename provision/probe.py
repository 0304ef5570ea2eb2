"""Ask a Docker engine over mutual TLS, with the standard library only (``ls`` must start fast)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .addresses import DEFAULT_ENGINE_PORT
from .errors import EngineError


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


_CONTEXTS: dict[tuple[bytes, bytes, bytes], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def ssl_context(tls: TLSFiles) -> ssl.SSLContext:
    """Every machine of a store holds copies of one CA and client cert: build one context per content,
    not one per machine (each costs a few milliseconds of CPU, and `ls` probes all machines at once)."""
    key = (tls.ca.read_bytes(), tls.cert.read_bytes(), tls.key.read_bytes())
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=key[0].decode())
            context.minimum_version = ssl.TLSVersion.TLSv1_2  # whatever the host's OpenSSL would allow
            context.load_cert_chain(str(tls.cert), str(tls.key))
            _CONTEXTS[key] = context
        return context


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "https") or not parts.hostname:
        raise EngineError(f"unsupported engine URL {url!r}: expected tcp://HOST:PORT")
    return parts.hostname, parts.port or DEFAULT_ENGINE_PORT


def request(url: str, path: str, tls: TLSFiles, timeout: float) -> bytes:
    host, port = host_port(url)
    try:
        context = ssl_context(tls)
    except (OSError, ssl.SSLError) as exc:
        raise EngineError(f"cannot load the client certificates: {exc}") from exc
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise EngineError(f"{url}{path} answered HTTP {response.status}")
        return body
    except ssl.SSLCertVerificationError as exc:
        raise EngineError(f"TLS verification of {host}:{port} failed: {exc.verify_message}; "
                          "try regenerate-certs") from exc
    except (socket.timeout, TimeoutError) as exc:
        raise EngineError(f"{host}:{port}: no answer within {timeout:g}s") from exc
    except ConnectionRefusedError as exc:
        raise EngineError(f"dial tcp {host}:{port}: connection refused") from exc
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        raise EngineError(f"{host}:{port}: {exc}") from exc
    finally:
        conn.close()


def ping(url: str, tls: TLSFiles, timeout: float = 10.0) -> bool:
    return request(url, "/_ping", tls, timeout).strip() == b"OK"


def version(url: str, tls: TLSFiles, timeout: float = 10.0) -> dict[str, object]:
    try:
        return json.loads(request(url, "/version", tls, timeout))
    except ValueError as exc:
        raise EngineError(f"{url} answered /version with something that is not JSON") from exc
