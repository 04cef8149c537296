"""Emulator of the Buildkite REST API subset tokendrop uses: clusters and cluster agent tokens, and
`GET /v2/access-token` (the API token's uuid, scopes and user, which tells a client whose budget it spends).

Faithful to the public API docs (docs/wire.md): `/v2` JSON, Bearer auth only (401 otherwise; an organization the
user may not see, or an unknown object -> 404), REST scopes `read_clusters` / `write_clusters` (403
without), 422 `{"message": "Validation failed: ..."}`, the documented cluster and token models, a token
value that only the create response carries, `expires_at` at least 10 minutes ahead and immutable,
`allowed_ip_addresses` as one space-separated string of IPv4 CIDRs (default `0.0.0.0/0`), revoke 204,
RFC 5988 `Link` pagination (`page`, `per_page` default 30, max 100), and both rate limits — 200
requests per minute per organization and 50 per user, fixed windows — with every `RateLimit-*` /
`RateLimit-User-*` header and the documented 429 body. Rejected requests count too (hence
`"current": 55` over a limit of 50).

Expired tokens stay listed with their `expires_at`, as the API shows them; clients decide.

Run standalone: `python -m tokendrop_provider.sandbox.buildkite --port 0 --ready-file /tmp/bk.json`.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import math
import re
import secrets
import string
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from .emulator import Emulator, HttpError, Request, Response, bad_request, run_cli

API = "/v2"
DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 100
MIN_EXPIRY = timedelta(minutes=10)
ANY_ADDRESS = "0.0.0.0/0"
SCOPES = ("read_clusters", "write_clusters")
ORG_LIMIT, USER_LIMIT, RATE_WINDOW = 200, 50, 60.0
COLOR = re.compile(r"^#[0-9A-Fa-f]{3}(?:[0-9A-Fa-f]{3})?$")
UNAUTHORIZED = ("Authentication required. Please supply a valid API Access Token: "
                "https://buildkite.com/docs/apis/rest-api#authentication")
_BASE62 = string.ascii_letters + string.digits
_ORG_PATH = re.compile(r"^/v2/organizations/([^/]+)")

# The default sandbox world.
SANDBOX_ORGANIZATION = "acme"
SANDBOX_USER = "sandbox"


def new_token_value() -> str:
    """Shaped like the documented example (`igo6HEj5fxQbgBTDoDzNaZzT`)."""
    return "".join(secrets.choice(_BASE62) for _ in range(24))


def new_api_token() -> str:
    return "bkua_" + "".join(secrets.choice(string.hexdigits.lower()[:16]) for _ in range(40))


def graphql_id(kind: str, object_id: str) -> str:
    return base64.b64encode(f"{kind}---{object_id}".encode()).decode()


def timestamp(when: datetime) -> str:
    """ISO 8601 with milliseconds and Z, as Buildkite writes them."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class User:
    id: str
    name: str
    email: str
    created_at: datetime
    organizations: set[str] = field(default_factory=set)


@dataclass
class ApiToken:
    user: str
    scopes: frozenset[str]
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Cluster:
    id: str
    organization: str
    name: str
    description: str | None
    emoji: str | None
    color: str | None
    created_by: str  # user name
    created_at: datetime
    default_queue_id: str | None = None


@dataclass
class ClusterToken:
    id: str
    organization: str
    cluster_id: str
    description: str
    allowed_ip_addresses: str
    expires_at: datetime | None
    value: str
    created_by: str
    created_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


@dataclass
class _Window:
    """A fixed rate-limit window: `count` requests since `started` (monotonic)."""

    started: float
    count: int = 0


