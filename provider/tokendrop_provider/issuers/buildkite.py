"""Buildkite REST client: clusters and cluster agent tokens (REST API v2).

Every wire detail of Buildkite lives here (see docs/wire.md). The rest of the provider sees
`Cluster`, `IssuedToken` and `MintedToken`, and the typed errors of `errors.py`.

- Scope of the `TokenIssuer` methods = `"<organization slug>/<cluster uuid>"`.
- Lists follow the RFC 5988 `Link` header (`rel="next"`), 100 per page, to the last page: a cluster
  may hold hundreds of tokens, and a token missing from a partial listing would look revoked.
- Two budgets limit every request: 200 per minute per organization and 50 per minute per user. Each
  request takes a slot of both (`acquire_all`); the `RateLimit-*` and `RateLimit-User-*` headers and
  the 429 body (`scope`, `reset`) feed them back, so a large apply slows down instead of failing.
  The per-user budget is keyed by the token's user (asked once, `GET /v2/access-token`), so two API
  tokens of one user share it.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from requests.utils import parse_header_links

from ..errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
    RateLimitedError,
)
from ..ratelimit import RateLimiter, Sleeper, budget_owner, shared_limiter
from ..secret import Secret
from ..settings import BuildkiteSettings
from ..timestamps import format_rfc3339, parse_rfc3339
from ..validation import parse_cidr
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

log = logging.getLogger("tokendrop.buildkite")

DEFAULT_REST_URL = "https://api.buildkite.com"
PAGE_SIZE = 100  # the API's maximum
ORG_RATE = 200  # requests per minute per organization, shared by all its users
USER_RATE = 50  # requests per minute per user
WINDOW_MARGIN = 1.0  # seconds added to each window, for the time between sending and Buildkite counting
RATE_WINDOW = 60.0
# What an unrestricted token holds; sent to lift a restriction (an absent field leaves it as it is).
ANY_ADDRESS = "0.0.0.0/0"

# The leading words of a 422 "Validation failed: ..." message -> our attribute name.
_MESSAGE_ATTRIBUTES: Mapping[str, str] = {
    "description": "description",
    "expires at": "expires_at",
    "allowed ip addresses": "allowed_ip_addresses",
    "name": "name",
    "emoji": "emoji",
    "color": "color",
}

# Per-process key for the limiter registry: two clients of one API token share its per-user budget
# without a plain hash of the token existing anywhere.


@dataclass(frozen=True)
class Cluster:
    id: str  # UUID
    organization: str
    name: str
    description: str | None
    emoji: str | None
    color: str | None
    graphql_id: str | None
    default_queue_id: str | None
    created_at: str | None


def scope_of(organization: str, cluster_id: str) -> str:
    return f"{organization}/{cluster_id}"


def parse_scope(scope: str) -> tuple[str, str]:
    """(organization, cluster uuid) of a token scope."""
    organization, _, cluster_id = (scope or "").partition("/")
    if not organization or not cluster_id or "/" in cluster_id:
        raise ConfigError("Invalid Buildkite token scope",
                          f"{scope!r} is not <organization>/<cluster uuid>")
    return organization, cluster_id


class BuildkiteClient(TokenIssuer):
    """Clusters and cluster agent tokens of one Buildkite REST endpoint, as one API token.

    `user_limiter` / `org_limiter` exist for tests; by default both budgets come from the
    process-wide registry, so every client of one token (and every thread) shares them."""

    kind = "buildkite"

    def __init__(self, settings: BuildkiteSettings, *, user_limiter: RateLimiter | None = None,
                 org_limiter: Callable[[str], RateLimiter] | None = None,
                 timeout: float | tuple[float, float] = (10.0, 60.0), max_retries: int = 5,
                 cancel: threading.Event | None = None, sleep: Sleeper | None = None) -> None:
        if settings.api_token is None:
            raise ConfigError("Missing Buildkite API token",
                              "Set buildkite_api_token in the provider block or the BUILDKITE_API_TOKEN "
                              "environment variable.", attribute=("buildkite_api_token",))
        self.rest_url = normalize_rest_url(settings.rest_url)
        self._token = settings.api_token
        self._token_key = limiter_key(self.rest_url, settings.api_token)
        # A limiter passed in (tests) is used as given; else the per-user budget is keyed by the token
        # until the first request asks Buildkite whose it is (`_key_user_budget_by_owner`).
        self._user_budget_known = user_limiter is not None
        self.user_limiter = user_limiter or self._shared_user_limiter(self._token_key)
        self._org_limiter = org_limiter or (lambda org: shared_limiter(
            f"buildkite|{self.rest_url}|org|{org}", ORG_RATE, RATE_WINDOW, window=True, margin=WINDOW_MARGIN,
            name=f"buildkite {self.rest_url} organization {org}"))
        self._session_options: dict[str, Any] = {"timeout": timeout, "max_retries": max_retries,
                                                 "cancel": cancel, "sleep": sleep}
        self._sessions: dict[str, HttpSession] = {}
        self._lock = threading.Lock()

    def _http(self, organization: str) -> HttpSession:
        """The session for one organization: its requests take a slot of the organization's budget
        and of the user's, together."""
        with self._lock:
            session = self._sessions.get(organization)
            if session is None:
                if not self._user_budget_known:
                    self._key_user_budget_by_owner()
                org_limiter = self._org_limiter(organization)
                session = HttpSession(
                    self.rest_url + "/v2", issuer="Buildkite", auth=self._token,
                    limiters=(org_limiter, self.user_limiter), error_mapper=self._map_error,
                    rate_limit_hook=_rate_limit_hook(org_limiter, self.user_limiter),
                    **self._session_options)
                self._sessions[organization] = session
            return session

    # -- clusters ---------------------------------------------------------------------------------

    def list_clusters(self, organization: str) -> list[Cluster]:
        """Every cluster of the organization (all pages)."""
        org = _segment(organization, "organization")
        return [_cluster(item, organization)
                for item in self._pages(organization, f"/organizations/{org}/clusters",
                                        f"organization {organization!r}")]

    def organization_visible(self, organization: str) -> bool:
        """Whether the organization exists and this token may read its clusters (one small read)."""
        org = _segment(organization, "organization")
        resp = self._http(organization).get(f"/organizations/{org}/clusters", params={"per_page": 1},
                                            expect=(200, 404), what=f"organization {organization!r}")
        return resp.status == 200

    def get_cluster(self, organization: str, cluster_id: str) -> Cluster | None:
        """The cluster, or None if it does not exist or this token cannot see it."""
        resp = self._http(organization).get(self._cluster_path(organization, cluster_id), expect=(200, 404),
                                            what=f"cluster {cluster_id}")
        return None if resp.status == 404 else _cluster(_object_with_id(resp), organization)

    def create_cluster(self, organization: str, name: str, *, description: str | None = None,
                       emoji: str | None = None, color: str | None = None) -> Cluster:
        body = _cluster_body(name, description, emoji, color, clear_unset=False)
        org = _segment(organization, "organization")
        resp = self._http(organization).post(f"/organizations/{org}/clusters", json_body=body, expect=(201,),
                                             what=f"organization {organization!r}")
        return _cluster(_object_with_id(resp), organization)

    def update_cluster(self, organization: str, cluster_id: str, *, name: str, description: str | None,
                       emoji: str | None, color: str | None) -> Cluster:
        """Set every editable field; None clears one."""
        body = _cluster_body(name, description, emoji, color, clear_unset=True)
        resp = self._http(organization).put(self._cluster_path(organization, cluster_id), json_body=body,
                                            expect=(200,), what=f"cluster {cluster_id}")
        return _cluster(_object_with_id(resp), organization)

    def delete_cluster(self, organization: str, cluster_id: str) -> bool:
        """Delete the cluster (Buildkite deletes its queues and tokens too); False if already gone."""
        resp = self._http(organization).delete(self._cluster_path(organization, cluster_id),
                                               expect=(204, 404), what=f"cluster {cluster_id}")
        return resp.status != 404

    # -- cluster agent tokens (TokenIssuer) --------------------------------------------------------

    def mint(self, scope: str, description: str, *,  # type: ignore[override]
             expires_at: str | datetime.datetime | None = None,
             allowed_ip_addresses: Sequence[str] | None = None) -> MintedToken:
        """Create a cluster agent token. The value exists only in this response."""
        organization, cluster_id = parse_scope(scope)
        body: dict[str, Any] = {"description": _description(description)}
        if expires_at is not None:
            body["expires_at"] = _timestamp(expires_at)
        if allowed_ip_addresses is not None:
            body["allowed_ip_addresses"] = ip_list(allowed_ip_addresses)
        # A POST: HttpSession never retries it after it may have reached Buildkite (no double mint).
        resp = self._http(organization).post(self._tokens_path(organization, cluster_id), json_body=body,
                                             expect=(201,), what=f"cluster {cluster_id}")
        data = _object_with_id(resp)
        value = data.get("token")
        token = _issued(data, scope)
        if not isinstance(value, str) or not value:
            # Useless without its value; do not leave it behind.
            try:
                self.revoke(scope, token.id)
                outcome = "was revoked again"
            except IssuerError:
                outcome = "could not be revoked; revoke it in Buildkite"
            raise IssuerError("Buildkite created a cluster token but returned no value",
                              f"token {token.id} in cluster {cluster_id} {outcome}", status=resp.status)
        return MintedToken(token=token, value=Secret(value))

    def get_token(self, scope: str, token_id: str) -> IssuedToken | None:
        """The token as Buildkite has it (expired or not), or None if it is revoked or unknown."""
        organization, cluster_id = parse_scope(scope)
        resp = self._http(organization).get(self._token_path(organization, cluster_id, token_id),
                                            expect=(200, 404), what=f"token {token_id}")
        return None if resp.status == 404 else _issued(_object_with_id(resp), scope)

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        """The token if it is alive: not revoked, and not past its `expires_at`."""
        token = self.get_token(scope, token_id)
        return None if token is None or expired(token) else token

    def list_tokens(self, scope: str, *, include_expired: bool = False) -> list[IssuedToken]:
        """Every token of the cluster (all pages, 100 per call); expired ones only if asked."""
        organization, cluster_id = parse_scope(scope)
        tokens = [_issued(item, scope)
                  for item in self._pages(organization, self._tokens_path(organization, cluster_id),
                                          f"cluster {cluster_id}")]
        return tokens if include_expired else [t for t in tokens if not expired(t)]

    def update(self, scope: str, token_id: str, description: str, *,  # type: ignore[override]
               allowed_ip_addresses: Sequence[str] | None = None) -> IssuedToken:
        """Set the description and allowed addresses (absolute: None lifts the restriction). The
        expiry is immutable at Buildkite and is never sent."""
        organization, cluster_id = parse_scope(scope)
        body = {"description": _description(description),
                "allowed_ip_addresses": ANY_ADDRESS if allowed_ip_addresses is None
                else ip_list(allowed_ip_addresses)}
        resp = self._http(organization).put(self._token_path(organization, cluster_id, token_id), json_body=body,
                                            expect=(200,), what=f"token {token_id}")
        return _issued(_object_with_id(resp), scope)

    def revoke(self, scope: str, token_id: str) -> bool:
        """Revoke the token; False if it was already gone."""
        organization, cluster_id = parse_scope(scope)
        resp = self._http(organization).delete(self._token_path(organization, cluster_id, token_id),
                                               expect=(204, 404), what=f"token {token_id}")
        return resp.status != 404

    # -- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _cluster_path(organization: str, cluster_id: str) -> str:
        return f"/organizations/{_segment(organization, 'organization')}/clusters/{_segment(cluster_id, 'cluster id')}"

    def _tokens_path(self, organization: str, cluster_id: str) -> str:
        return self._cluster_path(organization, cluster_id) + "/tokens"

    def _token_path(self, organization: str, cluster_id: str, token_id: str) -> str:
        return f"{self._tokens_path(organization, cluster_id)}/{_segment(token_id, 'token id')}"

    def _pages(self, organization: str, path: str, what: str) -> Iterator[dict[str, Any]]:
        """Items of every page, following `Link: <...>; rel="next"` until there is none."""
        http = self._http(organization)
        url: str = path
        params: dict[str, Any] | None = {"page": 1, "per_page": PAGE_SIZE}
        seen: set[str] = set()
        while True:
            resp = http.get(url, params=params, expect=(200,), what=what)
            items = resp.json()
            if not isinstance(items, list):
                raise _malformed(resp)
            yield from (item for item in items if isinstance(item, dict))
            next_link = _link(resp.headers.get("Link"), "next")
            if next_link is None:
                return
            url, params = http.absolute(next_link), None  # refuses links to another host
            if url in seen:  # a server bug must not become an endless loop
                raise IssuerError("Buildkite returned a pagination loop", f"{what}: {urlsplit(url).query} repeats",
                                  status=resp.status)
            seen.add(url)

    def _map_error(self, response: HttpResponse, what: str) -> IssuerError:
        status = response.status
        message = _message(response)
        if status == 401:
            return IssuerAuthError(
                "Buildkite rejected the API token",
                f"{self.rest_url} answered 401 to {what}: the API access token (buildkite_api_token / "
                "BUILDKITE_API_TOKEN) is missing, invalid or revoked.", attribute=("buildkite_api_token",),
                status=status)
        if status == 403:
            return IssuerAuthError(
                "Buildkite denied access",
                f"{self.rest_url} answered 403 to {what}" + (f" ({message})" if message else "") + ". Cluster "
                "endpoints need an API token with the read_clusters and write_clusters scopes, owned by an "
                "organization administrator or cluster maintainer.", attribute=("buildkite_api_token",),
                status=status)
        if status == 404:
            return IssuerNotFound(
                f"{what} not found or not visible to this token",
                f"{self.rest_url} answered 404: it does not exist, or this API token cannot see it.", status=status)
        if status in (400, 422):
            return IssuerValidationError(f"Buildkite rejected the request for {what}", message or f"HTTP {status}",
                                         attribute=_attribute(message), status=status)
        if status == 429:
            return RateLimitedError(
                "Buildkite rate limit still exceeded",
                f"{what}: Buildkite allows {ORG_RATE} requests per minute per organization and {USER_RATE} per "
                "user" + (f" ({message})" if message else ""), status=status)
        return default_error(response, what)

    # -- whose budget this token spends -----------------------------------------------------------

    def token_owner(self) -> str | None:
        """Who the API token belongs to, from `GET /v2/access-token` (no scope needed): the user's
        email, or None where the answer carries no user (older versions return only uuid and scopes)."""
        with HttpSession(self.rest_url + "/v2", issuer="Buildkite", auth=self._token,
                         limiters=(self.user_limiter,), error_mapper=self._map_error,
                         **self._session_options) as probe:
            body = probe.get("/access-token", expect=(200,), what="the API access token").json_or_none()
        user = body.get("user") if isinstance(body, dict) else None
        email = user.get("email") if isinstance(user, dict) else None
        return email.strip().lower() if isinstance(email, str) and email.strip() else None

    def _key_user_budget_by_owner(self) -> None:
        """Buildkite's per-user budget is the user's, however many API tokens they hold: share one
        limiter with every other token of the same user. One request per token and process; called
        with `self._lock` held, before the first session is made."""
        def lookup() -> str | None:
            try:
                owner = self.token_owner()
            except IssuerError as err:  # keep the per-token budget; the real call reports real errors
                log.debug("access token details unavailable (%s); rate budget stays per token", err.summary)
                return None
            # The key names the user by a digest: no email address in keys or messages.
            return hashlib.sha256(owner.encode()).hexdigest()[:24] if owner else None

        owner = budget_owner(self._token_key, lookup)
        if owner is not None:
            self.user_limiter = self._shared_user_limiter(f"buildkite|{self.rest_url}|user|{owner}")
        self._user_budget_known = True

    def _shared_user_limiter(self, key: str) -> RateLimiter:
        return shared_limiter(key, USER_RATE, RATE_WINDOW, window=True, margin=WINDOW_MARGIN,
                              name=f"buildkite {self.rest_url} (per user)")

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    def __enter__(self) -> BuildkiteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BuildkiteClient(rest_url={self.rest_url!r})"


