"""EC2 clients for the amazonec2 driver, and the one place SDK exceptions become ``ProvisionError``s.

Credentials come only from boto3's own chain (environment, shared files and profiles, SSO, container
and instance roles); nothing here reads or stores a key. Every client retries throttled calls with
backoff, has bounded connect/read timeouts, and honours the endpoint option; without it boto3 honours
``AWS_ENDPOINT_URL_EC2`` / ``AWS_ENDPOINT_URL`` by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from provision.errors import CredentialsError, DriverError

DRIVER = "amazonec2"

# Error codes AWS uses when it does not accept the caller's credentials (as opposed to permissions).
REJECTED_CREDENTIAL_CODES = frozenset({
    "AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidAccessKeyId", "InvalidToken",
})

# Adaptive mode adds client-side rate limiting on top of standard retries: a burst of calls during
# create/remove of several machines backs off instead of failing on RequestLimitExceeded.
RETRY_CONFIG = {"mode": "adaptive", "max_attempts": 10}
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


@dataclass(frozen=True)
class AWSTarget:
    region: str
    endpoint: str | None = None  # None: boto3 decides (AWS_ENDPOINT_URL_EC2 or the region's endpoint)


def known_regions() -> set[str]:
    """Every EC2 region botocore knows, across all partitions (aws, aws-cn, aws-us-gov, ...)."""
    import botocore.session

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def check_region(region: str) -> None:
    if not region:
        raise DriverError("No AWS region given: set --amazonec2-region or AWS_DEFAULT_REGION", driver=DRIVER)
    regions = known_regions()
    if region not in regions:
        raise DriverError(
            f'Unknown AWS region "{region}"',
            driver=DRIVER,
            hint=f"known EC2 regions: {', '.join(sorted(regions))} (a region newer than this botocore "
                 "needs a botocore upgrade)",
        )


def _credential_sources(botocore_session: Any) -> list[str]:
    resolver = botocore_session.get_component("credential_provider")
    return [provider.METHOD for provider in resolver.providers]


@dataclass(frozen=True)
class EC2:
    client: Any
    credential_source: str  # which link of boto3's chain supplied the keys ("env", "shared-credentials-file", ...)


def connect(target: AWSTarget) -> EC2:
    """An EC2 client with retries and timeouts; raises ``CredentialsError`` when the chain finds nothing."""
    import boto3
    import botocore.config
    import botocore.exceptions

    try:
        check_region(target.region)
        session = boto3.session.Session(region_name=target.region)
        credentials = session.get_credentials()
    except botocore.exceptions.ProfileNotFound as exc:
        raise CredentialsError(f"AWS credentials: {exc}", driver=DRIVER) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsError(f"AWS credentials could not be loaded: {exc}", driver=DRIVER) from exc
    if credentials is None:
        tried = ", ".join(_credential_sources(session._session))  # the chain boto3 actually walked
        raise CredentialsError(
            f"No AWS credentials found (tried boto3's chain: {tried})",
            driver=DRIVER,
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials, "
                 "or run where an instance or container role is available",
        )
    config = botocore.config.Config(
        retries=RETRY_CONFIG,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra="provision",
    )
    client = session.client("ec2", endpoint_url=target.endpoint or None, config=config)
    return EC2(client, str(getattr(credentials, "method", None) or "boto3's chain"))


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def ec2_errors(what: str, credential_source: str = "boto3's chain") -> Iterator[None]:
    """Turn botocore exceptions raised while doing ``what`` into one clear ``ProvisionError``."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in REJECTED_CREDENTIAL_CODES:
            raise CredentialsError(f"AWS rejected the credentials from {credential_source} while trying to {what}: "
                                   f"{code}: {message}", driver=DRIVER) from exc
        if code == "UnauthorizedOperation":
            raise DriverError(f"Not allowed to {what}: {message}", driver=DRIVER,
                              hint="the IAM policy of these credentials lacks this EC2 action") from exc
        raise DriverError(f"Could not {what}: {code}: {message}", driver=DRIVER) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise CredentialsError(f"No AWS credentials found while trying to {what}", driver=DRIVER) from exc
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError) as exc:
        raise DriverError(f"Could not {what}: cannot reach the EC2 endpoint ({exc})", driver=DRIVER) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise DriverError(f"Could not {what}: {exc}", driver=DRIVER) from exc