class BuildkiteEmulator(Emulator):
    """The Buildkite REST API on 127.0.0.1. With `seed=True`: organization "acme" and user "sandbox"
    whose API token (`sandbox_token`, scopes read_clusters and write_clusters) may see it."""

    name = "buildkite"

    def __init__(self, port: int = 0, *, seed: bool = True, sandbox_token: str | None = None,
                 rate_limit_enabled: bool = True, org_limit: int = ORG_LIMIT, user_limit: int = USER_LIMIT,
                 window: float = RATE_WINDOW) -> None:
        self._seed_enabled = seed
        self._defaults = (rate_limit_enabled, org_limit, user_limit, window)
        self.sandbox_token = sandbox_token or new_api_token()
        self._seed_user = User(str(uuid.uuid4()), SANDBOX_USER, "sandbox@example.com", datetime.now(UTC))
        self.organizations: set[str] = set()
        self.users: dict[str, User] = {}
        self.api_tokens: dict[str, ApiToken] = {}
        self.clusters: dict[str, Cluster] = {}
        self.tokens: dict[str, ClusterToken] = {}
        self._windows: dict[str, _Window] = {}
        self.rate_limit_enabled, self.org_limit, self.user_limit, self.rate_window = self._defaults
        super().__init__(port)
        self.reset_state()

    # -- the world (Python API) -------------------------------------------------------------------

    def reset_state(self) -> None:
        with self.lock:
            self.organizations.clear()
            self.users.clear()
            self.api_tokens.clear()
            self.clusters.clear()
            self.tokens.clear()
            self._windows.clear()
            self.rate_limit_enabled, self.org_limit, self.user_limit, self.rate_window = self._defaults
            if self._seed_enabled:
                self.organizations.add(SANDBOX_ORGANIZATION)
                self._seed_user.organizations = {SANDBOX_ORGANIZATION}
                self.users[SANDBOX_USER] = self._seed_user
                self.api_tokens[self.sandbox_token] = ApiToken(SANDBOX_USER, frozenset(SCOPES))

    def add_organization(self, slug: str) -> None:
        with self.lock:
            if slug in self.organizations:
                raise ValueError(f"organization {slug!r} exists")
            self.organizations.add(slug)

    def add_user(self, name: str, organizations: Iterable[str] = ()) -> str:
        """A user (member of `organizations`); returns the user id. Add tokens with add_api_token."""
        with self.lock:
            if name in self.users:
                raise ValueError(f"user {name!r} exists")
            orgs = set(organizations)
            unknown = orgs - self.organizations
            if unknown:
                raise ValueError(f"unknown organizations: {sorted(unknown)}")
            user = self.users[name] = User(str(uuid.uuid4()), name, f"{name}@example.com", datetime.now(UTC), orgs)
            return user.id

    def add_api_token(self, user: str, value: str | None = None, scopes: Iterable[str] = SCOPES) -> str:
        """A new API access token of `user` with these REST scopes (tokens of one user share its
        per-user rate limit)."""
        with self.lock:
            if user not in self.users:
                raise ValueError(f"unknown user {user!r}")
            value = value or new_api_token()
            self.api_tokens[value] = ApiToken(user, frozenset(scopes))
            return value

    def create_cluster(self, organization: str, name: str, *, description: str | None = None,
                       emoji: str | None = None, color: str | None = None, user: str = SANDBOX_USER) -> str:
        """Create a cluster directly (no HTTP, no validation); returns its id."""
        with self.lock:
            if organization not in self.organizations:
                raise ValueError(f"unknown organization {organization!r}")
            cluster = Cluster(str(uuid.uuid4()), organization, name, description, emoji, color, user,
                              datetime.now(UTC))
            self.clusters[cluster.id] = cluster
            return cluster.id

    def create_cluster_token(self, cluster_id: str, description: str, *, expires_at: datetime | None = None,
                             allowed_ip_addresses: str = ANY_ADDRESS, created_at: datetime | None = None,
                             user: str = SANDBOX_USER) -> tuple[str, str]:
        """Mint directly (seeding many tokens fast; any expiry, even a past one); returns
        (id, value). Recorded as minted."""
        with self.lock:
            cluster = self.clusters.get(cluster_id)
            if cluster is None:
                raise ValueError(f"unknown cluster {cluster_id!r}")
            token = ClusterToken(str(uuid.uuid4()), cluster.organization, cluster.id, description,
                                 allowed_ip_addresses, expires_at, new_token_value(), user,
                                 created_at or datetime.now(UTC))
            self.tokens[token.id] = token
            self.record_minted(token.id, token.value, f"{cluster.organization}/{cluster.id}")
            return token.id, token.value

    def expire_token(self, token_id: str, when: datetime | None = None) -> None:
        """Move a token's expiry to `when` (default: now), as if time had passed."""
        with self.lock:
            self.tokens[token_id].expires_at = when or datetime.now(UTC)

    def cluster_tokens(self, cluster_id: str, include_expired: bool = True) -> list[str]:
        """Ids of the cluster's tokens (not revoked), oldest first."""
        with self.lock:
            tokens = sorted((t for t in self.tokens.values() if t.cluster_id == cluster_id),
                            key=lambda t: (t.created_at, t.id))
            return [t.id for t in tokens if include_expired or not t.expired()]

    def set_rate_limit(self, enabled: bool | None = None, org_limit: int | None = None,
                       user_limit: int | None = None, window: float | None = None) -> None:
        """Change the limits (the windows start afresh)."""
        with self.lock:
            for name, value in (("org_limit", org_limit), ("user_limit", user_limit)):
                if value is not None and value < 1:
                    raise ValueError(f"{name} must be at least 1")
            if window is not None and window <= 0:
                raise ValueError("window must be positive")
            if enabled is not None:
                self.rate_limit_enabled = enabled
            if org_limit is not None:
                self.org_limit = int(org_limit)
            if user_limit is not None:
                self.user_limit = int(user_limit)
            if window is not None:
                self.rate_window = float(window)
            self._windows.clear()

    def ready_info(self) -> dict[str, Any]:
        organization = SANDBOX_ORGANIZATION if self._seed_enabled else None
        env = {"BUILDKITE_REST_URL": self.url, "BUILDKITE_API_TOKEN": self.sandbox_token}
        if organization:
            env["BUILDKITE_ORGANIZATION_SLUG"] = organization
        return {"organization": organization, "env": env}

    # -- auth and rate limits ---------------------------------------------------------------------

    def identify(self, req: Request) -> str | None:
        scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        with self.lock:
            token = self.api_tokens.get(value.strip())
            return token.user if token is not None else None

    def before(self, req: Request) -> Response | None:
        if req.principal is None:
            return Response.json(401, {"message": UNAUTHORIZED})
        match = _ORG_PATH.match(req.path)
        with self.lock:
            if not self.rate_limit_enabled:
                return None
            now = time.monotonic()
            user = self._count(f"user:{req.principal}", now)
            org = self._count(f"org:{match.group(1)}", now) if match else None
            req.state["ratelimit"] = (org, user, now)
            exceeded = [(scope, limit, window) for scope, limit, window in
                        (("rest_user", self.user_limit, user), ("rest", self.org_limit, org))
                        if window is not None and window.count > limit]
            if not exceeded:
                return None
            scope, limit, window = exceeded[0]
            reset = self._reset(window, now)
        return Response.json(429, {
            "message": f"You have exceeded your API rate limit. Please wait {reset} seconds before making more "
                       "requests.",
            "scope": scope, "limit": limit, "current": window.count, "reset": reset})

    def _count(self, key: str, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None or now >= window.started + self.rate_window:
            window = self._windows[key] = _Window(now)
        window.count += 1
        return window

    def _reset(self, window: _Window, now: float) -> int:
        # Whole seconds, rounded up: a client that waits this long always finds a new window.
        # Rounded to the millisecond first: float sums such as 60.000000001 must not read as 61 s.
        return max(1, math.ceil(round(window.started + self.rate_window - now, 3)))

    def after(self, req: Request, resp: Response) -> None:
        state = req.state.get("ratelimit")
        if state is None:
            return
        org, user, now = state
        with self.lock:
            budgets = [("RateLimit", "rest", self.org_limit, org),
                       ("RateLimit-User", "rest_user", self.user_limit, user)]
            for prefix, scope, limit, window in budgets:
                if window is None:
                    continue
                resp.headers.update({f"{prefix}-Scope": scope, f"{prefix}-Limit": str(limit),
                                     f"{prefix}-Remaining": str(max(0, limit - window.count)),
                                     f"{prefix}-Reset": str(self._reset(window, now))})

    def error_response(self, status: int, title: str, detail: str | None = None,
                       headers: Mapping[str, str] | None = None) -> Response:
        return Response.json(status, {"message": f"{title} ({detail})" if detail else title}, headers=headers)

    def _invalid(self, message: str) -> HttpError:
        return HttpError(Response.json(422, {"message": f"Validation failed: {message}"}))

    def _not_found(self) -> HttpError:
        return HttpError(Response.json(404, {"message": "Not Found"}))

    def _require(self, req: Request, scope: str) -> None:
        with self.lock:
            token = self.api_tokens.get((req.headers.get("Authorization") or "").partition(" ")[2].strip())
        if token is None or scope not in token.scopes:
            raise HttpError(Response.json(403, {"message": f"Your access token is missing the {scope} scope"}))

    # -- visibility -------------------------------------------------------------------------------

    def _visible_org(self, req: Request) -> str:
        slug = req.params["org"]
        user = self.users.get(req.principal or "")
        if slug not in self.organizations or user is None or slug not in user.organizations:
            raise self._not_found()
        return slug

    def _visible_cluster(self, req: Request) -> Cluster:
        org = self._visible_org(req)
        cluster = self.clusters.get(req.params["cluster_id"])
        if cluster is None or cluster.organization != org:
            raise self._not_found()
        return cluster

    def _visible_token(self, req: Request) -> ClusterToken:
        cluster = self._visible_cluster(req)
        token = self.tokens.get(req.params["token_id"])
        if token is None or token.cluster_id != cluster.id:
            raise self._not_found()
        return token

    # -- routes -----------------------------------------------------------------------------------

    def register_routes(self) -> None:
        r = self.route
        clusters = API + "/organizations/{org}/clusters"
        r("GET", clusters, self._list_clusters)
        r("POST", clusters, self._create_cluster)
        r("GET", clusters + "/{cluster_id}", self._show_cluster)
        r("PUT", clusters + "/{cluster_id}", self._update_cluster)
        r("DELETE", clusters + "/{cluster_id}", self._delete_cluster)
        r("GET", clusters + "/{cluster_id}/tokens", self._list_tokens)
        r("POST", clusters + "/{cluster_id}/tokens", self._create_token)
        r("GET", clusters + "/{cluster_id}/tokens/{token_id}", self._show_token)
        r("PUT", clusters + "/{cluster_id}/tokens/{token_id}", self._update_token)
        r("DELETE", clusters + "/{cluster_id}/tokens/{token_id}", self._delete_token)
        r("GET", API + "/access-token", self._show_access_token)
        a = self.admin_route
        a("GET", "/_sandbox/seed", lambda req: Response.json(200, self.world()))
        a("POST", "/_sandbox/seed", self._admin_seed)
        a("GET", "/_sandbox/ratelimit", lambda req: Response.json(200, self._rate_settings()))
        a("POST", "/_sandbox/ratelimit", self._admin_ratelimit)
        a("POST", "/_sandbox/expire", self._admin_expire)

    # the API access token itself (no scope needed)

    def _show_access_token(self, req: Request) -> Response:
        with self.lock:
            token = self.api_tokens[(req.headers.get("Authorization") or "").partition(" ")[2].strip()]
            user = self.users[token.user]
            return Response.json(200, {"uuid": token.uuid, "scopes": sorted(token.scopes),
                                       "description": f"{user.name}'s token",
                                       "created_at": token.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                                       "user": {"name": user.name, "email": user.email}})

    # clusters

    def _list_clusters(self, req: Request) -> Response:
        self._require(req, "read_clusters")
        with self.lock:
            org = self._visible_org(req)
            clusters = sorted((c for c in self.clusters.values() if c.organization == org),
                              key=lambda c: (c.created_at, c.id))
            page, link = self._paginate(req, clusters)
            return Response.json(200, [self._cluster_doc(req, c) for c in page], headers=link)

    def _show_cluster(self, req: Request) -> Response:
        self._require(req, "read_clusters")
        with self.lock:
            return Response.json(200, self._cluster_doc(req, self._visible_cluster(req)))

    def _create_cluster(self, req: Request) -> Response:
        self._require(req, "write_clusters")
        with self.lock:
            org = self._visible_org(req)
            body = self._body(req)
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise self._invalid("Name can't be blank")
            fields = self._cluster_fields(body)
            maintainers = body.get("maintainers")
            if maintainers is not None and not (isinstance(maintainers, list) and all(
                    isinstance(m, dict) and set(m) <= {"user", "team"} and len(m) == 1 for m in maintainers)):
                raise self._invalid('Maintainers must be a list of {"user": uuid} or {"team": uuid}')
            cluster = Cluster(str(uuid.uuid4()), org, name, fields.get("description"), fields.get("emoji"),
                              fields.get("color"), req.principal or "", datetime.now(UTC))
            self.clusters[cluster.id] = cluster
            doc = self._cluster_doc(req, cluster)
        self.emit("cluster.created", id=cluster.id, organization=org)
        return Response.json(201, doc)

    def _update_cluster(self, req: Request) -> Response:
        self._require(req, "write_clusters")
        with self.lock:
            cluster = self._visible_cluster(req)
            body = self._body(req)
            if "name" in body:
                name = body["name"]
                if not isinstance(name, str) or not name.strip():
                    raise self._invalid("Name can't be blank")
                cluster.name = name
            if "default_queue_id" in body and body["default_queue_id"] is not None:
                raise self._invalid("Default queue must be a queue of this cluster")
            for key, value in self._cluster_fields(body).items():
                setattr(cluster, key, value)
            doc = self._cluster_doc(req, cluster)
        self.emit("cluster.updated", id=cluster.id)
        return Response.json(200, doc)

    def _cluster_fields(self, body: Mapping[str, Any]) -> dict[str, str | None]:
        """The optional fields present in a body (null clears one), validated."""
        out: dict[str, str | None] = {}
        for key in ("description", "emoji", "color"):
            if key not in body:
                continue
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise self._invalid(f"{key.capitalize()} must be a string")
            if key == "color" and value and not COLOR.fullmatch(value):
                raise self._invalid("Color is not a valid hex color")
            out[key] = value or None
        return out

    def _delete_cluster(self, req: Request) -> Response:
        self._require(req, "write_clusters")
        with self.lock:
            cluster = self._visible_cluster(req)
            del self.clusters[cluster.id]
            gone = [t.id for t in self.tokens.values() if t.cluster_id == cluster.id]
            for token_id in gone:  # documented: deleting a cluster deletes its tokens too
                del self.tokens[token_id]
                self.mark_revoked(token_id)
        for token_id in gone:
            self.emit("token.revoked", id=token_id, cluster=cluster.id)
        self.emit("cluster.deleted", id=cluster.id)
        return Response.empty(204)

    # tokens

    def _list_tokens(self, req: Request) -> Response:
        self._require(req, "read_clusters")
        with self.lock:
            cluster = self._visible_cluster(req)
            tokens = sorted((t for t in self.tokens.values() if t.cluster_id == cluster.id),
                            key=lambda t: (t.created_at, t.id))
            page, link = self._paginate(req, tokens)
            response = Response.json(200, [self._token_doc(req, t) for t in page], headers=link)
        self.emit("tokens.listed", cluster=cluster.id)
        return response

    def _show_token(self, req: Request) -> Response:
        self._require(req, "read_clusters")
        with self.lock:
            return Response.json(200, self._token_doc(req, self._visible_token(req)))

    def _create_token(self, req: Request) -> Response:
        self._require(req, "write_clusters")
        with self.lock:
            cluster = self._visible_cluster(req)
            body = self._body(req)
            description = self._description(body.get("description"))
            expires_at = self._expires_at(body.get("expires_at"))
            allowed = self._allowed_ips(body.get("allowed_ip_addresses", ANY_ADDRESS))
            token = ClusterToken(str(uuid.uuid4()), cluster.organization, cluster.id, description, allowed,
                                 expires_at, new_token_value(), req.principal or "", datetime.now(UTC))
            self.tokens[token.id] = token
            self.record_minted(token.id, token.value, f"{cluster.organization}/{cluster.id}")
            doc = self._token_doc(req, token, reveal=True)
        # Outside the lock: a crash-test signal must not find the emulator's state locked.
        self.emit("token.created", id=token.id, cluster=cluster.id)
        return Response.json(201, doc)

    def _update_token(self, req: Request) -> Response:
        self._require(req, "write_clusters")
        with self.lock:
            token = self._visible_token(req)
            body = self._body(req)
            if "expires_at" in body:
                raise self._invalid("Expires at can't be changed once the token is created")
            description = self._description(body["description"]) if "description" in body else token.description
            allowed = token.allowed_ip_addresses
            if "allowed_ip_addresses" in body:
                allowed = self._allowed_ips(body["allowed_ip_addresses"] if body["allowed_ip_addresses"] is not None
                                            else ANY_ADDRESS)
            token.description, token.allowed_ip_addresses = description, allowed
            doc = self._token_doc(req, token)
        self.emit("token.updated", id=token.id, cluster=token.cluster_id)
        return Response.json(200, doc)

    def _delete_token(self, req: Request) -> Response:
        self._require(req, "write_clusters")
        with self.lock:
            token = self._visible_token(req)
            del self.tokens[token.id]
            self.mark_revoked(token.id)
        self.emit("token.revoked", id=token.id, cluster=token.cluster_id)
        return Response.empty(204)

    # -- request validation -----------------------------------------------------------------------

    def _body(self, req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except HttpError:
            raise HttpError(Response.json(400, {"message": "Problems parsing JSON"})) from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise HttpError(Response.json(400, {"message": "Body should be a JSON object"}))
        return body

    def _description(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self._invalid("Description can't be blank")
        return value

    def _expires_at(self, value: Any) -> datetime | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise self._invalid("Expires at is not a valid ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment < datetime.now(UTC) + MIN_EXPIRY:
            raise self._invalid("Expires at must be at least 10 minutes in the future")
        return moment

    def _allowed_ips(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self._invalid("Allowed ip addresses must be a string of space-separated CIDR blocks")
        entries = value.split()
        if not entries:
            raise self._invalid("Allowed ip addresses can't be blank")
        for entry in entries:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise self._invalid(f"Allowed ip addresses contains an invalid IP address or CIDR: {entry}") from None
            if network.version != 4:  # "CIDR-notation IPv4 addresses", per the API docs
                raise self._invalid(f"Allowed ip addresses contains an invalid IP address or CIDR: {entry}")
        return " ".join(entries)

    # -- documents --------------------------------------------------------------------------------

    def _user_doc(self, name: str) -> dict[str, Any]:
        user = self.users.get(name)
        if user is None:
            return {"id": None, "graphql_id": None, "name": name, "email": None, "avatar_url": None,
                    "created_at": None}
        return {"id": user.id, "graphql_id": graphql_id("User", user.id), "name": user.name, "email": user.email,
                "avatar_url": f"https://www.gravatar.com/avatar/{uuid.uuid5(uuid.NAMESPACE_DNS, user.email).hex}",
                "created_at": timestamp(user.created_at)}

    def _cluster_url(self, req: Request, cluster: Cluster) -> str:
        return f"{req.base_url}{API}/organizations/{cluster.organization}/clusters/{cluster.id}"

    def _cluster_doc(self, req: Request, cluster: Cluster) -> dict[str, Any]:
        url = self._cluster_url(req, cluster)
        return {
            "id": cluster.id,
            "graphql_id": graphql_id("Cluster", cluster.id),
            "default_queue_id": cluster.default_queue_id,
            "name": cluster.name,
            "description": cluster.description,
            "emoji": cluster.emoji,
            "color": cluster.color,
            "url": url,
            "web_url": f"https://buildkite.com/organizations/{cluster.organization}/clusters/{cluster.id}",
            "queues_url": f"{url}/queues",
            "default_queue_url": f"{url}/queues/{cluster.default_queue_id}" if cluster.default_queue_id else None,
            "created_at": timestamp(cluster.created_at),
            "created_by": self._user_doc(cluster.created_by),
        }

    def _token_doc(self, req: Request, token: ClusterToken, reveal: bool = False) -> dict[str, Any]:
        cluster_url = f"{req.base_url}{API}/organizations/{token.organization}/clusters/{token.cluster_id}"
        doc = {
            "id": token.id,
            "graphql_id": graphql_id("ClusterToken", token.id),
            "description": token.description,
            "allowed_ip_addresses": token.allowed_ip_addresses,
            "expires_at": timestamp(token.expires_at) if token.expires_at else None,
            "url": f"{cluster_url}/tokens/{token.id}",
            "cluster_url": cluster_url,
            "created_at": timestamp(token.created_at),
            "created_by": self._user_doc(token.created_by),
        }
        if reveal:  # create-only
            doc["token"] = token.value
        return doc

    # -- pagination -------------------------------------------------------------------------------

    def _paginate(self, req: Request, items: Sequence[Any]) -> tuple[Sequence[Any], dict[str, str]]:
        """One page and its `Link` header: first/prev from page 2 on, next/last before the last page."""
        number = self._page_param(req, "page", 1)
        size = min(self._page_param(req, "per_page", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        pages = max(1, math.ceil(len(items) / size))
        others = [(k, v) for k, vs in req.query.items() if k not in ("page", "per_page") for v in vs]

        def link(n: int, rel: str) -> str:
            query = urlencode([*others, ("page", n), ("per_page", size)], quote_via=quote)
            return f'<{req.base_url}{quote(req.path)}?{query}>; rel="{rel}"'

        links = []
        if number > 1:
            links += [link(1, "first"), link(min(number - 1, pages), "prev")]
        if number < pages:
            links += [link(number + 1, "next"), link(pages, "last")]
        return items[(number - 1) * size: number * size], ({"Link": ", ".join(links)} if links else {})

    @staticmethod
    def _page_param(req: Request, name: str, default: int) -> int:
        raw = req.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise HttpError(Response.json(400, {"message": f"{name} must be a positive integer"}))
        return value

    # -- admin ------------------------------------------------------------------------------------

    def world(self) -> dict[str, Any]:
        """Organizations and users (with API tokens and scopes): sandbox only."""
        with self.lock:
            tokens: dict[str, list[dict[str, Any]]] = {}
            for value, token in self.api_tokens.items():
                tokens.setdefault(token.user, []).append({"token": value, "scopes": sorted(token.scopes)})
            return {"organizations": sorted(self.organizations),
                    "users": {u.name: {"id": u.id, "organizations": sorted(u.organizations),
                                       "tokens": tokens.get(u.name, [])} for u in self.users.values()}}

    def seed(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Add organizations and users from a document: {"organizations": ["globex"],
        "users": [{"name", "organizations": [..], "token": optional, "scopes": optional}]}."""
        with self.lock:
            for slug in doc.get("organizations") or []:
                if slug not in self.organizations:
                    self.add_organization(str(slug))
            for u in doc.get("users") or []:
                if u["name"] not in self.users:
                    self.add_user(u["name"], u.get("organizations") or [])
                else:
                    self.users[u["name"]].organizations.update(u.get("organizations") or [])
                if u.get("token") or not any(t.user == u["name"] for t in self.api_tokens.values()):
                    self.add_api_token(u["name"], u.get("token"), u.get("scopes", SCOPES))
            return self.world()

    def _admin_seed(self, req: Request) -> Response:
        try:
            return Response.json(200, self.seed(self.admin_body(req)))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return bad_request(f"invalid seed document: {exc!r}")

    def _rate_settings(self) -> dict[str, Any]:
        with self.lock:
            return {"enabled": self.rate_limit_enabled, "org_limit": self.org_limit,
                    "user_limit": self.user_limit, "window": self.rate_window}

    def _admin_ratelimit(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            enabled = body.get("enabled")
            if enabled is not None and not isinstance(enabled, bool):
                raise ValueError("enabled must be true or false")
            numbers = {k: body.get(k) for k in ("org_limit", "user_limit", "window")}
            self.set_rate_limit(enabled, *(int(numbers[k]) if numbers[k] is not None else None
                                           for k in ("org_limit", "user_limit")),
                                float(numbers["window"]) if numbers["window"] is not None else None)
        except (ValueError, TypeError) as exc:
            return bad_request(str(exc))
        return Response.json(200, self._rate_settings())

    def _admin_expire(self, req: Request) -> Response:
        body = self.admin_body(req)
        token_id = body.get("token_id")
        at = None
        if body.get("at"):
            try:
                at = datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00"))
            except ValueError:
                return bad_request("at must be an RFC 3339 timestamp")
        with self.lock:
            if token_id not in self.tokens:
                return Response.json(404, {"error": "no such token (revoked or unknown)"})
            self.expire_token(token_id, at)
        return Response.empty()


def main(argv: Sequence[str] | None = None) -> int:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--token", help="API token of the sandbox user (default: random)")
        parser.add_argument("--no-rate-limit", action="store_true",
                            help="switch the 200/min organization and 50/min user limits off")

    def factory(args: argparse.Namespace) -> Emulator:
        return BuildkiteEmulator(args.port, sandbox_token=args.token, rate_limit_enabled=not args.no_rate_limit)

    return run_cli(factory, argv, "Local emulator of the Buildkite clusters REST API", configure)


__all__ = ["BuildkiteEmulator", "main", "new_token_value", "timestamp"]

if __name__ == "__main__":
    sys.exit(main())
