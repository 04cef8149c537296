"""Token Vault (tokenvault.uk) API client: whoami, agents and their grants, scoped keys and theirs.

Every wire detail of Token Vault lives here; docs/wire.md ("Token Vault") lists each fact with the
file of the official CLI (github.com/c-lgrant/tvault) it rests on, and what the sources leave open.
In short:

- Auth: `Authorization: Bearer <credential>`; the server tells a human's ID token, a `tvkey_` API
  key and a `tvagent_` agent key apart by prefix. tokendrop authenticates as a `tvkey_` key.
- Errors: `{"detail": string | {code, message, missingScope?}}` (FastAPI's 422 list for bad bodies).
  SCOPE_DENIED names the missing scope (`TokenVaultScopeError`), HUMAN_ONLY marks what no key may do.
- Agents: list, get (with `grants`), create (`apiKey` once), PATCH status, delete, rotate-key.
  Agent grants: POST `{agentId, serviceName}`, one service per call, nothing else: the CLI sends no
  expiry and no refresh policy there, so this client sends none and reads the grant back.
- Keys: create `{name, scopes, expiresAt}` (`key` once), list, get (with `grants`), rotate, revoke.
  Key grants: POST `{serviceName, expiresInHours?}` — the one route where a grant expiry exists.
- Scope check: `GET /api/agents/whoami` answers a key's own scopes, so the plan names a missing scope
  before anything is created.

Assumed (see docs/wire.md, "Left open"): GET /api/agents/{id} also returns `description` and
`keyCreatedAt`. tokendrop reads its orphan marker from the first and notices a key rotated but never
delivered with the second. Without them both degrade safely: an agent whose marker cannot be read is
never deleted as an orphan, and a dead key in the sink is then repaired only by the rotation that
the next plan still shows (see resources/tokenvault_agent.py).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ..errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
    RateLimitedError,
)
from ..ratelimit import RateLimiter, Sleeper, shared_limiter
from ..secret import Secret
from ..settings import TokenVaultSettings
from ..timestamps import parse_rfc3339
from .base import IssuedToken, MintedToken, TokenIssuer
from .http import (
    HttpResponse,
    HttpSession,
    RateLimitInfo,
    credential_digest,
    default_error,
    normalize_base_url,
    parse_float,
)

# No documented limit: a polite client-side pace, which 429s and rate-limit headers adjust.
RATE_PER_SECOND = 10
# Agent and API keys; scrubbed from every error.
KEY_PATTERN = re.compile(r"(?:tvagent|tvkey)_[A-Za-z0-9_\-]{8,}")
API_KEY_PREFIX = "tvkey_"
MIN_GRANT_HOURS = 1  # key grants: 1 hour to 30 days (the CLI's --expires-in-hours; docs/wire.md)
MAX_GRANT_HOURS = 30 * 24
AUTO_REFRESH = "auto"

# Where a 422's `loc` points -> our attribute.
_FIELD_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "name": ("name",),
    "description": ("description",),
    "serviceName": ("grants",),
}


class TokenVaultScopeError(IssuerAuthError):
    """403 SCOPE_DENIED, or a plan-time check that found scopes missing: `missing` names them."""

    def __init__(self, missing: Sequence[str], what: str, detail: str = "") -> None:
        names = ", ".join(missing)
        super().__init__(
            f"The Token Vault API key lacks the scope {names}",
            f"{what} needs {names}. {detail}Mint a key that carries it (dashboard, or `tvault keys create "
            f"--scopes {','.join(missing)}`) and set it as tokenvault_api_key / TOKENVAULT_API_KEY.",
            attribute=("tokenvault_api_key",), status=403)
        self.missing = tuple(missing)


class TokenVaultHumanOnlyError(IssuerAuthError):
    """403 HUMAN_ONLY: no API key may do this; a signed-in human must."""


@dataclass(frozen=True)
class Grant:
    service: str
    expires_at: str | None  # RFC 3339; None = until revoked
    refresh_policy: str | None
    source: str | None = None

    @property
    def auto_refresh(self) -> bool:
        return (self.refresh_policy or "").lower() == AUTO_REFRESH

    def expired(self, now: datetime | None = None) -> bool:
        moment = parse_rfc3339(self.expires_at)
        return moment is not None and moment <= (now or datetime.now(UTC))


@dataclass(frozen=True)
class AgentSummary:
    """An item of GET /api/agents."""

    id: str
    name: str
    status: str
    grant_count: int


@dataclass(frozen=True)
class Agent:
    """GET /api/agents/{id}. `grants` holds the live ones only (expired grants are left out)."""

    id: str
    name: str
    status: str  # "active" | "suspended"
    description: str | None
    key_created_at: str | None  # assumed field; None when the API does not report it
    grants: tuple[Grant, ...]


@dataclass(frozen=True)
class Principal:
    """GET /api/agents/whoami: who the credential is, and (for a key or scoped agent) its scopes."""

    type: str  # "user" (a signed-in human) | "key" | "agent" (docs/wire.md: the key's type name is left open)
    id: str
    name: str
    kind: str
    scopes: frozenset[str]
    expires_at: str | None


@dataclass(frozen=True)
class ApiKey:
    """A scoped `tvkey_` key as GET /api/keys and /api/keys/{id} show it (never its secret)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    status: str
    expires_at: str | None
    created_at: str | None
    grants: tuple[Grant, ...]
    last_used_at: str | None = None  # when the key last authenticated; None: never