# -- helpers (module level so resources and tests can use them) -----------------------------------

def normalize_rest_url(url: str) -> str:
    """"https://host[:port][/prefix]" (without /v2) from BUILDKITE_REST_URL style values."""
    return normalize_base_url(url or DEFAULT_REST_URL, label="Buildkite REST URL", setting="buildkite_rest_url",
                              strip_suffix="/v2")


def limiter_key(rest_url: str, token: Secret) -> str:
    """Registry key of the token owner's per-user budget: the URL and a digest of the token."""
    return f"buildkite|{rest_url}|user|{credential_digest(token)}"


def ip_list(addresses: Sequence[str]) -> str:
    """The API's form of an allow-list: CIDR blocks separated by spaces."""
    if isinstance(addresses, str):  # a bare string would be taken apart into characters
        raise ConfigError("allowed_ip_addresses must be a list of CIDR blocks", attribute=("allowed_ip_addresses",))
    if not addresses:
        raise ConfigError("allowed_ip_addresses must not be empty",
                          "Leave it unset to allow any address.", attribute=("allowed_ip_addresses",))
    for item in addresses:
        try:
            network = parse_cidr(item)
        except (TypeError, ValueError) as err:
            raise ConfigError("Invalid allowed_ip_addresses", f"{item!r} is not a CIDR block: {err}",
                              attribute=("allowed_ip_addresses",)) from None
        if network.version != 4:  # the API documents IPv4 CIDR blocks only (docs/wire.md)
            raise ConfigError("Invalid allowed_ip_addresses", f"{item!r} is an IPv6 block: Buildkite takes IPv4 "
                              "CIDR blocks only", attribute=("allowed_ip_addresses",))
    return " ".join(addresses)


