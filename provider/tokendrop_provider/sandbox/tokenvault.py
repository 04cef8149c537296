"""Emulator of the Token Vault (tokenvault.uk) API: agents, grants, rotate-key and the agent side.

Follows docs/wire.md (Token Vault), with the same split as issuers/tokenvault.py between what was observed
and what is assumed:

- Admin calls need `Authorization: Bearer <admin key>` (401 otherwise). Agents: list (`grantCount`
  as a float, as observed), get (with grants), create (`apiKey` `tvagent_…` in that response only),
  PATCH status, delete, bulk delete, rotate-key (the old key is refused at once).
- Grants: POST needs agentId and serviceName (422 in FastAPI's format otherwise), one service per call,
  `expiresInHours` 1–720 or absent (until revoked), `refreshPolicy` "auto" | "none"; a second live grant
  of a service is 409; the service must exist in the vault (404). DELETE by service name.
- Agent side: `GET /api/agents/credentials` lists grants (an expired one has status `GRANT_EXPIRED`),
  `?service=` returns one credential (403 GRANT_EXPIRED / POLICY_DENIED). The key is read from
  `Authorization: Bearer tvagent_…`, `X-Agent-Key` or `?key=`; a revoked, rotated or unknown key is
  401, a suspended agent 403, a locked vault 423 VAULT_LOCKED. An expired OAuth token is refreshed for
  an auto-refresh grant, and 409 TOKEN_EXPIRED otherwise.
- Agent documents carry `description` and `keyCreatedAt` (assumed by the client, see there).

Sandbox controls (Python and `/_sandbox/…`): a clock that can be moved forward (grants expire without
waiting), services of the vault, a vault lock, expiring a grant at once, and the world as JSON. Every
key ever issued is in the minted registry (`/_sandbox/minted`) for canary scans.

Run standalone: `python -m tokendrop_provider.sandbox.tokenvault --port 0 --ready-file /tmp/tv.json`.
"""

from __future__ import annotations

import argparse
import secrets
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .emulator import Emulator, HttpError, Request, Response, bad_request, run_cli

API = "/api/agents"
MAX_GRANT_HOURS = 30 * 24
REFRESH_POLICIES = ("auto", "none")
SANDBOX_SERVICES = (("github", "oauth"), ("linear", "oauth"), ("slack", "oauth"), ("notion", "oauth"),
                    ("google", "oauth"), ("openai", "api_key"), ("jira", "api_key"))
SERVICE_TOKEN_LIFETIME = timedelta(hours=1)  # how long an emulated OAuth access token lasts
_BASE62 = string.ascii_letters + string.digits


def _random(n: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(n))


def new_agent_key() -> str:
    return "tvagent_" + _random(40)


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


@dataclass
class Agent:
    id: str
    name: str
    description: str | None
    created_at: datetime
    key: str
    key_number: int
    key_created_at: datetime
    status: str = "active"
    mcp_enabled: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)
    last_used_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return f"{self.id}/key-{self.key_number}"


