"""SSM Parameter Store sink: one SecureString parameter holding one delivered token.

Wire facts this module relies on (docs/wire.md, section "SSM"):

- PutParameter writes Value and Description in one call, so the ownership record lives in the
  Description, as a suffix after the user's text (format in `ssm_rules`). It names the parameter
  version the write creates, because SSM keeps the old Description when someone overwrites the value
  without one: a record whose version is not the current Version describes an older value.
- Create is `Overwrite=False` with Tags; rotation is `Overwrite=True` without Tags (AWS rejects both
  together); tags change through AddTagsToResource / RemoveTagsFromResource.
- SSM has no compare-and-set. `replace` checks the current Version and then writes: a writer that
  slips in between those two calls (milliseconds) is overwritten, and our record then names a
  version one lower than the parameter's, so the next `status()` reports it as not current.
- Description, Tier, KeyId and Policies can only change through PutParameter, which needs the value
  and creates a version. `reconcile_settings()` therefore only reconciles tags (and refuses a tier
  downgrade); `pending_changes()` lists what the next `replace()` will change.
- Status is read with DescribeParameters, which never returns the value. GetParameter is used only by
  `read_payload`, to copy a delivered token into a sibling sink of the same resource (fan-out).
- Labels: after each write the new version is labelled `current` and, on a rotation, the version it
  follows `previous` (LabelParameterVersion moves a label off the version that had it), so a consumer can
  fall back to `<name>:previous` during `keep_previous_for`. A label failure is a warning, never undoes
  the write.

botocore is imported only inside `ssm_client()`: importing this module stays cheap for provider start-up.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..endpoints import check_ssm_endpoint
from ..errors import ConfigError, SinkAccessDenied, SinkConflict, SinkError, SinkNotFound, SinkWriteUnknown
from ..settings import AwsSettings, batching_enabled
from .aws import (
    DEFAULT_RETRY,
    THROTTLE_CODES,
    AwsFailure,
    SsmRetryPolicy,
    forget_sessions,
    invoke,
    new_client,
    pages,
    render,
    secret_texts,
    write_outcome_unknown,
)
from .aws_rules import desired_tags, tag_changes, tag_map, user_tags
from .base import Ownership, Payload, Sink, SinkStatus, stored_payload
from .ssm_rules import (
    MAX_DESCRIPTION_LENGTH,
    POLICY_TIERS,
    expiration_timestamp,
    format_description,
    parse_description,
    validate_description,
    validate_expires_at,
    validate_kms_key_id,
    validate_parameter_name,
    validate_tags,
    validate_tier,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

DESCRIBE_BATCH = 50  # DescribeParameters: at most 50 filter values and 50 results per call
CURRENT_LABEL = "current"  # the version holding the live token (`<name>:current`)
PREVIOUS_LABEL = "previous"  # the version before it (`<name>:previous`)
STANDARD_VALUE_LIMIT = 4096  # bytes; Advanced allows 8192
ADVANCED_VALUE_LIMIT = 8192

_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "403"})
_WRITE_OPERATIONS = frozenset({"PutParameter"})
_BAD_CREDENTIAL_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId",
                                   "ExpiredTokenException", "InvalidSignatureException",
                                   "SignatureDoesNotMatch"})


# --- client factory ---------------------------------------------------------------------------

_clients: dict[tuple[AwsSettings, str, int], BaseClient] = {}
_clients_lock = threading.Lock()


def ssm_client(settings: AwsSettings, retry: SsmRetryPolicy = DEFAULT_RETRY) -> BaseClient:
    """The process-wide SSM client for these settings (created on first use, then reused)."""
    key = (settings, retry.botocore_mode, retry.botocore_max_attempts)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            return client
        check_ssm_endpoint(settings)
        client = new_client(settings, service="ssm", name="SSM", endpoint_url=settings.endpoint_url_ssm,
                            retry=retry, setting="aws_endpoint_url_ssm",
                            carries="every value tokendrop delivers to SSM")
        _clients[key] = client
        return client


def clear_client_cache() -> None:
    """Forget cached clients and listings (tests; or after credentials were rotated in-process)."""
    with _clients_lock:
        _clients.clear()
    forget_sessions()
    _SIBLINGS.clear()


# --- calls, retries and error mapping -----------------------------------------------------------


def _sink_error(failure: AwsFailure, address: str) -> SinkError:
    """Turn a failed call into the typed error the provider reports."""
    op, code, message = failure.operation, failure.code, failure.message
    detail = f"{code}: {message}" if message else code
    if write_outcome_unknown(failure, _WRITE_OPERATIONS):
        return SinkWriteUnknown(f"No clear answer from SSM to {op} on {address}",
                                f"{detail}. The request was sent, so the value may or may not have been "
                                "stored")
    if code in _DENIED_CODES or failure.status == 403:
        need = (f"ssm:{op} on resource \"*\" (AWS does not scope it to a parameter)"
                if op == "DescribeParameters" else
                f"ssm:{op} on this parameter (and, for a customer-managed KMS key, kms:Encrypt on it)")
        return SinkAccessDenied(f"AWS denied ssm:{op} on {address}",
                                f"{detail}. The credentials need {need}")
    if code in _BAD_CREDENTIAL_CODES:
        return SinkAccessDenied(f"AWS rejected the credentials calling ssm:{op} on {address}", detail)
    if code in THROTTLE_CODES:
        return SinkError(f"SSM throttled {op} on {address}",
                         f"still {code} after {failure.attempts} attempts with backoff; the call was "
                         "not carried out. Try again later, spread the rollout, or enable SSM's higher "
                         "throughput setting")
    if code == "ParameterNotFound":
        return SinkNotFound(f"{address} does not exist", detail)
    if code == "InvalidKeyId":
        return SinkError(f"SSM rejected the KMS key for {address}", detail, attribute=("kms_key_id",))
    if code == "ConnectionError":
        return SinkError(f"Cannot reach SSM for {address}", message)
    return SinkError(f"SSM {op} failed for {address}", detail)


# --- reading metadata ---------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return "/" + name.lstrip("/")


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _describe(client: BaseClient, retry: SsmRetryPolicy, names: Sequence[str],
              address: str) -> dict[str, dict[str, Any]]:
    """DescribeParameters for up to 50 names per call (following NextToken if AWS pages).
    Returns the metadata of the names that exist, keyed by the requested name."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(names, DESCRIBE_BATCH):
        requested_names = set(chunk)
        by_normalized = {_normalized(n): n for n in chunk}
        try:
            for page in pages(lambda operation, **params: invoke(client, retry, operation, **params),
                              "DescribeParameters", MaxResults=DESCRIBE_BATCH,
                              ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": list(chunk)}]):
                for meta in page.get("Parameters", []):
                    name = meta.get("Name", "")
                    # The Name filter may match "/x" for "x" (moto does): map back to the spelling asked for.
                    requested = name if name in requested_names else by_normalized.get(_normalized(name))
                    if requested is not None:
                        found[requested] = meta
        except AwsFailure as failure:
            raise _sink_error(failure, address) from failure.__cause__
    return found


# Refreshing many tokens reads many parameters, usually siblings under one path. One DescribeParameters
# listing of the parent path (50 per page, metadata only) answers all of them, instead of a call each.
# A parent holding more than this many pages of parameters is not "ours": those names are described
# one by one instead.
SIBLING_PAGE_LIMIT = 20


class _SiblingCache:
    """Per-process cache of `Path OneLevel` listings, shared by concurrent refreshes. Each parent is
    listed once (concurrent callers wait for the first); our own writes drop the names they touch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], _SiblingListing] = {}

    def metadata(self, client: BaseClient, retry: SsmRetryPolicy, name: str,
                 address: str) -> tuple[bool, dict[str, Any] | None]:
        """(answered, metadata). Not answered when the name has no parent path or the parent is too big."""
        parent, _, leaf = name.rpartition("/")
        if not name.startswith("/") or not leaf or not batching_enabled():
            return False, None
        with self._lock:
            entry = self._entries.setdefault((id(client), parent or "/"), _SiblingListing())
        listing = entry.get(lambda: _list_path(client, retry, parent or "/", address))
        if listing is None or name in entry.forgotten:
            return False, None
        return True, listing.get(name)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def forget(self, client: BaseClient, name: str) -> None:
        parent = name.rpartition("/")[0] or "/"
        with self._lock:
            entry = self._entries.get((id(client), parent))
        if entry is not None:
            entry.forgotten.add(name)


class _SiblingListing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fetched = False
        self._value: dict[str, dict[str, Any]] | None = None
        self.forgotten: set[str] = set()

    def get(self, fetch: Callable[[], dict[str, dict[str, Any]] | None]) -> dict[str, dict[str, Any]] | None:
        with self._lock:
            if not self._fetched:
                self._value = fetch()
                self._fetched = True
            return self._value


def _list_path(client: BaseClient, retry: SsmRetryPolicy, parent: str,
               address: str) -> dict[str, dict[str, Any]] | None:
    """Metadata of the parameters directly under `parent`, or None if there are too many."""
    found: dict[str, dict[str, Any]] = {}
    token: str | None = None
    for _ in range(SIBLING_PAGE_LIMIT):
        params: dict[str, Any] = {"ParameterFilters": [{"Key": "Path", "Option": "OneLevel", "Values": [parent]}],
                                  "MaxResults": DESCRIBE_BATCH}
        if token:
            params["NextToken"] = token
        try:
            page = invoke(client, retry, "DescribeParameters", **params)
        except AwsFailure as failure:
            raise _sink_error(failure, address) from failure.__cause__
        for meta in page.get("Parameters", []):
            found[meta.get("Name", "")] = meta
        token = page.get("NextToken")
        if not token:
            return found
    return None


_SIBLINGS = _SiblingCache()


def _status(meta: Mapping[str, Any] | None) -> SinkStatus:
    if meta is None:
        return SinkStatus(exists=False)
    version = int(meta["Version"])
    _, ownership = parse_description(meta.get("Description"))
    return SinkStatus(exists=True, version=version, ownership=ownership,
                      ownership_current=ownership is not None and ownership.version == version)


def describe_many(names: Sequence[str], settings: AwsSettings | None = None,
                  retry: SsmRetryPolicy = DEFAULT_RETRY) -> dict[str, SinkStatus]:
    """Status of many parameters with one DescribeParameters call per 50 names (never the values).

    Every requested name is in the result; names that do not exist map to `SinkStatus(exists=False)`.
    Needs ssm:DescribeParameters (which AWS grants only on resource "*").
    """
    unique = list(dict.fromkeys(names))
    for name in unique:
        error = validate_parameter_name(name)
        if error:
            raise ConfigError("Invalid SSM parameter name", error, attribute=("name",))
    if not unique:
        return {}
    client = ssm_client(settings or AwsSettings(), retry)
    found = _describe(client, retry, unique, f"ssm:({len(unique)} parameters)")
    return {name: _status(found.get(name)) for name in unique}


# --- the sink -----------------------------------------------------------------------------------


class SsmSink(Sink):
    """One SecureString parameter. See the module docstring for how each operation maps onto SSM."""

    kind = "ssm"

    def __init__(self, name: str, *, settings: AwsSettings, kms_key_id: str | None = None,
                 tier: str | None = None, description: str | None = None,
                 tags: Mapping[str, str] | None = None, expires_at: str | None = None,
                 retry: SsmRetryPolicy = DEFAULT_RETRY, address_region: str | None = None) -> None:
        tags = dict(tags or {})
        checks: list[tuple[str, str | None]] = [("name", validate_parameter_name(name, settings.region))]
        if kms_key_id is not None:
            checks.append(("kms_key_id", validate_kms_key_id(kms_key_id)))
        if tier is not None:
            checks.append(("tier", validate_tier(tier)))
        if description is not None:
            checks.append(("description", validate_description(description)))
        if expires_at is not None:
            checks.append(("expires_at", validate_expires_at(expires_at)))
        checks.append(("tags", validate_tags(tags)))
        for attribute, error in checks:
            if error:
                raise ConfigError("Invalid SSM parameter setting", error, attribute=(attribute,))
        self.name = name
        self.settings = settings
        self.kms_key_id = kms_key_id
        self.tier = tier
        self.description = description or ""
        self.tags = tags
        self.expires_at = expires_at
        self.retry = retry
        # The region the configuration names for this parameter (it is then part of the address).
        self.address_region = address_region
        # Non-fatal problems of the last call (e.g. tags that could not be updated after a rotation):
        # the value was written, so these are reported as warnings, not raised.
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"SsmSink({self.name!r})"

    @property
    def address(self) -> str:
        return f"ssm:{self.address_region}:{self.name}" if self.address_region else f"ssm:{self.name}"

    @property
    def expiration_ignored_reason(self) -> str | None:
        """Why `expires_at` does not become an Expiration policy, or None when it does (or is unset)."""
        if self.expires_at is None or self.tier in POLICY_TIERS:
            return None
        tier = f'tier is "{self.tier}"' if self.tier else "tier is not set (the account default applies)"
        return (f"expires_at is not applied to {self.address} as an Expiration policy: parameter policies "
                f'need tier "Advanced" or "Intelligent-Tiering", and the {tier}')

    # -- internals

    def _client(self) -> BaseClient:
        return ssm_client(self.settings, self.retry)

    def _call(self, operation: str, secrets: Sequence[str] = (), **params: Any) -> dict[str, Any]:
        try:
            return invoke(self._client(), self.retry, operation, secrets, **params)
        except AwsFailure as failure:
            raise _sink_error(failure, self.address) from failure.__cause__

    def _metadata(self) -> dict[str, Any] | None:
        return _describe(self._client(), self.retry, [self.name], self.address).get(self.name)

    def _description(self, ownership: Ownership, version: int) -> str:
        text = format_description(self.description, ownership, version)
        if len(text) > MAX_DESCRIPTION_LENGTH:
            raise ConfigError("Description too long",
                              f"the description with tokendrop's ownership record is {len(text)} "
                              f"characters; SSM allows {MAX_DESCRIPTION_LENGTH}. Shorten the description",
                              attribute=("description",))
        return text

    def _check_value_size(self, value: str) -> None:
        size = len(value.encode())
        limit = STANDARD_VALUE_LIMIT if self.tier == "Standard" else ADVANCED_VALUE_LIMIT
        if size > limit:
            raise SinkError(f"The value for {self.address} is too large",
                            f"{size} bytes; the {self.tier or 'Advanced'} tier allows {limit}")

    def _check_tier(self, meta: Mapping[str, Any]) -> None:
        if self.tier == "Standard" and meta.get("Tier") == "Advanced":
            raise ConfigError("SSM parameters cannot move back to the Standard tier",
                              f"{self.address} is an Advanced parameter and AWS never downgrades one. "
                              'Set tier = "Advanced" (or "Intelligent-Tiering"), or delete the parameter '
                              "so that it is created again as Standard", attribute=("tier",))

    def _expiration_policies(self) -> str | None:
        if self.expires_at is None or self.tier not in POLICY_TIERS:
            return None
        return json.dumps([{"Type": "Expiration", "Version": "1.0",
                            "Attributes": {"Timestamp": expiration_timestamp(self.expires_at)}}])

    def _desired_tags(self, issuer: str | None) -> dict[str, str]:
        return desired_tags(self.tags, issuer)

    def _put(self, value: str, description: str, *, overwrite: bool, payload: Payload,
             policies: str | None, tags: dict[str, str] | None, tier: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"Name": self.name, "Value": value, "Type": "SecureString",
                                  "Overwrite": overwrite, "Description": description}
        if tags:
            params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        if self.kms_key_id:
            params["KeyId"] = self.kms_key_id
        if tier:
            params["Tier"] = tier
        if policies:
            params["Policies"] = policies
        _SIBLINGS.forget(self._client(), self.name)  # our own write: later reads ask SSM afresh
        # botocore would resend a PutParameter whose answer was lost: a create then meets its own
        # value as "already exists", and an overwrite stores a second version. Writes are sent once;
        # delivery reads the parameter back instead (throttling is still retried by invoke).
        write_retry = dataclasses.replace(self.retry, botocore_max_attempts=1)
        return invoke(ssm_client(self.settings, write_retry), write_retry, "PutParameter",
                       secret_texts(payload, value), **params)

    def _owner_text(self, meta: Mapping[str, Any] | None) -> str:
        if meta is None:
            return ""
        _, ownership = parse_description(meta.get("Description"))
        if ownership is None:
            return " It carries no tokendrop ownership record (it was written by something else)."
        return (f" It holds {ownership.issuer} token {ownership.token_id}, written by tokendrop "
                f"resource {ownership.owner}.")

    # -- Sink API

    def status(self) -> SinkStatus:
        answered, meta = _SIBLINGS.metadata(self._client(), self.retry, self.name, self.address)
        return _status(meta if answered else self._metadata())

    def create(self, payload: Payload, ownership: Ownership) -> int:
        self.warnings = []
        value = render(payload)
        self._check_value_size(value)
        try:
            result = self._put(value, self._description(ownership, 1), overwrite=False, payload=payload,
                               policies=self._expiration_policies(),
                               tags=self._desired_tags(ownership.issuer), tier=self.tier)
        except AwsFailure as failure:
            if failure.code != "ParameterAlreadyExists":
                raise _sink_error(failure, self.address) from failure.__cause__
            meta = self._metadata()
            current = _status(meta)
            own = current.ownership
            if (current.ownership_current and own is not None and own.token_id == ownership.token_id
                    and own.owner == ownership.owner and current.version == 1):
                self._move_labels(1, None)
                return 1  # our own earlier attempt landed (e.g. a retried call): nothing else to do
            raise SinkConflict(f"{self.address} already exists",
                               "tokendrop creates the parameter and will not overwrite one it did not "
                               f"write.{self._owner_text(meta)} Delete it, choose another name, or "
                               "adopt it (adopt_existing = true)", attribute=("name",)) from None
        if self.expiration_ignored_reason:
            self.warnings.append(self.expiration_ignored_reason)
        self._move_labels(int(result["Version"]), None)
        return int(result["Version"])

    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        self.warnings = []
        value = render(payload)
        self._check_value_size(value)
        meta = self._metadata()
        if meta is None:
            raise SinkConflict(f"{self.address} does not exist",
                               f"expected version {expected_version}; it was deleted outside tokendrop")
        current = int(meta["Version"])
        if current != expected_version:
            raise SinkConflict(f"{self.address} changed outside tokendrop",
                               f"expected version {expected_version}, found {current}."
                               f"{self._owner_text(meta)}")
        self._check_tier(meta)
        policies = self._expiration_policies()
        if policies is None and meta.get("Policies"):
            # New policies replace old ones, and the old Expiration would delete the new token.
            policies = "[{}]"
        # Tier unset: keep the parameter's own, rather than let the account default attempt a downgrade.
        tier = self.tier or meta.get("Tier")
        try:
            result = self._put(value, self._description(ownership, expected_version + 1), overwrite=True,
                               payload=payload, policies=policies, tags=None, tier=tier)
        except AwsFailure as failure:
            raise _sink_error(failure, self.address) from failure.__cause__
        written = int(result["Version"])
        if written != expected_version + 1:
            self.warnings.append(f"{self.address} was written concurrently by someone else: "
                                 f"wrote version {written}, expected {expected_version + 1}")
        self._move_labels(written, expected_version)
        try:
            self._reconcile_tags(ownership.issuer)
        except SinkError as exc:  # the value is in place: a tag failure must not undo the rotation
            self.warnings.append(f"tags of {self.address} were not updated: {exc}")
        if self.expiration_ignored_reason:
            self.warnings.append(self.expiration_ignored_reason)
        return written

    def landed(self, version: int) -> None:
        self._move_labels(version, version - 1 if version > 1 else None)

    def _move_labels(self, written: int, previous: int | None) -> None:
        """`previous` onto the version the write followed, then `current` onto the new one: a reader of
        `<name>:current` never sees a version older than `<name>:previous`. Each call moves the label off
        the version that had it. A failure (e.g. no ssm:LabelParameterVersion) is a warning: the value is
        in place, and `<name>` alone always reads the newest version."""
        moves = ([(previous, PREVIOUS_LABEL)] if previous else []) + [(written, CURRENT_LABEL)]
        for version, label in moves:
            try:
                answer = self._call("LabelParameterVersion", Name=self.name, ParameterVersion=version, Labels=[label])
            except SinkError as exc:
                self.warnings.append(f"the label {label!r} of {self.address} was not moved to version {version}: "
                                     f"{exc}")
                continue
            if answer.get("InvalidLabels"):  # AWS answers 200 and lists labels it did not attach
                self.warnings.append(f"SSM did not attach the label {label!r} to {self.address} version {version}")

    def delete(self, expected_token_id: str | None) -> bool:
        meta = self._metadata()
        if meta is None:
            return False
        current = _status(meta)
        if expected_token_id is not None:
            own = current.ownership
            if own is None or own.token_id != expected_token_id:
                return False  # someone else's value is never deleted
            if own.version is not None and current.version is not None and current.version > own.version:
                return False  # overwritten after our write (record kept by SSM): not ours any more
        self.warnings = []
        try:
            foreign = self._foreign_versions(current)
        except SinkAccessDenied as exc:  # cannot tell whose the history is: keep it (the token is revoked)
            self.warnings.append(f"{self.address} was left in place: its history could not be read to check "
                                 f"that tokendrop wrote every version ({exc.summary}; needs "
                                 "ssm:GetParameterHistory on the parameter)")
            return False
        if foreign:
            # DeleteParameter takes the whole history with it: someone else's versions would go too.
            listed = ", ".join(map(str, foreign[:10])) + (" ..." if len(foreign) > 10 else "")
            self.warnings.append(
                f"{self.address} was left in place: version{'s' if len(foreign) > 1 else ''} {listed} "
                f"{'were' if len(foreign) > 1 else 'was'} not written by tokendrop, and SSM can only delete a "
                "parameter together with its whole history. The token it holds is revoked; delete the "
                "parameter yourself if nobody needs its history (aws ssm delete-parameter).")
            return False
        _SIBLINGS.forget(self._client(), self.name)
        try:
            self._call("DeleteParameter", Name=self.name)
        except SinkNotFound:
            return False
        return True

    def _foreign_versions(self, status: SinkStatus) -> list[int]:
        """Versions in the parameter's history that tokendrop did not write: those whose Description
        carries no tokendrop record naming that very version (SSM keeps the previous Description when
        someone overwrites the value without one). GetParameterHistory without decryption: values
        never leave SSM. A parameter whose current record names version 1 has no other version, so it
        needs no history call."""
        if status.ownership_current and status.version == 1:
            return []
        foreign: list[int] = []
        for page in pages(self._call, "GetParameterHistory", Name=self.name, WithDecryption=False, MaxResults=50):
            for entry in page.get("Parameters", []):
                version = int(entry["Version"])
                _, record = parse_description(entry.get("Description"))
                if record is None or record.version != version:
                    foreign.append(version)
        return sorted(foreign)

    def read_payload(self, version: int) -> Payload:
        reply = self._call("GetParameter", Name=f"{self.name}:{version}", WithDecryption=True)
        text = (reply.get("Parameter") or {}).get("Value")
        if not isinstance(text, str) or not text:
            raise SinkError(f"Cannot read {self.address} back", f"version {version} holds no value")
        return stored_payload(text)

    def reconcile_settings(self) -> None:
        """Tags only (no new version); refuses a tier downgrade. See `pending_changes()`."""
        self.warnings = []
        meta = self._metadata()
        if meta is None:
            raise SinkNotFound(f"{self.address} does not exist", "nothing to reconcile")
        self._check_tier(meta)
        _, ownership = parse_description(meta.get("Description"))
        self._reconcile_tags(ownership.issuer if ownership else None)
        self.warnings.extend(f"{change} (applied at the next rotation)"
                             for change in self._pending_changes(meta))

    def note_expiry(self, expires_at: str | None) -> None:
        # The parameter should not outlive the token it holds: an Expiration policy where the tier
        # allows one (Standard parameters cannot carry policies; that is not worth a warning each time).
        if self.tier in POLICY_TIERS:
            self.expires_at = expires_at

    def current_settings(self) -> dict[str, object]:
        """The parameter's configurable settings in `deliver_to.ssm`'s shape, defaults as None
        (import fills the configuration's view of the sink from this)."""
        meta = self._metadata()
        if meta is None:
            return {}
        listed = self._call("ListTagsForResource", ResourceType="Parameter", ResourceId=self.name)
        tags = user_tags(listed.get("TagList", []))
        key_id = meta.get("KeyId")
        tier = meta.get("Tier")
        user_description, _ = parse_description(meta.get("Description"))
        return {
            "kms_key_id": None if key_id in (None, "alias/aws/ssm") else key_id,
            "tier": None if tier in (None, "Standard") else tier,
            "description": user_description or None,
            "tags": tags or None,
        }

    def pending_changes(self) -> list[str]:
        """Configured settings that differ from the parameter and need a new version to change
        (PutParameter always carries the value): they are applied by the next `replace()`."""
        meta = self._metadata()
        return [] if meta is None else self._pending_changes(meta)

    def _pending_changes(self, meta: Mapping[str, Any]) -> list[str]:
        changes = []
        user_description, _ = parse_description(meta.get("Description"))
        if user_description != self.description:
            changes.append(f"description of {self.address} differs")
        if self.tier == "Advanced" and meta.get("Tier") == "Standard":
            changes.append(f"{self.address} is Standard and configured as Advanced")
        if self.kms_key_id and meta.get("KeyId") != self.kms_key_id:
            changes.append(f"{self.address} is encrypted with {meta.get('KeyId')!r}, "
                           f"configured {self.kms_key_id!r}")
        return changes

    def _reconcile_tags(self, issuer: str | None) -> None:
        listed = self._call("ListTagsForResource", ResourceType="Parameter", ResourceId=self.name)
        to_add, to_remove = tag_changes(tag_map(listed.get("TagList", [])), self._desired_tags(issuer))
        if to_add:
            self._call("AddTagsToResource", ResourceType="Parameter", ResourceId=self.name, Tags=to_add)
        if to_remove:
            self._call("RemoveTagsFromResource", ResourceType="Parameter", ResourceId=self.name,
                       TagKeys=to_remove)