def split_ip_list(text: object) -> list[str] | None:
    """The API's space-separated allow-list as a list; None for no restriction."""
    if not isinstance(text, str) or not text.split() or text.split() == [ANY_ADDRESS]:
        return None
    return text.split()


def expired(token: IssuedToken, now: datetime.datetime | None = None) -> bool:
    if not token.expires_at:
        return False
    moment = parse_rfc3339(token.expires_at)
    if moment is None:
        return False  # unreadable: let Buildkite decide, do not drop the token
    return moment <= (now or datetime.datetime.now(datetime.UTC))


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"Missing {what}", f"{what} must be a non-empty string")
    if value in (".", ".."):
        raise ConfigError(f"Invalid {what}", f"{value!r} is not an id")
    return quote(value, safe="")  # "/" is encoded: an id is always exactly one path segment


def _description(description: str) -> str:
    if not isinstance(description, str) or not description.strip():
        raise ConfigError("Missing token description", "Buildkite requires a description for every token.",
                          attribute=("description",))
    return description


def _timestamp(moment: str | datetime.datetime) -> str:
    if isinstance(moment, str):
        try:
            moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("Invalid expires_at", f"{moment!r} is not an RFC 3339 timestamp",
                              attribute=("expires_at",)) from None
    if moment.tzinfo is None:
        raise ConfigError("Invalid expires_at", "the timestamp needs a time zone", attribute=("expires_at",))
    return format_rfc3339(moment)


