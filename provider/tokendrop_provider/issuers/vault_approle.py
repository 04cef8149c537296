"""HashiCorp Vault / OpenBao AppRole secret ids as tokens, through the provider's Vault connection (hvac).

The issuer Vault is the provider's own Vault settings (address, token or AppRole login, namespace):
the same process-wide client the Vault KV sink uses (`sinks.vault_kv.vault_client`).

Wire facts (docs/wire.md, Vault AppRole; checked against OpenBao 2.7.2):

- POST auth/<mount>/role/<role>/secret-id {metadata (a JSON *string* of a string map), cidr_list,
  token_bound_cidrs, num_uses, ttl} -> data{secret_id, secret_id_accessor, secret_id_ttl,
  secret_id_num_uses}. The secret id appears in this response only.
- POST …/secret-id-accessor/lookup {secret_id_accessor} -> data{creation_time, expiration_time,
  metadata, cidr_list, token_bound_cidrs, secret_id_num_uses, secret_id_ttl}, never the secret id. An
  unknown accessor (destroyed, used up) answers 404; an expired one 204 with no body.
  expiration_time is 0001-01-01T00:00:00Z for "never".
- POST …/secret-id-accessor/destroy {secret_id_accessor} -> 204; an unknown accessor answers 500
  "failed to find accessor entry", taken as already gone.
- LIST …/secret-id -> data.keys: the accessors, expired ones included until Vault's tidy runs.
- GET …/role-id -> data.role_id.
- A missing role answers 400, 404 or 500 ("role \"x\" does not exist") depending on the endpoint; a
  missing mount 404 "no handler for route". A policy that forbids the call: 403 "permission denied".
- POST sys/capabilities-self {paths} -> {<path>: [capabilities]} (the default policy allows it): the
  plan-time permission check, so that a token that may not mint fails the plan, not the apply.

Scope of the `TokenIssuer` methods: "<mount>/<role name>". Token id: the secret id accessor. The
orphan-sweep marker goes into the secret id's metadata under `tokendrop_marker`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ..delivery import rfc3339, split_description
from ..errors import ConfigError, IssuerAuthError, IssuerError, IssuerNotFound, IssuerValidationError
from ..lazy import IMPORT_LOCK
from ..schema import APPROLE_MARKER_KEY
from ..secret import Secret
from ..settings import VaultSettings
from ..validation import parse_duration
from .base import IssuedToken, MintedToken, TokenIssuer

_NEVER = "0001-01-01T00:00:00Z"

# Capabilities the provider's token needs under auth/<mount>/role/<role>/ (path suffix -> capabilities).
REQUIRED_CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    "secret-id": ("update", "list"),
    "role-id": ("read",),
    "secret-id-accessor/lookup": ("update",),
    "secret-id-accessor/destroy": ("update",),
}

# Substrings of Vault's error messages -> the attribute at fault.
_MESSAGE_ATTRIBUTES: Sequence[tuple[str, tuple[str, ...]]] = (
    ("ttl", ("ttl",)),
    ("cidr", ("cidr_list",)),
    ("num_uses", ("num_uses",)),
    ("metadata", ("metadata",)),
)


def split_scope(scope: str) -> tuple[str, str]:
    """("approle", "ci") from "approle/ci" (a mount may hold slashes, a role name cannot)."""
    mount, _, role = scope.rpartition("/")
    if not mount or not role:
        raise ConfigError("Invalid AppRole scope", f"{scope!r} is not <mount>/<role name>")
    return mount, role


class VaultAppRoleIssuer(TokenIssuer):
    """Secret ids of the AppRole roles of one Vault, minted with the provider's Vault credentials."""

    kind = "vault-approle"
    lookups_by_listing = False  # listing costs a lookup per secret id; a role may hold thousands

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._role_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultAppRoleIssuer(address={self.settings.address!r})"

    # -- roles ------------------------------------------------------------------------------------

    def role_id(self, scope: str) -> str:
        """The role's id (read once per process)."""
        with self._lock:
            known = self._role_ids.get(scope)
        if known is not None:
            return known
        try:
            body = self._call("GET", scope, "role-id", "read")
        except IssuerNotFound as err:
            if err.attribute:  # already says what is missing (the mount, or the role by name)
                raise
            mount, role = split_scope(scope)  # Vault's 404 here has no message
            raise IssuerNotFound("AppRole role not found", f"auth/{mount}/role/{role} does not exist: create the "
                                 "role, or set role_name to an existing one.", attribute=("role_name",),
                                 status=err.status) from None
        role_id = ((body or {}).get("data") or {}).get("role_id")
        if not isinstance(role_id, str) or not role_id:
            raise IssuerError("Vault returned no role id", f"auth/{scope}/role-id answered without data.role_id")
        with self._lock:
            self._role_ids[scope] = role_id
        return role_id

    def missing_capabilities(self, scope: str) -> list[tuple[str, str]] | None:
        """(path, capability) pairs the provider's token lacks for minting, refreshing, sweeping and
        destroying secret ids of this role; None when Vault would not say (capabilities-self denied)."""
        mount, role = split_scope(scope)
        paths = {f"auth/{mount}/role/{role}/{suffix}": needed for suffix, needed in REQUIRED_CAPABILITIES.items()}
        try:
            body = self._request("POST", "sys/capabilities-self", {"paths": list(paths)})
        except IssuerAuthError:
            return None
        data = (body or {}).get("data") or body or {}
        missing = []
        for path, needed in paths.items():
            held = set(data.get(path) or [])
            if "root" in held:
                continue
            missing.extend((path, cap) for cap in needed if cap not in held)
        return missing

    # -- TokenIssuer ------------------------------------------------------------------------------

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        """Generate a secret id. Options: ttl ("24h", "0"), cidr_list, token_bound_cidrs, num_uses,
        metadata (str -> str). The marker in `description` goes into the metadata."""
        unknown = set(options) - {"ttl", "cidr_list", "token_bound_cidrs", "num_uses", "metadata"}
        if unknown:
            raise ConfigError("Unsupported AppRole options", ", ".join(sorted(unknown)))
        role_id = self.role_id(scope)  # before minting: a failure here leaves nothing behind
        metadata = {str(k): str(v) for k, v in dict(options.get("metadata") or {}).items()}  # type: ignore[call-overload]
        mark = split_description(description)[1]
        if mark:
            metadata[APPROLE_MARKER_KEY] = mark
        body: dict[str, Any] = {"metadata": json.dumps(metadata, sort_keys=True)}
        for name in ("cidr_list", "token_bound_cidrs"):
            if options.get(name):
                body[name] = list(options[name])  # type: ignore[call-overload]
        if options.get("num_uses") is not None:
            body["num_uses"] = int(options["num_uses"])  # type: ignore[call-overload]
        if options.get("ttl") is not None:
            body["ttl"] = vault_ttl(str(options["ttl"]))
        response = self._call("POST", scope, "secret-id", "update", body)
        data = (response or {}).get("data") or {}
        value, accessor = data.get("secret_id"), data.get("secret_id_accessor")
        if not isinstance(accessor, str) or not accessor:
            raise IssuerError("Vault returned no secret id accessor", f"auth/{scope}/secret-id answered without one")
        if not isinstance(value, str) or not value:
            outcome = "was destroyed again" if self._destroy_quietly(scope, accessor) else "could not be destroyed"
            raise IssuerError("Vault generated a secret id but returned no value",
                              f"secret id accessor {accessor} of auth/{scope} {outcome}")
        secret = Secret(value)
        # The generate response has no timestamps: Vault's own (from a lookup) keep later refreshes
        # from moving them. The secret exists now, so a failed lookup must not lose it: estimate.
        try:
            looked_up = self.lookup(scope, accessor)
        except IssuerError:
            looked_up = None
        if looked_up is None:
            now = datetime.now(UTC)
            ttl = data.get("secret_id_ttl")
            expires = (rfc3339(datetime.fromtimestamp(now.timestamp() + float(ttl), UTC))
                       if isinstance(ttl, int | float) and ttl > 0 else None)
            looked_up = IssuedToken(id=accessor, scope=scope, description=_description(metadata),
                                    created_at=rfc3339(now), expires_at=expires)
        token = IssuedToken(id=accessor, scope=scope, description=looked_up.description,
                            created_at=looked_up.created_at, expires_at=looked_up.expires_at,
                            extra={**looked_up.extra, "role_id": role_id})
        return MintedToken(token=token, value=secret)

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        """The secret id if it still exists and has not expired (nor been used up)."""
        body = self._call("POST", scope, "secret-id-accessor/lookup", "update", {"secret_id_accessor": token_id},
                          missing_ok=True)
        data = (body or {}).get("data")
        if not isinstance(data, dict):
            return None  # 404 (destroyed, used up) or 204 (expired)
        token = _issued(scope, token_id, data)
        expires = _parse(token.expires_at)
        if expires is not None and expires <= datetime.now(UTC):
            return None
        return token

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        """Every live secret id of the role: one LIST, then a lookup per accessor (Vault has no
        bulk lookup)."""
        body = self._call("LIST", scope, "secret-id", "list", missing_ok=True)
        keys = ((body or {}).get("data") or {}).get("keys") or []
        found = []
        for accessor in keys:
            if isinstance(accessor, str):
                token = self.lookup(scope, accessor)
                if token is not None:
                    found.append(token)
        return found

    def revoke(self, scope: str, token_id: str) -> bool:
        """Destroy by accessor; False if it was already gone."""
        try:
            self._call("POST", scope, "secret-id-accessor/destroy", "update", {"secret_id_accessor": token_id})
        except IssuerNotFound:
            return False
        return True

    # -- plumbing ---------------------------------------------------------------------------------

    def _destroy_quietly(self, scope: str, accessor: str) -> bool:
        try:
            return self.revoke(scope, accessor)
        except IssuerError:
            return False

    def _call(self, method: str, scope: str, suffix: str, capability: str, body: Any = None, *,
              missing_ok: bool = False) -> dict[str, Any] | None:
        """One call under auth/<mount>/role/<role>/, errors named by path and capability."""
        mount, role = split_scope(scope)
        path = f"auth/{mount}/role/{role}/{suffix}"
        try:
            return self._request(method, path, body, capability=capability)
        except IssuerNotFound as err:
            if missing_ok and not err.attribute:
                return None
            raise

    def _request(self, method: str, path: str, body: Any = None, *, capability: str | None = None) -> Any:
        with IMPORT_LOCK:  # lazy: requests and hvac load only when AppRole is used
            import requests

            from ..sinks.vault_kv import vault_client

        url = "/v1/" + quote(path, safe="/")
        try:
            result = vault_client(self.settings).adapter.request(method, url, json=body, raise_exception=False)
        except requests.RequestException as exc:
            raise IssuerError(f"Cannot reach Vault at {self.settings.address}",
                              f"{method} {path}: {type(exc).__name__}") from None
        if isinstance(result, dict):
            return result
        status = int(getattr(result, "status_code", 0))
        if 200 <= status < 300:
            return _json(result)
        raise _error(method, path, status, _message(result), capability)


