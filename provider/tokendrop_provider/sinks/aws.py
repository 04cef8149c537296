"""What the AWS sinks (SSM, Secrets Manager) share: the retry policy, one call with bounded backoff,
how a failed call is recorded and whether a write's outcome is unknown, the clients (botocore
sessions sharing one data loader), the registration of credentials botocore found itself, and
how a payload is rendered into the stored text.

botocore is imported only inside the functions that run after a client exists.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..endpoints import checked_endpoint
from ..errors import ConfigError, SinkAccessDenied, SinkError
from ..lazy import IMPORT_LOCK
from ..secret import Secret, register, scrub
from ..settings import AwsSettings
from .base import Payload

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.session import Session


THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyUpdates"})
# A write whose request went out but whose answer was lost (see invoke): its outcome is unknown.
RESPONSE_LOST = "ResponseLost"


@dataclass(frozen=True)
class SsmRetryPolicy:
    """How hard to try before giving up on a throttled call (SSM and Secrets Manager alike).

    botocore's own retries run first (`botocore_mode` "adaptive" adds its client-side rate limiter,
    shared by every sink using the same cached client); on top of that we back off and retry
    ThrottlingException and TooManyUpdates (which botocore does not retry) `attempts` times.
    """

    botocore_mode: str = "adaptive"
    botocore_max_attempts: int = 3  # total sends per call inside botocore (1 = no botocore retry)
    attempts: int = 5  # our rounds on top of botocore's
    base_delay: float = 0.5  # seconds; doubles each round, with jitter
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


DEFAULT_RETRY = SsmRetryPolicy()


def silence_botocore_debug() -> None:
    # botocore's DEBUG records include request bodies, i.e. the parameter Value: never let them out.
    import logging

    logger = logging.getLogger("botocore")
    if logger.getEffectiveLevel() < logging.INFO:
        logger.setLevel(logging.INFO)


def register_found_credentials(session: Session) -> None:
    """Credentials botocore finds itself (profile files, SSO, instance metadata) are scrubbed from output too."""
    from botocore.exceptions import BotoCoreError  # already loaded by the client factory

    try:
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except BotoCoreError:
        frozen = None  # the first call fails the same way, and says so
    if frozen is not None:
        register(frozen.secret_key or "")
        register(frozen.token or "")


# Clients come from botocore sessions, one per profile (None: the default chain), all sharing one data
# loader: the service models, endpoint rules and partitions are parsed once per process instead of once
# per client (each later client of the same session costs ~3 ms of CPU instead of ~60; boto3's Session
# added ~15 ms of imports and a new botocore session per client). docs/performance.md has the numbers.
# botocore sessions are not thread-safe for client creation: every use of them is under _SESSIONS_LOCK.
_SESSIONS: dict[str | None, Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(profile: str | None) -> Session:
    """The process-wide botocore session of `profile` (call with _SESSIONS_LOCK held)."""
    import botocore.session  # already loaded by the client factory

    session = _SESSIONS.get(profile)
    if session is None:
        session = botocore.session.Session(profile=profile)
        if _SESSIONS:  # the first session's loader, with whatever it has parsed already
            session.register_component("data_loader", next(iter(_SESSIONS.values())).get_component("data_loader"))
        _SESSIONS[profile] = session
    return session


def forget_sessions() -> None:
    """Drop the sessions, so that the next client reads the credential chain and config files afresh."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def new_client(aws: AwsSettings, *, service: str, name: str, endpoint_url: str | None, retry: SsmRetryPolicy,
               setting: str, carries: str) -> BaseClient:
    """A botocore client for `service` ("ssm"), called `name` ("SSM") in messages, after the caller checked
    the configured endpoint: the credentials must come in pairs, the endpoint botocore resolves is checked
    too, configuration failures become ConfigError, and the credentials botocore found are registered."""
    with IMPORT_LOCK:  # lazy: a provider that never touches AWS never pays for botocore
        import botocore.session  # noqa: F401 - loaded here, on one thread, for _session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ProfileNotFound

    silence_botocore_debug()
    if bool(aws.access_key_id) != bool(aws.secret_access_key):
        raise ConfigError("Incomplete AWS credentials",
                          "aws_access_key_id and aws_secret_access_key must be set together",
                          attribute=("aws_secret_access_key" if aws.access_key_id else "aws_access_key_id",))
    keys = {"aws_access_key_id": aws.access_key_id,
            "aws_secret_access_key": aws.secret_access_key.reveal() if aws.secret_access_key else None,
            "aws_session_token": aws.session_token.reveal() if aws.session_token else None}
    try:
        with _SESSIONS_LOCK:
            session = _session(aws.profile)
            if aws.assume_role_arn:
                register_found_credentials(session)
        if aws.assume_role_arn:  # outside the lock: other clients need not wait for STS's answer
            keys = _assumed_credentials(Config, session, aws, keys)
        with _SESSIONS_LOCK:
            client = session.create_client(
                service, region_name=aws.region, endpoint_url=endpoint_url, **keys,
                config=Config(retries={"mode": retry.botocore_mode,
                                       "total_max_attempts": retry.botocore_max_attempts},
                              connect_timeout=10, read_timeout=30, user_agent_extra="tokendrop"))
            if not keys["aws_access_key_id"]:
                register_found_credentials(session)  # the chain's: explicit keys are registered already
        # Also an endpoint from the shared config file (endpoint_url, services sections), which the
        # settings never see: the rule applies to wherever the values will actually go.
        checked_endpoint(client.meta.endpoint_url, label=f"{name} endpoint", setting=setting,
                         named=f"the {name} endpoint botocore resolved ({client.meta.endpoint_url})",
                         carries=carries)
    except ProfileNotFound as exc:
        raise ConfigError("AWS profile not found", str(exc), attribute=("aws_profile",)) from None
    except BotoCoreError as exc:
        if type(exc).__name__ == "NoRegionError":
            raise ConfigError("AWS region is not configured", "set aws_region in the provider block, or AWS_REGION",
                              attribute=("aws_region",)) from None
        raise ConfigError(f"Cannot configure the AWS {name} client", str(exc)) from None
    return client