@dataclass(frozen=True)
class StoreTicket:
    """`POST /api/vault/store-ticket`'s answer. The ticket authorises one store: a credential, kept wrapped."""

    ticket: Secret
    webhook_url: str
    expires_in: int | None


class TokenVaultClient(TokenIssuer):
    """Agents of one Token Vault account, as one admin credential.

    As a `TokenIssuer`, a token is an agent's key: the token id is the agent id (which a rotation
    keeps, `rotates_in_place`) and the scope is the agent's name, so that the marker derived from
    scope and sink finds the agents an interrupted create left behind."""

    kind = "tokenvault"
    rotates_in_place = True
    lookups_by_listing = False  # a lookup is one GET, listing needs one more per agent

    def __init__(self, settings: TokenVaultSettings, *, limiter: RateLimiter | None = None,
                 timeout: float | tuple[float, float] = (10.0, 60.0), max_retries: int = 5,
                 cancel: threading.Event | None = None, sleep: Sleeper | None = None) -> None:
        if settings.api_key is None:
            raise ConfigError("Missing Token Vault API key",
                              "Set tokenvault_api_key in the provider block or the TOKENVAULT_API_KEY environment "
                              "variable.", attribute=("tokenvault_api_key",))
        if not settings.api_key.reveal().startswith(API_KEY_PREFIX):
            raise ConfigError("Token Vault needs a scoped API key",
                              "tokenvault_api_key / TOKENVAULT_API_KEY must be a tvkey_ key minted in the dashboard "
                              "(or with `tvault keys create`) with the scopes the configuration needs: an agent's "
                              "tvagent_ key cannot manage agents, and a human's ID token expires within the hour.",
                              attribute=("tokenvault_api_key",))
        self.url = normalize_url(settings.api_url)
        if limiter is None:
            limiter = shared_limiter(limiter_key(self.url, settings.api_key), RATE_PER_SECOND, 1.0,
                                     name=f"tokenvault {self.url}")
        self.limiter = limiter
        self._http = HttpSession(
            self.url, issuer="Token Vault", auth=settings.api_key, limiters=(limiter,), timeout=timeout,
            max_retries=max_retries, error_mapper=self._map_error, rate_limit_hook=_rate_limit_info,
            secret_patterns=(KEY_PATTERN,), cancel=cancel, sleep=sleep)
        self._principal: Principal | None = None
        self._principal_lock = threading.Lock()

    # -- who the key is -----------------------------------------------------------------------------

    def whoami(self) -> Principal:
        """The key's own record (cached: a key's scopes cannot change under a running provider
        without a rotation, which needs a new key value anyway)."""
        with self._principal_lock:
            if self._principal is None:
                resp = self._http.get("/api/agents/whoami", expect=(200,), what="the API key's own record")
                self._principal = _principal(_object(resp), resp)
            return self._principal

    def missing_scopes(self, required: Sequence[str | tuple[str, ...]]) -> list[str]:
        """Which of `required` the key lacks; a tuple is satisfied by any one of its scopes (where
        the sources leave open which of them the server asks for)."""
        principal = self.whoami()
        missing = []
        for need in required:
            options = (need,) if isinstance(need, str) else need
            if not any(option in principal.scopes for option in options):
                missing.append(" or ".join(options))
        return missing

    def require_scopes(self, required: Sequence[str | tuple[str, ...]], what: str) -> None:
        missing = self.missing_scopes(required)
        if missing:
            raise TokenVaultScopeError(missing, what, "The key's scopes (GET /api/agents/whoami) are: "
                                       f"{', '.join(sorted(self.whoami().scopes)) or 'none'}. ")

    # -- agents -----------------------------------------------------------------------------------

    def list_agents(self) -> list[AgentSummary]:
        resp = self._http.get("/api/agents", expect=(200,), what="the agent list")
        doc = resp.json()
        items = doc.get("agents") if isinstance(doc, dict) else doc  # a bare list is what was observed
        if not isinstance(items, list):
            raise _malformed(resp)
        return [_summary(item) for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]

    def get_agent(self, agent_id: str) -> Agent | None:
        """The agent with its live grants, or None if it does not exist."""
        resp = self._http.get(f"/api/agents/{_segment(agent_id, 'agent id')}", expect=(200, 404),
                              what=f"agent {agent_id}")
        if resp.status == 404:
            return None
        return _agent(_object(resp), resp)

    def create_agent(self, name: str, description: str | None = None, *, kind: str | None = None,
                     scopes: Sequence[str] = ()) -> tuple[Agent, Secret]:
        """Create an agent; returns it and its key (which exists nowhere else from now on). `kind`
        and `scopes` are sent only when given, as the CLI does (the server defaults to classic)."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("Invalid agent name", "the name must not be empty", attribute=("name",))
        body: dict[str, Any] = {"name": name}
        if description:
            body["description"] = description
        if kind:
            body["kind"] = kind
        if scopes:
            body["scopes"] = list(scopes)
        # A POST: never retried once it may have reached Token Vault (no second agent with a lost key).
        resp = self._http.post("/api/agents", json_body=body, expect=(200, 201), what=f"agent {name!r}")
        doc = _object(resp)
        agent_id, key = doc.get("id"), doc.get("apiKey")
        if not isinstance(agent_id, str) or not agent_id:
            raise _malformed(resp)
        if not isinstance(key, str) or not key:
            outcome = self._discard(agent_id)
            raise IssuerError("Token Vault created an agent but returned no API key",
                              f"agent {agent_id} ({name!r}) {outcome}", status=resp.status)
        secret = Secret(key)
        return self._details_after_write(agent_id, doc, name, description), secret

    def rotate_agent_key(self, agent_id: str) -> tuple[Agent, Secret]:
        """A new key for the agent; the previous one stops working at once."""
        resp = self._http.post(f"/api/agents/{_segment(agent_id, 'agent id')}/rotate-key", expect=(200, 201),
                               what=f"agent {agent_id}")
        doc = _object(resp)
        key = doc.get("apiKey")
        if not isinstance(key, str) or not key:
            raise IssuerError("Token Vault rotated an agent key but returned no key",
                              f"agent {agent_id} now has a key nobody has seen; rotate it again", status=resp.status)
        secret = Secret(key)
        return self._details_after_write(agent_id, doc, None, None), secret

    def set_status(self, agent_id: str, status: str) -> None:
        if status not in ("active", "suspended"):
            raise ValueError("status must be 'active' or 'suspended'")
        self._http.patch(f"/api/agents/{_segment(agent_id, 'agent id')}", json_body={"status": status},
                         expect=(200, 204), what=f"agent {agent_id}")

    def delete_agent(self, agent_id: str) -> bool:
        """Delete the agent (its key and grants with it); False if it was already gone."""
        resp = self._http.delete(f"/api/agents/{_segment(agent_id, 'agent id')}", expect=(200, 204, 404),
                                 what=f"agent {agent_id}")
        return resp.status != 404

    # -- grants -----------------------------------------------------------------------------------

    def add_grant(self, agent_id: str, service: str) -> Grant:
        """Grant one service, with exactly the body the CLI sends ({agentId, serviceName}: the
        route has no expiry or refresh policy), and return the grant as the agent now holds it."""
        segment = _segment(agent_id, "agent id")
        self._http.post(f"/api/agents/{segment}/grants", json_body={"agentId": agent_id, "serviceName": service},
                        expect=(200, 201), what=f"grant {service!r} of agent {agent_id}", idempotent=False)
        agent = self.get_agent(agent_id)
        held = next((g for g in agent.grants if g.service == service), None) if agent else None
        if held is None:
            raise IssuerError("Token Vault accepted a grant the agent does not hold",
                              f"POST /api/agents/{agent_id}/grants for {service!r} succeeded, but the agent's record "
                              "shows no live grant for it.", attribute=("grants",))
        return held

    def remove_grant(self, agent_id: str, service: str) -> bool:
        """Revoke one grant; False if the agent had none for `service`."""
        resp = self._http.delete(f"/api/agents/{_segment(agent_id, 'agent id')}/grants/"
                                 f"{_segment(service, 'service name')}", expect=(200, 204, 404),
                                 what=f"grant {service!r} of agent {agent_id}")
        return resp.status != 404

    # -- scoped keys (internal/api/keys.go) --------------------------------------------------------

    def create_key(self, name: str, scopes: Sequence[str], expires_at: str | None) -> tuple[ApiKey, Secret]:
        """Mint a `tvkey_` key (`expires_at` RFC 3339, or None for a key that never expires: sent as
        JSON null, as the CLI does). The secret is in this response only."""
        body = {"name": name, "scopes": list(scopes), "expiresAt": expires_at}
        resp = self._http.post("/api/keys", json_body=body, expect=(200, 201), what=f"key {name!r}")
        doc = _object(resp)
        key_id, secret = doc.get("id"), doc.get("key")
        if not isinstance(key_id, str) or not key_id or not isinstance(secret, str) or not secret:
            raise _malformed(resp)
        return _api_key({**doc, "grants": []}), Secret(secret)

    def list_keys(self) -> list[ApiKey]:
        resp = self._http.get("/api/keys", expect=(200,), what="the key list")
        doc = _object(resp)
        items = doc.get("keys")
        if not isinstance(items, list):
            raise _malformed(resp)
        return [_api_key(item) for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]

    def get_key(self, key_id: str) -> ApiKey | None:
        resp = self._http.get(f"/api/keys/{_segment(key_id, 'key id')}", expect=(200, 404), what=f"key {key_id}")
        return None if resp.status == 404 else _api_key(_object(resp))

    def rotate_api_key(self, key_id: str) -> Secret:
        """A new secret for the key; the old one stops working at once. Another principal's key can
        only be rotated by a human (HUMAN_ONLY), a key may rotate itself."""
        resp = self._http.post(f"/api/keys/{_segment(key_id, 'key id')}/rotate", expect=(200, 201),
                               what=f"key {key_id}")
        secret = _object(resp).get("key")
        if not isinstance(secret, str) or not secret:
            raise IssuerError("Token Vault rotated a key but returned no secret",
                              f"key {key_id} now has a secret nobody has seen; rotate it again", status=resp.status)
        return Secret(secret)

    def revoke_key(self, key_id: str) -> bool:
        """Revoke the key for good; False if it was already gone."""
        resp = self._http.delete(f"/api/keys/{_segment(key_id, 'key id')}", expect=(200, 204, 404),
                                 what=f"key {key_id}")
        return resp.status != 404

    def grant_key(self, key_id: str, service: str, *, expires_in_hours: int | None = None) -> Grant:
        """Grant one service to a key, for 1 to 720 whole hours or (None) until revoked."""
        if expires_in_hours is not None and (isinstance(expires_in_hours, bool) or not isinstance(
                expires_in_hours, int) or not MIN_GRANT_HOURS <= expires_in_hours <= MAX_GRANT_HOURS):
            raise ConfigError("Invalid grant expiry", f"{service}: a key grant lasts {MIN_GRANT_HOURS} to "
                              f"{MAX_GRANT_HOURS} whole hours, or until revoked", attribute=("expires_in",))
        body: dict[str, Any] = {"serviceName": service}
        if expires_in_hours is not None:
            body["expiresInHours"] = expires_in_hours
        resp = self._http.post(f"/api/keys/{_segment(key_id, 'key id')}/grants", json_body=body, expect=(200, 201),
                               what=f"grant {service!r} of key {key_id}", idempotent=False)
        doc = _object(resp)
        return Grant(service=str(doc.get("serviceName") or service), expires_at=_text(doc.get("grantExpiresAt")),
                     refresh_policy=_text(doc.get("refreshPolicy")), source=_text(doc.get("source")))

    def ungrant_key(self, key_id: str, service: str) -> bool:
        """Remove one grant from a key; False if it had none for `service`."""
        resp = self._http.delete(f"/api/keys/{_segment(key_id, 'key id')}/grants/{_segment(service, 'service name')}",
                                 expect=(200, 204, 404), what=f"grant {service!r} of key {key_id}")
        return resp.status != 404

    # -- Webhook Mode (internal/api/vault.go, internal/api/tokens.go; docs/wire.md "Webhook Mode") --------

    def store_ticket(self, service: str) -> StoreTicket:
        """A one-use ticket to store `service`'s credential at the user's webhook (`POST
        /api/vault/store-ticket {serviceName}`); a vault in platform mode answers 400."""
        resp = self._http.post("/api/vault/store-ticket", json_body={"serviceName": service}, expect=(200, 201),
                               what=f"a store ticket for {service!r}")
        doc = _object(resp)
        ticket, url, expires_in = doc.get("ticket"), doc.get("webhookUrl"), doc.get("expiresIn")
        if not isinstance(ticket, str) or not ticket or not isinstance(url, str) or not url:
            raise _malformed(resp)
        return StoreTicket(Secret(ticket), url, int(expires_in) if isinstance(expires_in, int | float) else None)

    def token_metadata(self, service: str) -> dict[str, Any] | None:
        """`GET /api/tokens/{service}`: in Webhook Mode the token's document without its secret fields
        (tokens.go GetTokenValue); None when there is no such token."""
        resp = self._http.get(f"/api/tokens/{_segment(service, 'service name')}", expect=(200, 404),
                              what=f"token {service!r}")
        return None if resp.status == 404 else _object(resp)

    def delete_token(self, service: str) -> bool:
        """`DELETE /api/tokens/{service}` (tokens.go DeleteTokens); False if there was none."""
        resp = self._http.delete(f"/api/tokens/{_segment(service, 'service name')}", expect=(200, 204, 404),
                                 what=f"token {service!r}")
        return resp.status != 404

    # -- TokenIssuer: the token is the agent's key ------------------------------------------------

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        if options:
            raise ConfigError("Token Vault agents take no mint options", f"unsupported: {', '.join(sorted(options))}")
        agent, key = self.create_agent(scope, description)
        return MintedToken(token=_issued(agent), value=key)

    def rekey(self, scope: str, token_id: str) -> MintedToken:
        agent, key = self.rotate_agent_key(token_id)
        return MintedToken(token=_issued(agent), value=key)

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        agent = self.get_agent(token_id)
        return None if agent is None else _issued(agent)

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        """The agents named `scope`, with details (the list itself carries no description)."""
        found = []
        for summary in self.list_agents():
            if summary.name == scope:
                agent = self.get_agent(summary.id)
                if agent is not None:
                    found.append(_issued(agent))
        return found

    def revoke(self, scope: str, token_id: str) -> bool:
        return self.delete_agent(token_id)

    # -- plumbing ---------------------------------------------------------------------------------

    def _details_after_write(self, agent_id: str, doc: Mapping[str, Any], name: str | None,
                             description: str | None) -> Agent:
        """The agent after a create or rotate-key. The key is already minted, so a failed read must
        not lose it: fall back to what the write's response said."""
        if isinstance(doc.get("keyCreatedAt"), str) and isinstance(doc.get("name"), str):
            return _agent({**doc, "grants": doc.get("grants") or []}, None)
        try:
            agent = self.get_agent(agent_id)
        except IssuerError:
            agent = None
        if agent is not None:
            return agent
        return Agent(id=agent_id, name=str(doc.get("name") or name or ""), status=str(doc.get("status") or "active"),
                     description=description, key_created_at=_text(doc.get("keyCreatedAt")), grants=())

    def _discard(self, agent_id: str) -> str:
        try:
            self.delete_agent(agent_id)
            return "was deleted again"
        except IssuerError:
            return "could not be deleted; delete it in the Token Vault dashboard"

    def _map_error(self, response: HttpResponse, what: str) -> IssuerError:
        status = response.status
        code, text, missing_scope = _error_parts(response)
        said = f": {text}" if text else ""
        if code == "SCOPE_DENIED" or missing_scope:
            return TokenVaultScopeError([missing_scope or "(not named by the server)"], what,
                                        f"Token Vault answered {status} SCOPE_DENIED{said}. ")
        if code == "HUMAN_ONLY":
            return TokenVaultHumanOnlyError(
                "Only a signed-in human may do this in Token Vault",
                f"{self.url} answered {status} HUMAN_ONLY to {what}{said}. No API key can do it, whatever its scopes: "
                "do it in the dashboard or with `tvault` logged in as a human.", status=status)
        if code == "SCOPE_NOT_DELEGABLE":
            return TokenVaultHumanOnlyError(
                "Only a signed-in human may hand out this scope",
                f"{what}{said}. Keys and agents cannot give the scopes keys:manage, keys:revoke, agents:manage, "
                "agents:delete, policies:write, grants:write, tokens:update, tokens:delete or proxies:write.",
                attribute=("scopes",), status=status)
        if status == 401 or code in ("INVALID_KEY", "KEY_EXPIRED", "KEY_SUSPENDED"):
            reason = {"KEY_EXPIRED": "is past its expiry", "KEY_SUSPENDED": "is suspended",
                      "INVALID_KEY": "is unknown, malformed or revoked"}.get(code, "is missing, invalid or expired")
            return IssuerAuthError(
                "Token Vault rejected the API key",
                f"{self.url} answered {status}{' ' + code if code else ''} to {what}: the key (tokenvault_api_key / "
                f"TOKENVAULT_API_KEY) {reason}.", attribute=("tokenvault_api_key",), status=status)
        if status == 403:
            return IssuerAuthError("Token Vault denied access", f"{self.url} answered 403 to {what}{said}.",
                                   attribute=("tokenvault_api_key",), status=status)
        if status == 404:
            return IssuerNotFound(f"{what} not found", f"{self.url} answered 404{said}",
                                  attribute=_attribute(response), status=status)
        if status == 423:
            return IssuerError("Token Vault is locked",
                               f"{what}: the vault is locked (VAULT_LOCKED); unlock it in the dashboard and apply "
                               "again.", status=status)
        if status in (400, 409, 422):
            return IssuerValidationError(f"Token Vault rejected the request for {what}", text or f"HTTP {status}",
                                         attribute=_attribute(response), status=status)
        if status == 429:
            return RateLimitedError("Token Vault rate limit still exceeded", what, status=status)
        return default_error(response, what)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TokenVaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenVaultClient(url={self.url!r})"


