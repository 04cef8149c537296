"""Emulator of the HCP Terraform / TFE API subset tokendrop uses: agent pools and agent tokens.

Faithful to docs/wire.md (HCP Terraform / TFE): JSON:API documents (`application/vnd.api+json`), Bearer auth
(401 only for a missing/invalid token; no access, unknown object or an organization without the
`agents` entitlement -> 404), page[number]/page[size] paging with links and meta.pagination, a
sliding-window limit of 30 requests per second per user with the documented 429 body and
x-ratelimit-* headers, and agent-token values that appear only in the create response.

Beyond the doc samples, pools carry an `organization` relationship as the live API does.

Run standalone: `python -m tokendrop_provider.sandbox.tfe --port 0 --ready-file /tmp/tfe.json`.
"""

from __future__ import annotations

import argparse
import math
import re
import secrets
import string
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from .emulator import Emulator, HttpError, Request, Response, bad_request, run_cli

JSONAPI = "application/vnd.api+json"
API = "/api/v2"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
POOL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
RATE_LIMIT_BODY = {"errors": [{"detail": "You have exceeded the API's rate limit.", "status": 429,
                               "title": "Too many requests"}]}
_BASE62 = string.ascii_letters + string.digits

# The default sandbox world.
SANDBOX_ORGANIZATION = "acme"
SANDBOX_USER = "sandbox"
SANDBOX_WORKSPACES = ("app-prod", "app-staging", "infra-network")
SANDBOX_PROJECTS = ("Default Project", "platform")


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(16))


def new_token_value() -> str:
    """Shaped like a real TFE token: `<14 chars>.atlasv1.<long string>`."""
    return ("".join(secrets.choice(_BASE62) for _ in range(14)) + ".atlasv1."
            + "".join(secrets.choice(_BASE62) for _ in range(62)))


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 with milliseconds and Z, as TFE writes them."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Organization:
    name: str
    agents: bool = True  # the `agents` entitlement
    workspaces: dict[str, str] = field(default_factory=dict)  # id -> name
    projects: dict[str, str] = field(default_factory=dict)  # id -> name


@dataclass
class User:
    id: str
    name: str
    organizations: set[str] = field(default_factory=set)


@dataclass
class AgentPool:
    id: str
    organization: str
    name: str
    organization_scoped: bool
    allowed_workspaces: list[str]
    allowed_projects: list[str]
    excluded_workspaces: list[str]
    created_at: datetime


@dataclass
class AgentToken:
    id: str
    pool_id: str
    description: str
    value: str
    created_by: str  # user id
    created_at: datetime
    last_used_at: datetime | None = None


