"""HCP Terraform / Terraform Enterprise client: agent pools and agent tokens (JSON:API, /api/v2).

Every wire detail of TFE lives here (see docs/wire.md). The rest of the provider sees
`AgentPool`, `IssuedToken` and `MintedToken`, and the typed errors of `errors.py`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
from ..settings import TfeSettings
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

JSONAPI = "application/vnd.api+json"
# TFE counts 30 requests per second per user: a sliding window of the same size keeps a steady stream
# under the limit instead of bouncing off it, and uses all of it. The margin absorbs the difference
# between when a request leaves and when TFE counts it.
RATE_PER_SECOND = 30
WINDOW_MARGIN = 0.03
PAGE_SIZE = 100  # the API's maximum
# Agent tokens (and user/team tokens) look like "<14 chars>.atlasv1.<long>"; scrubbed from errors.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-]{16,}")
POOL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# Where the JSON:API error's source.pointer says the problem is -> our attribute name.
_POINTER_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "/data/attributes/name": ("name",),
    "/data/attributes/organization-scoped": ("organization_scoped",),
    "/data/attributes/description": ("description",),
    "/data/relationships/allowed-workspaces": ("allowed_workspace_ids",),
    "/data/relationships/allowed-projects": ("allowed_project_ids",),
    "/data/relationships/excluded-workspaces": ("excluded_workspace_ids",),
}

# Per-process key for the limiter registry: lets two clients of the same user share one budget
# without a plain hash of the token ever existing anywhere.


@dataclass(frozen=True)
class AgentPool:
    id: str
    name: str
    organization: str | None  # None only if TFE omitted the relationship and the caller did not know it
    organization_scoped: bool
    allowed_workspace_ids: tuple[str, ...]
    allowed_project_ids: tuple[str, ...]
    excluded_workspace_ids: tuple[str, ...]
    created_at: str | None


class TfeClient(TokenIssuer):
    """Agent pools and agent tokens of one TFE / HCP Terraform address, as one API user.

    Scope of the `TokenIssuer` methods = the agent pool id (`apool-...`)."""

    kind = "tfe"

    def __init__(self, settings: TfeSettings, *, limiter: RateLimiter | None = None,
                 timeout: float | tuple[float, float] = (10.0, 60.0), max_retries: int = 5,
                 cancel: threading.Event | None = None, sleep: Sleeper | None = None) -> None:
        if settings.token is None:
            raise ConfigError("Missing TFE token",
                              "Set tfe_token in the provider block or the TFE_TOKEN environment variable.",
                              attribute=("tfe_token",))
        self.address = normalize_address(settings.address)
        if limiter is None:
            limiter = shared_limiter(limiter_key(self.address, settings.token), RATE_PER_SECOND, 1.0,
                                     window=True, margin=WINDOW_MARGIN, name=f"tfe {self.address}")
        self.limiter = limiter
        self._http = HttpSession(
            self.address + "/api/v2", issuer="TFE", auth=settings.token, content_type=JSONAPI,
            limiters=(limiter,), timeout=timeout, max_retries=max_retries,
            error_mapper=self._map_error, rate_limit_hook=_rate_limit_info,
            secret_patterns=(TOKEN_PATTERN,), cancel=cancel, sleep=sleep)

    # -- agent pools ------------------------------------------------------------------------------

    def list_agent_pools(self, organization: str, q: str | None = None) -> list[AgentPool]:
        """Every agent pool of the organization (all pages), optionally filtered by name search `q`."""
        org = _segment(organization, "organization")
        what = f"organization {organization!r}"
        return [_pool(item, organization)
                for item in self._pages(f"/organizations/{org}/agent-pools", {"q": q, "sort": "name"}, what)]

    def get_agent_pool_by_name(self, organization: str, name: str) -> AgentPool | None:
        """The pool named exactly `name` (import by "org/name"), or None."""
        return next((p for p in self.list_agent_pools(organization, q=name) if p.name == name), None)

    def get_agent_pool(self, pool_id: str) -> AgentPool | None:
        """The pool, or None if it does not exist or this token cannot see it."""
        resp = self._http.get(f"/agent-pools/{_segment(pool_id, 'agent pool id')}", expect=(200, 404),
                              what=f"agent pool {pool_id}")
        if resp.status == 404:
            return None
        return _pool(_data(resp), None)

    def create_agent_pool(self, organization: str, name: str, organization_scoped: bool,
                          allowed_workspace_ids: Sequence[str] = (),
                          allowed_project_ids: Sequence[str] = (),
                          excluded_workspace_ids: Sequence[str] = ()) -> AgentPool:
        org = _segment(organization, "organization")
        body = _pool_body(name, organization_scoped, allowed_workspace_ids, allowed_project_ids,
                          excluded_workspace_ids)
        resp = self._http.post(f"/organizations/{org}/agent-pools", json_body=body, expect=(201,),
                               what=f"organization {organization!r}")
        return _pool(_data(resp), organization)

    def update_agent_pool(self, pool_id: str, *, name: str, organization_scoped: bool,
                          allowed_workspace_ids: Sequence[str], allowed_project_ids: Sequence[str],
                          excluded_workspace_ids: Sequence[str]) -> AgentPool:
        """Set every field. organization-scoped is always sent: TFE defaults it to true on PATCH,
        which would silently widen a scoped pool."""
        body = _pool_body(name, organization_scoped, allowed_workspace_ids, allowed_project_ids,
                          excluded_workspace_ids)
        body["data"]["id"] = pool_id
        resp = self._http.patch(f"/agent-pools/{_segment(pool_id, 'agent pool id')}", json_body=body,
                                expect=(200,), what=f"agent pool {pool_id}")
        return _pool(_data(resp), None)

    def delete_agent_pool(self, pool_id: str) -> bool:
        """Delete the pool (TFE revokes its tokens); False if it was already gone."""
        resp = self._http.delete(f"/agent-pools/{_segment(pool_id, 'agent pool id')}",
                                 expect=(200, 204, 404), what=f"agent pool {pool_id}")
        return resp.status != 404

    # -- agent tokens (TokenIssuer) ---------------------------------------------------------------

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        """Create an agent token in pool `scope`. The value exists only in this response."""
        if options:
            raise ConfigError("TFE agent tokens take no options",
                              f"unsupported: {', '.join(sorted(options))} (TFE tokens have no expiry)")
        if not isinstance(description, str):
            raise ConfigError("Token description must be a string", attribute=("description",))
        pool = _segment(scope, "agent pool id")
        body = {"data": {"type": "authentication-tokens", "attributes": {"description": description}}}
        # A POST: HttpSession never retries it after it may have reached TFE (no double mint).
        resp = self._http.post(f"/agent-pools/{pool}/authentication-tokens", json_body=body,
                               expect=(201,), what=f"agent pool {scope}")
        data = _data(resp)
        value = (data.get("attributes") or {}).get("token")
        token = _issued(data, scope)
        if not isinstance(value, str) or not value:
            # Useless without its value; do not leave it behind.
            try:
                self.revoke(scope, token.id)
                outcome = "was revoked again"
            except IssuerError:
                outcome = "could not be revoked; delete it in TFE"
            raise IssuerError("TFE created an agent token but returned no value",
                              f"agent token {token.id} in agent pool {scope} {outcome}",
                              status=resp.status)
        return MintedToken(token=token, value=Secret(value))

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        """The token if it exists, else None. TFE tokens do not expire."""
        resp = self._http.get(f"/authentication-tokens/{_segment(token_id, 'agent token id')}",
                              expect=(200, 404), what=f"agent token {token_id}")
        if resp.status == 404:
            return None
        return _issued(_data(resp), scope)

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        """Every token of the pool, oldest first, 100 per call. `last_used_at` is included."""
        pool = _segment(scope, "agent pool id")
        return [_issued(item, scope)
                for item in self._pages(f"/agent-pools/{pool}/authentication-tokens",
                                        {"sort": "created-at"}, f"agent pool {scope}")]

    def revoke(self, scope: str, token_id: str) -> bool:
        """Delete the token; False if it was already gone. (TFE's token ids are global, so `scope`
        only documents which pool the caller expects.)"""
        resp = self._http.delete(f"/authentication-tokens/{_segment(token_id, 'agent token id')}",
                                 expect=(200, 204, 404), what=f"agent token {token_id}")
        return resp.status != 404

    # -- plumbing ---------------------------------------------------------------------------------

    def _pages(self, path: str, params: Mapping[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """Items of every page. Follows meta.pagination.next-page on our own URL, else links.next.

        next-page comes first because TFE builds links from its canonical host name, which
        differs from the configured address when that is an alias; links to another host are
        refused rather than sent the token."""
        base = {**params, "page[size]": PAGE_SIZE}
        url: str = path
        query: dict[str, Any] | None = {**base, "page[number]": 1}
        seen: set[str] = set()
        while True:
            resp = self._http.get(url, params=query, expect=(200,), what=what)
            doc = resp.json()
            if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
                raise _malformed(resp)
            yield from (item for item in doc["data"] if isinstance(item, dict))
            meta = _object(doc.get("meta"))
            links = _object(doc.get("links"))
            pagination = meta.get("pagination")
            if isinstance(pagination, dict):
                next_page = pagination.get("next-page")
                if not isinstance(next_page, int):
                    return
                url, query = path, {**base, "page[number]": next_page}
                key = f"page {next_page}"
            elif isinstance(links.get("next"), str) and links["next"]:
                url, query = self._http.absolute(links["next"]), None
                key = url
            else:
                return
            if key in seen:  # a server bug must not become an endless loop
                raise IssuerError("TFE returned a pagination loop", f"{what}: {key} repeats",
                                  status=resp.status)
            seen.add(key)

    def _map_error(self, response: HttpResponse, what: str) -> IssuerError:
        status = response.status
        if status == 401:
            return IssuerAuthError(
                "TFE rejected the token",
                f"{self.address} answered 401 to {what}: the API token (tfe_token / TFE_TOKEN) is "
                "missing, invalid or expired.", attribute=("tfe_token",), status=status)
        if status == 403:
            return IssuerAuthError(
                "TFE denied access",
                f"{self.address} answered 403 to {what}: the token's user or team lacks permission.",
                attribute=("tfe_token",), status=status)
        if status == 404:
            return IssuerNotFound(
                f"{what} not found or not visible to this token",
                f"{self.address} answered 404. TFE answers 404 both when the object does not exist "
                "and when the token may not see it (no 403), and for organizations without the "
                "agents entitlement.", status=status)
        if status in (400, 409, 422):
            errors = _jsonapi_errors(response)
            return IssuerValidationError(
                f"TFE rejected the request for {what}",
                _error_text(errors) or f"HTTP {status}", attribute=_attribute(errors), status=status)
        if status == 429:
            return RateLimitedError("TFE rate limit still exceeded",
                                    f"{what}: TFE allows 30 requests per second per user", status=status)
        return default_error(response, what)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TfeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TfeClient(address={self.address!r})"


# -- helpers (module level so resources and tests can use them) -----------------------------------

def normalize_address(address: str) -> str:
    """"https://host[:port][/prefix]" from TFE_ADDRESS / TFE_HOSTNAME style values."""
    return normalize_base_url(address, label="TFE address", setting="tfe_address", strip_suffix="/api/v2")


def limiter_key(address: str, token: Secret) -> str:
    """Registry key of the token owner's budget: the address and a digest of the token, never the token."""
    return f"tfe|{address}|{credential_digest(token)}"


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"Missing {what}", f"{what} must be a non-empty string")
    if value in (".", ".."):
        raise ConfigError(f"Invalid {what}", f"{value!r} is not an id")
    return quote(value, safe="")  # "/" is encoded: an id is always exactly one path segment


