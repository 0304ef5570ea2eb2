"""The hetzner driver's door to the Hetzner Cloud API: the SDK client, its errors, and action waits.

``hcloud`` is imported inside functions only, so ``ls``, ``env`` and the other drivers never pay for it.
The SDK retries rate-limited (429 ``rate_limit_exceeded``), ``conflict`` and gateway errors by itself with
backoff; everything it still raises becomes one ``DriverError`` line here. Actions are polled here, bounded
in seconds through ``provision.waiting``, rather than by the SDK's count of retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from provision import waiting
from provision.errors import CredentialsError, DriverError, TimeoutExpired

from .hz_token import DRIVER, HINT, Token

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0
# Actions usually finish within seconds; a first look after 0.2 s, then backing off to 2 s.
POLL_FIRST, POLL_MAX = 0.2, 2.0


class ResourceNotFound(DriverError):
    """The API answered 404 ``not_found``: for ``remove`` and ``state`` the resource is gone."""


class InUse(DriverError):
    """``resource_in_use``: a firewall still applied, a network still holding servers."""


class Locked(DriverError):
    """``locked``: another action still runs on the resource (a create's, when a rollback comes early)."""


def connect(token: Token, endpoint: str | None) -> Any:
    import hcloud

    from provision import __version__

    return hcloud.Client(token=token.value, api_endpoint=(endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                         application_name="provision", application_version=__version__,
                         timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))


@contextmanager
def api_errors(what: str, token: Token, endpoint: str | None) -> Iterator[None]:
    """Turn SDK and transport failures into one ``ProvisionError`` naming ``what``."""
    import requests
    from hcloud import APIException
    from hcloud.actions import ActionException

    try:
        yield
    except APIException as exc:
        code = str(exc.code)
        if code == "unauthorized" or code == "401":
            raise CredentialsError(f"{what}: the API refused the token from {token.source}: {exc.message}",
                                   driver=DRIVER, hint=HINT) from exc
        if code == "forbidden":
            raise CredentialsError(f"{what}: {exc.message} (forbidden)", driver=DRIVER,
                                   hint="the token may be read-only: make one with Read & Write") from exc
        if code == "not_found":
            raise ResourceNotFound(f"{what}: {exc.message} ({code})", driver=DRIVER) from exc
        if code == "resource_in_use":
            raise InUse(f"{what}: {exc.message} ({code})", driver=DRIVER) from exc
        if code == "locked":
            raise Locked(f"{what}: {exc.message} ({code})", driver=DRIVER) from exc
        raise DriverError(f"{what}: {exc.message} ({code})", driver=DRIVER) from exc
    except ActionException as exc:
        raise DriverError(f"{what}: {exc}", driver=DRIVER) from exc
    except requests.RequestException as exc:
        where = endpoint or DEFAULT_ENDPOINT
        raise DriverError(f"{what}: cannot reach {where}: {type(exc).__name__}", driver=DRIVER) from exc


def describe_error(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('message') or 'no message'} ({error.get('code') or 'no code'})"
    return "no reason given"


def wait_action(action: Any, what: str, timeout: float, token: Token, endpoint: str | None) -> None:
    """Poll ``action`` (a ``BoundAction``) until it leaves ``running``; raise if it ends in ``error``."""
    def finished() -> bool:
        if action.status == "running":
            with api_errors(f"{what} (action {action.id})", token, endpoint):
                action.reload()
        return action.status != "running"

    waiting.wait_for(f"{what}: action {action.id}", finished, timeout=timeout, interval=POLL_FIRST, backoff=2.0,
                     max_interval=POLL_MAX, error=lambda expired: TimeoutExpired(
                         f"{what}: action {action.id} ({action.command}) still running after {timeout:.0f} s "
                         f"({action.progress or 0}%)"))
    if action.status == "error":
        raise DriverError(f"{what}: {action.command} failed: {describe_error(action.error)}", driver=DRIVER)


def wait_all(actions: list[Any], what: str, timeout: float, token: Token, endpoint: str | None) -> None:
    deadline = waiting.Deadline(timeout)
    for action in actions:
        wait_action(action, what, max(deadline.remaining(), 1.0), token, endpoint)
