"""Where the hetzner driver's API token comes from, read afresh for every command and never stored.

In order: ``--hetzner-api-token`` (create only: secrets stay out of the record), ``HCLOUD_TOKEN`` (the
variable the official ``hcloud`` CLI and SDKs read), ``HETZNER_API_TOKEN`` (the third-party Docker Machine
driver's), then the ``hcloud`` CLI's own configuration: the context named by ``HCLOUD_CONTEXT`` or else the
file's ``active_context``, in ``HCLOUD_CONFIG`` or ``~/.config/hcloud/cli.toml``.

That file is the user's, written by another program: it is read bounded, parsed as TOML and every value
used is checked before it goes into an HTTP header.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provision.errors import CredentialsError

DRIVER = "hetzner"
CONFIG_LIMIT = 256 * 1024  # a cli.toml holds a few contexts; anything larger is not one
# Hetzner's tokens are 64 letters and digits; a little room either way, and nothing a header could choke on.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,256}")
HINT = ("give --hetzner-api-token, set HCLOUD_TOKEN, or run `hcloud context create` "
        "(a token is made in the Cloud Console under Security > API tokens)")


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for error messages (never the token itself)

    def __repr__(self) -> str:
        return f"Token(source={self.source!r})"


def _checked(value: Any, source: str) -> Token:
    if not isinstance(value, str) or not TOKEN_RE.fullmatch(value.strip()):
        raise CredentialsError(f"The Hetzner API token from {source} is not a token (expected 64 letters and "
                               "digits)", driver=DRIVER, hint=HINT)
    return Token(value.strip(), source)


def config_path(environ: Mapping[str, str]) -> str:
    if environ.get("HCLOUD_CONFIG"):
        return environ["HCLOUD_CONFIG"]
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".config", "hcloud", "cli.toml")


def from_cli_config(environ: Mapping[str, str]) -> Token | None:
    """The token of the hcloud CLI's chosen context, None when there is no configuration file."""
    import tomllib

    from provision.fsutil import read_regular

    path = config_path(environ)
    try:
        raw = read_regular(path, CONFIG_LIMIT)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"Cannot read the hcloud CLI configuration {path}: {exc.strerror}",
                               driver=DRIVER, hint=HINT) from exc
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CredentialsError(f"The hcloud CLI configuration {path} is not valid TOML: {exc}",
                               driver=DRIVER, hint=HINT) from exc
    wanted = environ.get("HCLOUD_CONTEXT") or config.get("active_context")
    if not wanted:
        return None
    if not isinstance(wanted, str):
        raise CredentialsError(f"The hcloud CLI configuration {path}: active_context is not a name",
                               driver=DRIVER, hint=HINT)
    contexts = config.get("contexts")
    if not isinstance(contexts, list):
        contexts = []
    for context in contexts:
        if isinstance(context, dict) and context.get("name") == wanted:
            return _checked(context.get("token"), f'context "{wanted}" of {path}')
    raise CredentialsError(f'The hcloud CLI context "{wanted}" is not in {path}', driver=DRIVER, hint=HINT)


def find_token(given: str | None, environ: Mapping[str, str]) -> Token:
    if given:  # the core resolved the option from HCLOUD_TOKEN when the flag was absent: name the right one
        return _checked(given, "$HCLOUD_TOKEN" if given == environ.get("HCLOUD_TOKEN") else "--hetzner-api-token")
    for variable in ("HCLOUD_TOKEN", "HETZNER_API_TOKEN"):
        if environ.get(variable):
            return _checked(environ[variable], f"${variable}")
    token = from_cli_config(environ)
    if token is None:
        raise CredentialsError("No Hetzner Cloud API token found", driver=DRIVER, hint=HINT)
    return token