def _rate_limit_info(response: HttpResponse) -> Sequence[RateLimitInfo]:
    headers = response.headers
    limit = parse_float(headers.get("x-ratelimit-limit"))
    remaining = parse_float(headers.get("x-ratelimit-remaining"))
    reset = parse_float(headers.get("x-ratelimit-reset"))
    if limit is None and remaining is None and reset is None:
        return ()
    return (RateLimitInfo(limit=limit, remaining=remaining, reset_seconds=reset),)


def _pool_body(name: str, organization_scoped: bool, allowed_workspace_ids: Sequence[str],
               allowed_project_ids: Sequence[str], excluded_workspace_ids: Sequence[str]) -> dict[str, Any]:
    if not isinstance(name, str) or not POOL_NAME.fullmatch(name):
        raise ConfigError("Invalid agent pool name",
                          f"{name!r}: use letters, digits, '-' and '_' only", attribute=("name",))
    if not isinstance(organization_scoped, bool):
        raise ConfigError("organization_scoped must be true or false", attribute=("organization_scoped",))

    def refs(ids: Sequence[str], kind: str, attr: str) -> dict[str, Any]:
        if isinstance(ids, str):  # a bare string would become a list of characters
            raise ConfigError(f"{attr} must be a list of ids", attribute=(attr,))
        return {"data": [{"id": i, "type": kind} for i in ids]}

    return {"data": {
        "type": "agent-pools",
        "attributes": {"name": name, "organization-scoped": organization_scoped},
        "relationships": {
            "allowed-workspaces": refs(allowed_workspace_ids, "workspaces", "allowed_workspace_ids"),
            "allowed-projects": refs(allowed_project_ids, "projects", "allowed_project_ids"),
            "excluded-workspaces": refs(excluded_workspace_ids, "workspaces", "excluded_workspace_ids"),
        },
    }}