class TfeEmulator(Emulator):
    """The TFE API on 127.0.0.1. With `seed=True`: organization "acme" (agents entitlement) with a
    few workspaces and projects, and user "sandbox" whose API token is `sandbox_token`."""

    name = "tfe"
    content_type = JSONAPI

    def __init__(self, port: int = 0, *, seed: bool = True, sandbox_token: str | None = None,
                 rate_limit: int = 30, rate_window: float = 1.0, rate_limit_enabled: bool = True) -> None:
        self._seed_enabled = seed
        self._defaults = (rate_limit_enabled, rate_limit, rate_window)
        self.sandbox_token = sandbox_token or new_token_value()
        # Ids of the default world are fixed for the emulator's life, so reset() keeps them valid.
        self._seed_user_id = new_id("user-")
        self._seed_workspaces = {name: new_id("ws-") for name in SANDBOX_WORKSPACES}
        self._seed_projects = {name: new_id("prj-") for name in SANDBOX_PROJECTS}
        self.organizations: dict[str, Organization] = {}
        self.users: dict[str, User] = {}
        self.api_tokens: dict[str, str] = {}  # token value -> user name
        self.pools: dict[str, AgentPool] = {}
        self.tokens: dict[str, AgentToken] = {}
        self._hits: dict[str, deque[float]] = {}
        self.rate_limit_enabled, self.rate_limit, self.rate_window = self._defaults
        super().__init__(port)
        self.reset_state()

    # -- the world (Python API) -------------------------------------------------------------------

    def reset_state(self) -> None:
        with self.lock:
            self.organizations.clear()
            self.users.clear()
            self.api_tokens.clear()
            self.pools.clear()
            self.tokens.clear()
            self._hits.clear()
            self.rate_limit_enabled, self.rate_limit, self.rate_window = self._defaults
            if self._seed_enabled:
                self.add_organization(SANDBOX_ORGANIZATION)
                org = self.organizations[SANDBOX_ORGANIZATION]
                org.workspaces.update({i: n for n, i in self._seed_workspaces.items()})
                org.projects.update({i: n for n, i in self._seed_projects.items()})
                self.users[SANDBOX_USER] = User(self._seed_user_id, SANDBOX_USER, {SANDBOX_ORGANIZATION})
                self.api_tokens[self.sandbox_token] = SANDBOX_USER

    def add_organization(self, name: str, *, agents: bool = True) -> Organization:
        with self.lock:
            if name in self.organizations:
                raise ValueError(f"organization {name!r} exists")
            org = self.organizations[name] = Organization(name, agents)
            return org

    def add_workspace(self, organization: str, name: str) -> str:
        with self.lock:
            ws_id = new_id("ws-")
            self.organizations[organization].workspaces[ws_id] = name
            return ws_id

    def add_project(self, organization: str, name: str) -> str:
        with self.lock:
            prj_id = new_id("prj-")
            self.organizations[organization].projects[prj_id] = name
            return prj_id

    def add_user(self, name: str, organizations: Iterable[str] = ()) -> str:
        """A user (member of `organizations`); returns the user id. Add tokens with add_api_token."""
        with self.lock:
            if name in self.users:
                raise ValueError(f"user {name!r} exists")
            orgs = set(organizations)
            unknown = orgs - set(self.organizations)
            if unknown:
                raise ValueError(f"unknown organizations: {sorted(unknown)}")
            user = self.users[name] = User(new_id("user-"), name, orgs)
            return user.id

    def add_api_token(self, user: str, value: str | None = None) -> str:
        """A new API token of `user` (several tokens of one user share its rate limit)."""
        with self.lock:
            if user not in self.users:
                raise ValueError(f"unknown user {user!r}")
            value = value or new_token_value()
            self.api_tokens[value] = user
            return value

    def workspace_id(self, organization: str, name: str) -> str:
        with self.lock:
            return next(i for i, n in self.organizations[organization].workspaces.items() if n == name)

    def project_id(self, organization: str, name: str) -> str:
        with self.lock:
            return next(i for i, n in self.organizations[organization].projects.items() if n == name)

    def create_agent_pool(self, organization: str, name: str, *, organization_scoped: bool = True,
                          allowed_workspaces: Sequence[str] = (), allowed_projects: Sequence[str] = (),
                          excluded_workspaces: Sequence[str] = ()) -> str:
        """Create a pool directly (no HTTP, no checks beyond existence); returns its id."""
        with self.lock:
            if organization not in self.organizations:
                raise ValueError(f"unknown organization {organization!r}")
            pool = AgentPool(new_id("apool-"), organization, name, organization_scoped,
                             list(allowed_workspaces), list(allowed_projects), list(excluded_workspaces),
                             datetime.now(UTC))
            self.pools[pool.id] = pool
            return pool.id

    def create_agent_token(self, pool_id: str, description: str, *, user: str = SANDBOX_USER,
                           created_at: datetime | None = None) -> tuple[str, str]:
        """Mint directly (seeding many tokens fast); returns (id, value). Recorded as minted."""
        with self.lock:
            if pool_id not in self.pools:
                raise ValueError(f"unknown agent pool {pool_id!r}")
            token = AgentToken(new_id("at-"), pool_id, description, new_token_value(),
                               self.users[user].id, created_at or datetime.now(UTC))
            self.tokens[token.id] = token
            self.record_minted(token.id, token.value, pool_id)
            return token.id, token.value

    def mark_token_used(self, value: str, when: datetime | None = None) -> bool:
        """Tell the emulator an agent used this token (sets last-used-at); False if unknown/revoked."""
        with self.lock:
            for token in self.tokens.values():
                if secrets.compare_digest(token.value, value):
                    token.last_used_at = when or datetime.now(UTC)
                    return True
            return False

    def set_rate_limit(self, enabled: bool | None = None, limit: int | None = None,
                       window: float | None = None) -> None:
        with self.lock:
            if limit is not None and limit < 1:
                raise ValueError("limit must be at least 1")
            if window is not None and window <= 0:
                raise ValueError("window must be positive")
            if enabled is not None:
                self.rate_limit_enabled = enabled
            if limit is not None:
                self.rate_limit = int(limit)
            if window is not None:
                self.rate_window = float(window)
            self._hits.clear()

    def pool_tokens(self, pool_id: str) -> list[str]:
        with self.lock:
            return [t.id for t in self.tokens.values() if t.pool_id == pool_id]

    def ready_info(self) -> dict[str, Any]:
        return {"organization": SANDBOX_ORGANIZATION if self._seed_enabled else None,
                "env": {"TFE_ADDRESS": self.url, "TFE_TOKEN": self.sandbox_token}}

    # -- auth and rate limit ----------------------------------------------------------------------

    def identify(self, req: Request) -> str | None:
        auth = req.headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        with self.lock:
            return self.api_tokens.get(value.strip())

    def before(self, req: Request) -> Response | None:
        # Counted per user (not per token); anonymous callers per IP, as TFE does.
        key = f"user:{req.principal}" if req.principal else f"ip:{req.client}"
        with self.lock:
            if self.rate_limit_enabled:
                now = time.monotonic()
                hits = self._hits.setdefault(key, deque())
                while hits and hits[0] <= now - self.rate_window:
                    hits.popleft()
                if len(hits) >= self.rate_limit:
                    req.state["ratelimit"] = (self.rate_limit, 0, hits[0] + self.rate_window - now)
                    return Response.json(429, RATE_LIMIT_BODY, JSONAPI)
                hits.append(now)
                req.state["ratelimit"] = (self.rate_limit, self.rate_limit - len(hits),
                                          hits[0] + self.rate_window - now)
        if req.principal is None:
            return Response.json(401, {"errors": [{"status": "401", "title": "unauthorized"}]}, JSONAPI)
        return None

    def after(self, req: Request, resp: Response) -> None:
        rl = req.state.get("ratelimit")
        if rl is not None:
            limit, remaining, reset = rl
            resp.headers.update({"x-ratelimit-limit": str(limit),
                                 "x-ratelimit-remaining": str(remaining),
                                 # rounded up: a client that waits this long always fits
                                 "x-ratelimit-reset": f"{math.ceil(max(0.0, reset) * 1000) / 1000:.3f}"})

    def error_response(self, status: int, title: str, detail: str | None = None,
                       headers: Mapping[str, str] | None = None) -> Response:
        err: dict[str, Any] = {"status": str(status), "title": title}
        if detail:
            err["detail"] = detail
        return Response.json(status, {"errors": [err]}, JSONAPI, headers)

    def _invalid(self, pointer: str, detail: str, title: str = "invalid attribute") -> HttpError:
        return HttpError(Response.json(422, {"errors": [{
            "status": "422", "title": title, "detail": detail, "source": {"pointer": pointer}}]}, JSONAPI))

    def _not_found(self) -> HttpError:
        return self.error(404, "not found")

    # -- visibility -------------------------------------------------------------------------------

    def _visible_org(self, req: Request, name: str) -> Organization:
        """404 unless the org exists, has the agents entitlement and the user belongs to it."""
        org = self.organizations.get(name)
        user = self.users.get(req.principal or "")
        if org is None or user is None or name not in user.organizations or not org.agents:
            raise self._not_found()
        return org

    def _visible_pool(self, req: Request, pool_id: str) -> AgentPool:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise self._not_found()
        self._visible_org(req, pool.organization)
        return pool

    def _visible_token(self, req: Request, token_id: str) -> AgentToken:
        token = self.tokens.get(token_id)
        if token is None:
            raise self._not_found()
        self._visible_pool(req, token.pool_id)
        return token

    # -- routes -----------------------------------------------------------------------------------

    def register_routes(self) -> None:
        r = self.route
        r("GET", API + "/organizations/{org}/agent-pools", self._list_pools)
        r("POST", API + "/organizations/{org}/agent-pools", self._create_pool)
        r("GET", API + "/agent-pools/{pool_id}", self._show_pool)
        r("PATCH", API + "/agent-pools/{pool_id}", self._update_pool)
        r("DELETE", API + "/agent-pools/{pool_id}", self._delete_pool)
        r("GET", API + "/agent-pools/{pool_id}/authentication-tokens", self._list_tokens)
        r("POST", API + "/agent-pools/{pool_id}/authentication-tokens", self._create_token)
        r("GET", API + "/authentication-tokens/{token_id}", self._show_token)
        r("DELETE", API + "/authentication-tokens/{token_id}", self._delete_token)
        a = self.admin_route
        a("POST", "/_sandbox/use", self._admin_use)
        a("GET", "/_sandbox/seed", lambda req: Response.json(200, self.world()))
        a("POST", "/_sandbox/seed", self._admin_seed)
        a("GET", "/_sandbox/ratelimit", lambda req: Response.json(200, self._rate_settings()))
        a("POST", "/_sandbox/ratelimit", self._admin_ratelimit)

    # agent pools

    def _list_pools(self, req: Request) -> Response:
        with self.lock:
            org = self._visible_org(req, req.params["org"])
            all_pools = [p for p in self.pools.values() if p.organization == org.name]
            pools = all_pools
            q = req.arg("q")
            if q:
                pools = [p for p in pools if q.lower() in p.name.lower()]
            ws_name = req.arg("filter[allowed_workspaces][name]")
            if ws_name is not None:
                pools = [p for p in pools
                         if any(org.workspaces.get(w) == ws_name for w in p.allowed_workspaces)]
            prj_name = req.arg("filter[allowed_projects][name]")
            if prj_name is not None:
                pools = [p for p in pools
                         if any(org.projects.get(i) == prj_name for i in p.allowed_projects)]
            sort = req.arg("sort")
            if sort is not None:
                keys = {"name": lambda p: (p.name, p.id), "created-at": lambda p: (p.created_at, p.id)}
                field_name = sort.removeprefix("-")
                if field_name not in keys:
                    raise self._invalid_sort(sort, "name, created-at")
                pools = sorted(pools, key=keys[field_name], reverse=sort.startswith("-"))
            page, links, pagination = self._paginate(req, pools)
            return Response.json(200, {
                "data": [self._pool_doc(p) for p in page], "links": links,
                "meta": {"pagination": pagination,
                         "status-counts": {"total": len(all_pools), "matching": len(pools)}}}, JSONAPI)

    def _show_pool(self, req: Request) -> Response:
        with self.lock:
            pool = self._visible_pool(req, req.params["pool_id"])
            return Response.json(200, {"data": self._pool_doc(pool)}, JSONAPI)

    def _create_pool(self, req: Request) -> Response:
        with self.lock:
            org = self._visible_org(req, req.params["org"])
            data = self._document(req, "agent-pools")
            attrs = data.get("attributes") or {}
            if not isinstance(attrs, dict):
                raise self._invalid("/data/attributes", "attributes must be an object")
            name = self._pool_name(org, attrs.get("name"), None)
            scoped = self._bool(attrs, "organization-scoped", True)
            rels = self._relationships(org, data)
            pool = AgentPool(new_id("apool-"), org.name, name, scoped, rels.get("allowed-workspaces", []),
                             rels.get("allowed-projects", []), rels.get("excluded-workspaces", []),
                             datetime.now(UTC))
            self.pools[pool.id] = pool
            self.emit("pool.created", id=pool.id, organization=org.name)
            return Response.json(201, {"data": self._pool_doc(pool)}, JSONAPI)

    def _update_pool(self, req: Request) -> Response:
        with self.lock:
            pool = self._visible_pool(req, req.params["pool_id"])
            org = self.organizations[pool.organization]
            data = self._document(req, "agent-pools")
            if "id" in data and data["id"] != pool.id:
                raise self._invalid("/data/id", "id does not match the URL")
            attrs = data.get("attributes") or {}
            if not isinstance(attrs, dict):
                raise self._invalid("/data/attributes", "attributes must be an object")
            name = self._pool_name(org, attrs.get("name", pool.name), pool.id)
            # As documented: organization-scoped defaults to true on PATCH too.
            scoped = self._bool(attrs, "organization-scoped", True)
            rels = self._relationships(org, data)
            pool.name, pool.organization_scoped = name, scoped
            pool.allowed_workspaces = rels.get("allowed-workspaces", pool.allowed_workspaces)
            pool.allowed_projects = rels.get("allowed-projects", pool.allowed_projects)
            pool.excluded_workspaces = rels.get("excluded-workspaces", pool.excluded_workspaces)
            return Response.json(200, {"data": self._pool_doc(pool)}, JSONAPI)

    def _delete_pool(self, req: Request) -> Response:
        with self.lock:
            pool = self._visible_pool(req, req.params["pool_id"])
            del self.pools[pool.id]
            for token_id in [t.id for t in self.tokens.values() if t.pool_id == pool.id]:
                del self.tokens[token_id]
                self.mark_revoked(token_id)
                self.emit("token.revoked", id=token_id, pool=pool.id)
            self.emit("pool.deleted", id=pool.id)
            return Response.empty(204)

    # agent tokens

    def _list_tokens(self, req: Request) -> Response:
        with self.lock:
            pool = self._visible_pool(req, req.params["pool_id"])
            tokens = [t for t in self.tokens.values() if t.pool_id == pool.id]
            sort = req.arg("sort")
            if sort is not None:
                if sort not in ("created-at", "-created-at"):
                    raise self._invalid_sort(sort, "created-at, -created-at")
                # Ties broken by id, in the same direction.
                tokens.sort(key=lambda t: (t.created_at, t.id), reverse=sort.startswith("-"))
            page, links, pagination = self._paginate(req, tokens)
            response = Response.json(200, {"data": [self._token_doc(t) for t in page], "links": links,
                                           "meta": {"pagination": pagination}}, JSONAPI)
        self.emit("tokens.listed", pool=pool.id)
        return response

    def _create_token(self, req: Request) -> Response:
        with self.lock:
            pool = self._visible_pool(req, req.params["pool_id"])
            data = self._document(req, "authentication-tokens")
            attrs = data.get("attributes") or {}
            description = attrs.get("description") if isinstance(attrs, dict) else None
            if not isinstance(description, str):
                raise self._invalid("/data/attributes/description", "Description must be a string")
            user = self.users[req.principal or ""]
            token = AgentToken(new_id("at-"), pool.id, description, new_token_value(), user.id,
                               datetime.now(UTC))
            self.tokens[token.id] = token
            self.record_minted(token.id, token.value, pool.id)
            doc = {"data": self._token_doc(token, reveal=True)}
        # Outside the lock: a crash-test signal must not find the emulator's state locked.
        self.emit("token.created", id=token.id, pool=pool.id)
        return Response.json(201, doc, JSONAPI)

    def _show_token(self, req: Request) -> Response:
        with self.lock:
            token = self._visible_token(req, req.params["token_id"])
            return Response.json(200, {"data": self._token_doc(token)}, JSONAPI)

    def _delete_token(self, req: Request) -> Response:
        with self.lock:
            token = self._visible_token(req, req.params["token_id"])
        # Before anything changes: crash tests kill the client "after the sink write, before the revoke".
        self.emit("token.revoking", id=token.id, pool=token.pool_id)
        with self.lock:
            token = self._visible_token(req, req.params["token_id"])
            del self.tokens[token.id]
            self.mark_revoked(token.id)
        self.emit("token.revoked", id=token.id, pool=token.pool_id)
        return Response.empty(204)

    # -- documents --------------------------------------------------------------------------------

    def _pool_doc(self, pool: AgentPool) -> dict[str, Any]:
        base = f"{API}/agent-pools/{pool.id}"

        def refs(ids: Sequence[str], kind: str) -> dict[str, Any]:
            return {"data": [{"id": i, "type": kind} for i in ids]}

        return {
            "id": pool.id,
            "type": "agent-pools",
            "attributes": {"name": pool.name, "created-at": timestamp(pool.created_at),
                           "organization-scoped": pool.organization_scoped, "agent-count": 0},
            "relationships": {
                "organization": {"data": {"id": pool.organization, "type": "organizations"}},
                "agents": {"links": {"related": f"{base}/agents"}},
                "authentication-tokens": {"links": {"related": f"{base}/authentication-tokens"}},
                "workspaces": {"data": []},
                "allowed-workspaces": refs(pool.allowed_workspaces, "workspaces"),
                "allowed-projects": refs(pool.allowed_projects, "projects"),
                "excluded-workspaces": refs(pool.excluded_workspaces, "workspaces"),
            },
            "links": {"self": base},
        }

    def _token_doc(self, token: AgentToken, reveal: bool = False) -> dict[str, Any]:
        return {
            "id": token.id,
            "type": "authentication-tokens",
            "attributes": {
                "created-at": timestamp(token.created_at),
                "last-used-at": timestamp(token.last_used_at) if token.last_used_at else None,
                "description": token.description,
                "token": token.value if reveal else None,  # create-only
            },
            "relationships": {"created-by": {"data": {"id": token.created_by, "type": "users"}}},
        }

    # -- request validation -----------------------------------------------------------------------

    def _document(self, req: Request, kind: str) -> dict[str, Any]:
        try:
            body = req.json()
        except HttpError:
            raise self.error(400, "bad request", "the request body is not valid JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise self._invalid("/data", "the document must have a data object")
        if data.get("type") != kind:
            raise self._invalid("/data/type", f'type must be "{kind}"')
        return data

    def _pool_name(self, org: Organization, name: Any, own_id: str | None) -> str:
        if not isinstance(name, str) or not name:
            raise self._invalid("/data/attributes/name", "Name can't be blank")
        if not POOL_NAME.fullmatch(name):
            raise self._invalid("/data/attributes/name",
                                "Name can only include letters, numbers, -, and _.")
        if any(p.name == name and p.organization == org.name and p.id != own_id for p in self.pools.values()):
            raise self._invalid("/data/attributes/name", "Name has already been taken")
        return name

    def _bool(self, attrs: Mapping[str, Any], key: str, default: bool) -> bool:
        value = attrs.get(key, default)
        if not isinstance(value, bool):
            raise self._invalid(f"/data/attributes/{key}", f"{key} must be true or false")
        return value

    def _relationships(self, org: Organization, data: Mapping[str, Any]) -> dict[str, list[str]]:
        """The scope relationships present in the document, validated against the organization."""
        rels = data.get("relationships") or {}
        if not isinstance(rels, dict):
            raise self._invalid("/data/relationships", "relationships must be an object")
        known = {"allowed-workspaces": ("workspaces", org.workspaces),
                 "excluded-workspaces": ("workspaces", org.workspaces),
                 "allowed-projects": ("projects", org.projects)}
        out: dict[str, list[str]] = {}
        for rel_name, (kind, existing) in known.items():
            if rel_name not in rels:
                continue
            pointer = f"/data/relationships/{rel_name}"
            items = rels[rel_name].get("data") if isinstance(rels[rel_name], dict) else None
            if not isinstance(items, list):
                raise self._invalid(pointer, f'{rel_name} must be {{"data": [...]}}',
                                    "invalid relationship")
            ids: list[str] = []
            for item in items:
                if (not isinstance(item, dict) or item.get("type") != kind
                        or not isinstance(item.get("id"), str)):
                    raise self._invalid(pointer, f'each item must be {{"id": ..., "type": "{kind}"}}',
                                        "invalid relationship")
                if item["id"] not in existing:
                    raise self._invalid(pointer, f"{kind[:-1].capitalize()} {item['id']} not found",
                                        "invalid relationship")
                if item["id"] not in ids:
                    ids.append(item["id"])
            out[rel_name] = ids
        return out

    def _invalid_sort(self, sort: str, allowed: str) -> HttpError:
        return HttpError(Response.json(400, {"errors": [{
            "status": "400", "title": "invalid sort", "detail": f"sort {sort!r} is not one of {allowed}",
            "source": {"parameter": "sort"}}]}, JSONAPI))

    # -- pagination -------------------------------------------------------------------------------

    def _paginate(self, req: Request, items: Sequence[Any]) -> tuple[Sequence[Any], dict[str, Any],
                                                                          dict[str, Any]]:
        number = self._page_param(req, "page[number]", 1)
        size = min(self._page_param(req, "page[size]", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        total = len(items)
        pages = max(1, math.ceil(total / size))
        page = items[(number - 1) * size: number * size]
        # Links keep the other query parameters and are absolute, as TFE's are.
        others = [(k, v) for k, vs in req.query.items() if not k.startswith("page[") for v in vs]

        def link(n: int) -> str:
            query = urlencode([*others, ("page[number]", n), ("page[size]", size)], quote_via=quote)
            return f"{req.base_url}{quote(req.path)}?{query}"

        prev_page = number - 1 if number > 1 else None
        next_page = number + 1 if number < pages else None
        links = {"self": link(number), "first": link(1),
                 "prev": link(prev_page) if prev_page else None,
                 "next": link(next_page) if next_page else None,
                 "last": link(pages)}
        pagination = {"current-page": number, "page-size": size, "prev-page": prev_page,
                      "next-page": next_page, "total-pages": pages, "total-count": total}
        return page, links, pagination

    def _page_param(self, req: Request, name: str, default: int) -> int:
        raw = req.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise HttpError(Response.json(400, {"errors": [{
                "status": "400", "title": "invalid page", "detail": f"{name} must be a positive integer",
                "source": {"parameter": name}}]}, JSONAPI))
        return value

    # -- admin ------------------------------------------------------------------------------------

    def world(self) -> dict[str, Any]:
        """Organizations (with workspace/project ids) and users (with API tokens): sandbox only."""
        with self.lock:
            tokens: dict[str, list[str]] = {}
            for value, user in self.api_tokens.items():
                tokens.setdefault(user, []).append(value)
            return {
                "organizations": {o.name: {"agents": o.agents,
                                           "workspaces": {n: i for i, n in o.workspaces.items()},
                                           "projects": {n: i for i, n in o.projects.items()}}
                                  for o in self.organizations.values()},
                "users": {u.name: {"id": u.id, "organizations": sorted(u.organizations),
                                   "tokens": tokens.get(u.name, [])} for u in self.users.values()},
            }

    def seed(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Add organizations/workspaces/projects/users from a document:
        {"organizations": [{"name", "agents": true, "workspaces": [..], "projects": [..]}],
         "users": [{"name", "organizations": [..], "token": optional}]}. Returns `world()`."""
        with self.lock:
            for o in doc.get("organizations") or []:
                name = o["name"]
                if name not in self.organizations:
                    self.add_organization(name, agents=bool(o.get("agents", True)))
                else:
                    self.organizations[name].agents = bool(o.get("agents", self.organizations[name].agents))
                org = self.organizations[name]
                for ws in o.get("workspaces") or []:
                    if ws not in org.workspaces.values():
                        self.add_workspace(name, ws)
                for prj in o.get("projects") or []:
                    if prj not in org.projects.values():
                        self.add_project(name, prj)
            for u in doc.get("users") or []:
                if u["name"] not in self.users:
                    self.add_user(u["name"], u.get("organizations") or [])
                else:
                    self.users[u["name"]].organizations.update(u.get("organizations") or [])
                if u.get("token") or not any(v == u["name"] for v in self.api_tokens.values()):
                    self.add_api_token(u["name"], u.get("token"))
            return self.world()

    def _admin_seed(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            return Response.json(200, self.seed(body))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return bad_request(f"invalid seed document: {exc!r}")

    def _admin_use(self, req: Request) -> Response:
        body = self.admin_body(req)
        value = body.get("token")
        if not isinstance(value, str) or not value:
            return bad_request('body must be {"token": "<agent token value>"}')
        at = None
        raw_at = body.get("at")
        if raw_at:
            try:
                at = datetime.fromisoformat(str(raw_at).replace("Z", "+00:00"))
            except ValueError:
                return bad_request("at must be an RFC 3339 timestamp")
        if not self.mark_token_used(value, at):
            return Response.json(404, {"error": "no live agent token has that value"})
        return Response.empty()

    def _rate_settings(self) -> dict[str, Any]:
        with self.lock:
            return {"enabled": self.rate_limit_enabled, "limit": self.rate_limit, "window": self.rate_window}

    def _admin_ratelimit(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            enabled = body.get("enabled")
            if enabled is not None and not isinstance(enabled, bool):
                raise ValueError("enabled must be true or false")
            limit = body.get("limit")
            window = body.get("window")
            self.set_rate_limit(enabled, int(limit) if limit is not None else None,
                                float(window) if window is not None else None)
        except (ValueError, TypeError) as exc:
            return bad_request(str(exc))
        return Response.json(200, self._rate_settings())


def main(argv: Sequence[str] | None = None) -> int:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--token", help="API token of the sandbox user (default: random)")
        parser.add_argument("--no-rate-limit", action="store_true", help="switch the 30 req/s limit off")

    def factory(args: argparse.Namespace) -> Emulator:
        return TfeEmulator(args.port, sandbox_token=args.token,
                           rate_limit_enabled=not args.no_rate_limit)

    return run_cli(factory, argv, "Local emulator of the HCP Terraform / TFE agent API", configure)


__all__ = ["JSONAPI", "TfeEmulator", "main", "new_token_value", "timestamp"]

if __name__ == "__main__":
    sys.exit(main())