def _cluster_body(name: str, description: str | None, emoji: str | None, color: str | None,
                  clear_unset: bool) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("Missing cluster name", "A cluster needs a name.", attribute=("name",))
    body: dict[str, Any] = {"name": name}
    for key, value in (("description", description), ("emoji", emoji), ("color", color)):
        if value is not None or clear_unset:
            body[key] = value
    return body


def _rate_limit_hook(org: RateLimiter, user: RateLimiter) -> Callable[[HttpResponse], Sequence[RateLimitInfo]]:
    def hook(response: HttpResponse) -> Sequence[RateLimitInfo]:
        headers = response.headers
        infos = []
        for prefix, limiter in (("RateLimit", org), ("RateLimit-User", user)):
            limit = parse_float(headers.get(f"{prefix}-Limit"))
            remaining = parse_float(headers.get(f"{prefix}-Remaining"))
            reset = parse_float(headers.get(f"{prefix}-Reset"))
            if limit is not None or remaining is not None or reset is not None:
                infos.append(RateLimitInfo(limit=limit, remaining=remaining, reset_seconds=reset, limiter=limiter))
        if response.status == 429:
            # The body names the exhausted budget and its reset, even without headers.
            body = response.json_or_none()
            if isinstance(body, dict):
                reset = body.get("reset")
                scope = body.get("scope")
                target = user if scope == "rest_user" else org if scope == "rest" else None
                if isinstance(reset, int | float) and not isinstance(reset, bool):
                    infos.append(RateLimitInfo(remaining=0, reset_seconds=float(reset), limiter=target))
        return infos

    return hook