def _data(response: HttpResponse) -> dict[str, Any]:
    """The document's primary data object (with an id), or an error naming the call."""
    doc = response.json()
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise _malformed(response)
    return data


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _malformed(response: HttpResponse) -> IssuerError:
    return IssuerError("TFE sent an unexpected response",
                       f"{response.method} {response.path} returned HTTP {response.status} without the "
                       "expected JSON:API document", status=response.status)


def _relationship_ids(relationships: Mapping[str, Any], name: str) -> tuple[str, ...]:
    rel = relationships.get(name)
    items = rel.get("data") if isinstance(rel, dict) else None
    if not isinstance(items, list):
        return ()
    return tuple(i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str))


def _relationship_id(relationships: Mapping[str, Any], name: str) -> str | None:
    rel = relationships.get(name)
    item = rel.get("data") if isinstance(rel, dict) else None
    return item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None


def _pool(data: Mapping[str, Any], organization: str | None) -> AgentPool:
    attrs = data.get("attributes") or {}
    rels = data.get("relationships") or {}
    return AgentPool(
        id=data["id"],
        name=str(attrs.get("name") or ""),
        organization=_relationship_id(rels, "organization") or organization,
        organization_scoped=bool(attrs.get("organization-scoped", True)),
        allowed_workspace_ids=_relationship_ids(rels, "allowed-workspaces"),
        allowed_project_ids=_relationship_ids(rels, "allowed-projects"),
        excluded_workspace_ids=_relationship_ids(rels, "excluded-workspaces"),
        created_at=attrs.get("created-at"),
    )


