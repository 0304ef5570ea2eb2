"""The google driver's door to the Compute Engine API: credentials, clients, errors, operations.

``google.cloud.compute_v1`` costs over a second to import, so it is imported here inside functions
only; importing this module (or ``drivers.google``) stays cheap for ``ls``, ``env`` and other drivers.

Operations are polled here, not through ``ExtendedOperation.result()``: in google-cloud-compute 1.57 that
polls through an operations client built without our client options, so a custom ``--google-endpoint``
(Private Service Connect, a regional endpoint, a test server) would be bypassed while polling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from provision import waiting
from provision.errors import CredentialsError, DriverError, TimeoutExpired

DRIVER = "google"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CALL_TIMEOUT = 60.0  # seconds for one API request
WAIT_SLICE = 120.0  # the server's own limit for one operations.wait call
# Probing the metadata server (only when no other ADC source exists) must not hang off GCE.
METADATA_PROBE_TIMEOUT = 2.0

T = TypeVar("T")


class ResourceNotFound(DriverError):
    """The API answered 404 for a resource: for ``remove`` and ``state`` that means it is gone."""


def last_segment(url_or_path: str) -> str:
    return url_or_path.rstrip("/").rsplit("/", 1)[-1]


def load_credentials() -> Any:
    """Application Default Credentials: the key file named by GOOGLE_APPLICATION_CREDENTIALS, gcloud's
    ADC file, or the metadata server on GCE, found by google.auth in the process environment.
    Nothing is written to the store."""
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import Request

    class BoundedRequest(Request):
        # google.auth probes the metadata server with its own timeout (3 s, read at import time);
        # cap every request made while looking for credentials.
        def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                     timeout: float | None = None, **kwargs: Any) -> Any:
            bounded = METADATA_PROBE_TIMEOUT if timeout is None else min(timeout, METADATA_PROBE_TIMEOUT)
            return super().__call__(url, method=method, body=body, headers=headers, timeout=bounded, **kwargs)

    hint = ("run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
            "to a service-account key file")
    try:
        credentials, _ = google.auth.default(scopes=list(SCOPES), request=BoundedRequest())
    except google.auth.exceptions.GoogleAuthError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CredentialsError(f"No usable Google credentials: {first_line}", driver=DRIVER, hint=hint) from exc
    return credentials


def describe_operation_error(operation: Any) -> str:
    errors = [f"{e.code}: {e.message}" if e.code else e.message for e in operation.error.errors]
    return "; ".join(errors) or operation.http_error_message or "unknown error"


@dataclass
class ComputeApi:
    """One project's Compute Engine clients, all built with the same credentials and endpoint."""

    project: str
    credentials: Any
    endpoint: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, kind: str) -> Any:
        """``kind`` names a compute_v1 client class, e.g. ``InstancesClient``."""
        if kind not in self._clients:
            from google.cloud import compute_v1

            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._clients[kind] = getattr(compute_v1, kind)(
                credentials=self.credentials, transport="rest", client_options=options)
        return self._clients[kind]

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn SDK, auth and transport failures into one DriverError line naming ``what``."""
        import google.auth.exceptions
        import requests
        from google.api_core import exceptions as api

        try:
            yield
        except api.NotFound as exc:
            raise ResourceNotFound(f"{what}: {exc.message}", driver=DRIVER) from exc
        except (api.Unauthorized, api.Forbidden) as exc:
            raise CredentialsError(f"{what}: {exc.message}", driver=DRIVER,
                                   hint="check the credentials' project access and IAM roles") from exc
        except api.GoogleAPICallError as exc:
            raise DriverError(f"{what}: {exc.message}", driver=DRIVER) from exc
        except google.auth.exceptions.RefreshError as exc:
            raise CredentialsError(f"{what}: the credentials were refused: {exc}", driver=DRIVER) from exc
        except (google.auth.exceptions.TransportError, requests.RequestException) as exc:
            where = self.endpoint or "the Compute Engine API"
            raise DriverError(f"{what}: cannot reach {where}: {type(exc).__name__}", driver=DRIVER) from exc

    def call(self, what: str, kind: str, method: str, **request: Any) -> Any:
        with self.errors(what):
            return getattr(self.client(kind), method)(timeout=CALL_TIMEOUT, **request)

    def wait(self, operation: Any, what: str, timeout: float,
             progress: Callable[[str], None] | None = None) -> Any:
        """Poll ``operation`` through our own operations clients until DONE; raise on its error."""
        from google.cloud import compute_v1

        done = compute_v1.Operation.Status.DONE
        deadline = waiting.Deadline(timeout)

        def finished() -> bool:
            # The server's wait is best effort and may answer early; wait_for's backoff keeps that from spinning.
            nonlocal operation
            if operation.status != done and deadline.remaining() > 0:
                slice_ = min(deadline.remaining(), WAIT_SLICE)
                with self.errors(f"{what} (waiting on {operation.name})"):
                    if operation.zone:
                        operation = self.client("ZoneOperationsClient").wait(
                            project=self.project, zone=last_segment(operation.zone), operation=operation.name,
                            timeout=slice_ + 10)
                    else:
                        operation = self.client("GlobalOperationsClient").wait(
                            project=self.project, operation=operation.name, timeout=slice_ + 10)
            return operation.status == done

        waiting.wait_for(f"{what}: operation {operation.name}", finished, timeout=deadline, interval=0.05,
                         backoff=2.0, max_interval=2.0, error=lambda expired: TimeoutExpired(
                             f"{what}: operation {operation.name} still "
                             f"{compute_v1.Operation.Status(operation.status).name} after {timeout:.0f} s"))
        if operation.error.errors:
            raise DriverError(f"{what}: {describe_operation_error(operation)}", driver=DRIVER)
        return operation

    def run(self, what: str, kind: str, method: str, *, timeout: float,
            on_accepted: Callable[[Any], None] | None = None, **request: Any) -> Any:
        """Start a mutating call and wait for its operation. ``on_accepted`` runs as soon as the API has
        accepted it (the resource exists from then on), before any waiting."""
        operation = self.call(what, kind, method, **request)
        if on_accepted is not None:
            on_accepted(operation)
        return self.wait(operation, what, timeout)


def ignore_missing(action: Callable[[], T]) -> T | None:
    """Run ``action``; a 404 means the resource is already gone, which is what removal wants."""
    try:
        return action()
    except ResourceNotFound:
        return None
