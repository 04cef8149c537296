"""Vault KV v2 sink: one secret (mount + path) holding one delivered token under `field`.

Wire facts this module relies on (docs/wire.md, Vault KV v2, checked against OpenBao 2.7.2):

- The ownership record lives in the secret's `custom_metadata`: tokendrop_token_id, tokendrop_issuer,
  tokendrop_owner and tokendrop_version (the secret version the record describes).
- Metadata and data are separate writes, so order matters. We write the record first, naming the
  version the data write will create (1 on create, expected_version + 1 on replace), then the data
  with check-and-set. A crash in between leaves a record whose version is not the current version:
  `status()` then reports `ownership_current=False` and nobody mistakes the old value for the new
  token. `cas=0` still succeeds after a metadata-only write (current_version stays 0), so create
  keeps its create-only guarantee.
- The record is written with a raw `POST <mount>/metadata/<path>` carrying only custom_metadata:
  Vault leaves max_versions and delete_version_after alone (hvac's update_metadata would reset
  delete_version_after to "0s"). custom_metadata is replaced as a whole, so keys that are not ours
  are carried over.
- `status()` reads `GET <mount>/metadata/<path>` only, never the data. A current version that is
  soft-deleted (deletion_time in the past) or destroyed counts as not existing.
- A KV v1 mount would take `<mount>/metadata/<path>` as an ordinary secret (and give its value back
  on read), so every connection first checks the mount type through sys/internal/ui/mounts, which
  any token with a capability under the mount may call.
- `DELETE <mount>/metadata/<path>` answers 204 even when nothing is there: existence is read first.

hvac is imported only inside the client factory.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import ConfigError, SinkAccessDenied, SinkConflict, SinkError
from ..lazy import IMPORT_LOCK
from ..secret import Secret
from ..settings import VaultSettings
from .base import Ownership, Payload, Sink, SinkStatus
from .vault_rules import validate_field, validate_mount, validate_path

if TYPE_CHECKING:
    import hvac

TOKEN_ID_KEY = "tokendrop_token_id"
ISSUER_KEY = "tokendrop_issuer"
OWNER_KEY = "tokendrop_owner"
VERSION_KEY = "tokendrop_version"
_RECORD_PREFIX = "tokendrop_"
_FRACTION = re.compile(r"(\.\d+)")
_RELOGIN_MARGIN = 30.0  # seconds before an AppRole token's lease ends that we log in again

# --- client factory ---------------------------------------------------------------------------


class _Connection:
    """One hvac client per settings, logged in with a token or AppRole, shared by every sink."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.kv2_mounts: set[str] = set()  # mounts already checked to be KV v2
        self._client: hvac.Client | None = None
        self._expires_at: float | None = None  # monotonic time the AppRole token runs out

    def client(self) -> hvac.Client:
        with self.lock:
            if self._client is None:
                self._client = self._new_client()
            elif self._expires_at is not None and time.monotonic() > self._expires_at - _RELOGIN_MARGIN:
                self._approle_login(self._client)
            return self._client

    def _new_client(self) -> hvac.Client:
        s = self.settings
        with IMPORT_LOCK:  # lazy: a provider that never touches Vault never pays for hvac
            import hvac

        client = hvac.Client(url=s.address, token=s.token.reveal() if s.token else None,
                             namespace=s.namespace, verify=s.ca_cert or not s.skip_verify, timeout=30)
        if s.token is None:
            self._approle_login(client)
        return client

    def _approle_login(self, client: hvac.Client) -> None:
        import hvac.exceptions
        import requests

        s = self.settings
        if not s.approle_role_id or not s.approle_secret_id:  # _connection() checked: cannot happen
            raise ConfigError("Vault AppRole credentials are incomplete",
                              attribute=("vault_approle_role_id",))
        try:
            response = client.auth.approle.login(role_id=s.approle_role_id,
                                                 secret_id=s.approle_secret_id.reveal(),
                                                 mount_point=s.approle_mount)
        except hvac.exceptions.VaultError as exc:
            raise SinkAccessDenied("Vault AppRole login failed",
                                   f"auth/{s.approle_mount}/login answered: {_vault_message(exc)}. Check "
                                   "vault_approle_role_id, vault_approle_secret_id and vault_approle_mount",
                                   attribute=("vault_approle_role_id",)) from None
        except requests.RequestException as exc:
            raise SinkError(f"Cannot reach Vault at {s.address}", type(exc).__name__) from None
        lease = int(response.get("auth", {}).get("lease_duration") or 0)
        self._expires_at = time.monotonic() + lease if lease else None