class TokenVaultSuccessorAgents(TokenIssuer):
    """Agents whose key is rotated by a successor instead of rotate-key (`rotation = "successor"`), for a
    provider key that may not rotate an agent's key (HUMAN_ONLY, docs/wire.md "Left open" 5): a rotation
    creates a new agent with the same name and description (so the sink's marker finds it), the sink gets
    its key, and the predecessor is deleted at once or after `keep_previous_for`. The resource gives the
    successor the predecessor's grants. Same `kind` as `TokenVaultClient`: the records in the sinks and
    the listing caches do not depend on how the key was rotated."""

    kind = TokenVaultClient.kind
    lookups_by_listing = False

    def __init__(self, client: TokenVaultClient) -> None:
        self.client = client

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        return self.client.mint(scope, description, **options)

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        return self.client.lookup(scope, token_id)

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        return self.client.list_tokens(scope)

    def revoke(self, scope: str, token_id: str) -> bool:
        return self.client.revoke(scope, token_id)


class TokenVaultKeys(TokenIssuer):
    """The scoped keys of the account as a `TokenIssuer`: a token is a `tvkey_` key, its scope the
    key's name. Keys have no description, so tokendrop's marker goes into the name (`<name> [td:…]`),
    the one free-text field `POST /api/keys` takes. A rotation mints a successor and revokes the old
    key (not `rotate`, which is human-only for another principal's key), so `keep_previous_for` works."""

    kind = "tokenvault_key"  # apart from agents: the listing cache and ownership records key on it

    def __init__(self, client: TokenVaultClient) -> None:
        self.client = client
        # GET /api/keys answers every key of the account at once: one listing serves every key name
        # for the life of this object (one provider process, as delivery.Listings per scope; keys
        # minted or revoked since are tracked there).
        self._keys: list[ApiKey] | None = None
        self._keys_lock = threading.Lock()

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        scopes = options.pop("scopes", ())
        expires_at = options.pop("expires_at", None)
        if options or not isinstance(scopes, list | tuple) or not (expires_at is None or isinstance(expires_at, str)):
            raise ConfigError("Invalid Token Vault key options", f"unsupported: {', '.join(sorted(options))}")
        key, secret = self.client.create_key(f"{scope} {description}", [str(s) for s in scopes], expires_at)
        return MintedToken(token=_issued_key(key), value=secret)

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        key = self.client.get_key(token_id)
        return _issued_key(key) if key is not None and _alive(key) else None

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        with self._keys_lock:
            if self._keys is None:
                self._keys = self.client.list_keys()
            listed = self._keys
        return [_issued_key(k) for k in listed if _alive(k) and _key_scope(k.name) == scope]

    def revoke(self, scope: str, token_id: str) -> bool:
        return self.client.revoke_key(token_id)


