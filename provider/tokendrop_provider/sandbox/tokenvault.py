"""Emulator of the Token Vault (tokenvault.uk) API as its official CLI speaks it: principals, agents,
agent grants, scoped keys, key grants and the agent side.

Every route follows docs/wire.md, section "Token Vault", which names the CLI file each fact rests on;
what the sources leave open is emulated the way that section's "Left open" list says.

- Principals, told apart by the bearer credential's prefix: a signed-in human (`human_token`, which
  stands for the Firebase ID token the dashboard and `tvault login` use), scoped API keys (`tvkey_…`)
  and agents (`tvagent_…`, also accepted as `X-Agent-Key` or `?key=`). An unknown, expired or
  suspended key is refused with INVALID_KEY / KEY_EXPIRED / KEY_SUSPENDED.
- Scopes: a key (or a scoped agent) may call a route only if it holds the route's scope; otherwise
  403 `{"detail": {"code": "SCOPE_DENIED", "message", "missingScope"}}`. Humans hold every scope.
  Human-only operations answer 403 HUMAN_ONLY to keys and agents; scopes a key or agent may not hand
  out answer 403 SCOPE_NOT_DELEGABLE.
- Agents: create (`apiKey` in that response only), list (`grantCount` as a float), get (with
  `grants`), PATCH status, delete, bulk delete, rotate-key. Agent grants: POST takes
  {agentId, serviceName}; other fields are ignored, as a pydantic model ignores unknown fields, so a
  client that sends an expiry sees none applied. DELETE by service name.
- Keys: create (`key` in that response only), list `{"keys": [...]}`, get (with `grants`), rotate
  (self only, else HUMAN_ONLY), revoke. Key grants: POST {serviceName, expiresInHours?} (1–720).
- Agent side: `GET /api/agents/credentials` lists grants, `?service=` returns one credential.
- Webhook Mode (docs/wire.md, "Webhook Mode"): once bound to a webhook (`bind_webhook`, which calls its
  `/v1/exchange` with a one-time code), the vault issues store tickets (`POST /api/vault/store-ticket`),
  reads and deletes token metadata through the webhook's signed `/v1/storage` (`GET`/`DELETE
  /api/tokens/{service}`), and answers an agent asking for a webhook-held credential with a 307 to
  `<webhook>/v1/credential?ticket=…&service=…`. It never receives a webhook-held value.

Sandbox controls (Python and `/_sandbox/…`): a clock that can be moved forward, services of the vault,
a vault lock, expiring a grant at once, minting keys with chosen scopes, marking a key used at a given
time (`mark_key_used`), making agent rotate-key human-only, and the world as JSON (no key values). Every
key ever issued is in the minted registry (`/_sandbox/minted`) for canary scans.

Run standalone: `python -m tokendrop_provider.sandbox.tokenvault --port 0 --ready-file /tmp/tv.json`.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import string
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from .emulator import Emulator, HttpError, Request, Response, bad_request, run_cli
from .tokenvault_webhook import SENSITIVE_FIELDS, TokenVaultWebhook, make_ticket, signed_headers

API = "/api/agents"
KEYS = "/api/keys"
MAX_GRANT_HOURS = 30 * 24
# The scope names the CLI's README lists, plus the two its `explain` table names (agents:delete, keys:revoke).
KNOWN_SCOPES = frozenset((
    "credentials:read", "mcp:use", "tokens:list", "tokens:create", "tokens:create-read", "tokens:update",
    "tokens:delete", "agents:read", "agents:create", "agents:manage", "agents:delete", "grants:write",
    "proxies:read", "proxies:write", "policies:read", "policies:write", "keys:manage", "keys:revoke"))
# SCOPE_NOT_DELEGABLE in the CLI's `explain` table: only a signed-in human may give these to a key or agent.
NON_DELEGABLE = frozenset(("keys:manage", "keys:revoke", "agents:manage", "agents:delete", "policies:write",
                           "grants:write", "tokens:update", "tokens:delete", "proxies:write"))
# What the sandbox's provider key (`admin_key`) holds: every scope tokendrop's Token Vault calls need.
PROVIDER_SCOPES = ("agents:read", "agents:create", "agents:manage", "grants:write", "keys:manage",
                   "tokens:list", "tokens:create", "tokens:delete")
TICKET_LIFETIME = 60  # seconds; the CLI's recorded answer shows expiresIn 60 (internal/api tests)
SANDBOX_SERVICES = (("github", "oauth"), ("linear", "oauth"), ("slack", "oauth"), ("notion", "oauth"),
                    ("google", "oauth"), ("openai", "api_key"), ("jira", "api_key"))
SERVICE_TOKEN_LIFETIME = timedelta(hours=1)  # how long an emulated OAuth access token lasts
AGENT_GRANT_REFRESH_POLICY = "none"  # assumed: what the server records for a grant made by the CLI's body
_BASE62 = string.ascii_letters + string.digits
HUMAN = "human"


def _random(n: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(n))


def new_agent_key() -> str:
    return "tvagent_" + _random(40)


def new_api_key() -> str:
    return "tvkey_" + _random(40)


def timestamp(moment: datetime) -> str:
    """RFC 3339 with milliseconds and Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Service:
    name: str
    kind: str  # "oauth" (has an access token that expires) | "api_key"
    access_token: str
    expires_at: datetime | None


@dataclass
class Grant:
    service: str
    granted_at: datetime
    expires_at: datetime | None  # None: until revoked
    refresh_policy: str
    source: str = "direct"


@dataclass
class Agent:
    id: str
    name: str
    description: str | None
    created_at: datetime
    key: str
    key_number: int
    key_created_at: datetime
    kind: str = "classic"  # "classic" | "scoped"
    scopes: tuple[str, ...] = ()
    status: str = "active"
    mcp_enabled: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)
    last_used_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return f"{self.id}/key-{self.key_number}"