_connections: dict[VaultSettings, _Connection] = {}
_connections_lock = threading.Lock()


def _connection(settings: VaultSettings) -> _Connection:
    if not settings.address:
        raise ConfigError("Vault address is not configured",
                          "set vault_address in the provider block, or VAULT_ADDR",
                          attribute=("vault_address",))
    if settings.token is None:
        if not settings.approle_role_id and not settings.approle_secret_id:
            raise ConfigError("Vault credentials are not configured",
                              "set vault_token in the provider block (or VAULT_TOKEN), or "
                              "vault_approle_role_id and vault_approle_secret_id for AppRole login",
                              attribute=("vault_token",))
        if not settings.approle_role_id or not settings.approle_secret_id:
            missing = "vault_approle_role_id" if not settings.approle_role_id else "vault_approle_secret_id"
            raise ConfigError("Incomplete Vault AppRole credentials",
                              f"{missing} is not set; AppRole login needs both the role id and a secret id",
                              attribute=(missing,))
    with _connections_lock:
        connection = _connections.get(settings)
        if connection is None:
            connection = _connections[settings] = _Connection(settings)
        return connection


def vault_client(settings: VaultSettings) -> hvac.Client:
    """The process-wide hvac client for these settings (created and logged in on first use)."""
    return _connection(settings).client()


def clear_client_cache() -> None:
    """Forget cached clients (tests; or after credentials were rotated in-process)."""
    with _connections_lock:
        _connections.clear()


# --- helpers ------------------------------------------------------------------------------------


def _vault_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        text = "; ".join(str(e) for e in errors)
    else:
        text = str(exc.args[0]) if exc.args and exc.args[0] else type(exc).__name__
    # Vault wraps messages as "1 error occurred:\n\t* permission denied\n\n".
    return " ".join(part.strip("\t *") for part in text.splitlines() if part.strip("\t *")
                    and not part.strip().endswith("error occurred:"))