def _key_scope(name: str) -> str:
    """The configured name of a key whose name carries tokendrop's marker."""
    found = re.search(r"\s*\[td:[0-9a-f]{12}\]\s*\Z", name)
    return name[: found.start()] if found else name


def _alive(key: ApiKey) -> bool:
    expires = parse_rfc3339(key.expires_at)
    return key.status != "revoked" and (expires is None or expires > datetime.now(UTC))


def _issued_key(key: ApiKey) -> IssuedToken:
    return IssuedToken(id=key.id, scope=_key_scope(key.name), description=key.name, created_at=key.created_at,
                       expires_at=key.expires_at, last_used_at=key.last_used_at,
                       extra={"scopes": key.scopes, "status": key.status})


# -- helpers -------------------------------------------------------------------------------------

def normalize_url(url: str) -> str:
    return normalize_base_url((url or "").strip().rstrip("/"), label="Token Vault API URL",
                              setting="tokenvault_api_url", credential="API key")


def limiter_key(url: str, key: Secret) -> str:
    """The admin key's budget: the URL and a digest of the key."""
    return f"tokenvault|{url}|{credential_digest(key)}"


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or value in (".", ".."):
        raise ConfigError(f"Invalid {what}", f"{value!r} is not a valid {what}")
    return quote(value, safe="")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int:
    try:
        return int(float(value))  # observed: grantCount arrives as 2.0
    except (TypeError, ValueError):
        return 0


