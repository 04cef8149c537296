"""Vault KV v2 sink: one secret (mount + path) holding one delivered token under `field`.

Wire facts this module relies on (docs/wire.md, section "Vault"; checked against OpenBao 2.7.2). Every
call goes through the shared connection of `tokendrop_provider.vault` (plain-http and redirect policy):

- The ownership record lives in the secret's `custom_metadata`: tokendrop_token_id, tokendrop_issuer,
  tokendrop_owner and tokendrop_version (the secret version the record describes).
- Metadata and data are separate writes, so order matters. We write the record first, naming the
  version the data write will create (1 on create, expected_version + 1 on replace), then the data
  with check-and-set. A crash in between leaves a record whose version is not the current version:
  `status()` then reports `ownership_current=False` and nobody mistakes the old value for the new
  token. `cas=0` still succeeds after a metadata-only write (current_version stays 0), so create
  keeps its create-only guarantee.
- Beside the record, `tokendrop_previous_version` names the version the recorded one follows, when
  tokendrop wrote it: a consumer's fallback during keep_previous_for (`vault kv get -version=N`).
- The record is written with a raw `POST <mount>/metadata/<path>` carrying only custom_metadata:
  Vault leaves max_versions and delete_version_after alone (a full metadata write would reset
  delete_version_after to "0s"). custom_metadata is replaced as a whole, so keys that are not ours
  are carried over.
- `status()` reads `GET <mount>/metadata/<path>` only, never the data. A current version that is
  soft-deleted (deletion_time in the past) or destroyed counts as not existing.
- A KV v1 mount would take `<mount>/metadata/<path>` as an ordinary secret (and give its value back
  on read), so every connection first checks the mount type through sys/internal/ui/mounts, which
  any token with a capability under the mount may call.
- `DELETE <mount>/metadata/<path>` answers 204 even when nothing is there: existence is read first.

requests is imported only when the first Vault connection is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, SinkAccessDenied, SinkConflict, SinkError, SinkWriteUnknown
from ..secret import Secret
from ..settings import VaultSettings
from ..vault import (
    VaultConnection,
    VaultLoginFailed,
    VaultRedirectRefused,
    VaultUnreachable,
    vault_connection,
)
from .base import Ownership, Payload, Sink, SinkStatus
from .vault_rules import validate_field, validate_mount, validate_path

TOKEN_ID_KEY = "tokendrop_token_id"
ISSUER_KEY = "tokendrop_issuer"
OWNER_KEY = "tokendrop_owner"
VERSION_KEY = "tokendrop_version"
# Written by tokendrop besides the record, so that destroy never removes what someone else wrote:
CREATED_KEY = "tokendrop_created"  # "true": tokendrop created the secret where nothing was
WRITTEN_KEY = "tokendrop_versions"  # versions tokendrop's writes are confirmed to have created, "1-3,5"
# The version before the one the record describes, when tokendrop wrote it: where a consumer finds the
# previous token during keep_previous_for (`vault kv get -version=N`). Absent on the first write and
# after a version someone else wrote.
PREVIOUS_VERSION_KEY = "tokendrop_previous_version"
_RECORD_PREFIX = "tokendrop_"
_MAX_WRITTEN_TEXT = 500  # custom_metadata values are limited to 512 bytes
_FRACTION = re.compile(r"(\.\d+)")

# --- helpers ------------------------------------------------------------------------------------


@contextmanager
def _as_sink_errors() -> Iterator[None]:
    """Transport failures of the shared Vault connection, as the sink errors callers expect."""
    try:
        yield
    except VaultLoginFailed as exc:
        raise SinkAccessDenied(exc.summary, exc.detail, attribute=exc.attribute) from None
    except (VaultUnreachable, VaultRedirectRefused) as exc:
        raise SinkError(exc.summary, exc.detail) from None


def _record(ownership: Ownership, version: int, previous: Mapping[str, Any] | None) -> dict[str, str]:
    """Our record for a write that will create `version`, on top of the metadata `previous` (None when
    the path is empty). The record it replaces, if it described the current version, is confirmed:
    its version joins the written list (a record whose write never landed names a version that
    someone else may write later, so it is never counted)."""
    written = _written(previous)
    record = {TOKEN_ID_KEY: ownership.token_id, ISSUER_KEY: ownership.issuer,
              OWNER_KEY: ownership.owner, VERSION_KEY: str(version)}
    if written:  # Vault refuses empty custom_metadata values
        record[WRITTEN_KEY] = _ranges_text(written)
        if version - 1 in written:  # the version this write follows is tokendrop's own
            record[PREVIOUS_VERSION_KEY] = str(version - 1)
    custom = (previous or {}).get("custom_metadata") or {}
    if previous is None or custom.get(CREATED_KEY) == "true" or (
            not (previous.get("versions") or {}) and not _foreign_keys(custom)):
        record[CREATED_KEY] = "true"  # nothing there, or only our own interrupted create
    return record


def _written(meta: Mapping[str, Any] | None) -> set[int]:
    """Versions at this path that tokendrop wrote: the confirmed list, plus the version the current
    record describes when it is the current version."""
    if meta is None:
        return set()
    custom = meta.get("custom_metadata") or {}
    written = _parse_ranges(str(custom.get(WRITTEN_KEY) or ""))
    own = _parse_record(custom)
    current = int(meta.get("current_version") or 0)
    if own is not None and own.version is not None and own.version == current and current > 0:
        written.add(current)
    return written


def _parse_ranges(text: str) -> set[int]:
    versions: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        try:
            versions.update(range(int(first), int(last or first) + 1))
        except ValueError:
            continue  # not ours to interpret: counts as not written by us
    return versions


def _ranges_text(versions: set[int]) -> str:
    """"1-3,5" for {1, 2, 3, 5}; the oldest ranges are dropped if the text would outgrow the value limit
    (those versions are then kept on destroy, never someone else's removed)."""
    ranges: list[str] = []
    ordered = sorted(versions)
    start = prev = None
    for version in [*ordered, None]:
        if prev is not None and version != prev + 1:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if start is None:
            start = version
        prev = version
    while ranges and len(",".join(ranges)) > _MAX_WRITTEN_TEXT:
        ranges.pop(0)
    return ",".join(ranges)


def _foreign_keys(custom_metadata: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in custom_metadata if not k.startswith(_RECORD_PREFIX))


def _version_state(info: Mapping[str, Any]) -> str:
    if info.get("destroyed"):
        return "destroyed"
    return "deleted" if _deleted(info.get("deletion_time")) else "live"


def _occupant(meta: Mapping[str, Any] | None) -> str | None:
    """What is at the path that tokendrop did not write, in words; None when nothing is."""
    if meta is None:
        return None
    versions = {int(v): info or {} for v, info in (meta.get("versions") or {}).items()}
    custom = meta.get("custom_metadata") or {}
    foreign_versions = sorted(set(versions) - _written(meta))
    foreign_keys = _foreign_keys(custom)
    if not foreign_versions and not foreign_keys and (versions or _parse_record(custom) is not None):
        return None
    parts = []
    if versions:
        latest = max(versions)
        parts.append(f"{len(versions)} version{'s' if len(versions) != 1 else ''} "
                     f"({len(foreign_versions)} not written by tokendrop; the latest, {latest}, is "
                     f"{_version_state(versions[latest])})")
    else:
        parts.append("metadata without versions")
    if foreign_keys:
        parts.append(f"custom_metadata {', '.join(foreign_keys)}")
    return " and ".join(parts)


def _parse_record(custom_metadata: Mapping[str, Any] | None) -> Ownership | None:
    if not custom_metadata or not custom_metadata.get(TOKEN_ID_KEY):
        return None
    try:
        version = int(custom_metadata[VERSION_KEY]) if custom_metadata.get(VERSION_KEY) else None
    except ValueError:
        version = None
    return Ownership(token_id=str(custom_metadata[TOKEN_ID_KEY]),
                     issuer=str(custom_metadata.get(ISSUER_KEY, "")),
                     owner=str(custom_metadata.get(OWNER_KEY, "")), version=version)


def _merged(previous: Mapping[str, Any] | None, record: Mapping[str, str]) -> dict[str, str]:
    # custom_metadata is replaced as a whole: keep other people's keys, replace ours.
    kept = {k: str(v) for k, v in (previous or {}).items() if not k.startswith(_RECORD_PREFIX)}
    return kept | dict(record)


def _deleted(deletion_time: str | None) -> bool:
    """True when a version's deletion_time has passed (a future one comes from delete_version_after)."""
    if not deletion_time:
        return False
    # Vault gives nanoseconds; Python parses at most microseconds.
    text = _FRACTION.sub(lambda m: m.group(1)[:7], deletion_time.replace("Z", "+00:00"))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return True  # unreadable: do not claim a live value
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) <= datetime.now(UTC)