def _record(ownership: Ownership, version: int) -> dict[str, str]:
    return {TOKEN_ID_KEY: ownership.token_id, ISSUER_KEY: ownership.issuer,
            OWNER_KEY: ownership.owner, VERSION_KEY: str(version)}


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
        return SinkStatus(exists=False, ownership=ownership)
    info = (meta.get("versions") or {}).get(str(current)) or {}
    live = not info.get("destroyed") and not _deleted(info.get("deletion_time"))
    return SinkStatus(exists=live, version=current, ownership=ownership,
                      ownership_current=ownership is not None and ownership.version == current)


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
        import hvac.exceptions

        connection = self._ready()
        paths = {self._policy_path(kind): needed for kind, needed in self.NEEDED_CAPABILITIES.items()}
        try:
            body = connection.client().adapter.request("POST", "/v1/sys/capabilities-self",
                                                        json={"paths": list(paths)})
        except hvac.exceptions.VaultError:
            return None
        data = (body or {}).get("data") or body or {} if isinstance(body, dict) else {}
        missing = []
        for path, needed in paths.items():
            held = set(data.get(path) or [])
            if "root" not in held:
                missing.extend((path, capability) for capability in needed if capability not in held)
        return missing

    # -- internals

    def _api(self, kind: str) -> str:
        return f"/v1/{quote(self.mount)}/{kind}/{quote(self.path)}"

    def _policy_path(self, kind: str) -> str:
        return f"{self.mount}/{kind}/{self.path}"

    def _request(self, method: str, kind: str, capability: str, *, json: Any = None,
                 allow_missing: bool = False, connection: _Connection | None = None) -> Any:
        """One HTTP call through hvac's adapter, with errors mapped to typed sink errors."""
        import hvac.exceptions
        import requests

        connection = connection or self._ready()
        try:
            response = connection.client().adapter.request(method, self._api(kind), json=json)
        except hvac.exceptions.InvalidPath:
            if allow_missing:
                return None
            raise SinkError(f"Vault has no {self._policy_path(kind)}", f"{method} answered 404") from None
        except hvac.exceptions.Forbidden as exc:
            raise SinkAccessDenied(
                f"Vault denied {capability} on {self._policy_path(kind)} ({self.address})",
                f"the token needs the {capability!r} capability on path \"{self._policy_path(kind)}\" "
                f"(Vault said: {_vault_message(exc)})") from None
        except hvac.exceptions.InvalidRequest as exc:
            message = _vault_message(exc)
            if "check-and-set" in message:
                raise SinkConflict(f"{self.address} changed under us", message) from None
            raise SinkError(f"Vault rejected {method} {self._policy_path(kind)}", message) from None
        except hvac.exceptions.VaultError as exc:
            raise SinkError(f"Vault {method} {self._policy_path(kind)} failed",
                            f"{type(exc).__name__}: {_vault_message(exc)}") from None
        except requests.RequestException as exc:
            raise SinkError(f"Cannot reach Vault at {self.settings.address}",
                            f"{method} {self._policy_path(kind)}: {str(exc)[:300]}") from None
        return response if isinstance(response, dict) else None

    def _ready(self) -> _Connection:
        """The connection, after checking once per process that the mount is KV v2."""
        connection = _connection(self.settings)
        if self.mount in connection.kv2_mounts:
            return connection
        body = self._mount_info(connection)
        data = (body or {}).get("data") or {}
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

    def _mount_info(self, connection: _Connection) -> dict[str, Any] | None:
        import hvac.exceptions
        import requests

        try:
            response = connection.client().adapter.request(
                "GET", f"/v1/sys/internal/ui/mounts/{quote(self.mount)}")
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath) as exc:
            # Vault answers 403 both for a missing mount and for a token with no access under it.
            raise SinkAccessDenied(f"Vault mount {self.mount!r} does not exist or the token cannot use it",
                                   f"sys/internal/ui/mounts/{self.mount} answered: {_vault_message(exc)}. "
                                   f"Enable a KV v2 engine at {self.mount!r} or grant the token access to "
                                   f"{self._policy_path('data')}", attribute=("mount",)) from None
        except hvac.exceptions.VaultError as exc:
            raise SinkError(f"Cannot check Vault mount {self.mount!r}", _vault_message(exc)) from None
        except requests.RequestException as exc:
            raise SinkError(f"Cannot reach Vault at {self.settings.address}", type(exc).__name__) from None
        return response if isinstance(response, dict) else None

    def _read_metadata(self, connection: _Connection | None = None) -> dict[str, Any] | None:
        body = self._request("GET", "metadata", "read", allow_missing=True, connection=connection)
        return None if body is None else dict(body.get("data") or {})

    def _write_record(self, custom_metadata: Mapping[str, str], capability: str,
                      connection: _Connection) -> None:
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
                    connection: _Connection) -> int:
        body = self._request("POST", "data", capability, json={"options": {"cas": cas}, "data": data},
                             connection=connection)
        return int(((body or {}).get("data") or {}).get("version") or 0)

    def _owner_text(self, status: SinkStatus) -> str:
        own = status.ownership
        if own is None:
            return " It carries no tokendrop ownership record (it was written by something else)."
        return (f" Its record names {own.issuer} token {own.token_id}, written by tokendrop resource "
                f"{own.owner}.")

    def _undo_record(self, existed: bool, previous: Mapping[str, Any] | None, ownership: Ownership,
                     connection: _Connection) -> None:
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
        self._write_record(_merged(previous, _record(ownership, 1)), "update" if meta else "create",
                           connection)
        try:
            return self._write_data(data, 0, "create", connection)
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
        self._write_record(_merged(previous, _record(ownership, expected_version + 1)), "update", connection)
        try:
            return self._write_data(data, expected_version, "update", connection)
        except SinkError:
            self._undo_record(True, previous, ownership, connection)
            raise

    def delete(self, expected_token_id: str | None) -> bool:
        connection = self._ready()
        meta = self._read_metadata(connection)
        if meta is None:
            return False
        if expected_token_id is not None:
            status = _status_of(meta)
            own = status.ownership
            if own is None or own.token_id != expected_token_id:
                return False  # someone else's value is never deleted
            if own.version is not None and status.version is not None and status.version > own.version:
                return False  # a newer version was written after our record: not ours any more
        self._request("DELETE", "metadata", "delete", connection=connection)
        return True