@dataclass
class ApiKey:
    id: str
    name: str
    secret: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    created_at: datetime
    created_by: tuple[str, str]  # (type, id)
    sandbox: bool = False  # a credential of the sandbox itself (the provider key, test keys), not a minted token
    number: int = 1
    status: str = "active"  # "active" | "suspended"
    grants: dict[str, Grant] = field(default_factory=dict)
    last_used_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return f"{self.id}/secret-{self.number}"


class TokenVaultEmulator(Emulator):
    """The Token Vault API on 127.0.0.1. `admin_key` is the provider's `tvkey_` key (scopes
    PROVIDER_SCOPES); `human_token` stands for a signed-in human's ID token."""

    name = "tokenvault"

    def __init__(self, port: int = 0, *, admin_key: str | None = None) -> None:
        if admin_key is not None and not admin_key.startswith("tvkey_"):
            raise ValueError("the provider key is a scoped API key: it starts with tvkey_")
        self.admin_key = admin_key or new_api_key()
        self.human_token = "sandbox-id-token-" + _random(32)
        self.agents: dict[str, Agent] = {}
        self.keys: dict[str, ApiKey] = {}
        self.services: dict[str, Service] = {}
        self.locked = False
        self.agent_rotation_human_only = False
        self._offset = timedelta(0)
        # Webhook Mode: where the webhook is, the HMAC secret it handed over, and the services whose
        # credential it holds (metadata only: Token Vault never holds their values).
        self.webhook_url: str | None = None
        self.webhook_secret: bytes | None = None
        self.webhook_services: set[str] = set()
        self.sandbox_webhook_url: str | None = None  # the webhook `--webhook` started beside the emulator
        self.issued_tickets: list[str] = []  # every ticket handed out (sandbox-only, for leak scans)
        super().__init__(port)
        self.reset_state()

    # -- the world (Python API) -------------------------------------------------------------------

    def now(self) -> datetime:
        with self.lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (grants, keys and service tokens expire without waiting)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self._offset += timedelta(seconds=seconds)

    def reset_state(self) -> None:
        with self.lock:
            self.agents.clear()
            self.keys.clear()
            self.services.clear()
            self.locked = False
            self.agent_rotation_human_only = False
            self._offset = timedelta(0)
            self.webhook_url = None
            self.webhook_secret = None
            self.webhook_services = set()
            self.issued_tickets = []
            for name, kind in SANDBOX_SERVICES:
                self.add_service(name, kind)
            # The provider's key survives resets: tests and fixtures hold its value.
            self._store_key("tokendrop-provider", self.admin_key, PROVIDER_SCOPES, None, sandbox=True)

    def add_service(self, name: str, kind: str = "oauth") -> None:
        if kind not in ("oauth", "api_key"):
            raise ValueError("kind must be 'oauth' or 'api_key'")
        with self.lock:
            expires = self.now() + SERVICE_TOKEN_LIFETIME if kind == "oauth" else None
            self.services[name] = Service(name, kind, f"svc_{name}_{_random(24)}", expires)

    def set_locked(self, locked: bool) -> None:
        with self.lock:
            self.locked = bool(locked)

    def bind_webhook(self, webhook_url: str, code: str) -> dict[str, Any]:
        """Bind the vault to a webhook (Webhook Mode), as the dashboard's webhook-bind page does: send the
        one-time code to `<webhook>/v1/exchange` and keep the HMAC secret it answers. Unlike the real
        service (https only, no private addresses), the sandbox accepts a loopback http webhook."""
        url = webhook_url.rstrip("/")
        doc = _post_json(f"{url}/v1/exchange", json.dumps({"code": code}).encode(),
                         {"Content-Type": "application/json"})
        with self.lock:
            self.webhook_url = url
            self.webhook_secret = base64.b64decode(doc["hmacSecret"])
            self.webhook_services = set()
        return {"webhookId": doc.get("webhookId"), "capabilities": doc.get("capabilities")}

    @property
    def vault_mode(self) -> str:
        return "webhook" if self.webhook_secret is not None else "platform"

    def mint_key(self, scopes: Collection[str], *, name: str = "sandbox", expires_in: timedelta | None = None) -> str:
        """A `tvkey_` key with these scopes, as a human would mint it in the dashboard (no checks). Like
        the provider key it is a credential of the sandbox, not a token tokendrop minted."""
        with self.lock:
            expires = self.now() + expires_in if expires_in is not None else None
            return self._store_key(name, new_api_key(), tuple(scopes), expires, sandbox=True).secret

    def mark_key_used(self, key_id: str, when: datetime | None = None) -> None:
        """A key was used at `when` (default: the emulator's now), as its `lastUsedAt` then shows: a test
        sets a last use in the past without waiting. KeyError for an unknown key."""
        with self.lock:
            self.keys[key_id].last_used_at = when or self.now()

    def create_agent(self, name: str, description: str | None = None) -> tuple[str, str]:
        """Create an agent directly (no HTTP); returns (id, key). The key is recorded as minted."""
        with self.lock:
            now = self.now()
            agent = Agent(_random(20), name, description, now, new_agent_key(), 1, now)
            self.agents[agent.id] = agent
            self.record_minted(agent.key_id, agent.key, agent.id)
            return agent.id, agent.key

    def rotate_key(self, agent_id: str) -> str:
        with self.lock:
            agent = self.agents[agent_id]
            self.mark_revoked(agent.key_id)
            agent.key, agent.key_number, agent.key_created_at = new_agent_key(), agent.key_number + 1, self.now()
            self.record_minted(agent.key_id, agent.key, agent.id)
            return agent.key

    def delete_agent(self, agent_id: str) -> bool:
        with self.lock:
            agent = self.agents.pop(agent_id, None)
            if agent is not None:
                self.mark_revoked(agent.key_id)
        if agent is not None:
            self.emit("agent.deleted", id=agent_id)
        return agent is not None

    def set_status(self, agent_id: str, status: str) -> None:
        if status not in ("active", "suspended"):
            raise ValueError("status must be 'active' or 'suspended'")
        with self.lock:
            self.agents[agent_id].status = status

    def grant(self, agent_id: str, service: str, *, expires_in: timedelta | None = None,
              refresh_policy: str = AGENT_GRANT_REFRESH_POLICY) -> None:
        """Grant as the dashboard may (an expiry, a refresh policy): the CLI's route cannot set either."""
        with self.lock:
            now = self.now()
            self.agents[agent_id].grants[service] = Grant(service, now, now + expires_in if expires_in else None,
                                                          refresh_policy)

    def expire_grant(self, agent_id: str, service: str) -> None:
        """End a grant now, as if its expiry had passed."""
        with self.lock:
            self.agents[agent_id].grants[service].expires_at = self.now() - timedelta(seconds=1)

    def current_key(self, agent_id: str) -> str:
        """The agent's live key (sandbox-only knowledge, for tests)."""
        with self.lock:
            return self.agents[agent_id].key

    def agent_ids(self, name: str | None = None) -> list[str]:
        with self.lock:
            return [a.id for a in self.agents.values() if name is None or a.name == name]

    def world(self) -> dict[str, Any]:
        """Agents and keys (without secrets), services and switches: the sandbox's view."""
        with self.lock:
            return {
                "agents": [{**self._agent_doc(a), "keyId": a.key_id} for a in self.agents.values()],
                "keys": [self._key_doc(k, with_grants=True) for k in self.keys.values()],
                "services": {s.name: s.kind for s in self.services.values()},
                "locked": self.locked,
                "agentRotationHumanOnly": self.agent_rotation_human_only,
                "clockOffsetSeconds": self._offset.total_seconds(),
                "vaultMode": self.vault_mode, "webhookUrl": self.webhook_url,
                "webhookServices": sorted(self.webhook_services),
            }

    def ready_info(self) -> dict[str, Any]:
        env = {"TOKENVAULT_API_URL": self.url, "TOKENVAULT_API_KEY": self.admin_key}
        if self.sandbox_webhook_url:
            env["TOKENVAULT_WEBHOOK_URL"] = self.sandbox_webhook_url
        return {"env": env, "services": sorted(self.services)}

    def _store_key(self, name: str, secret: str, scopes: tuple[str, ...], expires: datetime | None,
                   created_by: tuple[str, str] = ("user", "sandbox"), *, sandbox: bool = False) -> ApiKey:
        key = ApiKey(_random(20), name, secret, scopes, expires, self.now(), created_by, sandbox=sandbox)
        self.keys[key.id] = key
        self._register_minted(key)
        return key

    def _register_minted(self, key: ApiKey) -> None:
        """Keys created through the API join the minted registry (every entry must be revoked once a
        stack is destroyed); the sandbox's own credentials stay out of it."""
        if not key.sandbox:
            self.record_minted(key.key_id, key.secret, key.id)

    # -- auth -------------------------------------------------------------------------------------

    def identify(self, req: Request) -> str | None:
        bearer = _bearer(req)
        if bearer is not None and secrets.compare_digest(bearer, self.human_token):
            return HUMAN
        if bearer is not None and bearer.startswith("tvkey_"):
            key = self._key_by_secret(bearer)
            return f"key:{key.id}" if key is not None else None
        agent = self._agent_by_key(_agent_key(req))
        return f"agent:{agent.id}" if agent is not None else None

    def before(self, req: Request) -> Response | None:
        bearer = _bearer(req)
        if bearer is not None and bearer.startswith("tvkey_"):
            with self.lock:
                key = self._key_by_secret(bearer)
                if key is None:
                    return self._coded(401, "INVALID_KEY", "Invalid API key")
                if key.expires_at is not None and key.expires_at <= self.now():
                    return self._coded(401, "KEY_EXPIRED", "The API key has expired")
                if key.status != "active":
                    return self._coded(403, "KEY_SUSPENDED", "The API key is suspended")
                key.last_used_at = self.now()
            return None
        if req.path == f"{API}/credentials":
            return None  # the handler tells the agent what is wrong with its key
        if req.principal is None:
            return self._coded(401, "UNAUTHORIZED", "Missing or invalid credentials")
        return None

    def after(self, req: Request, resp: Response) -> None:
        if "key" in req.query:  # an agent key in the query string must not reach the request log
            req.query["key"] = ["***"]

    def _require(self, req: Request, *scopes: str) -> None:
        """The caller holds one of `scopes` (humans hold all); else SCOPE_DENIED naming the first."""
        held = self._scopes_of(req.principal)
        if held is None or any(s in held for s in scopes):
            return
        raise HttpError(Response.json(403, {"detail": {
            "code": "SCOPE_DENIED", "message": f"This key lacks the scope {scopes[0]}", "missingScope": scopes[0]}}))

    def _human_only(self, req: Request, what: str) -> None:
        if req.principal != HUMAN:
            raise HttpError(self._coded(403, "HUMAN_ONLY", f"{what} needs a signed-in human, not an API key"))

    def _scopes_of(self, principal: str | None) -> frozenset[str] | None:
        """None for a human (every scope)."""
        if principal == HUMAN:
            return None
        kind, _, ident = (principal or "").partition(":")
        with self.lock:
            if kind == "key" and ident in self.keys:
                return frozenset(self.keys[ident].scopes)
            if kind == "agent" and ident in self.agents:
                return frozenset(self.agents[ident].scopes)
        return frozenset()

    def _check_requested_scopes(self, req: Request, scopes: object, field_name: str) -> tuple[str, ...]:
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise self._unprocessable(field_name, "Input should be a valid list of strings", "list_type")
        unknown = sorted(set(scopes) - KNOWN_SCOPES)
        if unknown:
            raise HttpError(self._coded(400, "UNKNOWN_SCOPE", f"Unknown scope {unknown[0]}"))
        if req.principal != HUMAN:
            refused = sorted(set(scopes) & NON_DELEGABLE)
            if refused:
                raise HttpError(self._coded(403, "SCOPE_NOT_DELEGABLE",
                                            f"Only a signed-in human can give the scope {refused[0]}"))
        return tuple(scopes)

    def _agent_by_key(self, key: str | None) -> Agent | None:
        if not key:
            return None
        with self.lock:
            for agent in self.agents.values():
                if secrets.compare_digest(agent.key, key):
                    return agent
        return None

    def _key_by_secret(self, secret: str) -> ApiKey | None:
        with self.lock:
            for key in self.keys.values():
                if secrets.compare_digest(key.secret, secret):
                    return key
        return None

    def error_response(self, status: int, title: str, detail: str | None = None,
                       headers: Mapping[str, str] | None = None) -> Response:
        return Response.json(status, {"detail": f"{title}: {detail}" if detail else title}, headers=headers)

    def _coded(self, status: int, code: str, message: str) -> Response:
        return Response.json(status, {"detail": {"code": code, "message": message}})

    def _unprocessable(self, field_name: str, message: str, kind: str = "value_error") -> HttpError:
        # FastAPI's validation error shape (without echoing the input).
        return HttpError(Response.json(422, {"detail": [{"type": kind, "loc": ["body", field_name],
                                                         "msg": message, "input": None}]}))

    # -- routes -----------------------------------------------------------------------------------

    def register_routes(self) -> None:
        r = self.route
        r("GET", f"{API}/credentials", self._credentials)  # before /{agent_id}: first match wins
        r("GET", f"{API}/whoami", self._whoami)
        r("DELETE", f"{API}/bulk", self._bulk_delete)
        r("GET", API, self._list)
        r("POST", API, self._create)
        r("GET", API + "/{agent_id}", self._show)
        r("PATCH", API + "/{agent_id}", self._patch)
        r("DELETE", API + "/{agent_id}", self._delete)
        r("POST", API + "/{agent_id}/rotate-key", self._rotate)
        r("POST", API + "/{agent_id}/grants", self._grant)
        r("DELETE", API + "/{agent_id}/grants/{service}", self._revoke_grant)
        r("GET", KEYS, self._list_keys)
        r("POST", KEYS, self._create_key)
        r("GET", KEYS + "/{key_id}", self._show_key)
        r("DELETE", KEYS + "/{key_id}", self._revoke_key)
        r("POST", KEYS + "/{key_id}/rotate", self._rotate_api_key)
        r("POST", KEYS + "/{key_id}/grants", self._grant_key)
        r("DELETE", KEYS + "/{key_id}/grants/{service}", self._ungrant_key)
        r("POST", "/api/vault/store-ticket", self._store_ticket)
        r("GET", "/api/vault/status", self._vault_status)
        r("GET", "/api/tokens/{service}", self._token_metadata)
        r("DELETE", "/api/tokens/{service}", self._delete_token)
        a = self.admin_route
        a("GET", "/_sandbox/world", lambda req: Response.json(200, self.world()))
        a("POST", "/_sandbox/services", self._admin_service)
        a("POST", "/_sandbox/clock", self._admin_clock)
        a("POST", "/_sandbox/lock", self._admin_lock)
        a("POST", "/_sandbox/expire-grant", self._admin_expire)
        a("POST", "/_sandbox/keys", self._admin_mint_key)
        a("POST", "/_sandbox/agent-rotation", self._admin_agent_rotation)
        a("POST", "/_sandbox/webhook-bind", self._admin_webhook_bind)

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise HttpError(self._coded(404, "AGENT_NOT_FOUND", "Agent not found"))
        return agent

    def _key(self, key_id: str) -> ApiKey:
        key = self.keys.get(key_id)
        if key is None:
            raise HttpError(self._coded(404, "KEY_NOT_FOUND", "Key not found"))
        return key

    def _body(self, req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except HttpError:
            raise HttpError(Response.json(422, {"detail": [{"type": "json_invalid", "loc": ["body"],
                                                             "msg": "JSON decode error", "input": None}]})) from None
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise HttpError(Response.json(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                                             "msg": "Input should be an object", "input": None}]}))
        return body

    def _service_name(self, body: Mapping[str, Any]) -> str:
        if "serviceName" not in body:
            raise self._unprocessable("serviceName", "Field required", "missing")
        service = body["serviceName"]
        if not isinstance(service, str) or not service:
            raise self._unprocessable("serviceName", "String should have at least 1 character", "string_too_short")
        if service not in self.services and service not in self.webhook_services:
            raise HttpError(self._coded(404, "SERVICE_NOT_FOUND", f"No token for service {service!r} in the vault"))
        return service

    # agents (internal/api/agents.go)

    def _list(self, req: Request) -> Response:
        self._require(req, "agents:read")
        with self.lock:
            response = Response.json(200, [{"id": a.id, "name": a.name, "status": a.status,
                                            "grantCount": float(len(a.grants))} for a in self.agents.values()])
        # tokendrop lists agents for its orphan sweep, right after a sink write: crash tests hook in here.
        self.emit("agents.listed")
        return response

    def _show(self, req: Request) -> Response:
        self._require(req, "agents:read")
        with self.lock:
            return Response.json(200, self._agent_doc(self._agent(req.params["agent_id"])))

    def _create(self, req: Request) -> Response:
        self._require(req, "agents:create")
        body = self._body(req)
        name, description, mcp = body.get("name"), body.get("description"), body.get("mcpEnabled", False)
        kind = body.get("kind", "classic")
        if "name" not in body:
            raise self._unprocessable("name", "Field required", "missing")
        if not isinstance(name, str) or not name.strip():
            raise self._unprocessable("name", "String should have at least 1 character", "string_too_short")
        if description is not None and not isinstance(description, str):
            raise self._unprocessable("description", "Input should be a valid string", "string_type")
        if not isinstance(mcp, bool):
            raise self._unprocessable("mcpEnabled", "Input should be a valid boolean", "bool_type")
        if kind not in ("classic", "scoped"):
            raise self._unprocessable("kind", "Input should be 'classic' or 'scoped'", "enum")
        scopes = self._check_requested_scopes(req, body.get("scopes", []), "scopes")
        if scopes and kind != "scoped":
            raise self._unprocessable("scopes", "Only a scoped agent carries scopes")
        agent_id, key = self.create_agent(name, description)
        with self.lock:
            agent = self.agents[agent_id]
            agent.mcp_enabled, agent.kind, agent.scopes = mcp, kind, scopes
        self.emit("agent.created", id=agent_id, name=name)
        return Response.json(201, {"id": agent_id, "name": name, "apiKey": key, "kind": kind})

    def _patch(self, req: Request) -> Response:
        self._require(req, "agents:manage")
        body = self._body(req)
        status = body.get("status")
        if status not in ("active", "suspended"):
            raise self._unprocessable("status", "Input should be 'active' or 'suspended'", "enum")
        with self.lock:
            agent = self._agent(req.params["agent_id"])
            agent.status = status
            return Response.json(200, {"id": agent.id, "name": agent.name, "status": agent.status})

    def _delete(self, req: Request) -> Response:
        self._require(req, "agents:delete", "agents:manage")
        with self.lock:
            self._agent(req.params["agent_id"])
        self.delete_agent(req.params["agent_id"])
        return Response.json(200, {"success": True})

    def _bulk_delete(self, req: Request) -> Response:
        self._require(req, "agents:delete", "agents:manage")
        ids = self._body(req).get("agentIds")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise self._unprocessable("agentIds", "Input should be a valid list of strings", "list_type")
        deleted = [i for i in ids if self.delete_agent(i)]
        return Response.json(200, {"deleted": deleted, "notFound": [i for i in ids if i not in deleted]})

    def _rotate(self, req: Request) -> Response:
        if self.agent_rotation_human_only:
            self._human_only(req, "Rotating an agent's key")
        self._require(req, "agents:manage")
        with self.lock:
            agent = self._agent(req.params["agent_id"])
            key = self.rotate_key(agent.id)
        self.emit("agent.key_rotated", id=agent.id)
        return Response.json(200, {"id": agent.id, "apiKey": key})

    def _grant(self, req: Request) -> Response:
        self._require(req, "grants:write")
        body = self._body(req)
        if "agentId" not in body:
            raise self._unprocessable("agentId", "Field required", "missing")
        agent_id = body["agentId"]
        if not isinstance(agent_id, str) or agent_id != req.params["agent_id"]:
            raise self._unprocessable("agentId", "agentId must be the agent of the URL")
        with self.lock:
            agent = self._agent(agent_id)
            service = self._service_name(body)
            now = self.now()
            existing = agent.grants.get(service)
            if existing is not None and not _ended(existing, now):
                raise HttpError(self._coded(409, "GRANT_EXISTS", f"The agent already has a grant for {service!r}"))
            # Only agentId and serviceName are read: an expiry or refresh policy in the body is ignored.
            grant = Grant(service, now, None, AGENT_GRANT_REFRESH_POLICY)
            agent.grants[service] = grant
            doc = _grant_result(grant)
        # The fields the client sent, for conformance tests (never values: a body holds no secret here anyway).
        self.emit("grant.created", agent=agent_id, service=service, fields=sorted(body))
        return Response.json(201, doc)

    def _revoke_grant(self, req: Request) -> Response:
        self._require(req, "grants:write")
        service = req.params["service"]
        with self.lock:
            agent = self._agent(req.params["agent_id"])
            if agent.grants.pop(service, None) is None:
                raise HttpError(self._coded(404, "NO_GRANT", f"No grant for {service!r}"))
        self.emit("grant.revoked", agent=agent.id, service=service)
        return Response.json(200, {"success": True})

    # keys (internal/api/keys.go)

    def _list_keys(self, req: Request) -> Response:
        self._require(req, "keys:manage")
        with self.lock:
            return Response.json(200, {"keys": [self._key_doc(k) for k in self.keys.values()]})

    def _show_key(self, req: Request) -> Response:
        with self.lock:
            key = self._key(req.params["key_id"])
            if req.principal != f"key:{key.id}":  # assumed: a key may read its own record
                self._require(req, "keys:manage")
            return Response.json(200, self._key_doc(key, with_grants=True))

    def _create_key(self, req: Request) -> Response:
        self._require(req, "keys:manage")
        body = self._body(req)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self._unprocessable("name", "Field required" if "name" not in body else
                                      "String should have at least 1 character", "missing")
        if "scopes" not in body:
            raise self._unprocessable("scopes", "Field required", "missing")
        scopes = self._check_requested_scopes(req, body["scopes"], "scopes")
        if not scopes:
            raise self._unprocessable("scopes", "List should have at least 1 item", "too_short")
        expires_at = _parse_expiry(body.get("expiresAt"))
        with self.lock:
            if expires_at is not None and expires_at <= self.now():
                raise HttpError(self._coded(400, "INVALID_EXPIRY", "expiresAt must be in the future"))
            kind, _, ident = str(req.principal).partition(":")
            creator = ("user", "sandbox") if req.principal == HUMAN else (kind, ident)
            key = self._store_key(name, new_api_key(), scopes, expires_at, creator)
            doc = {**self._key_doc(key), "key": key.secret}
            for listed_only in ("status", "lastUsedAt", "createdBy"):
                doc.pop(listed_only)
        self.emit("key.created", id=key.id, name=name)
        return Response.json(201, doc)

    def _rotate_api_key(self, req: Request) -> Response:
        with self.lock:
            key = self._key(req.params["key_id"])
            if req.principal != f"key:{key.id}":
                self._human_only(req, "Rotating another principal's key")
            self.mark_revoked(key.key_id)
            key.secret, key.number = new_api_key(), key.number + 1
            self._register_minted(key)
            doc = {"id": key.id, "key": key.secret}
        self.emit("key.rotated", id=key.id)
        return Response.json(200, doc)

    def _revoke_key(self, req: Request) -> Response:
        self._require(req, "keys:revoke", "keys:manage")
        with self.lock:
            key = self.keys.pop(self._key(req.params["key_id"]).id)
            self.mark_revoked(key.key_id)
        self.emit("key.revoked", id=key.id)
        return Response.json(200, {"success": True})

    def _grant_key(self, req: Request) -> Response:
        self._require(req, "grants:write")
        body = self._body(req)
        hours = body.get("expiresInHours")
        if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int)
                                  or not 1 <= hours <= MAX_GRANT_HOURS):
            raise self._unprocessable("expiresInHours", f"Input should be a whole number from 1 to {MAX_GRANT_HOURS}")
        with self.lock:
            key = self._key(req.params["key_id"])
            service = self._service_name(body)
            now = self.now()
            existing = key.grants.get(service)
            if existing is not None and not _ended(existing, now):
                raise HttpError(self._coded(409, "GRANT_EXISTS", f"The key already has a grant for {service!r}"))
            grant = Grant(service, now, now + timedelta(hours=hours) if hours else None, AGENT_GRANT_REFRESH_POLICY)
            key.grants[service] = grant
            doc = _grant_result(grant)
        self.emit("key_grant.created", key=key.id, service=service, fields=sorted(body))
        return Response.json(201, doc)

    def _ungrant_key(self, req: Request) -> Response:
        self._require(req, "grants:write")
        service = req.params["service"]
        with self.lock:
            key = self._key(req.params["key_id"])
            if key.grants.pop(service, None) is None:
                raise HttpError(self._coded(404, "NO_GRANT", f"No grant for {service!r}"))
        return Response.json(200, {"success": True})

    # -- the agent side ---------------------------------------------------------------------------

    def _authenticated_agent(self, req: Request) -> Agent:
        key = _agent_key(req)
        if not key:
            raise HttpError(self._coded(401, "AGENT_KEY_REQUIRED", "Send the agent key (Authorization: Bearer "
                                        "tvagent_…, X-Agent-Key or ?key=)"))
        agent = self._agent_by_key(key)
        if agent is None:
            raise HttpError(self._coded(401, "INVALID_AGENT_KEY", "Invalid, revoked or rotated agent key"))
        if agent.status != "active":
            raise HttpError(self._coded(403, "AGENT_SUSPENDED", "The agent is suspended"))
        if self.locked:
            raise HttpError(self._coded(423, "VAULT_LOCKED", "The vault is locked"))
        return agent

    def _credentials(self, req: Request) -> Response:
        with self.lock:
            agent = self._authenticated_agent(req)
            now = self.now()
            agent.last_used_at = now
            wanted = req.arg("service")
            if wanted is None:
                return Response.json(200, {"grants": [
                    {"serviceName": g.service, "grantExpiresAt": _ts(g.expires_at), "refreshPolicy": g.refresh_policy,
                     "status": "GRANT_EXPIRED" if _ended(g, now) else "active"} for g in agent.grants.values()]})
            grant = agent.grants.get(wanted)
            if grant is None:
                raise HttpError(self._coded(403, "POLICY_DENIED", f"The agent has no grant for {wanted!r}"))
            if _ended(grant, now):
                raise HttpError(self._coded(403, "GRANT_EXPIRED", f"The grant for {wanted!r} expired at "
                                            f"{_ts(grant.expires_at)}"))
            if wanted in self.webhook_services and self.webhook_secret is not None and self.webhook_url:
                # Webhook Mode: the agent gets a ticket-bearing redirect and fetches from the webhook itself.
                ticket = self._ticket(wanted, "agent_credential", agent=agent.id)
                location = (f"{self.webhook_url}/v1/credential?ticket={quote(ticket, safe='')}"
                            f"&service={quote(wanted, safe='')}")
                redirect = Response(307, b"", {"Location": location})
                self.emit("credential.redirected", agent=agent.id, service=wanted)
                return redirect
            service = self.services.get(wanted)
            if service is None:
                raise HttpError(self._coded(404, "SERVICE_NOT_FOUND", f"No token for service {wanted!r}"))
            refreshed = False
            if service.expires_at is not None and service.expires_at <= now:
                if grant.refresh_policy != "auto":
                    raise HttpError(self._coded(409, "TOKEN_EXPIRED", f"The {wanted} token expired; the grant does "
                                                "not refresh it (refreshPolicy none)"))
                service.access_token = f"svc_{wanted}_{_random(24)}"
                service.expires_at = now + SERVICE_TOKEN_LIFETIME
                refreshed = True
            doc = {"serviceName": wanted, "accessToken": service.access_token, "tokenType": "Bearer",
                   "expiresAt": _ts(service.expires_at), "grantExpiresAt": _ts(grant.expires_at),
                   "refreshed": refreshed}
        if refreshed:
            self.emit("service.refreshed", agent=agent.id, service=wanted)
        return Response.json(200, doc)

    def _whoami(self, req: Request) -> Response:
        """internal/api/keys.go WhoamiResult: {principal {type, id, name}, userId, kind, scopes, expiresAt}."""
        with self.lock:
            kind, _, ident = (req.principal or "").partition(":")
            if req.principal == HUMAN:
                doc = {"principal": {"type": "user", "id": "sandbox", "name": "sandbox"}, "kind": "user",
                       "scopes": sorted(KNOWN_SCOPES), "expiresAt": None}
            elif kind == "key":
                key = self.keys[ident]
                doc = {"principal": {"type": "key", "id": key.id, "name": key.name}, "kind": "scoped",
                       "scopes": list(key.scopes), "expiresAt": _ts(key.expires_at)}
            else:
                agent = self._authenticated_agent(req)
                doc = {"principal": {"type": "agent", "id": agent.id, "name": agent.name}, "kind": agent.kind,
                       "scopes": list(agent.scopes), "expiresAt": None}
        return Response.json(200, {**doc, "userId": "sandbox"})

    # -- Webhook Mode (internal/api/vault.go, docs.tokenvault.uk/webhook-protocol) ----------------------

    def _ticket(self, service: str, purpose: str, *, agent: str | None = None) -> str:
        """A ticket the webhook verifies with the secret it handed over: {sub, svc, pur, aid?, exp, nonce}."""
        if self.webhook_secret is None:
            raise HttpError(Response.json(400, {"detail": "The vault is not in webhook mode"}))
        payload: dict[str, Any] = {"sub": "sandbox", "svc": service, "pur": purpose,
                                   "exp": int(self.now().timestamp()) + TICKET_LIFETIME, "nonce": uuid.uuid4().hex}
        if agent is not None:
            payload["aid"] = agent
        ticket = make_ticket(self.webhook_secret, payload)
        self.issued_tickets.append(ticket)
        return ticket

    def _require_webhook_mode(self, what: str) -> None:
        if self.webhook_secret is None:
            # vault.go: "Only valid for webhook-mode vaults; platform-mode users get a 400 from the API."
            raise HttpError(Response.json(400, {"detail": f"{what} is only available in webhook mode"}))

    def _store_ticket(self, req: Request) -> Response:
        self._require(req, "tokens:create")  # assumed: docs/wire.md "Webhook Mode"
        body = self._body(req)
        if "serviceName" not in body:
            raise self._unprocessable("serviceName", "Field required", "missing")
        service = body["serviceName"]
        if not isinstance(service, str) or not service:
            raise self._unprocessable("serviceName", "String should have at least 1 character", "string_too_short")
        with self.lock:
            self._require_webhook_mode("Store tickets are")
            if service in self.services:
                raise HttpError(Response.json(409, {"detail": f"{service!r} is a platform-held token"}))
            ticket = self._ticket(service, "store")
            # Token Vault keeps the token's metadata (its name), never its value.
            self.webhook_services.add(service)
            doc = {"ticket": ticket, "webhookUrl": self.webhook_url, "expiresIn": TICKET_LIFETIME}
        self.emit("store_ticket.issued", service=service)
        return Response.json(200, doc)

    def _vault_status(self, req: Request) -> Response:
        with self.lock:
            return Response.json(200, {"isLocked": self.locked, "vaultMode": self.vault_mode,
                                       "storageBackend": "webhook" if self.webhook_secret else "platform"})

    def _webhook_storage(self, operation: str, key: str | None = None) -> dict[str, Any]:
        """One signed /v1/storage call to the webhook (never under the lock: the webhook is another server)."""
        with self.lock:
            url, secret = self.webhook_url, self.webhook_secret
        if url is None or secret is None:
            raise HttpError(Response.json(400, {"detail": "The vault is not in webhook mode"}))
        body = json.dumps({"operation": operation, "collection": "tokens", "key": key}).encode()
        try:
            return _post_json(f"{url}/v1/storage", body, signed_headers(secret, body))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise HttpError(Response.json(502, {"detail": f"The webhook did not answer: {exc}"})) from None

    def _token_metadata(self, req: Request) -> Response:
        """GET /api/tokens/{service} (tokens.go GetToken): in Webhook Mode the document without its secret
        fields, read from the webhook's metadata."""
        self._require(req, "tokens:list")
        service = req.params["service"]
        with self.lock:
            if service in self.services:  # platform-held: metadata only here too (the value is not this route's)
                held = self.services[service]
                return Response.json(200, {"serviceName": service, "tokenType": held.kind, "status": "active"})
            if self.webhook_secret is None:
                raise HttpError(self._coded(404, "TOKEN_NOT_FOUND", f"No token for service {service!r}"))
        items = self._webhook_storage("list").get("items") or []
        meta = next((i.get("meta") or {} for i in items if isinstance(i, dict) and i.get("key") == service), None)
        if meta is None:
            raise HttpError(self._coded(404, "TOKEN_NOT_FOUND", f"No token for service {service!r}"))
        with self.lock:
            self.webhook_services.add(service)
        doc = {k: v for k, v in meta.items() if k not in SENSITIVE_FIELDS}
        return Response.json(200, {**doc, "serviceName": service, "status": "active"})

    def _delete_token(self, req: Request) -> Response:
        """DELETE /api/tokens/{service} (tokens.go DeleteTokens): in Webhook Mode a signed storage delete."""
        self._require(req, "tokens:delete")
        service = req.params["service"]
        with self.lock:
            if service in self.services:  # platform-held
                del self.services[service]
                return Response.json(200, {"success": True})
            if self.webhook_secret is None:
                raise HttpError(self._coded(404, "TOKEN_NOT_FOUND", f"No token for service {service!r}"))
        items = self._webhook_storage("list").get("items") or []
        if not any(isinstance(i, dict) and i.get("key") == service for i in items):
            raise HttpError(self._coded(404, "TOKEN_NOT_FOUND", f"No token for service {service!r}"))
        self._webhook_storage("delete", service)
        with self.lock:
            self.webhook_services.discard(service)
        self.emit("token.deleted", service=service)
        return Response.json(200, {"success": True})

    # -- documents --------------------------------------------------------------------------------

    def _agent_doc(self, agent: Agent) -> dict[str, Any]:
        return {
            "id": agent.id, "name": agent.name, "description": agent.description, "status": agent.status,
            "kind": agent.kind, "scopes": list(agent.scopes),
            "mcpEnabled": agent.mcp_enabled, "grantCount": float(len(agent.grants)),
            "createdAt": timestamp(agent.created_at), "keyCreatedAt": timestamp(agent.key_created_at),
            "lastUsedAt": _ts(agent.last_used_at),
            "grants": [{"serviceName": g.service, "refreshPolicy": g.refresh_policy,
                        "grantExpiresAt": _ts(g.expires_at), "grantedAt": timestamp(g.granted_at)}
                       for g in agent.grants.values()],
        }

    def _key_doc(self, key: ApiKey, *, with_grants: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": key.id, "name": key.name, "scopes": list(key.scopes), "status": key.status,
            "expiresAt": _ts(key.expires_at), "createdAt": timestamp(key.created_at),
            "lastUsedAt": _ts(key.last_used_at), "createdBy": {"type": key.created_by[0], "id": key.created_by[1]}}
        if with_grants:
            doc["grants"] = [{"serviceName": g.service, "refreshPolicy": g.refresh_policy, "source": g.source,
                              "grantedAt": timestamp(g.granted_at), "grantExpiresAt": _ts(g.expires_at)}
                             for g in key.grants.values()]
        return doc

    # -- admin ------------------------------------------------------------------------------------

    def _admin_service(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            self.add_service(str(body["name"]), str(body.get("kind", "oauth")))
        except (KeyError, ValueError) as exc:
            return bad_request(f'need {{"name", "kind": "oauth" | "api_key"}}: {exc}')
        return Response.json(201, {"services": sorted(self.services)})

    def _admin_clock(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            self.advance(float(body.get("advance", 0)))
        except (TypeError, ValueError) as exc:
            return bad_request(str(exc))
        return Response.json(200, {"now": timestamp(self.now())})

    def _admin_lock(self, req: Request) -> Response:
        locked = self.admin_body(req).get("locked")
        if not isinstance(locked, bool):
            return bad_request('body must be {"locked": true | false}')
        self.set_locked(locked)
        return Response.empty()

    def _admin_expire(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            self.expire_grant(str(body["agentId"]), str(body["service"]))
        except KeyError:
            return Response.json(404, {"error": "no such agent or grant"})
        return Response.empty()

    def _admin_mint_key(self, req: Request) -> Response:
        scopes = self.admin_body(req).get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            return bad_request('body must be {"scopes": [scope, ...]}')
        return Response.json(201, {"key": self.mint_key(scopes)})

    def _admin_agent_rotation(self, req: Request) -> Response:
        human_only = self.admin_body(req).get("humanOnly")
        if not isinstance(human_only, bool):
            return bad_request('body must be {"humanOnly": true | false}')
        with self.lock:
            self.agent_rotation_human_only = human_only
        return Response.empty()


    def _admin_webhook_bind(self, req: Request) -> Response:
        body = self.admin_body(req)
        url, code = body.get("webhookUrl"), body.get("code")
        if not isinstance(url, str) or not isinstance(code, str):
            return bad_request('body must be {"webhookUrl": "...", "code": "<one-time code>"}')
        try:
            return Response.json(200, self.bind_webhook(url, code))
        except urllib.error.HTTPError as exc:
            return Response.json(exc.code, {"error": f"the webhook refused the exchange: {exc.read().decode()}"})


def _post_json(url: str, body: bytes, headers: Mapping[str, str]) -> Any:
    """POST to the bound webhook (an http(s) URL the sandbox was given; never a file: URL)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - checked above
        return json.loads(answer.read())


def _ts(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


def _ended(grant: Grant, now: datetime) -> bool:
    return grant.expires_at is not None and grant.expires_at <= now


def _grant_result(grant: Grant) -> dict[str, Any]:
    """keys.go GrantKeyResult; assumed to be the agent grant route's answer too (the CLI ignores it)."""
    return {"success": True, "serviceName": grant.service, "grantExpiresAt": _ts(grant.expires_at),
            "refreshPolicy": grant.refresh_policy, "source": grant.source}


def _parse_expiry(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HttpError(Response.json(400, {"detail": {"code": "INVALID_EXPIRY", "message": "expiresAt must be an "
                                                       "ISO 8601 timestamp or null"}}))
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(Response.json(400, {"detail": {"code": "INVALID_EXPIRY",
                                                       "message": "expiresAt is not a timestamp"}})) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bearer(req: Request) -> str | None:
    scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _agent_key(req: Request) -> str | None:
    bearer = _bearer(req)
    if bearer and bearer.startswith("tvagent_"):
        return bearer
    return req.headers.get("X-Agent-Key") or req.arg("key")


def main(argv: Sequence[str] | None = None) -> int:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--admin-key", help="the provider's tvkey_ API key (default: random)")
        parser.add_argument("--webhook", action="store_true",
                            help="Webhook Mode: also run the reference webhook on 127.0.0.1 and bind the vault to it")

    def factory(args: argparse.Namespace) -> Emulator:
        emulator = TokenVaultEmulator(args.port, admin_key=args.admin_key)
        if args.webhook:
            webhook = TokenVaultWebhook().start()  # a daemon thread of this process: it ends with it
            emulator.bind_webhook(webhook.url, webhook.new_code())
            emulator.sandbox_webhook_url = webhook.url
        return emulator

    return run_cli(factory, argv, "Local emulator of the Token Vault (tokenvault.uk) API", configure)


__all__ = ["PROVIDER_SCOPES", "TokenVaultEmulator", "main", "new_agent_key", "new_api_key", "timestamp"]

if __name__ == "__main__":
    sys.exit(main())