def _link(header: str | None, rel: str) -> str | None:
    if not header:
        return None
    for link in parse_header_links(header):
        if link.get("rel") == rel and link.get("url"):
            return link["url"]
    return None


def _object_with_id(response: HttpResponse) -> dict[str, Any]:
    doc = response.json()
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise _malformed(response)
    return doc


def _malformed(response: HttpResponse) -> IssuerError:
    return IssuerError("Buildkite sent an unexpected response",
                       f"{response.method} {response.path} returned HTTP {response.status} without the expected "
                       "JSON", status=response.status)


def _message(response: HttpResponse) -> str:
    body = response.json_or_none()
    message = body.get("message") if isinstance(body, dict) else None
    return message[:300] if isinstance(message, str) else ""


def _attribute(message: str) -> tuple[str, ...]:
    text = message.removeprefix("Validation failed:").strip().lower()
    for words, attribute in _MESSAGE_ATTRIBUTES.items():
        if text.startswith(words + " "):
            return (attribute,)
    return ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _cluster(data: Mapping[str, Any], organization: str) -> Cluster:
    return Cluster(
        id=data["id"],
        organization=organization,
        name=str(data.get("name") or ""),
        description=_text(data.get("description")),
        emoji=_text(data.get("emoji")),
        color=_text(data.get("color")),
        graphql_id=_text(data.get("graphql_id")),
        default_queue_id=_text(data.get("default_queue_id")),
        created_at=_text(data.get("created_at")),
    )


def _issued(data: Mapping[str, Any], scope: str) -> IssuedToken:
    extra: dict[str, object] = {"allowed_ip_addresses": split_ip_list(data.get("allowed_ip_addresses"))}
    if _text(data.get("graphql_id")):
        extra["graphql_id"] = data["graphql_id"]
    created_by = data.get("created_by")
    if isinstance(created_by, dict) and _text(created_by.get("id")):
        extra["created_by"] = created_by["id"]
    return IssuedToken(
        id=data["id"],
        scope=scope,
        description=str(data.get("description") or ""),
        created_at=_text(data.get("created_at")),
        expires_at=_text(data.get("expires_at")),
        extra=extra,
    )