def vault_ttl(ttl: str) -> str:
    """Our duration text ("24h", "30d", "0") as Vault's ("86400s")."""
    text = ttl.strip()
    if text == "0":
        return "0"
    return f"{int(parse_duration(text).total_seconds())}s"


def _json(response: Any) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def _message(response: Any) -> str:
    doc = _json(response)
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors:
            text = "; ".join(str(e) for e in errors)
        else:
            text = str(((doc.get("data") or {}).get("error")) or "")
    else:
        text = ""
    # Vault wraps messages as "1 error occurred:\n\t* permission denied\n\n".
    return " ".join(part.strip("\t *") for part in text.splitlines()
                    if part.strip("\t *") and not part.strip().endswith("error occurred:"))[:300]


def _error(method: str, path: str, status: int, message: str, capability: str | None) -> IssuerError:
    lowered = message.lower()
    if status == 403:
        needed = f"the {capability!r} capability on path \"{path}\"" if capability else f"access to \"{path}\""
        said = message or "permission denied"
        return IssuerAuthError(f"Vault denied {capability or method} on {path}",
                               f"The provider's Vault token needs {needed} (Vault said: {said}).",
                               attribute=("role_name",), status=status)
    if "no handler for route" in lowered:
        mount = path.split("/")[1] if path.startswith("auth/") else path
        return IssuerNotFound(f"No auth method is mounted at auth/{mount}",
                              f"{method} {path}: {message}. Enable AppRole there (vault auth enable approle) or "
                              "set mount.", attribute=("mount",), status=status)
    if "role" in lowered and "does not exist" in lowered:
        return IssuerNotFound("AppRole role not found", f"{method} {path}: {message}", attribute=("role_name",),
                              status=status)
    if status == 404 or "failed to find accessor entry" in lowered:
        return IssuerNotFound(f"{path}: not found", message, status=status)
    if status in (400, 500) and message:
        attribute = next((attr for word, attr in _MESSAGE_ATTRIBUTES if word in lowered), ())
        return IssuerValidationError(f"Vault rejected {method} {path}", message, attribute=attribute, status=status)
    return IssuerError(f"Vault {method} {path} failed", f"HTTP {status}" + (f": {message}" if message else ""),
                       status=status)


def _parse(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _description(metadata: Mapping[str, Any]) -> str:
    mark = metadata.get(APPROLE_MARKER_KEY)
    return f"[{mark}]" if isinstance(mark, str) and mark else ""


def _issued(scope: str, accessor: str, data: Mapping[str, Any]) -> IssuedToken:
    created = _parse(data.get("creation_time"))
    expires = _parse(data.get("expiration_time") or _NEVER)
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return IssuedToken(id=accessor, scope=scope, description=_description(metadata),
                       created_at=rfc3339(created) if created else None,
                       expires_at=rfc3339(expires) if expires else None,
                       extra={"num_uses": data.get("secret_id_num_uses"),
                              "metadata": {k: v for k, v in metadata.items() if k != APPROLE_MARKER_KEY}})
