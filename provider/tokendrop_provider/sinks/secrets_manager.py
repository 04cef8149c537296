"""AWS Secrets Manager sink: one secret holding one delivered token (a plain string, or one field of a
JSON object).

Wire facts this module relies on (docs/wire.md, section "AWS Secrets Manager"):

- A version id is the ClientRequestToken of the write that created it (32-64 characters, chosen by
  the caller). tokendrop's ids carry a counter (`secrets_manager_rules.new_version_id`), so versions
  tokendrop wrote are recognised and the sink reports increasing version numbers.
- CreateSecret writes the value, the Description (our ownership record), tags, KMS key and replica
  regions in one call: a create is atomic and create-only (ResourceExistsException otherwise).
- Rotation: (1) UpdateSecret writes the record naming the version about to be made (no new version
  without a value), (2) PutSecretValue writes the value under a tokendrop-only staging label, so no
  consumer sees it yet, (3) UpdateSecretVersionStage moves AWSCURRENT to it with RemoveFromVersionId =
  the version we hold; AWS fails that call when AWSCURRENT is on another version, so the switch is a
  compare-and-set, and AWSPREVIOUS follows to the version we held. (4) Our label is removed.
  A crash between the steps leaves a record that is not current, like the Vault KV sink.
- Status is DescribeSecret only (VersionIdsToStages, Description, DeletedDate): never the value.
- DeleteSecret needs the replicas removed first (RemoveRegionsFromReplication); RecoveryWindowInDays
  is 7-30, ForceDeleteWithoutRecovery deletes at once. The name stays taken while deletion is
  scheduled: a create for the same resource restores the secret (RestoreSecret) and writes a version.

botocore is imported only inside `secrets_manager_client()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..endpoints import checked_endpoint
from ..errors import ConfigError, SinkAccessDenied, SinkConflict, SinkError, SinkNotFound, SinkWriteUnknown
from ..settings import AwsSettings
from .aws import (
    DEFAULT_RETRY,
    AwsFailure,
    SsmRetryPolicy,
    invoke,
    new_client,
    pages,
    render,
    secret_texts,
    write_outcome_unknown,
)
from .aws_rules import desired_tags, tag_changes, tag_map, user_tags
from .base import Ownership, Payload, Sink, SinkStatus, stored_payload
from .secrets_manager_rules import (
    DEFAULT_RECOVERY_WINDOW,
    MAX_DESCRIPTION_LENGTH,
    SecretsManagerSettings,
    format_record,
    new_version_id,
    parse_record,
    validate_field,
    validate_kms_key_id,
    validate_recovery_window,
    validate_replica_regions,
    validate_secret_name,
    validate_tags,
    version_number,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

CURRENT = "AWSCURRENT"
PENDING = "TOKENDROP_PENDING"  # our own staging label for a version not yet made current
ENDPOINT_SETTING = "aws_endpoint_url_secretsmanager"
ENDPOINT_NAMED = (f"{ENDPOINT_SETTING} (or AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL_SECRETSMANAGER / "
                  "AWS_ENDPOINT_URL)")
_CARRIES = "every value tokendrop delivers to Secrets Manager"

_WRITE_OPERATIONS = frozenset({"CreateSecret", "PutSecretValue", "UpdateSecretVersionStage", "UpdateSecret"})
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
_BAD_CREDENTIAL_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId",
                                   "ExpiredTokenException", "InvalidSignatureException"})
_KMS_CODES = frozenset({"EncryptionFailure", "DecryptionFailure", "KMSInvalidStateException",
                        "KMSAccessDeniedException"})

_clients: dict[tuple[AwsSettings, SecretsManagerSettings, int], BaseClient] = {}
_clients_lock = threading.Lock()


def check_endpoint(endpoint: SecretsManagerSettings) -> None:
    """A custom endpoint must not carry secret values (and signed requests) in clear text."""
    if endpoint.endpoint_url:
        checked_endpoint(endpoint.endpoint_url, label="Secrets Manager endpoint", setting=ENDPOINT_SETTING,
                         named=ENDPOINT_NAMED, carries=_CARRIES)


def secrets_manager_client(aws: AwsSettings, endpoint: SecretsManagerSettings,
                           retry: SsmRetryPolicy = DEFAULT_RETRY) -> BaseClient:
    """The process-wide Secrets Manager client for these settings (created on first use)."""
    key = (aws, endpoint, retry.botocore_max_attempts)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            return client
        check_endpoint(endpoint)
        client = new_client(aws, service="secretsmanager", name="Secrets Manager", endpoint_url=endpoint.endpoint_url,
                            retry=retry, setting=ENDPOINT_SETTING, carries=_CARRIES)
        _clients[key] = client
        return client


def _sink_error(failure: AwsFailure, address: str) -> SinkError:
    """A failed call as the typed error the provider reports (same mapping as the SSM sink)."""
    op, code, message = failure.operation, failure.code, failure.message
    detail = f"{code}: {message}" if message else code
    if write_outcome_unknown(failure, _WRITE_OPERATIONS):
        return SinkWriteUnknown(f"No clear answer from Secrets Manager to {op} on {address}",
                                f"{detail}. The request was sent, so it may or may not have been carried out")
    if code in _DENIED_CODES or failure.status == 403:
        return SinkAccessDenied(f"AWS denied secretsmanager:{op} on {address}",
                                f"{detail}. The credentials need secretsmanager:{op} on this secret (and, for a "
                                "customer managed KMS key, kms:GenerateDataKey and kms:Decrypt on it)")
    if code in _BAD_CREDENTIAL_CODES:
        return SinkAccessDenied(f"AWS rejected the credentials calling secretsmanager:{op} on {address}", detail)
    if code == "ResourceNotFoundException":
        return SinkNotFound(f"{address} does not exist", detail)
    if code in _KMS_CODES:
        return SinkError(f"Secrets Manager could not use the KMS key for {address}", detail,
                         attribute=("kms_key_id",))
    if code == "ConnectionError":
        return SinkError(f"Cannot reach Secrets Manager for {address}", message)
    return SinkError(f"Secrets Manager {op} failed for {address}", detail)


def _current_id(meta: Mapping[str, Any]) -> str | None:
    return next((vid for vid, stages in (meta.get("VersionIdsToStages") or {}).items() if CURRENT in stages), None)


def _status(meta: Mapping[str, Any] | None) -> SinkStatus:
    if meta is None:
        return SinkStatus(exists=False)
    record = parse_record(meta.get("Description"))
    if meta.get("DeletedDate"):
        # A secret scheduled for deletion keeps its name: CreateSecret fails until it is restored or gone.
        return SinkStatus(exists=False, occupant=f"a secret scheduled for deletion on {meta['DeletedDate']} "
                          "(restore it with aws secretsmanager restore-secret, or wait until it is deleted)")
    current = _current_id(meta)
    if current is None:
        return SinkStatus(exists=False, occupant="a secret without a current value")
    number = version_number(current)
    if number is None:  # someone else's version: numbered after every version of ours it may follow
        ours = [n for n in map(version_number, meta.get("VersionIdsToStages") or {}) if n is not None]
        number = max([*ours, record.ownership.version or 0 if record else 0, 0]) + 1
    ownership = record.ownership if record else None
    return SinkStatus(exists=True, version=number, ownership=ownership,
                      ownership_current=record is not None and record.version_id == current)


class SecretsManagerSink(Sink):
    """One secret. See the module docstring for how each operation maps onto Secrets Manager."""

    kind = "secrets_manager"

    def __init__(self, name: str, *, settings: AwsSettings, endpoint: SecretsManagerSettings | None = None,
                 kms_key_id: str | None = None, tags: Mapping[str, str] | None = None,
                 replica_regions: Sequence[str] = (), field: str | None = None,
                 recovery_window_in_days: int = DEFAULT_RECOVERY_WINDOW,
                 retry: SsmRetryPolicy = DEFAULT_RETRY, address_region: str | None = None) -> None:
        tags = dict(tags or {})
        replica_regions = list(replica_regions)
        checks: list[tuple[str, str | None]] = [
            ("name", validate_secret_name(name)), ("tags", validate_tags(tags)),
            ("replica_regions", validate_replica_regions(replica_regions, settings.region)),
            ("recovery_window_in_days", validate_recovery_window(recovery_window_in_days))]
        if kms_key_id is not None:
            checks.append(("kms_key_id", validate_kms_key_id(kms_key_id)))
        if field is not None:
            checks.append(("field", validate_field(field)))
        for attribute, error in checks:
            if error:
                raise ConfigError("Invalid Secrets Manager setting", error, attribute=(attribute,))
        self.name = name
        self.settings = settings
        self.endpoint = endpoint or SecretsManagerSettings()
        self.kms_key_id = kms_key_id
        self.tags = tags
        self.replica_regions = replica_regions
        self.field = field
        self.recovery_window_in_days = int(recovery_window_in_days)
        self.retry = retry
        self.address_region = address_region  # the region the configuration names (part of the address)
        self.warnings: list[str] = []
        # The Description before a record was written ahead of a write that got no clear answer.
        self._unanswered: tuple[str, Ownership] | None = None

    def __repr__(self) -> str:
        return f"SecretsManagerSink({self.name!r})"

    @property
    def address(self) -> str:
        if self.address_region:
            return f"secrets_manager:{self.address_region}:{self.name}"
        return f"secrets_manager:{self.name}"

    # -- internals

    def _client(self, retry: SsmRetryPolicy | None = None) -> BaseClient:
        return secrets_manager_client(self.settings, self.endpoint, retry or self.retry)

    def _call(self, operation: str, secrets: Sequence[str] = (), **params: Any) -> dict[str, Any]:
        try:
            return invoke(self._client(), self.retry, operation, secrets, **params)
        except AwsFailure as failure:
            raise _sink_error(failure, self.address) from failure.__cause__

    def _write(self, operation: str, secrets: Sequence[str] = (), **params: Any) -> dict[str, Any]:
        # botocore would resend a write whose answer was lost; writes are sent once and the delivery
        # reads the secret back instead (throttling is still retried by invoke).
        once = dataclasses.replace(self.retry, botocore_max_attempts=1)
        return invoke(self._client(once), once, operation, secrets, **params)

    def _metadata(self) -> dict[str, Any] | None:
        try:
            return self._call("DescribeSecret", SecretId=self.name)
        except SinkNotFound:
            return None

    def _desired_tags(self, issuer: str | None) -> dict[str, str]:
        return desired_tags(self.tags, issuer)

    def _record(self, ownership: Ownership, version: int, version_id: str) -> str:
        text = format_record(ownership, version, version_id, self.field)
        if len(text) > MAX_DESCRIPTION_LENGTH:  # token ids are short; this guards against a broken issuer
            raise SinkError(f"The ownership record for {self.address} is too long", f"{len(text)} characters")
        return text

    def _owner_text(self, meta: Mapping[str, Any] | None) -> str:
        record = parse_record((meta or {}).get("Description"))
        if record is None:
            return " It carries no tokendrop ownership record (it was written by something else)."
        own = record.ownership
        return f" It holds {own.issuer} token {own.token_id}, written by tokendrop resource {own.owner}."

    # -- Sink API

    def status(self) -> SinkStatus:
        return _status(self._metadata())

    def create(self, payload: Payload, ownership: Ownership) -> int:
        self.warnings = []
        value = render(payload, self.field)
        version_id = new_version_id(1)
        params: dict[str, Any] = {
            "Name": self.name, "ClientRequestToken": version_id, "SecretString": value,
            "Description": self._record(ownership, 1, version_id),
            "Tags": [{"Key": k, "Value": v} for k, v in self._desired_tags(ownership.issuer).items()]}
        if self.kms_key_id:
            params["KmsKeyId"] = self.kms_key_id
        if self.replica_regions:
            params["AddReplicaRegions"] = [{"Region": region} for region in self.replica_regions]
            params["ForceOverwriteReplicaSecret"] = False  # never overwrite a same-named secret there
        try:
            self._write("CreateSecret", secret_texts(payload, value), **params)
        except AwsFailure as failure:
            if failure.code not in ("ResourceExistsException", "InvalidRequestException"):
                raise _sink_error(failure, self.address) from failure.__cause__
            meta = self._metadata()
            current = _status(meta)
            own = current.ownership
            if (current.ownership_current and own is not None and own.token_id == ownership.token_id
                    and own.owner == ownership.owner and current.version == 1):
                return 1  # our own earlier attempt landed
            if meta is None:  # InvalidRequestException for another reason than an existing secret
                raise _sink_error(failure, self.address) from failure.__cause__
            record = parse_record(meta.get("Description"))
            if meta.get("DeletedDate") and record is not None and record.ownership.owner == ownership.owner:
                return self._restore_and_replace(payload, ownership)
            raise SinkConflict(f"{self.address} already exists",
                               "tokendrop creates the secret and will not overwrite one it did not write."
                               f"{(current.occupant and ' It is ' + current.occupant + '.') or self._owner_text(meta)}"
                               " Delete it, choose another name, or adopt it (adopt_existing = true)",
                               attribute=("name",)) from None
        self._check_replicas()
        return 1

    def _restore_and_replace(self, payload: Payload, ownership: Ownership) -> int:
        """Our own secret, scheduled for deletion outside tokendrop (the console's Delete does that): its
        name cannot be created again until the window ends, so it is restored and the new token written
        as its next version."""
        self._call("RestoreSecret", SecretId=self.name)
        restored = self.status()
        if restored.version is None:
            raise SinkConflict(f"{self.address} has no current version after being restored",
                               "restore it by hand (aws secretsmanager restore-secret) or delete it at once")
        version = self.replace(payload, ownership, expected_version=restored.version)
        self.warnings.insert(0, f"{self.address} was scheduled for deletion outside tokendrop: it was restored, "
                                f"and the new token written as its version {version}")
        return version

    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        self.warnings = []
        value = render(payload, self.field)
        meta = self._metadata()
        current = _status(meta)
        held = _current_id(meta) if meta is not None else None
        if meta is None or not current.exists or held is None:
            raise SinkConflict(f"{self.address} does not exist",
                               f"expected version {expected_version}; it was deleted outside tokendrop")
        if current.version != expected_version:
            raise SinkConflict(f"{self.address} changed outside tokendrop",
                               f"expected version {expected_version}, found {current.version}.{self._owner_text(meta)}")
        number = expected_version + 1
        version_id = new_version_id(number)
        secrets = secret_texts(payload, value)
        previous_description = str(meta.get("Description") or "")
        # (1) the record first, naming the version about to be made: until AWSCURRENT moves there it is
        # not current, so nobody takes the old value for the new token.
        update: dict[str, Any] = {"SecretId": self.name, "Description": self._record(ownership, number, version_id)}
        if self.kms_key_id and meta.get("KmsKeyId") != self.kms_key_id:
            update["KmsKeyId"] = self.kms_key_id  # new versions are encrypted with it
        self._unanswered = (previous_description, ownership)
        try:
            self._write("UpdateSecret", **update)
            # (2) the value, under our own label only: consumers still read AWSCURRENT.
            self._write("PutSecretValue", secrets, SecretId=self.name, ClientRequestToken=version_id,
                        SecretString=value, VersionStages=[PENDING])
            # (3) compare-and-set: AWS refuses the move unless AWSCURRENT is still on the version we hold.
            self._write("UpdateSecretVersionStage", SecretId=self.name, VersionStage=CURRENT,
                        MoveToVersionId=version_id, RemoveFromVersionId=held)
        except AwsFailure as failure:
            error = _sink_error(failure, self.address)
            if isinstance(error, SinkWriteUnknown):
                raise error from failure.__cause__
            # A definite refusal: put the previous record back. If that fails too, the record names a
            # version that is not current, so status() reports it as not current.
            with contextlib.suppress(SinkError):
                self.abandon(ownership)
            if failure.operation == "UpdateSecretVersionStage" and failure.code == "InvalidParameterException":
                raise SinkConflict(f"{self.address} changed outside tokendrop",
                                   f"AWSCURRENT moved off version {held} while tokendrop rotated it; the new "
                                   "value was not made current") from None
            raise error from failure.__cause__
        self._unanswered = None
        try:  # (4) our label has done its job
            self._call("UpdateSecretVersionStage", SecretId=self.name, VersionStage=PENDING,
                       RemoveFromVersionId=version_id)
        except SinkError as exc:
            self.warnings.append(f"the {PENDING} label of {self.address} was not removed: {exc}")
        try:
            self._reconcile(ownership.issuer, meta)  # the stage moves changed neither tags nor replicas
        except SinkError as exc:  # the value is in place: a tag failure must not undo the rotation
            self.warnings.append(f"tags or replicas of {self.address} were not updated: {exc}")
        return number

    def abandon(self, ownership: Ownership) -> None:
        """Put back the Description a record written ahead of an unanswered write replaced."""
        if self._unanswered is None or self._unanswered[1] != ownership:
            return
        previous, _ = self._unanswered
        self._unanswered = None
        self._call("UpdateSecret", SecretId=self.name, Description=previous)

    def delete(self, expected_token_id: str | None) -> bool:
        meta = self._metadata()
        if meta is None or meta.get("DeletedDate"):
            return False
        current = _status(meta)
        if expected_token_id is not None:
            own = current.ownership
            if own is None or own.token_id != expected_token_id or not current.ownership_current:
                return False  # someone else's value is never deleted
        self.warnings = []
        foreign = self._foreign_versions()
        if foreign:
            listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            self.warnings.append(
                f"{self.address} was left in place: it holds version{'s' if len(foreign) > 1 else ''} {listed} "
                "not written by tokendrop, and Secrets Manager deletes a secret with all its versions. The token "
                "it holds is revoked; delete the secret yourself if nobody needs those versions.")
            return False
        replicas = [r["Region"] for r in meta.get("ReplicationStatus") or [] if r.get("Region")]
        if replicas:  # AWS refuses to delete a primary secret that still has replicas
            self._call("RemoveRegionsFromReplication", SecretId=self.name, RemoveReplicaRegions=replicas)
        params: dict[str, Any] = {"SecretId": self.name}
        if self.recovery_window_in_days == 0:
            params["ForceDeleteWithoutRecovery"] = True
        else:
            params["RecoveryWindowInDays"] = self.recovery_window_in_days
        try:
            self._call("DeleteSecret", **params)
        except SinkNotFound:
            return False
        return True

    def _foreign_versions(self) -> list[str]:
        """Version ids in the secret's history (deprecated ones too) that tokendrop did not write.
        ListSecretVersionIds returns ids and labels only, never values."""
        return [v["VersionId"]
                for page in pages(self._call, "ListSecretVersionIds", SecretId=self.name, IncludeDeprecated=True,
                                  MaxResults=100)
                for v in page.get("Versions", []) if version_number(v["VersionId"]) is None]

    def _check_replicas(self) -> None:
        meta = self._metadata() if self.replica_regions else None
        for replica in (meta or {}).get("ReplicationStatus") or []:
            if replica.get("Status") == "Failed":
                self.warnings.append(f"replication of {self.address} to {replica.get('Region')} failed: "
                                     f"{replica.get('StatusMessage', 'no reason given')}")

    def _reconcile(self, issuer: str | None, meta: Mapping[str, Any] | None = None) -> None:
        meta = meta if meta is not None else self._metadata()
        if meta is None:
            raise SinkNotFound(f"{self.address} does not exist", "nothing to reconcile")
        to_add, to_remove = tag_changes(tag_map(meta.get("Tags") or []), self._desired_tags(issuer))
        if to_add:
            self._call("TagResource", SecretId=self.name, Tags=to_add)
        if to_remove:
            self._call("UntagResource", SecretId=self.name, TagKeys=to_remove)
        replicas = {r["Region"] for r in meta.get("ReplicationStatus") or [] if r.get("Region")}
        missing = [r for r in self.replica_regions if r not in replicas]
        extra = sorted(replicas - set(self.replica_regions))
        if missing:
            self._call("ReplicateSecretToRegions", SecretId=self.name,
                       AddReplicaRegions=[{"Region": r} for r in missing], ForceOverwriteReplicaSecret=False)
        if extra:
            self._call("RemoveRegionsFromReplication", SecretId=self.name, RemoveReplicaRegions=extra)

    def read_payload(self, version: int) -> Payload:
        meta = self._metadata()
        if meta is None or _status(meta).version != version:
            raise SinkError(f"Cannot read {self.address} back", f"it is no longer at version {version}")
        reply = self._call("GetSecretValue", SecretId=self.name, VersionId=_current_id(meta))
        text = reply.get("SecretString")
        if not isinstance(text, str) or not text:
            raise SinkError(f"Cannot read {self.address} back", "the current version holds no string")
        return stored_payload(text, self.field)

    def reconcile_settings(self) -> None:
        """Tags and replica regions, without a new version."""
        self.warnings = []
        record = parse_record((self._metadata() or {}).get("Description"))
        self._reconcile(record.ownership.issuer if record else None)

    def current_settings(self) -> dict[str, object]:
        """The secret's settings in `deliver_to.secrets_manager`'s shape, defaults as None (for import)."""
        meta = self._metadata()
        if meta is None:
            return {}
        tags = user_tags(meta.get("Tags") or [])
        replicas = [r["Region"] for r in meta.get("ReplicationStatus") or [] if r.get("Region")]
        record = parse_record(meta.get("Description"))
        return {"kms_key_id": meta.get("KmsKeyId") or None, "tags": tags or None, "replica_regions": replicas or None,
                "field": record.field if record else None}
