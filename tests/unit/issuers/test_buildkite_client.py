"""BuildkiteClient (on HttpSession) against the Buildkite emulator.

Waits go through a recording sleep and fake-clock limiters; a fake sleep also "passes time" at the
emulator (its rate-limit windows start afresh), so no test waits for real or asserts on durations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from tokendrop_provider.errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
    RateLimitedError,
)
from tokendrop_provider.issuers.base import IssuedToken, MintedToken, TokenIssuer
from tokendrop_provider.issuers.buildkite import (
    BuildkiteClient,
    Cluster,
    ip_list,
    limiter_key,
    normalize_rest_url,
    parse_scope,
    split_ip_list,
)
from tokendrop_provider.ratelimit import RateLimiter, clear_shared_limiters
from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import BuildkiteSettings

RATE_LIMIT_BODY = {"message": "You have exceeded your API rate limit. Please wait 7 seconds before making more "
                              "requests.", "scope": "rest", "limit": 200, "current": 201, "reset": 7}


class Waits:
    """Stands in for every sleep: records what the client would have waited and moves a fake clock
    (shared by the limiters) forward by as much; `on_sleep` lets the server's time pass too."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float, cancel: threading.Event | None) -> bool:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()
        return cancel is not None and cancel.is_set()


@pytest.fixture
def em(fresh_buildkite_emulator: BuildkiteEmulator) -> BuildkiteEmulator:
    return fresh_buildkite_emulator


@pytest.fixture
def waits() -> Waits:
    return Waits()


class Budgets:
    """Fake-clock limiters with the documented rates: one per organization, one for the user."""

    def __init__(self, waits: Waits) -> None:
        self.waits = waits
        self.user = RateLimiter(50, 60, name="user", clock=waits.clock, sleep=waits.sleep)
        self.orgs: dict[str, RateLimiter] = {}

    def org(self, organization: str) -> RateLimiter:
        if organization not in self.orgs:
            self.orgs[organization] = RateLimiter(200, 60, name=f"org {organization}", clock=self.waits.clock,
                                                  sleep=self.waits.sleep)
        return self.orgs[organization]


@pytest.fixture
def budgets(waits: Waits) -> Budgets:
    return Budgets(waits)


def make_client(em: BuildkiteEmulator, waits: Waits, budgets: Budgets | None = None, token: str | None = None,
                **kw) -> BuildkiteClient:
    budgets = budgets or Budgets(waits)
    settings = BuildkiteSettings(rest_url=em.url, api_token=Secret(token or em.sandbox_token), organization="acme")
    return BuildkiteClient(settings, user_limiter=budgets.user, org_limiter=budgets.org, sleep=waits.sleep, **kw)


@pytest.fixture
def client(em: BuildkiteEmulator, waits: Waits, budgets: Budgets) -> BuildkiteClient:
    with make_client(em, waits, budgets) as c:
        yield c


@pytest.fixture
def scope(em: BuildkiteEmulator) -> str:
    return f"acme/{em.create_cluster('acme', 'linux')}"