def _issued(data: Mapping[str, Any], scope: str) -> IssuedToken:
    attrs = data.get("attributes") or {}
    rels = data.get("relationships") or {}
    extra: dict[str, object] = {}
    created_by = _relationship_id(rels, "created-by")
    if created_by:
        extra["created_by"] = created_by
    return IssuedToken(
        id=data["id"],
        scope=scope,
        description=str(attrs.get("description") or ""),
        created_at=attrs.get("created-at"),
        expires_at=None,  # TFE agent tokens never expire
        last_used_at=attrs.get("last-used-at"),
        extra=extra,
    )


def _jsonapi_errors(response: HttpResponse) -> list[dict[str, Any]]:
    doc = response.json_or_none()
    errors = doc.get("errors") if isinstance(doc, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_text(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        title, detail = err.get("title"), err.get("detail")
        text = ": ".join(str(p) for p in (title, detail) if p)
        if text:
            parts.append(text[:300])
    return "; ".join(parts)


def _attribute(errors: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    for err in errors:
        source = err.get("source")
        pointer = source.get("pointer") if isinstance(source, dict) else None
        if not isinstance(pointer, str):
            continue
        for prefix, attribute in _POINTER_ATTRIBUTES.items():
            if pointer == prefix or pointer.startswith(prefix + "/"):
                return attribute
        if pointer.startswith("/data/attributes/"):
            return (pointer.split("/")[3].replace("-", "_"),)
    return ()
