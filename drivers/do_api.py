"""The digitalocean driver's door to the DigitalOcean API v2: the token, the ``pydo`` client, errors, pages
and actions.

``pydo`` carries the whole API's generated code and costs a noticeable fraction of a second to import, so
it is imported inside functions only: importing this module stays cheap for ``ls``, ``env`` and ``use``.

The token comes from ``--digitalocean-access-token``, else ``DIGITALOCEAN_ACCESS_TOKEN``, else doctl's own
config file (its current context), and is read afresh for every command: it is never written to the store.

pydo answers some errors with their JSON body instead of raising (the generated code accepts 404 and, for
a few calls, 400 as answers); ``DigitalOceanApi.call`` turns those and every raised SDK, auth and transport
failure into one ``DriverError`` line naming what was being done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from provision import waiting
from provision.errors import CredentialsError, DriverError, ProvisionError, TimeoutExpired

DRIVER = "digitalocean"
TOKEN_ENV = "DIGITALOCEAN_ACCESS_TOKEN"
CALL_TIMEOUT = 60  # seconds for one API request
PER_PAGE = 200  # the API's maximum page size: fewer round trips when listing
DOCTL_CONFIG_LIMIT = 1 << 20  # a doctl config is a few hundred bytes; anything huge is not one
# The SDK retries 429 and 5xx answers itself, honouring Retry-After; these bound how long it keeps at it.
RETRY_TOTAL = 6
RETRY_BACKOFF = 0.5

T = TypeVar("T")


class ResourceNotFound(DriverError):
    """The API answered 404 for a resource: for ``remove`` and ``state`` that means it is gone."""


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for messages: never the token itself


def doctl_config_path(environ: Mapping[str, str]) -> Path:
    """Where doctl keeps its config (Go's os.UserConfigDir + ``doctl/config.yaml``)."""
    home = Path(environ.get("HOME") or Path.home())
    if environ.get("XDG_CONFIG_HOME"):
        base = Path(environ["XDG_CONFIG_HOME"])
    elif os.uname().sysname == "Darwin":
        base = home / "Library" / "Application Support"
    else:
        base = home / ".config"
    return base / "doctl" / "config.yaml"


def read_doctl_token(path: Path) -> str | None:
    """The access token of doctl's current context, or None. The file is treated as hostile: bounded
    size, a regular file, YAML parsed safely, only string values taken."""
    import yaml

    try:
        if not path.is_file() or path.stat().st_size > DOCTL_CONFIG_LIMIT:
            return None
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    context = config.get("context")
    if isinstance(context, str) and context not in ("", "default"):
        contexts = config.get("auth-contexts")
        token = contexts.get(context) if isinstance(contexts, dict) else None
    else:
        token = config.get("access-token")
    return token.strip() if isinstance(token, str) and token.strip() else None


def find_token(given: str | None, environ: Mapping[str, str]) -> Token:
    if given:
        # The core resolves the option from the variable too: name the source the user actually used.
        source = TOKEN_ENV if environ.get(TOKEN_ENV) == given else "--digitalocean-access-token"
        return Token(str(given), source)
    if environ.get(TOKEN_ENV):
        return Token(environ[TOKEN_ENV], TOKEN_ENV)
    path = doctl_config_path(environ)
    token = read_doctl_token(path)
    if token:
        return Token(token, f"doctl's config {path}")
    raise CredentialsError("No DigitalOcean access token found", driver=DRIVER,
                           hint=f"pass --digitalocean-access-token, set {TOKEN_ENV}, or run `doctl auth init`")


def error_body(value: Any) -> dict[str, Any] | None:
    """The API's error shape ``{"id": "not_found", "message": "...", "request_id": "..."}``, or None."""
    if isinstance(value, dict) and isinstance(value.get("id"), str) and isinstance(value.get("message"), str) \
            and set(value) <= {"id", "message", "request_id"}:
        return value
    return None


def _response_error(response: Any) -> tuple[str, str]:
    try:
        body = error_body(response.json())
    except Exception:  # noqa: BLE001 - a proxy's HTML error page or an empty body: fall back to the status
        body = None
    if body:
        return body["id"], body["message"]
    return str(getattr(response, "status_code", "")), str(getattr(response, "reason", "") or "no message")


@dataclass
class DigitalOceanApi:
    token: Token
    endpoint: str | None = None
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            import pydo

            kwargs: dict[str, Any] = {"timeout": CALL_TIMEOUT, "retry_total": RETRY_TOTAL,
                                      "retry_backoff_factor": RETRY_BACKOFF}
            if self.endpoint:
                kwargs["endpoint"] = self.endpoint.rstrip("/")
            self._client = pydo.Client(token=self.token.value, **kwargs)
        return self._client

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        from azure.core import exceptions as azure

        try:
            yield
        except azure.ClientAuthenticationError as exc:
            code, message = _response_error(exc.response)
            raise CredentialsError(f"{what}: DigitalOcean refused the token from {self.token.source}: {message}",
                                   driver=DRIVER, hint="check the token, or make a new one with write scope") from exc
        except azure.HttpResponseError as exc:
            status = getattr(exc.response, "status_code", None)
            code, message = _response_error(exc.response)
            if status == 404:
                raise ResourceNotFound(f"{what}: {message}", driver=DRIVER) from exc
            if status == 403:
                raise CredentialsError(f"{what}: not allowed: {message}", driver=DRIVER,
                                       hint="the token lacks the scope for this (read-only token?)") from exc
            if status == 429:
                reset = exc.response.headers.get("ratelimit-reset") if exc.response is not None else None
                raise DriverError(f"{what}: rate limited by DigitalOcean: {message}", driver=DRIVER,
                                  hint=f"the limit resets at {reset} (Unix time)" if reset else None) from exc
            raise DriverError(f"{what}: {message} ({code})", driver=DRIVER) from exc
        except (azure.ServiceRequestError, azure.ServiceResponseError) as exc:
            where = self.endpoint or "the DigitalOcean API"
            raise DriverError(f"{what}: cannot reach {where}: {type(exc).__name__}", driver=DRIVER) from exc

    def call(self, what: str, group: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<group>.<method>(...)``; an error body handed back as an answer is raised like the rest."""
        with self.errors(what):
            result = getattr(getattr(self.client, group), method)(*args, **kwargs)
        body = error_body(result)
        if body:
            if body["id"] == "not_found":
                raise ResourceNotFound(f"{what}: {body['message']}", driver=DRIVER)
            raise DriverError(f"{what}: {body['message']} ({body['id']})", driver=DRIVER)
        return result

    def all(self, what: str, group: str, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a listing, following ``links.pages.next`` page by page."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            reply = self.call(what, group, method, per_page=PER_PAGE, page=page, **kwargs)
            items.extend(reply.get(key) or [])
            if not ((reply.get("links") or {}).get("pages") or {}).get("next"):
                return items
            page += 1

    def wait_action(self, action: dict[str, Any], what: str, timeout: float,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Poll ``GET /v2/actions/{id}`` until the action is ``completed``; raise if it ``errored``."""
        action_id = action["id"]
        current = action

        def finished() -> bool:
            nonlocal current
            if current.get("status") == "in-progress":
                current = self.call(f"{what} (action {action_id})", "actions", "get", action_id)["action"]
            return current.get("status") != "in-progress"

        waiting.wait_for(f"{what}: action {action_id}", finished, timeout=timeout, interval=0.05, backoff=2.0,
                         max_interval=3.0, error=lambda expired: TimeoutExpired(
                             f"{what}: action {action_id} still in progress after {timeout:.0f} s"))
        if current.get("status") != "completed":
            raise DriverError(f"{what}: action {action_id} ({current.get('type')}) {current.get('status')}",
                              driver=DRIVER)
        return current


def ignore_missing(action: Callable[[], T]) -> T | None:
    """Run ``action``; a 404 means the resource is already gone, which is what removal wants."""
    try:
        return action()
    except ResourceNotFound:
        return None


def attempt_each(steps: Iterable[Callable[[DigitalOceanApi], None]], api: DigitalOceanApi) -> list[str]:
    """Run every step even when an earlier one failed, so one stuck resource does not strand the others;
    the failures, one line each."""
    failures: list[str] = []
    for step in steps:
        try:
            step(api)
        except ProvisionError as exc:
            failures.append(str(exc))
    return failures