def in_minutes(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


# -- construction --------------------------------------------------------------------------------------

def test_missing_token_is_a_config_error_naming_buildkite_api_token():
    with pytest.raises(ConfigError) as info:
        BuildkiteClient(BuildkiteSettings(api_token=None, organization="acme"))
    assert info.value.attribute == ("buildkite_api_token",)
    assert "BUILDKITE_API_TOKEN" in info.value.detail


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.buildkite.com", "https://api.buildkite.com"),
    ("https://api.buildkite.com/", "https://api.buildkite.com"),
    ("https://api.buildkite.com/v2", "https://api.buildkite.com"),
    ("api.buildkite.com", "https://api.buildkite.com"),
    ("", "https://api.buildkite.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_rest_url_normalization(url, expected):
    assert normalize_rest_url(url) == expected


@pytest.mark.parametrize("url", ["http://api.example.com", "ftp://x", "https://u:p@x", "https://x/?a=1"])
def test_bad_rest_urls_name_buildkite_rest_url(url):
    with pytest.raises(ConfigError) as info:
        normalize_rest_url(url)
    assert info.value.attribute == ("buildkite_rest_url",)


def test_client_is_a_token_issuer_and_hides_the_token(em, client):
    assert isinstance(client, TokenIssuer) and client.kind == "buildkite"
    assert em.sandbox_token not in repr(client)


def test_shared_limiters_per_user_and_per_organization(em):
    """One organization budget for every client; one per-user budget for every token of a user, once the
    first request has asked Buildkite (GET /v2/access-token, once per token) whose token it is."""
    clear_shared_limiters()
    em.add_user("other", ["acme"])
    try:
        settings = BuildkiteSettings(rest_url=em.url, api_token=Secret(em.sandbox_token), organization="acme")
        a, b = BuildkiteClient(settings), BuildkiteClient(settings)
        second = BuildkiteClient(BuildkiteSettings(rest_url=em.url, api_token=Secret(em.add_api_token("sandbox"))))
        stranger = BuildkiteClient(BuildkiteSettings(rest_url=em.url, api_token=Secret(em.add_api_token("other"))))
        assert a.user_limiter is b.user_limiter  # same token: shared before any request
        assert (a.user_limiter.rate, a.user_limiter.per) == (50, 60)
        acme = a._http("acme").limiters
        for client in (b, second, stranger):
            client._http("acme")
        assert a.user_limiter is b.user_limiter is second.user_limiter
        assert stranger.user_limiter is not a.user_limiter
        assert acme[1] is a.user_limiter
        assert acme[0] is b._http("acme").limiters[0] is stranger._http("acme").limiters[0]  # one org budget
        assert (acme[0].rate, acme[0].per) == (200, 60)
        assert a._http("globex").limiters[0] is not acme[0]
        assert len(em.requests(path="/v2/access-token")) == 3  # a and b share one lookup
        key = limiter_key(a.rest_url, Secret(em.sandbox_token))
        assert em.sandbox_token not in key and key.startswith(f"buildkite|{em.url}|user|")
        assert "sandbox@example.com" not in repr(a.user_limiter)
    finally:
        clear_shared_limiters()


def test_a_second_token_of_the_user_sees_the_budget_the_first_one_spent(em):
    """No fakes: the emulator counts 50 requests per minute per user, as the client assumes. After 48
    requests with one token and 2 with another token of the same user, the server refuses the next
    request of either token, and the first client's limiter knows it has nothing left. With a budget
    per token it would still believe in 2 more requests, and send them into 429s."""
    clear_shared_limiters()
    first, second = em.sandbox_token, em.add_api_token("sandbox")
    cluster = em.create_cluster("acme", "budget")
    try:
        with BuildkiteClient(BuildkiteSettings(rest_url=em.url, api_token=Secret(first)), max_retries=0) as a, \
                BuildkiteClient(BuildkiteSettings(rest_url=em.url, api_token=Secret(second)), max_retries=0) as b:
            for _ in range(47):  # + its access-token lookup = 48
                assert a.get_cluster("acme", cluster) is not None
            assert b.get_cluster("acme", cluster) is not None  # + its lookup = 50
            assert a.user_limiter.available() < 1
            assert a.user_limiter is b.user_limiter
        refused = requests.get(f"{em.url}/v2/organizations/acme/clusters/{cluster}",
                               headers={"Authorization": f"Bearer {first}"}, timeout=30)
        assert refused.status_code == 429 and refused.json()["scope"] == "rest_user"
        assert 429 not in [r["status"] for r in em.requests()][:-1]
    finally:
        clear_shared_limiters()


def test_scopes_and_ip_lists():
    assert parse_scope("acme/0189") == ("acme", "0189")
    for bad in ("acme", "/x", "acme/", "a/b/c"):
        with pytest.raises(ConfigError):
            parse_scope(bad)
    assert ip_list(["10.0.0.0/8", "192.0.2.7/32"]) == "10.0.0.0/8 192.0.2.7/32"
    assert split_ip_list("10.0.0.0/8 192.0.2.7/32") == ["10.0.0.0/8", "192.0.2.7/32"]
    assert split_ip_list("0.0.0.0/0") is None and split_ip_list(None) is None and split_ip_list("") is None
    for bad in ("10.0.0.0/8", [], ["10.0.0.1/8"], ["nope"], ["2001:db8::/32"], ["10.0.0.0/8", "::1"]):
        with pytest.raises(ConfigError) as info:
            ip_list(bad)
        assert info.value.attribute == ("allowed_ip_addresses",)


# -- clusters --------------------------------------------------------------------------------------------

def test_cluster_crud(em, client):
    cluster = client.create_cluster("acme", "linux", description="Linux agents", emoji=":penguin:", color="#FF9900")
    assert isinstance(cluster, Cluster)
    assert (cluster.organization, cluster.name, cluster.description, cluster.emoji, cluster.color) == \
        ("acme", "linux", "Linux agents", ":penguin:", "#FF9900")
    assert cluster.graphql_id and cluster.default_queue_id is None and cluster.created_at.endswith("Z")
    assert client.get_cluster("acme", cluster.id) == cluster
    assert client.list_clusters("acme") == [cluster]

    updated = client.update_cluster("acme", cluster.id, name="linux-2", description=None, emoji=":penguin:",
                                    color="#00FF00")
    assert (updated.name, updated.description, updated.color) == ("linux-2", None, "#00FF00")
    assert em.clusters[cluster.id].description is None  # None clears: every field is sent

    assert client.delete_cluster("acme", cluster.id) is True
    assert client.delete_cluster("acme", cluster.id) is False
    assert client.get_cluster("acme", cluster.id) is None


def test_list_clusters_reads_every_page(em, client):
    for i in range(130):
        em.create_cluster("acme", f"c{i:03d}")
    em.clear_requests()
    assert [c.name for c in client.list_clusters("acme")] == [f"c{i:03d}" for i in range(130)]
    assert len(em.requests()) == 2


def test_cluster_input_is_checked_before_any_call(em, client):
    with pytest.raises(ConfigError) as info:
        client.create_cluster("acme", " ")
    assert info.value.attribute == ("name",)
    with pytest.raises(ConfigError):
        client.get_cluster("acme", "..")
    assert em.requests() == []


def test_ids_cannot_escape_the_path(em, client):
    assert client.get_cluster("acme", "../../other/clusters") is None
    assert em.requests()[-1]["path"] == "/v2/organizations/acme/clusters/..%2F..%2Fother%2Fclusters"


def test_unknown_organization_is_not_found(em, client):
    with pytest.raises(IssuerNotFound, match="organization 'nope' not found or not visible"):
        client.list_clusters("nope")
    em.clear_requests()
    assert client.organization_visible("acme") is True and client.organization_visible("nope") is False
    assert [r["query"] for r in em.requests()] == [{"per_page": "1"}] * 2  # one small read each


# -- cluster agent tokens -----------------------------------------------------------------------------

def test_mint_lookup_list_update_revoke(em, client, scope):
    expiry = in_minutes(60)
    minted = client.mint(scope, "elastic stack [td:0123456789ab]", expires_at=expiry,
                         allowed_ip_addresses=["10.0.0.0/8", "192.0.2.7/32"])
    assert isinstance(minted, MintedToken) and isinstance(minted.value, Secret)
    assert minted.value.reveal() in em.minted_values()
    token = minted.token
    assert token.scope == scope and token.description == "elastic stack [td:0123456789ab]"
    assert token.extra["allowed_ip_addresses"] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert em.tokens[token.id].allowed_ip_addresses == "10.0.0.0/8 192.0.2.7/32"  # one string on the wire
    assert token.expires_at.startswith(expiry.strftime("%Y-%m-%dT%H:%M:%S"))
    assert [r["method"] for r in em.requests()] == ["POST"]

    assert client.lookup(scope, token.id) == token
    assert client.list_tokens(scope) == [token]

    updated = client.update(scope, token.id, "renamed", allowed_ip_addresses=None)
    assert updated.id == token.id and updated.description == "renamed"
    assert updated.extra["allowed_ip_addresses"] is None and updated.expires_at == token.expires_at
    assert em.tokens[token.id].allowed_ip_addresses == "0.0.0.0/0"  # the restriction is lifted
    put = em.requests(method="PUT")[-1]
    assert put["status"] == 200

    assert client.revoke(scope, token.id) is True
    assert client.revoke(scope, token.id) is False
    assert client.lookup(scope, token.id) is None and client.list_tokens(scope) == []


def test_mint_without_options_never_expires(em, client, scope):
    token = client.mint(scope, "plain").token
    assert token.expires_at is None and token.extra["allowed_ip_addresses"] is None


def test_mint_input_is_checked_before_any_call(em, client, scope):
    with pytest.raises(ConfigError) as info:
        client.mint(scope, "  ")
    assert info.value.attribute == ("description",)
    with pytest.raises(ConfigError) as info:
        client.mint(scope, "x", allowed_ip_addresses=["10.0.0.0/33"])
    assert info.value.attribute == ("allowed_ip_addresses",)
    with pytest.raises(ConfigError) as info:
        client.mint(scope, "x", expires_at="next week")
    assert info.value.attribute == ("expires_at",)
    with pytest.raises(ConfigError):
        client.mint("no-cluster", "x")
    assert em.requests() == []


def test_expired_tokens_are_gone_for_lookup_and_listing(em, client, scope):
    token = client.mint(scope, "short", expires_at=in_minutes(30)).token
    em.expire_token(token.id)
    assert client.lookup(scope, token.id) is None
    assert client.get_token(scope, token.id) is not None  # Buildkite still shows it
    assert client.list_tokens(scope) == []
    assert [t.id for t in client.list_tokens(scope, include_expired=True)] == [token.id]


def test_listing_250_tokens_takes_3_calls(em, client, scope):
    cluster_id = scope.split("/")[1]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids = [em.create_cluster_token(cluster_id, f"t{i}", created_at=start + timedelta(seconds=i))[0]
           for i in range(250)]
    em.clear_requests()
    tokens = client.list_tokens(scope)
    assert [t.id for t in tokens] == ids  # nothing lost or repeated across pages
    assert all(isinstance(t, IssuedToken) and t.scope == scope for t in tokens)
    calls = em.requests()
    assert len(calls) == 3
    assert {c["path"] for c in calls} == {f"/v2/organizations/acme/clusters/{cluster_id}/tokens"}
    assert [(c["query"]["page"], c["query"]["per_page"]) for c in calls] == [("1", "100"), ("2", "100"),
                                                                              ("3", "100")]


# -- errors ---------------------------------------------------------------------------------------------

def test_401_names_buildkite_api_token(em, waits):
    with make_client(em, waits, token="bkua_wrong") as c, pytest.raises(IssuerAuthError) as info:
        c.list_clusters("acme")
    assert info.value.summary == "Buildkite rejected the API token"
    assert info.value.attribute == ("buildkite_api_token",) and info.value.status == 401
    assert "bkua_wrong" not in str(info.value)


def test_403_explains_the_missing_scope(em, waits, scope):
    with make_client(em, waits, token=em.add_api_token("sandbox", scopes=["read_clusters"])) as c, \
            pytest.raises(IssuerAuthError) as info:
        c.mint(scope, "x")
    assert info.value.status == 403 and "write_clusters" in info.value.detail


def test_404_not_found_or_not_visible(client, scope):
    missing = "acme/00000000-0000-0000-0000-000000000000"
    with pytest.raises(IssuerNotFound):
        client.list_tokens(missing)
    with pytest.raises(IssuerNotFound):
        client.mint(missing, "x")
    assert client.lookup(scope, "00000000-0000-0000-0000-000000000000") is None
    assert client.revoke(scope, "00000000-0000-0000-0000-000000000000") is False


def test_422_maps_the_message_to_our_attribute(em, client, scope):
    with pytest.raises(IssuerValidationError) as info:
        client.mint(scope, "x", expires_at=in_minutes(5))  # the server's clock decides
    assert info.value.attribute == ("expires_at",) and "10 minutes" in info.value.detail
    token = client.mint(scope, "x").token
    em.add_fault("/tokens/", method="PUT", status=422,
                 body={"message": "Validation failed: Allowed ip addresses contains an invalid IP address"})
    with pytest.raises(IssuerValidationError) as info:
        client.update(scope, token.id, "x", allowed_ip_addresses=["10.0.0.0/8"])
    assert info.value.attribute == ("allowed_ip_addresses",)
    with pytest.raises(IssuerValidationError) as info:
        client.create_cluster("acme", "x", color="orange")
    assert info.value.attribute == ("color",)


def test_500_on_create_is_not_retried(em, client, scope):
    em.add_fault("/tokens$", method="POST", status=500, when="after")
    with pytest.raises(IssuerError) as info:
        client.mint(scope, "x")
    assert info.value.status == 500
    assert len(em.requests(method="POST")) == 1
    assert len(em.cluster_tokens(scope.split("/")[1])) == 1  # Buildkite did create it: a retry would mint twice


def test_500_on_list_is_retried(em, client, scope, waits):
    em.add_fault("/tokens$", method="GET", status=502, count=2)
    assert client.list_tokens(scope) == []
    assert [r["status"] for r in em.requests()] == [502, 502, 200]
    assert len(waits.slept) >= 2


def test_create_response_without_a_value_revokes_the_token(em, client, scope):
    em.add_fault("/tokens$", method="POST", status=201, when="after",
                 body={"id": "11111111-1111-1111-1111-111111111111", "description": "x"})
    with pytest.raises(IssuerError, match="returned no value"):
        client.mint(scope, "x")
    assert em.requests(method="DELETE")[-1]["path"].endswith("/tokens/11111111-1111-1111-1111-111111111111")


# -- rate limits ------------------------------------------------------------------------------------------

def test_429_with_rate_limit_reset_is_retried_then_succeeds(em, client, scope, waits):
    em.add_fault("/tokens$", method="POST", status=429, body=RATE_LIMIT_BODY, headers={"RateLimit-Reset": "7"},
                 count=2)
    em.clear_requests()
    minted = client.mint(scope, "after 429")
    assert minted.token.description == "after 429"
    assert [r["status"] for r in em.requests()] == [429, 429, 201]
    assert len(em.cluster_tokens(scope.split("/")[1])) == 1  # a 429 never created anything
    assert sum(1 for s in waits.slept if s >= 7) >= 2  # each retry waited for the window to reset


def test_429_body_pauses_the_budget_it_names(em, client, scope, waits, budgets):
    body = {**RATE_LIMIT_BODY, "scope": "rest_user", "limit": 50, "current": 51, "reset": 42}
    em.add_fault("/tokens$", method="GET", status=429, body=body)  # no headers: the body alone says it
    client.list_tokens(scope)
    assert any(s >= 42 for s in waits.slept)
    org = budgets.orgs["acme"]
    assert budgets.user._paused_until >= 42 and org._paused_until < 42


def test_429_past_every_retry_is_a_rate_limited_error(em, waits, scope):
    with make_client(em, waits, max_retries=2) as c:
        em.add_fault("/tokens$", status=429, body=RATE_LIMIT_BODY, count=10)
        with pytest.raises(RateLimitedError) as info:
            c.list_tokens(scope)
    assert "gave up after 3 attempt(s)" in info.value.detail and "200 requests per minute" in info.value.detail
    assert len(em.requests()) == 3


@pytest.mark.parametrize(("budget", "limits"), [("user", {"user_limit": 3}), ("org", {"org_limit": 3})])
def test_each_budget_is_honoured_from_its_headers(em, client, scope, waits, budgets, budget, limits):
    """The server allows 3 requests per window on one budget. The client reads that budget's
    Remaining/Reset headers and waits for the window on its own: it never sees a 429."""
    em.set_rate_limit(**limits)
    waits.on_sleep = em.set_rate_limit  # time passes at the server too: its windows start afresh
    for i in range(7):
        client.mint(scope, f"t{i}")
    assert {r["status"] for r in em.requests()} == {201}
    assert len(em.requests()) == 7
    # One wait for the server's window (Reset: 60 s) once Remaining hit 0, then the documented pace.
    long_waits = [s for s in waits.slept if s >= 59]
    pace = 60 / (50 if budget == "user" else 200)
    assert len(long_waits) == 1
    assert all(s <= pace + 0.01 for s in waits.slept if s < 59)
    paused = budgets.user if budget == "user" else budgets.orgs["acme"]
    other = budgets.orgs["acme"] if budget == "user" else budgets.user
    assert paused._paused_until > 0 and other._paused_until < 0  # only the exhausted budget stopped


def test_every_request_takes_a_slot_of_both_budgets(em, waits, scope):
    budgets = Budgets(waits)
    budgets.user = RateLimiter(2, 60, name="user", clock=waits.clock, sleep=waits.sleep)
    em.set_rate_limit(enabled=False)
    with make_client(em, waits, budgets) as c:
        c.list_tokens(scope)
        assert budgets.user.available() == pytest.approx(1, abs=0.01)
        assert budgets.orgs["acme"].available() == pytest.approx(199, abs=0.01)
        c.list_tokens(scope)
        assert waits.slept == []
        c.list_tokens(scope)  # the user budget (2 per minute) is spent: wait for one slot
    assert waits.slept and sum(waits.slept) >= 29  # one slot of 2 per minute


def test_the_user_budget_is_shared_across_organizations(em, waits):
    em.add_organization("globex")
    em.users["sandbox"].organizations.add("globex")
    em.set_rate_limit(enabled=False)
    budgets = Budgets(waits)
    budgets.user = RateLimiter(2, 60, name="user", clock=waits.clock, sleep=waits.sleep)
    with make_client(em, waits, budgets) as c:
        c.list_clusters("acme")
        c.list_clusters("globex")
        assert waits.slept == []
        c.list_clusters("globex")
    assert waits.slept
    assert set(budgets.orgs) == {"acme", "globex"}


# -- secrets never leak ------------------------------------------------------------------------------------

def test_token_values_never_reach_logs_or_exceptions(em, client, scope, caplog):
    caplog.set_level(logging.DEBUG)
    minted = [client.mint(scope, f"t{i}") for i in range(3)]
    client.list_tokens(scope)
    client.update(scope, minted[0].token.id, "x", allowed_ip_addresses=["10.0.0.0/8"])
    client.revoke(scope, minted[0].token.id)
    leaked = minted[1].value.reveal()
    em.add_fault("/tokens$", method="POST", status=422,
                 body={"message": f"Validation failed: Description {leaked} and {em.sandbox_token}"})
    failures = []
    for call in (lambda: client.mint(scope, "x"),
                 lambda: client.list_tokens("acme/00000000-0000-0000-0000-000000000000")):
        with pytest.raises(IssuerError) as info:
            call()
        failures.append(info.value)
    text = caplog.text + "".join(f"{e!s}{e!r}{e.summary}{e.detail}" for e in failures)
    assert em.sandbox_token not in text
    for m in minted:
        assert m.value.reveal() not in caplog.text
        assert m.value.reveal() not in repr(m)
    assert "POST /v2/organizations/acme/clusters/" in caplog.text


# -- Link pagination details -------------------------------------------------------------------------------

BASE = "https://api.buildkite.com/v2/organizations/acme/clusters/c1/tokens"


def _tok(i: int) -> dict:
    return {"id": f"t{i}", "description": f"t{i}", "allowed_ip_addresses": "0.0.0.0/0", "expires_at": None}


@responses.activate
def test_pages_follow_the_next_link_whatever_its_position():
    responses.add(responses.GET, BASE, json=[_tok(1)], headers={
        "Link": f'<{BASE}?page=3&per_page=100>; rel="last", <{BASE}?page=2&per_page=100>; rel="next"'})
    responses.add(responses.GET, BASE, json=[_tok(2)], headers={"Link": f'<{BASE}?page=1&per_page=100>; rel="first"'})
    client = BuildkiteClient(BuildkiteSettings(api_token=Secret("s3cret-token")),
                             user_limiter=RateLimiter(1000, 1), org_limiter=lambda org: RateLimiter(1000, 1))
    assert [t.id for t in client.list_tokens("acme/c1")] == ["t1", "t2"]
    assert "page=2" in responses.calls[1].request.url


@responses.activate
def test_pages_refuse_a_foreign_next_link_and_stop_loops():
    responses.add(responses.GET, BASE, json=[_tok(1)],
                  headers={"Link": '<https://evil.example.com/v2/x?page=2>; rel="next"'})
    client = BuildkiteClient(BuildkiteSettings(api_token=Secret("s3cret-token")),
                             user_limiter=RateLimiter(1000, 1), org_limiter=lambda org: RateLimiter(1000, 1))
    with pytest.raises(IssuerError, match="outside its API"):
        client.list_tokens("acme/c1")
    responses.replace(responses.GET, BASE, json=[_tok(1)], headers={"Link": f'<{BASE}?page=2>; rel="next"'})
    with pytest.raises(IssuerError, match="pagination loop"):
        client.list_tokens("acme/c1")
    responses.replace(responses.GET, BASE, json={"not": "a list"})
    with pytest.raises(IssuerError, match="unexpected response"):
        client.list_tokens("acme/c1")