def _object(resp: HttpResponse) -> dict[str, Any]:
    doc = resp.json()
    if not isinstance(doc, dict):
        raise _malformed(resp)
    return doc


def _malformed(resp: HttpResponse) -> IssuerError:
    return IssuerError("Token Vault sent an unexpected response",
                       f"{resp.method} {resp.path} returned HTTP {resp.status} without the expected JSON object",
                       status=resp.status)


def _summary(item: Mapping[str, Any]) -> AgentSummary:
    return AgentSummary(id=item["id"], name=str(item.get("name") or ""), status=str(item.get("status") or "active"),
                        grant_count=_count(item.get("grantCount")))


def _agent(doc: Mapping[str, Any], resp: HttpResponse | None) -> Agent:
    if not isinstance(doc.get("id"), str):
        raise _malformed(resp) if resp is not None else IssuerError("Token Vault sent an agent without an id")
    raw = doc.get("grants")
    now = datetime.now(UTC)
    grants = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("serviceName"), str):
            continue
        grant = _grant(item)
        if not grant.expired(now):
            grants.append(grant)
    return Agent(id=doc["id"], name=str(doc.get("name") or ""), status=str(doc.get("status") or "active"),
                 description=_text(doc.get("description")), key_created_at=_text(doc.get("keyCreatedAt")),
                 grants=tuple(grants))


