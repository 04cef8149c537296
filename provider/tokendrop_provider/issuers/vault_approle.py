"""HashiCorp Vault / OpenBao AppRole secret ids as tokens, through the provider's Vault connection.

The issuer Vault is the provider's own Vault settings (address, token or AppRole login, namespace):
the same process-wide connection the Vault KV sink uses (`vault.vault_connection`, which also sets
the redirect and plain-http policy).

Wire facts (docs/wire.md, section "Vault"; checked against OpenBao 2.7.2):

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, IssuerAuthError, IssuerError, IssuerNotFound, IssuerValidationError
from ..markers import APPROLE_MARKER_KEY, split_description
from ..secret import Secret
from ..settings import VaultSettings
from ..timestamps import format_rfc3339 as rfc3339
from ..validation import parse_duration
from ..vault import VaultLoginFailed, VaultRedirectRefused, VaultUnreachable, vault_connection
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


@dataclass(frozen=True)
class RoleLimits:
    """What a role allows its secret ids (0: no limit)."""

    ttl_seconds: int
    num_uses: int

    def problem(self, ttl: object, num_uses: object) -> tuple[str, str] | None:
        """(attribute, why) when Vault would refuse to mint with this ttl or num_uses: it refuses a
        secret id that outlives or outnumbers the role's own limit, and 0 ("none") counts as more than
        any limit. None when acceptable, or when the value is not known yet."""
        if isinstance(ttl, str) and self.ttl_seconds:
            seconds = 0 if ttl.strip() == "0" else int(parse_duration(ttl).total_seconds())
            if seconds == 0 or seconds > self.ttl_seconds:
                asked = "0 (no expiry)" if seconds == 0 else repr(ttl)
                return "ttl", (f"ttl is {asked}, but the role's secret_id_ttl is {self.ttl_seconds}s: Vault refuses "
                               f"a secret id that outlives it. Set ttl to at most {self.ttl_seconds}s, or leave it "
                               "unset to get the role's own")
        if isinstance(num_uses, int | float) and self.num_uses and (num_uses == 0 or num_uses > self.num_uses):
            asked = "0 (unlimited)" if num_uses == 0 else str(int(num_uses))
            return "num_uses", (f"num_uses is {asked}, but the role's secret_id_num_uses is {self.num_uses}: "
                                f"Vault refuses more uses than that. Set num_uses to 1..{self.num_uses}, or "
                                "leave it unset to get the role's own")
        return None


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

    def role_limits(self, scope: str) -> RoleLimits | None:
        """The role's secret_id_ttl and secret_id_num_uses (GET auth/<mount>/role/<role>); None when the
        provider's token may not read the role (the limits are then found by Vault at apply)."""
        try:
            body = self._call("GET", scope, "", "read")
        except (IssuerAuthError, IssuerNotFound):
            return None
        data = (body or {}).get("data") or {}
        try:
            return RoleLimits(ttl_seconds=int(data.get("secret_id_ttl") or 0),
                              num_uses=int(data.get("secret_id_num_uses") or 0))
        except (TypeError, ValueError):
            return None

    def missing_capabilities(self, scope: str) -> list[tuple[str, str]] | None:
        """(path, capability) pairs the provider's token lacks for minting, refreshing, sweeping and
        destroying secret ids of this role; None when Vault would not say (capabilities-self denied)."""
        mount, role = split_scope(scope)
        paths = {f"auth/{mount}/role/{role}/{suffix}": needed for suffix, needed in REQUIRED_CAPABILITIES.items()}
        with _as_issuer_errors():
            return vault_connection(self.settings).missing_capabilities(paths)

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
        path = f"auth/{mount}/role/{role}" + (f"/{suffix}" if suffix else "")
        try:
            return self._request(method, path, body, capability=capability)
        except IssuerNotFound as err:
            if missing_ok and not err.attribute:
                return None
            raise

    def _request(self, method: str, path: str, body: Any = None, *, capability: str | None = None) -> Any:
        with _as_issuer_errors():
            reply = vault_connection(self.settings).request(method, path, body)
        if reply.ok:
            return reply.body
        raise _error(method, path, reply.status, reply.message, capability)


@contextmanager
def _as_issuer_errors() -> Iterator[None]:
    """Transport failures of the shared Vault connection, as issuer errors."""
    try:
        yield
    except VaultLoginFailed as exc:
        raise IssuerAuthError(exc.summary, exc.detail, attribute=exc.attribute) from None
    except (VaultUnreachable, VaultRedirectRefused) as exc:
        raise IssuerError(exc.summary, exc.detail) from None


def vault_ttl(ttl: str) -> str:
    """Our duration text ("24h", "30d", "0") as Vault's ("86400s")."""
    text = ttl.strip()
    if text == "0":
        return "0"
    return f"{int(parse_duration(text).total_seconds())}s"


def _error(method: str, path: str, status: int, message: str, capability: str | None) -> IssuerError:
    lowered = message.lower()
    if status == 403 and "invalid secret id accessor" in lowered:
        # Vault's destroy-by-accessor when the accessor entry outlived its secret id (used up, expired
        # and tidied): the secret id is already gone. Not a missing capability.
        return IssuerNotFound(f"{path}: the secret id is already gone", message, status=status)
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