_ASSUMED: dict[tuple[str, str, str | None, AwsSettings], dict[str, Any]] = {}
_ASSUMED_LOCK = threading.Lock()  # taken before _SESSIONS_LOCK, never after


def _assumed_credentials(config: Any, base: Session, aws: AwsSettings, keys: dict[str, str | None]
                         ) -> dict[str, str | None]:
    """The credentials of `aws.assume_role_arn`, got with STS AssumeRole from the provider's (`keys`, else
    the base session's chain), once per role, session name and region in this process: the SSM and
    Secrets Manager clients of one location share them. See docs/wire.md ("STS")."""
    base_settings = dataclasses.replace(aws, assume_role_arn=None)
    key = (str(aws.assume_role_arn), aws.role_session_name, aws.region, base_settings)
    with _ASSUMED_LOCK:
        return _assume(config, base, aws, keys, key)


def _assume(config: Any, base: Session, aws: AwsSettings, keys: dict[str, str | None],
            key: tuple[str, str, str | None, AwsSettings]) -> dict[str, str | None]:
    credentials = _ASSUMED.get(key)
    if credentials is None:
        with _SESSIONS_LOCK:
            sts = base.create_client("sts", region_name=aws.region, **keys,
                                     config=config(user_agent_extra="tokendrop", connect_timeout=10,
                                                   read_timeout=30))
        checked_endpoint(sts.meta.endpoint_url, label="STS endpoint", setting="AWS_ENDPOINT_URL_STS",
                         named=f"the STS endpoint botocore resolved ({sts.meta.endpoint_url})",
                         carries="the credentials of the assumed role")
        try:
            answer = sts.assume_role(RoleArn=aws.assume_role_arn, RoleSessionName=aws.role_session_name)
        except Exception as exc:  # botocore's ClientError and friends: the message names the role
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise SinkAccessDenied(f"Cannot assume {aws.assume_role_arn}",
                                   f"STS AssumeRole answered {code} ({scrub(str(exc))}). The provider's AWS "
                                   "credentials need sts:AssumeRole on it, and its trust policy must allow "
                                   "them.") from None
        credentials = answer["Credentials"]
        register(credentials["SecretAccessKey"])
        register(credentials["SessionToken"])
        _ASSUMED[key] = credentials
    return {"aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


# --- calls, retries and error mapping -----------------------------------------------------------


class AwsFailure(Exception):
    """A failed AWS call, before it is turned into a typed sink error at the call site."""

    def __init__(self, operation: str, code: str, message: str, status: int | None,
                 attempts: int = 1) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.status = status
        self.attempts = attempts


def write_outcome_unknown(failure: AwsFailure, write_operations: frozenset[str]) -> bool:
    """A write that was sent and got no definite answer (lost, or a 5xx): it may have been carried out."""
    return failure.operation in write_operations and (
        failure.code == RESPONSE_LOST or (failure.status or 0) >= 500)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    # AWS never echoes the Value, but an error text is checked anyway before it can reach a user.
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def invoke(client: BaseClient, retry: SsmRetryPolicy, operation: str, secrets: Sequence[str] = (),
           **params: Any) -> dict[str, Any]:
    """Call one AWS operation with our bounded backoff; raise AwsFailure or a typed error."""
    from botocore import exceptions as bex  # already loaded by the client factory

    method = getattr(client, "".join("_" + c.lower() if c.isupper() else c for c in operation)[1:])
    attempt = 0
    while True:
        attempt += 1
        try:
            return method(**params)
        except bex.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in THROTTLE_CODES and attempt < retry.attempts:
                time.sleep(retry.delay(attempt))
                continue
            failure = AwsFailure(operation, code, _scrub(str(error.get("Message", "")), secrets),
                                 status, attempt)
            raise failure from (None if secrets else exc)
        except bex.ParamValidationError as exc:
            # botocore's own message may quote parameter values: scrub it and drop the chain.
            raise AwsFailure(operation, "ParamValidationError", _scrub(str(exc), secrets),
                             None) from None
        except bex.NoCredentialsError:
            raise ConfigError("No AWS credentials found",
                              "configure the default credential chain (environment, profile, instance "
                              "role) or set aws_access_key_id and aws_secret_access_key",
                              attribute=("aws_access_key_id",)) from None
        except (bex.EndpointConnectionError, bex.ConnectTimeoutError) as exc:
            # No connection was made, so the request never reached AWS.
            raise AwsFailure(operation, "ConnectionError", str(exc), None) from None
        except (bex.ConnectionClosedError, bex.ReadTimeoutError) as exc:
            # The request went out and no answer came back: AWS may or may not have carried it out.
            raise AwsFailure(operation, RESPONSE_LOST, str(exc), None) from None


# --- the stored text ----------------------------------------------------------------------------


def pages(call: Callable[..., dict[str, Any]], operation: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a paginated AWS read, following NextToken; each page is fetched when asked for."""
    token: str | None = None
    while True:
        page = call(operation, **params, **({"NextToken": token} if token else {}))
        yield page
        token = page.get("NextToken")
        if not token:
            return


def render(payload: Payload, field: str | None = None) -> str:
    """The stored text: the token itself, or a JSON object with the token under `field`; a
    multi-field payload is always a compact JSON object."""
    if isinstance(payload, Secret):
        return payload.reveal() if field is None else json.dumps({field: payload.reveal()})
    if isinstance(payload, Mapping) and payload:
        return json.dumps({k: v.reveal() if isinstance(v, Secret) else v for k, v in payload.items()},
                          sort_keys=True, separators=(",", ":"))
    raise SinkError("Nothing to deliver", "the payload is empty")


def secret_texts(payload: Payload, value: str) -> list[str]:
    """Every text a failed write's error message must not show: the stored text and each secret in it."""
    texts = [value]
    if isinstance(payload, Mapping):
        texts += [v.reveal() for v in payload.values() if isinstance(v, Secret)]
    elif isinstance(payload, Secret):
        texts.append(payload.reveal())
    return texts
