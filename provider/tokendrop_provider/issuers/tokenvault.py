"""Token Vault (tokenvault.uk) admin API client: agents, their grants, and their API keys.

Every wire detail of Token Vault lives here (docs/wire.md). The admin API has no published
reference, so what this module relies on is marked by where it comes from.

Observed (the official CLI's Go client, c-lgrant/tvault internal/api, which calls the live API):
- JSON bodies; admin auth `Authorization: Bearer <credential>`.
- GET /api/agents -> [{id, name, status, grantCount}]; grantCount may arrive as a float (2.0).
- GET /api/agents/{id} -> {id, name, status, grantCount, grants: [{serviceName, refreshPolicy,
  grantExpiresAt}]}. There is no separate grants listing.
- POST /api/agents {name, description?} -> {id, name, apiKey}: the key appears in this response only.
- POST /api/agents/{id}/rotate-key -> {id, apiKey}: the previous key is invalid at once.
- PATCH /api/agents/{id} {status: "active" | "suspended"}; DELETE /api/agents/{id}.
- POST /api/agents/{id}/grants requires {agentId, serviceName} (no agentId -> 422), one service per
  call; DELETE /api/agents/{id}/grants/{serviceName} revokes one.
- Errors carry `detail` (a string, {code, message}, or FastAPI's [{loc, msg}]) or `error` / `message`;
  statuses 401, 423 (VAULT_LOCKED), 400/403/404/409/422, 5xx. No rate limits or paging documented.

Assumed (the request fields follow the observed scoped-key grant API, POST /api/keys/{id}/grants):
- A grant's expiry is sent as `expiresInHours` (whole hours, omitted = until revoked) and
  auto-refresh as `refreshPolicy: "auto"` ("none" otherwise); grants come back with
  `grantExpiresAt` (RFC 3339, null = until revoked) and `refreshPolicy`.
- An expired grant may still be listed with a past `grantExpiresAt`; it counts as absent.
- GET /api/agents/{id} also returns `description` (the dashboard shows it) and `keyCreatedAt`, when the
  live key was issued. tokendrop reads its orphan marker from the first and notices a key rotated but
  never delivered with the second. Without them both degrade safely: an agent whose marker cannot be
  read is never deleted as an orphan, and a dead key in the sink is then repaired only by the rotation
  that the next plan still shows (see resources/tokenvault_agent.py).
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
KEY_PATTERN = re.compile(r"tvagent_[A-Za-z0-9_\-]{8,}")  # agent keys; scrubbed from every error
MIN_GRANT_HOURS = 1
MAX_GRANT_HOURS = 30 * 24
AUTO_REFRESH = "auto"  # assumed refreshPolicy values
NO_REFRESH = "none"

# Where a 422's `loc` points -> our attribute.
_FIELD_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "name": ("name",),
    "description": ("description",),
    "serviceName": ("grants",),
    "expiresInHours": ("grants",),
    "refreshPolicy": ("grants",),
}



@dataclass(frozen=True)
class Grant:
    service: str
    expires_at: str | None  # RFC 3339; None = until revoked
    refresh_policy: str | None

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
        self.url = normalize_url(settings.api_url)
        if limiter is None:
            limiter = shared_limiter(limiter_key(self.url, settings.api_key), RATE_PER_SECOND, 1.0,
                                     name=f"tokenvault {self.url}")
        self.limiter = limiter
        self._http = HttpSession(
            self.url, issuer="Token Vault", auth=settings.api_key, limiters=(limiter,), timeout=timeout,
            max_retries=max_retries, error_mapper=self._map_error, rate_limit_hook=_rate_limit_info,
            secret_patterns=(KEY_PATTERN,), cancel=cancel, sleep=sleep)

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

    def create_agent(self, name: str, description: str | None = None) -> tuple[Agent, Secret]:
        """Create an agent; returns it and its key (which exists nowhere else from now on)."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("Invalid agent name", "the name must not be empty", attribute=("name",))
        body: dict[str, Any] = {"name": name}
        if description:
            body["description"] = description
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

    def rotate_key(self, agent_id: str) -> tuple[Agent, Secret]:
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

    def add_grant(self, agent_id: str, service: str, *, expires_in_hours: int | None = None,
                  auto_refresh: bool = False) -> Grant:
        """Grant one service (one call per service: the API has no bulk route)."""
        if expires_in_hours is not None and not (
                isinstance(expires_in_hours, int) and MIN_GRANT_HOURS <= expires_in_hours <= MAX_GRANT_HOURS):
            raise ConfigError("Invalid grant expiry", f"{service}: a grant lasts {MIN_GRANT_HOURS} to "
                              f"{MAX_GRANT_HOURS} whole hours, or until revoked", attribute=("grants",))
        body: dict[str, Any] = {"agentId": agent_id, "serviceName": service,
                                "refreshPolicy": AUTO_REFRESH if auto_refresh else NO_REFRESH}
        if expires_in_hours is not None:
            body["expiresInHours"] = expires_in_hours
        resp = self._http.post(f"/api/agents/{_segment(agent_id, 'agent id')}/grants", json_body=body,
                               expect=(200, 201), what=f"grant {service!r} of agent {agent_id}",
                               idempotent=False)
        doc = resp.json_or_none()
        doc = doc if isinstance(doc, dict) else {}
        return Grant(service=str(doc.get("serviceName") or service), expires_at=_text(doc.get("grantExpiresAt")),
                     refresh_policy=_text(doc.get("refreshPolicy")) or body["refreshPolicy"])

    def remove_grant(self, agent_id: str, service: str) -> bool:
        """Revoke one grant; False if the agent had none for `service`."""
        resp = self._http.delete(f"/api/agents/{_segment(agent_id, 'agent id')}/grants/"
                                 f"{_segment(service, 'service name')}", expect=(200, 204, 404),
                                 what=f"grant {service!r} of agent {agent_id}")
        return resp.status != 404

    # -- TokenIssuer: the token is the agent's key ------------------------------------------------

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        if options:
            raise ConfigError("Token Vault agents take no mint options", f"unsupported: {', '.join(sorted(options))}")
        agent, key = self.create_agent(scope, description)
        return MintedToken(token=_issued(agent), value=key)

    def rekey(self, scope: str, token_id: str) -> MintedToken:
        agent, key = self.rotate_key(token_id)
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
        text = _error_text(response)
        if status == 401:
            return IssuerAuthError(
                "Token Vault rejected the API key",
                f"{self.url} answered 401 to {what}: the admin key (tokenvault_api_key / TOKENVAULT_API_KEY) is "
                "missing, invalid or expired.", attribute=("tokenvault_api_key",), status=status)
        if status == 403:
            return IssuerAuthError(
                "Token Vault denied access",
                f"{self.url} answered 403 to {what}" + (f": {text}" if text else "") + ". The key may lack the "
                "scope this needs (e.g. agents:write).", attribute=("tokenvault_api_key",), status=status)
        if status == 404:
            return IssuerNotFound(f"{what} not found", f"{self.url} answered 404" + (f": {text}" if text else ""),
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
        grant = Grant(service=item["serviceName"], expires_at=_text(item.get("grantExpiresAt")),
                      refresh_policy=_text(item.get("refreshPolicy")))
        if not grant.expired(now):
            grants.append(grant)
    return Agent(id=doc["id"], name=str(doc.get("name") or ""), status=str(doc.get("status") or "active"),
                 description=_text(doc.get("description")), key_created_at=_text(doc.get("keyCreatedAt")),
                 grants=tuple(grants))


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


def _error_text(response: HttpResponse) -> str:
    """The error's message, in any of the shapes Token Vault uses (never echoing request values:
    FastAPI's `input` is left out)."""
    doc = response.json_or_none()
    if not isinstance(doc, dict):
        return ""
    detail = doc.get("detail")
    if isinstance(detail, str):
        return detail[:300]
    if isinstance(detail, dict):
        code, message = detail.get("code"), detail.get("message")
        return ": ".join(str(p) for p in (code, message) if p)[:300]
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc") or [] if p != "body"]
                parts.append(f"{'.'.join(loc)}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "; ".join(parts)[:300]
    for key in ("error", "message"):
        if isinstance(doc.get(key), str):
            return doc[key][:300]
    return ""


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