class TokenVaultEmulator(Emulator):
    """The Token Vault API on 127.0.0.1; `admin_key` is the admin credential (random by default)."""

    name = "tokenvault"

    def __init__(self, port: int = 0, *, admin_key: str | None = None) -> None:
        self.admin_key = admin_key or "tvkey_" + _random(32)
        self.agents: dict[str, Agent] = {}
        self.services: dict[str, Service] = {}
        self.locked = False
        self._offset = timedelta(0)
        super().__init__(port)
        self.reset_state()

    # -- the world (Python API) -------------------------------------------------------------------

    def now(self) -> datetime:
        with self.lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (grants and service tokens expire without waiting)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self._offset += timedelta(seconds=seconds)

    def reset_state(self) -> None:
        with self.lock:
            self.agents.clear()
            self.services.clear()
            self.locked = False
            self._offset = timedelta(0)
            for name, kind in SANDBOX_SERVICES:
                self.add_service(name, kind)

    def add_service(self, name: str, kind: str = "oauth") -> None:
        if kind not in ("oauth", "api_key"):
            raise ValueError("kind must be 'oauth' or 'api_key'")
        with self.lock:
            expires = self.now() + SERVICE_TOKEN_LIFETIME if kind == "oauth" else None
            self.services[name] = Service(name, kind, f"svc_{name}_{_random(24)}", expires)

    def set_locked(self, locked: bool) -> None:
        with self.lock:
            self.locked = bool(locked)

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
        """Agents (without key values), services and switches: the sandbox's view."""
        with self.lock:
            return {
                "agents": [{**self._agent_doc(a), "keyId": a.key_id} for a in self.agents.values()],
                "services": {s.name: s.kind for s in self.services.values()},
                "locked": self.locked,
                "clockOffsetSeconds": self._offset.total_seconds(),
            }

    def ready_info(self) -> dict[str, Any]:
        return {"env": {"TOKENVAULT_API_URL": self.url, "TOKENVAULT_API_KEY": self.admin_key},
                "services": sorted(self.services)}

    # -- auth -------------------------------------------------------------------------------------

    def identify(self, req: Request) -> str | None:
        bearer = _bearer(req)
        if bearer is not None and secrets.compare_digest(bearer, self.admin_key):
            return "admin"
        agent = self._agent_by_key(_agent_key(req))
        return f"agent:{agent.id}" if agent is not None else None

    def before(self, req: Request) -> Response | None:
        if req.path in (f"{API}/credentials", f"{API}/whoami"):
            return None  # the handlers authenticate agents themselves
        if req.principal != "admin":
            return self._coded(401, "UNAUTHORIZED", "Missing or invalid credentials")
        return None

    def after(self, req: Request, resp: Response) -> None:
        if "key" in req.query:  # an agent key in the query string must not reach the request log
            req.query["key"] = ["***"]

    def _agent_by_key(self, key: str | None) -> Agent | None:
        if not key:
            return None
        with self.lock:
            for agent in self.agents.values():
                if secrets.compare_digest(agent.key, key):
                    return agent
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
        a = self.admin_route
        a("GET", "/_sandbox/world", lambda req: Response.json(200, self.world()))
        a("POST", "/_sandbox/services", self._admin_service)
        a("POST", "/_sandbox/clock", self._admin_clock)
        a("POST", "/_sandbox/lock", self._admin_lock)
        a("POST", "/_sandbox/expire-grant", self._admin_expire)

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise HttpError(self._coded(404, "AGENT_NOT_FOUND", "Agent not found"))
        return agent

    def _body(self, req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except HttpError:
            raise HttpError(Response.json(422, {"detail": [{"type": "json_invalid", "loc": ["body"],
                                                             "msg": "JSON decode error", "input": None}]})) from None
        if not isinstance(body, dict):
            raise HttpError(Response.json(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                                             "msg": "Input should be an object", "input": None}]}))
        return body

    def _list(self, req: Request) -> Response:
        with self.lock:
            response = Response.json(200, [{"id": a.id, "name": a.name, "status": a.status,
                                            "grantCount": float(len(a.grants))} for a in self.agents.values()])
        # tokendrop lists agents for its orphan sweep, right after a sink write: crash tests hook in here.
        self.emit("agents.listed")
        return response

    def _show(self, req: Request) -> Response:
        with self.lock:
            return Response.json(200, self._agent_doc(self._agent(req.params["agent_id"])))

    def _create(self, req: Request) -> Response:
        body = self._body(req)
        name, description, mcp = body.get("name"), body.get("description"), body.get("mcpEnabled", False)
        if "name" not in body:
            raise self._unprocessable("name", "Field required", "missing")
        if not isinstance(name, str) or not name.strip():
            raise self._unprocessable("name", "String should have at least 1 character", "string_too_short")
        if description is not None and not isinstance(description, str):
            raise self._unprocessable("description", "Input should be a valid string", "string_type")
        if not isinstance(mcp, bool):
            raise self._unprocessable("mcpEnabled", "Input should be a valid boolean", "bool_type")
        agent_id, key = self.create_agent(name, description)
        with self.lock:
            self.agents[agent_id].mcp_enabled = mcp
        self.emit("agent.created", id=agent_id, name=name)
        return Response.json(201, {"id": agent_id, "name": name, "apiKey": key})

    def _patch(self, req: Request) -> Response:
        body = self._body(req)
        status = body.get("status")
        if status not in ("active", "suspended"):
            raise self._unprocessable("status", "Input should be 'active' or 'suspended'", "enum")
        with self.lock:
            agent = self._agent(req.params["agent_id"])
            agent.status = status
            return Response.json(200, {"id": agent.id, "name": agent.name, "status": agent.status})

    def _delete(self, req: Request) -> Response:
        with self.lock:
            self._agent(req.params["agent_id"])
        self.delete_agent(req.params["agent_id"])
        return Response.json(200, {"success": True})

    def _bulk_delete(self, req: Request) -> Response:
        ids = self._body(req).get("agentIds")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise self._unprocessable("agentIds", "Input should be a valid list of strings", "list_type")
        deleted = [i for i in ids if self.delete_agent(i)]
        return Response.json(200, {"deleted": deleted, "notFound": [i for i in ids if i not in deleted]})

    def _rotate(self, req: Request) -> Response:
        with self.lock:
            agent = self._agent(req.params["agent_id"])
            key = self.rotate_key(agent.id)
        self.emit("agent.key_rotated", id=agent.id)
        return Response.json(200, {"id": agent.id, "apiKey": key})

    def _grant(self, req: Request) -> Response:
        body = self._body(req)
        for required in ("agentId", "serviceName"):
            if required not in body:
                raise self._unprocessable(required, "Field required", "missing")
        agent_id, service = body["agentId"], body["serviceName"]
        if not isinstance(agent_id, str) or agent_id != req.params["agent_id"]:
            raise self._unprocessable("agentId", "agentId must be the agent of the URL")
        if not isinstance(service, str) or not service:
            raise self._unprocessable("serviceName", "String should have at least 1 character", "string_too_short")
        hours = body.get("expiresInHours")
        if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int)
                                  or not 1 <= hours <= MAX_GRANT_HOURS):
            raise self._unprocessable("expiresInHours", f"Input should be a whole number from 1 to {MAX_GRANT_HOURS}")
        policy = body.get("refreshPolicy", "none")
        if policy not in REFRESH_POLICIES:
            raise self._unprocessable("refreshPolicy", "Input should be 'auto' or 'none'", "enum")
        with self.lock:
            agent = self._agent(agent_id)
            if service not in self.services:
                raise HttpError(self._coded(404, "SERVICE_NOT_FOUND", f"No token for service {service!r} in the vault"))
            now = self.now()
            existing = agent.grants.get(service)
            if existing is not None and (existing.expires_at is None or existing.expires_at > now):
                raise HttpError(self._coded(409, "GRANT_EXISTS", f"The agent already has a grant for {service!r}"))
            grant = Grant(service, now, now + timedelta(hours=hours) if hours else None, policy)
            agent.grants[service] = grant
            doc = {"success": True, "serviceName": service, "grantExpiresAt": _ts(grant.expires_at),
                   "refreshPolicy": policy, "source": "direct"}
        self.emit("grant.created", agent=agent_id, service=service)
        return Response.json(201, doc)

    def _revoke_grant(self, req: Request) -> Response:
        service = req.params["service"]
        with self.lock:
            agent = self._agent(req.params["agent_id"])
            if agent.grants.pop(service, None) is None:
                raise HttpError(self._coded(404, "GRANT_NOT_FOUND", f"No grant for {service!r}"))
        self.emit("grant.revoked", agent=agent.id, service=service)
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
        if req.principal == "admin":
            return Response.json(200, {"principal": {"type": "user", "id": "sandbox", "name": "sandbox"},
                                       "userId": "sandbox", "kind": "admin", "scopes": ["agents:write"],
                                       "expiresAt": None})
        with self.lock:
            agent = self._authenticated_agent(req)
            return Response.json(200, {"principal": {"type": "agent", "id": agent.id, "name": agent.name},
                                       "userId": "sandbox", "kind": "classic", "scopes": [], "expiresAt": None})

    # -- documents --------------------------------------------------------------------------------

    def _agent_doc(self, agent: Agent) -> dict[str, Any]:
        return {
            "id": agent.id, "name": agent.name, "description": agent.description, "status": agent.status,
            "mcpEnabled": agent.mcp_enabled, "grantCount": float(len(agent.grants)),
            "createdAt": timestamp(agent.created_at), "keyCreatedAt": timestamp(agent.key_created_at),
            "lastUsedAt": _ts(agent.last_used_at),
            "grants": [{"serviceName": g.service, "refreshPolicy": g.refresh_policy,
                        "grantExpiresAt": _ts(g.expires_at), "grantedAt": timestamp(g.granted_at)}
                       for g in agent.grants.values()],
        }

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


def _ts(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


def _ended(grant: Grant, now: datetime) -> bool:
    return grant.expires_at is not None and grant.expires_at <= now


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
        parser.add_argument("--admin-key", help="the admin API key (default: random)")

    def factory(args: argparse.Namespace) -> Emulator:
        return TokenVaultEmulator(args.port, admin_key=args.admin_key)

    return run_cli(factory, argv, "Local emulator of the Token Vault (tokenvault.uk) agent API", configure)


__all__ = ["TokenVaultEmulator", "main", "new_agent_key", "timestamp"]

if __name__ == "__main__":
    sys.exit(main())