def _grant(item: Mapping[str, Any]) -> Grant:
    return Grant(service=item["serviceName"], expires_at=_text(item.get("grantExpiresAt")),
                 refresh_policy=_text(item.get("refreshPolicy")), source=_text(item.get("source")))


def _principal(doc: Mapping[str, Any], resp: HttpResponse) -> Principal:
    """WhoamiResult; a server that predates scoped keys answers a flat {id, name} (a classic agent)."""
    block = doc.get("principal") if isinstance(doc.get("principal"), dict) else {}
    scopes = doc.get("scopes") if isinstance(doc.get("scopes"), list) else []
    ident = block.get("id") or doc.get("id")
    if not isinstance(ident, str):
        raise _malformed(resp)
    return Principal(type=str(block.get("type") or "agent"), id=ident, name=str(block.get("name") or doc.get("name")
                     or ""), kind=str(doc.get("kind") or "classic"),
                     scopes=frozenset(s for s in scopes if isinstance(s, str)), expires_at=_text(doc.get("expiresAt")))


def _api_key(doc: Mapping[str, Any]) -> ApiKey:
    raw = doc.get("grants")
    grants = tuple(_grant(g) for g in (raw if isinstance(raw, list) else [])
                   if isinstance(g, dict) and isinstance(g.get("serviceName"), str))
    scopes = doc.get("scopes") if isinstance(doc.get("scopes"), list) else []
    return ApiKey(id=str(doc["id"]), name=str(doc.get("name") or ""), scopes=tuple(str(s) for s in scopes),
                  status=str(doc.get("status") or "active"), expires_at=_text(doc.get("expiresAt")),
                  created_at=_text(doc.get("createdAt")), grants=grants, last_used_at=_text(doc.get("lastUsedAt")))


