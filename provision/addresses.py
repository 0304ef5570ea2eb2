"""Engine addresses: the one place that says what a host, a port and an engine URL may be.

Every engine URL that provision prints for a shell (``env``), hands to the docker CLI (a context) or
connects to passes ``engine_url`` first, whatever it came from: a flag, a driver, a bundle, a Docker
Machine store or a record on disk. Only ``tcp://HOST:PORT`` and ``ssh://[USER@]HOST[:PORT]`` pass, with
HOST a DNS name, an IPv4 address or a bracketed IPv6 address, so no character a shell, a URL parser or
an ssh command line treats specially can ride along.

Standard library only, and nothing slow at import: ``env`` and ``url`` check a record's URL on every run.
"""

from __future__ import annotations

from .errors import ProvisionError

DEFAULT_ENGINE_PORT = 2376
DEFAULT_SSH_PORT = 22
SCHEMES = ("tcp", "ssh")

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def _show(value: object) -> str:
    """A value for an error line: in double quotes, or as Python writes it when it holds a control character."""
    text = str(value)
    return f'"{text}"' if text.isprintable() else repr(text)


class BadAddress(ProvisionError, ValueError):
    """A host, port or URL that is not one provision will use; the message says what is wrong.

    Callers that know where the value came from (a flag, a record, a bundle) say so around it."""


def is_ipv6(host: str) -> bool:
    return ":" in host


def _check_ipv6(host: str) -> str:
    if not host or not set(host) <= _IPV6_CHARS:
        raise BadAddress(f"{_show(host)} is not an IPv6 address")
    import ipaddress  # only for the rare IPv6 host: its import costs `env` start-up time

    try:
        return str(ipaddress.IPv6Address(host))
    except ValueError as exc:
        raise BadAddress(f"{_show(host)} is not an IPv6 address") from exc


def check_host(host: str) -> str:
    """``host`` if it is a DNS name, an IPv4 address or an IPv6 address (without brackets); else BadAddress."""
    if not isinstance(host, str) or not host:
        raise BadAddress("the host is empty")
    if is_ipv6(host):
        return _check_ipv6(host)
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(
            0 < len(label) <= 63 and set(label) <= _NAME_CHARS and label[0] != "-" and label[-1] != "-"
            for label in labels):
        raise BadAddress(f'{_show(host)} is not a host name or an IP address')
    return host


def check_port(port: object) -> int:
    """A TCP port number, 1 to 65535, given as an int or a string of digits."""
    if isinstance(port, bool):
        raise BadAddress(f'{_show(port)} is not a port number')
    if isinstance(port, str):
        if not port.isascii() or not port.isdigit() or len(port) > 5:
            raise BadAddress(f'{_show(port)} is not a port number')
        port = int(port)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise BadAddress(f'{_show(port)} is not a port number (1-65535)')
    return port


def check_user(user: str) -> str:
    """A login name as POSIX portable names have it, never starting with ``-`` (an ssh option)."""
    if not user or len(user) > 64 or not set(user) <= _USER_CHARS or user[0] == "-":
        raise BadAddress(f'{_show(user)} is not a user name')
    return user


def bracket(host: str) -> str:
    """``host`` as it goes in a URL or an ssh ``HOST:PORT``: an IPv6 address in brackets."""
    return f"[{host}]" if is_ipv6(host) else host


def tcp_url(host: str, port: int = DEFAULT_ENGINE_PORT) -> str:
    return f"tcp://{bracket(check_host(host))}:{check_port(port)}"


def ssh_url(user: str, host: str, port: int = DEFAULT_SSH_PORT) -> str:
    return f"ssh://{check_user(user)}@{bracket(check_host(host))}:{check_port(port)}"


def _split_host_port(rest: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        host, bracket_end, tail = rest[1:].partition("]")
        if not bracket_end or not is_ipv6(host):
            raise BadAddress(f'{_show(rest)} has a malformed bracketed address')
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise BadAddress(f'{_show(rest)} has text after its address')
        return host, tail[1:]
    if rest.count(":") > 1:
        raise BadAddress(f'{_show(rest)}: an IPv6 address goes in brackets')
    host, colon, port = rest.partition(":")
    return host, port if colon else None


def split_url(url: str, *, tcp_port: int | None = None) -> tuple[str, str | None, str, int]:
    """(scheme, user, host, port) of a valid engine URL; BadAddress names what is wrong with any other.

    A ``tcp://`` URL must name its port unless ``tcp_port`` says which to take."""
    if not isinstance(url, str):
        raise BadAddress("the engine URL is not text")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise BadAddress(f'the engine URL must be tcp://HOST:PORT or ssh://USER@HOST:PORT, not {_show(url)}')
    user = None
    if "@" in rest:
        if scheme != "ssh":
            raise BadAddress(f'a tcp:// engine URL takes no user: {_show(url)}')
        user, _, rest = rest.partition("@")
        check_user(user)
    if rest.endswith("/"):  # what a URL library may add; nothing else may follow the port
        rest = rest[:-1]
    host, port = _split_host_port(rest)
    host = check_host(host)
    if port is None:
        if scheme == "tcp" and tcp_port is None:
            raise BadAddress(f'the engine URL has no port: {_show(url)}')
        return scheme, user, host, DEFAULT_SSH_PORT if scheme == "ssh" else tcp_port
    return scheme, user, host, check_port(port)


def engine_url(url: str) -> str:
    """``url`` in its canonical form (IPv6 compressed, no trailing slash), or BadAddress."""
    scheme, user, host, port = split_url(url)
    login = f"{user}@" if user else ""
    return f"{scheme}://{login}{bracket(host)}:{port}"


def url_host(url: str) -> str:
    """The host of a valid engine URL (an IPv6 address without its brackets)."""
    return split_url(url)[2]