def _status_of(meta: Mapping[str, Any] | None) -> SinkStatus:
    if meta is None:
        return SinkStatus(exists=False)
    current = int(meta.get("current_version") or 0)
    ownership = _parse_record(meta.get("custom_metadata"))
    if current == 0:  # metadata only (e.g. a create interrupted after the record was written)
        return SinkStatus(exists=False, ownership=ownership, occupant=_occupant(meta))
    info = (meta.get("versions") or {}).get(str(current)) or {}
    live = not info.get("destroyed") and not _deleted(info.get("deletion_time"))
    return SinkStatus(exists=live, version=current, ownership=ownership,
                      ownership_current=ownership is not None and ownership.version == current,
                      occupant=_occupant(meta))


# --- the sink -----------------------------------------------------------------------------------


class VaultKvSink(Sink):
    """One KV v2 secret. See the module docstring for how each operation maps onto the API."""

    kind = "vault_kv"

    def __init__(self, mount: str, path: str, *, settings: VaultSettings, field: str = "token") -> None:
        for attribute, error in (("mount", validate_mount(mount)), ("path", validate_path(path)),
                                 ("field", validate_field(field))):
            if error:
                raise ConfigError("Invalid Vault KV setting", error, attribute=(attribute,))
        self.mount = mount
        self.path = path
        self.field = field
        self.settings = settings
        # (secret existed, its custom_metadata before our record, our record) of the last write that got
        # no clear answer: what `abandon` restores.
        self._unanswered: tuple[bool, Mapping[str, Any] | None, Ownership] | None = None

    def __repr__(self) -> str:
        return f"VaultKvSink({self.mount!r}, {self.path!r}, field={self.field!r})"

    @property
    def address(self) -> str:
        return f"vault_kv:{self.mount}/{self.path}#{self.field}"

    # Capabilities a delivery needs: read the record, write the record and the value (new and next
    # versions), and remove both on destroy.
    NEEDED_CAPABILITIES = {"data": ("create", "update"), "metadata": ("read", "create", "update", "delete")}

    def missing_capabilities(self) -> list[tuple[str, str]] | None:
        """(path, capability) pairs this provider's Vault token lacks for delivering here, checked with
        sys/capabilities-self (read-only; what `terraform plan` uses to fail before anything is minted).
        None when Vault would not say."""
        connection = self._ready()
        with _as_sink_errors():
            return connection.missing_capabilities(
                {self._policy_path(kind): needed for kind, needed in self.NEEDED_CAPABILITIES.items()})

    # -- internals

    def _policy_path(self, kind: str) -> str:
        return f"{self.mount}/{kind}/{self.path}"

    def _request(self, method: str, kind: str, capability: str, *, json: Any = None,
                 allow_missing: bool = False, connection: VaultConnection | None = None,
                 stores_value: bool = False) -> Any:
        """One call on <mount>/<kind>/<path>, with Vault's answers mapped to typed sink errors. With
        `stores_value`, a failure after the request went out (no answer, a 5xx) is `SinkWriteUnknown`:
        the value may or may not have been stored."""
        connection = connection or self._ready()
        path = self._policy_path(kind)
        with _as_sink_errors():
            try:
                reply = connection.request(method, path, json)
            except VaultUnreachable as lost:
                if not (stores_value and lost.sent):
                    raise
                raise SinkWriteUnknown(f"No clear answer from Vault to {method} {path}",
                                       f"{lost.summary} ({lost.detail}). The request was sent, so the value may "
                                       f"or may not have been stored in {self.address}") from None
        if reply.ok:
            return reply.body
        message = reply.message
        if reply.status == 404:
            if allow_missing:
                return None
            raise SinkError(f"Vault has no {path}", f"{method} answered 404")
        if reply.status == 403:
            raise SinkAccessDenied(
                f"Vault denied {capability} on {path} ({self.address})",
                f"the token needs the {capability!r} capability on path \"{path}\" (Vault said: "
                f"{message or 'permission denied'})")
        if reply.status == 400:
            if "check-and-set" in message:
                raise SinkConflict(f"{self.address} changed under us", message)
            raise SinkError(f"Vault rejected {method} {path}", message)
        if stores_value and reply.status >= 500:
            raise SinkWriteUnknown(f"No clear answer from Vault to {method} {path}",
                                   f"HTTP {reply.status}" + (f": {message}" if message else "") +
                                   f". The request was sent, so the value may or may not have been stored in "
                                   f"{self.address}")
        raise SinkError(f"Vault {method} {path} failed", f"HTTP {reply.status}" + (f": {message}" if message else ""))

    def _ready(self) -> VaultConnection:
        """The connection, after checking once per process that the mount is KV v2."""
        with _as_sink_errors():
            connection = vault_connection(self.settings)
        if self.mount in connection.kv2_mounts:
            return connection
        data = self._mount_info(connection)
        found = str(data.get("path", "")).rstrip("/")
        if found != self.mount:
            raise ConfigError(f"{self.mount!r} is not a Vault mount point",
                              f"the path belongs to the mount {found!r}; set mount = {found!r} and give "
                              "the rest in path", attribute=("mount",))
        kind, version = data.get("type"), str((data.get("options") or {}).get("version", "1"))
        if kind not in ("kv", "generic") or version != "2":
            what = f"a KV version {version} mount" if kind in ("kv", "generic") else f"a {kind!r} mount"
            raise ConfigError(f"Vault mount {self.mount!r} is not KV version 2",
                              f"it is {what}; tokendrop needs KV v2 (versioned secrets, check-and-set and "
                              "custom_metadata)", attribute=("mount",))
        connection.kv2_mounts.add(self.mount)
        return connection

    def _mount_info(self, connection: VaultConnection) -> dict[str, Any]:
        with _as_sink_errors():
            reply = connection.request("GET", f"sys/internal/ui/mounts/{self.mount}")
        if reply.status in (403, 404):
            # Vault answers 403 both for a missing mount and for a token with no access under it.
            raise SinkAccessDenied(f"Vault mount {self.mount!r} does not exist or the token cannot use it",
                                   f"sys/internal/ui/mounts/{self.mount} answered: "
                                   f"{reply.message or reply.status}. Enable a KV v2 engine at {self.mount!r} "
                                   f"or grant the token access to {self._policy_path('data')}",
                                   attribute=("mount",))
        if not reply.ok:
            raise SinkError(f"Cannot check Vault mount {self.mount!r}", reply.message or f"HTTP {reply.status}")
        return reply.data

    def _read_metadata(self, connection: VaultConnection | None = None) -> dict[str, Any] | None:
        body = self._request("GET", "metadata", "read", allow_missing=True, connection=connection)
        return None if body is None else dict(body.get("data") or {})

    def _write_record(self, custom_metadata: Mapping[str, str], capability: str,
                      connection: VaultConnection) -> None:
        self._request("POST", "metadata", capability, json={"custom_metadata": dict(custom_metadata)},
                      connection=connection)

    def _data(self, payload: Payload) -> dict[str, str]:
        if isinstance(payload, Secret):
            return {self.field: payload.reveal()}
        if isinstance(payload, Mapping) and payload:
            for key in payload:
                error = validate_field(key)
                if error:
                    raise SinkError(f"Cannot deliver to {self.address}", error)
            return {k: v.reveal() if isinstance(v, Secret) else str(v) for k, v in payload.items()}
        raise SinkError("Nothing to deliver", "the payload is empty")

    def _write_data(self, data: dict[str, str], cas: int, capability: str,
                    connection: VaultConnection) -> int:
        body = self._request("POST", "data", capability, json={"options": {"cas": cas}, "data": data},
                             connection=connection, stores_value=True)
        return int(((body or {}).get("data") or {}).get("version") or 0)

    def _owner_text(self, status: SinkStatus) -> str:
        own = status.ownership
        if own is None:
            return " It carries no tokendrop ownership record (it was written by something else)."
        return (f" Its record names {own.issuer} token {own.token_id}, written by tokendrop resource "
                f"{own.owner}.")

    def _undo_record(self, existed: bool, previous: Mapping[str, Any] | None, ownership: Ownership,
                     connection: VaultConnection) -> None:
        """After a failed data write, take our record back (best effort, never masks the error)."""
        try:
            meta = self._read_metadata(connection)
            if meta is None:
                return
            record = _parse_record(meta.get("custom_metadata"))
            if record is None or record.token_id != ownership.token_id:
                return  # someone else's record by now: leave it
            if not existed and int(meta.get("current_version") or 0) == 0:
                self._request("DELETE", "metadata", "delete", connection=connection)
            else:
                self._write_record(dict(previous or {}), "update", connection)
        except SinkError:
            pass

    # -- Sink API

    def status(self) -> SinkStatus:
        return _status_of(self._read_metadata())

    def create(self, payload: Payload, ownership: Ownership) -> int:
        data = self._data(payload)
        connection = self._ready()
        meta = self._read_metadata(connection)
        previous = meta.get("custom_metadata") if meta else None
        if meta is not None:
            status = _status_of(meta)
            own = status.ownership
            if status.version:
                if (status.exists and status.ownership_current and status.version == 1 and own is not None
                        and own.token_id == ownership.token_id and own.owner == ownership.owner):
                    return 1  # our own earlier attempt landed: nothing to do
                state = "exists" if status.exists else f"has a deleted or destroyed version {status.version}"
                raise SinkConflict(f"{self.address} already {state}",
                                   "tokendrop creates the secret and will not overwrite one it did not "
                                   f"write.{self._owner_text(status)} Delete it (all versions: "
                                   f"vault kv metadata delete), choose another path, or adopt it "
                                   "(adopt_existing = true)", attribute=("path",))
            if own is not None and own.owner != ownership.owner:
                raise SinkConflict(f"{self.address} is reserved by another tokendrop resource",
                                   f"its metadata names resource {own.owner} (an interrupted create); two "
                                   "resources cannot deliver to one secret", attribute=("path",))
        self._write_record(_merged(previous, _record(ownership, 1, meta)), "update" if meta else "create",
                           connection)
        try:
            return self._write_data(data, 0, "create", connection)
        except SinkWriteUnknown:
            # The value may be there: its record must stay, or the next apply cannot adopt it.
            self._unanswered = (meta is not None, previous, ownership)
            raise
        except SinkError:
            self._undo_record(meta is not None, previous, ownership, connection)
            raise

    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        data = self._data(payload)
        connection = self._ready()
        meta = self._read_metadata(connection)
        if meta is None:
            raise SinkConflict(f"{self.address} does not exist",
                               f"expected version {expected_version}; it was deleted outside tokendrop")
        status = _status_of(meta)
        current = int(meta.get("current_version") or 0)
        if current != expected_version:
            raise SinkConflict(f"{self.address} changed outside tokendrop",
                               f"expected version {expected_version}, found {current}."
                               f"{self._owner_text(status)}")
        previous = meta.get("custom_metadata")
        self._write_record(_merged(previous, _record(ownership, expected_version + 1, meta)), "update",
                           connection)
        try:
            return self._write_data(data, expected_version, "update", connection)
        except SinkWriteUnknown:
            self._unanswered = (True, previous, ownership)  # the value may be there: its record stays
            raise
        except SinkError:
            self._undo_record(True, previous, ownership, connection)
            raise

    def read_payload(self, version: int) -> Payload:
        body = self._request("GET", "data", "read")
        data = (body or {}).get("data") or {}
        if (data.get("metadata") or {}).get("version") != version:
            raise SinkError(f"Cannot read {self.address} back", f"it is no longer at version {version}")
        values = data.get("data") or {}
        if self.field in values and isinstance(values[self.field], str) and values[self.field]:
            return Secret(values[self.field])
        if values and all(isinstance(v, str) and v for v in values.values()):
            return {k: Secret(v) for k, v in values.items()}  # a multi-field payload (the AppRole grant's)
        raise SinkError(f"Cannot read {self.address} back", f"version {version} holds no {self.field!r}")

    def abandon(self, ownership: Ownership) -> None:
        """Take back the record of an unanswered write that a read-back showed had not landed."""
        if self._unanswered is None or self._unanswered[2] != ownership:
            return
        existed, previous, _ = self._unanswered
        self._unanswered = None
        self._undo_record(existed, previous, ownership, self._ready())

    def delete(self, expected_token_id: str | None) -> bool:
        """Remove what we wrote. The whole secret (metadata and every version) only when tokendrop
        created it from empty and nobody else has written to it since; otherwise destroy only the
        versions tokendrop wrote (for `expected_token_id` None, an imported secret: its current
        version), keep the rest and the metadata, and say so in `warnings`."""
        self.warnings = []
        connection = self._ready()
        meta = self._read_metadata(connection)
        if meta is None:
            return False
        status = _status_of(meta)
        custom = meta.get("custom_metadata") or {}
        if expected_token_id is not None:
            own = status.ownership
            if own is None or own.token_id != expected_token_id:
                return False  # someone else's value is never deleted
            if own.version is not None and status.version is not None and status.version > own.version:
                return False  # a newer version was written after our record: not ours any more
            ours = _written(meta)
        else:
            ours = {status.version} if status.version else set()
        if expected_token_id is not None and custom.get(CREATED_KEY) == "true" and status.occupant is None:
            self._request("DELETE", "metadata", "delete", connection=connection)
            return True
        present = {int(v): info or {} for v, info in (meta.get("versions") or {}).items()}
        to_destroy = sorted(v for v in ours if v in present and not present[v].get("destroyed"))
        if to_destroy:
            try:
                self._request("POST", "destroy", "update", json={"versions": to_destroy}, connection=connection)
            except SinkAccessDenied as exc:  # the token the versions hold is revoked next: warn, go on
                self.warnings.append(f"{self.address}: versions {', '.join(map(str, to_destroy))} (written by "
                                     f"tokendrop) were not destroyed: {exc.detail}")
                to_destroy = []
        kept = {k: str(v) for k, v in custom.items() if not k.startswith(_RECORD_PREFIX)}
        if kept != custom:
            self._write_record(kept, "update", connection)
        others = sorted(set(present) - ours)
        self.warnings.append(
            f"{self.address}: destroyed only the version{'s' if len(to_destroy) != 1 else ''} tokendrop wrote "
            f"({', '.join(map(str, to_destroy)) or 'none left'}) and kept the secret's metadata"
            + (f" and versions {', '.join(map(str, others))}" if others else "")
            + ", because tokendrop did not create this secret from empty"
            + (f" (it holds {status.occupant})" if status.occupant else "")
            + ". Delete it yourself if nobody needs it (vault kv metadata delete).")
        return True