def _issued(agent: Agent) -> IssuedToken:
    return IssuedToken(id=agent.id, scope=agent.name, description=agent.description or "",
                       created_at=agent.key_created_at, expires_at=None,
                       extra={"grants": agent.grants, "status": agent.status})


def _rate_limit_info(response: HttpResponse) -> Sequence[RateLimitInfo]:
    headers = response.headers
    limit = parse_float(headers.get("RateLimit-Limit") or headers.get("X-RateLimit-Limit"))
    remaining = parse_float(headers.get("RateLimit-Remaining") or headers.get("X-RateLimit-Remaining"))
    reset = parse_float(headers.get("RateLimit-Reset") or headers.get("X-RateLimit-Reset"))
    if limit is None and remaining is None and reset is None:
        return ()
    return (RateLimitInfo(limit=limit, remaining=remaining, reset_seconds=reset),)


def _error_parts(response: HttpResponse) -> tuple[str | None, str, str | None]:
    """(code, message, missingScope) of an error, in any of the shapes Token Vault uses: `detail` a
    string, {code, message, missingScope?}, or FastAPI's [{loc, msg}] (never echoing `input`)."""
    doc = response.json_or_none()
    if not isinstance(doc, dict):
        return None, "", None
    detail = doc.get("detail")
    if isinstance(detail, str):
        return None, detail[:300], None
    if isinstance(detail, dict):
        code, message, scope = detail.get("code"), detail.get("message"), detail.get("missingScope")
        return (_text(code), ": ".join(str(p) for p in (code, message) if p)[:300],
                scope if isinstance(scope, str) and scope else None)
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc") or [] if p != "body"]
                parts.append(f"{'.'.join(loc)}: {item.get('msg')}" if loc else str(item.get("msg")))
        return None, "; ".join(parts)[:300], None
    for key in ("error", "message"):
        if isinstance(doc.get(key), str):
            return None, doc[key][:300], None
    return None, "", None


def _attribute(response: HttpResponse) -> tuple[str, ...]:
    doc = response.json_or_none()
    detail = doc.get("detail") if isinstance(doc, dict) else None
    if isinstance(detail, list):
        for item in detail:
            loc = item.get("loc") if isinstance(item, dict) else None
            if isinstance(loc, list) and loc and str(loc[-1]) in _FIELD_ATTRIBUTES:
                return _FIELD_ATTRIBUTES[str(loc[-1])]
    if response.path.endswith("/grants") or "/grants/" in response.path:
        return ("grants",)
    return ()
