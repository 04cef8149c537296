"""TfeClient (and the HttpSession under it) against the TFE emulator.

Retry waits go through a recording sleep and a fake-clock limiter, so no test waits for real
except the one that proves a rate-limited burst slows down and still succeeds.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
import responses

from tokendrop_provider.errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
    RateLimitedError,
)
from tokendrop_provider.issuers import tfe
from tokendrop_provider.issuers.base import IssuedToken, MintedToken, TokenIssuer
from tokendrop_provider.issuers.http import USER_AGENT, HttpSession, parse_retry_after
from tokendrop_provider.issuers.tfe import AgentPool, TfeClient, limiter_key, normalize_address
from tokendrop_provider.ratelimit import RateLimiter, WaitCancelled, clear_shared_limiters
from tokendrop_provider.sandbox.tfe import TfeEmulator
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import TfeSettings

RATE_LIMIT_BODY = {"errors": [{"detail": "You have exceeded the API's rate limit.", "status": 429,
                               "title": "Too many requests"}]}


class Waits:
    """Stands in for every sleep: records what the client would have waited; a fake clock for
    the limiter moves forward by the same amount."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float, cancel: threading.Event | None) -> bool:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds
        return cancel is not None and cancel.is_set()


@pytest.fixture
def em(fresh_tfe_emulator: TfeEmulator) -> TfeEmulator:
    return fresh_tfe_emulator


@pytest.fixture
def waits() -> Waits:
    return Waits()


def make_client(em: TfeEmulator, waits: Waits, token: str | None = None, **kw) -> TfeClient:
    limiter = RateLimiter(30, 1, burst=1, name="test", clock=waits.clock, sleep=waits.sleep)
    settings = TfeSettings(address=em.url, token=Secret(token or em.sandbox_token))
    return TfeClient(settings, limiter=limiter, sleep=waits.sleep, **kw)


@pytest.fixture
def client(em: TfeEmulator, waits: Waits) -> TfeClient:
    with make_client(em, waits) as c:
        yield c


# -- construction ------------------------------------------------------------------------------------

def test_missing_token_is_a_config_error_naming_tfe_token():
    with pytest.raises(ConfigError) as info:
        TfeClient(TfeSettings(address="https://app.terraform.io", token=None))
    assert info.value.attribute == ("tfe_token",)
    assert "TFE_TOKEN" in info.value.detail


@pytest.mark.parametrize(("address", "expected"), [
    ("https://app.terraform.io", "https://app.terraform.io"),
    ("https://tfe.example.com/", "https://tfe.example.com"),
    ("tfe.example.com", "https://tfe.example.com"),
    ("https://tfe.example.com/api/v2", "https://tfe.example.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost:1", "http://localhost:1"),
])
def test_address_normalization(address, expected):
    assert normalize_address(address) == expected


@pytest.mark.parametrize("address", ["http://tfe.example.com", "ftp://x", "https://u:p@x", "https://x/?a=1", ""])
def test_bad_addresses_are_config_errors_naming_tfe_address(address):
    with pytest.raises(ConfigError) as info:
        normalize_address(address)
    assert info.value.attribute == ("tfe_address",)


def test_client_is_a_token_issuer_and_hides_the_token(em, client):
    assert isinstance(client, TokenIssuer)
    assert client.kind == "tfe"
    assert em.sandbox_token not in repr(client)
    assert em.sandbox_token not in repr(client._http)


def test_shared_limiter_per_address_and_token_owner(em):
    """TFE counts requests per user: two tokens of one user share one limiter once the first request
    has asked TFE (account details, once per token) whose they are; another user's token does not."""
    clear_shared_limiters()
    em.add_user("other", ["acme"])
    try:
        token = Secret(em.sandbox_token)
        a = TfeClient(TfeSettings(address=em.url, token=token))
        b = TfeClient(TfeSettings(address=em.url, token=Secret(em.sandbox_token)))
        second = TfeClient(TfeSettings(address=em.url, token=Secret(em.add_api_token("sandbox"))))
        stranger = TfeClient(TfeSettings(address=em.url, token=Secret(em.add_api_token("other"))))
        assert a.limiter is b.limiter  # same token: shared before any request
        assert (a.limiter.rate, a.limiter.per) == (30, 1)
        key = limiter_key(a.address, token)
        assert em.sandbox_token not in key and em.sandbox_token not in repr(a.limiter)
        assert key.startswith(f"tfe|{em.url}|")
        for client in (a, b, second, stranger):
            client.list_agent_pools("acme")
        assert a.limiter is b.limiter is second.limiter
        assert stranger.limiter is not a.limiter
        assert em.sandbox_token not in repr(a.limiter)
        # One account lookup per token (a and b share theirs), then only the calls asked for.
        assert len(em.requests(path="/api/v2/account/details")) == 3
        assert len(em.requests(path="/api/v2/organizations/acme/agent-pools")) == 4
    finally:
        clear_shared_limiters()


def test_two_tokens_of_one_user_stay_within_the_user_budget(em, monkeypatch):
    """No fakes: the emulator counts 30 requests per second per user, as TFE does. Two clients with two
    tokens of that user, sending 30 requests each at once and never retrying, see no 429: after one
    account lookup each, they draw from one budget instead of one each.

    The clients' budget is lowered to 20 per second so the test does not hang on scheduling: a request
    paced by the client's clock reaches the emulator's clock late on a loaded machine (CI once saw 31
    in one emulator second at the real 30). One shared budget sends at most 20 a second, well under the
    emulator's 30; two budgets would send 40 and be refused."""
    monkeypatch.setattr(tfe, "RATE_PER_SECOND", 20)
    clear_shared_limiters()
    pool_id = em.create_agent_pool("acme", "shared-budget")
    tokens = (Secret(em.sandbox_token), Secret(em.add_api_token("sandbox")))
    clients = [TfeClient(TfeSettings(address=em.url, token=t), max_retries=0) for t in tokens]
    failures: list[Exception] = []

    def work(client: TfeClient) -> None:
        try:
            for _ in range(30):
                client.get_agent_pool(pool_id)
        except Exception as err:  # collected and asserted below
            failures.append(err)

    try:
        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        statuses = [r["status"] for r in em.requests()]
        assert failures == [] and 429 not in statuses, (failures[:1], statuses.count(429))
        assert statuses.count(200) == 62  # 2 account lookups + 60 reads
        assert clients[0].limiter is clients[1].limiter
    finally:
        for c in clients:
            c.close()
        clear_shared_limiters()


# -- agent pools ---------------------------------------------------------------------------------------

def test_agent_pool_crud(em, client):
    ws = em.workspace_id("acme", "app-prod")
    prj = em.project_id("acme", "platform")
    ex = em.workspace_id("acme", "app-staging")
    pool = client.create_agent_pool("acme", "ci-agents", False, allowed_workspace_ids=[ws],
                                    allowed_project_ids=(prj,), excluded_workspace_ids=[ex])
    assert isinstance(pool, AgentPool)
    assert pool.id.startswith("apool-")
    assert (pool.name, pool.organization, pool.organization_scoped) == ("ci-agents", "acme", False)
    assert pool.allowed_workspace_ids == (ws,)
    assert pool.allowed_project_ids == (prj,)
    assert pool.excluded_workspace_ids == (ex,)
    assert pool.created_at and pool.created_at.endswith("Z")

    assert client.get_agent_pool(pool.id) == pool
    assert client.list_agent_pools("acme") == [pool]
    assert client.get_agent_pool_by_name("acme", "ci-agents") == pool
    assert client.get_agent_pool_by_name("acme", "ci") is None

    updated = client.update_agent_pool(pool.id, name="ci-2", organization_scoped=False,
                                       allowed_workspace_ids=[], allowed_project_ids=[prj],
                                       excluded_workspace_ids=[])
    assert updated.name == "ci-2"
    assert updated.organization_scoped is False  # sent explicitly: TFE would default it to true
    assert updated.allowed_workspace_ids == ()
    assert updated.allowed_project_ids == (prj,)
    assert em.pools[pool.id].organization_scoped is False

    assert client.delete_agent_pool(pool.id) is True
    assert client.delete_agent_pool(pool.id) is False
    assert client.get_agent_pool(pool.id) is None


def test_update_always_sends_organization_scoped(em, client):
    pool = client.create_agent_pool("acme", "p", False)
    client.update_agent_pool(pool.id, name="p", organization_scoped=False, allowed_workspace_ids=(),
                             allowed_project_ids=(), excluded_workspace_ids=())
    assert em.pools[pool.id].organization_scoped is False


def test_list_agent_pools_all_pages_and_search(em, client):
    for i in range(130):
        em.create_agent_pool("acme", f"pool-{i:03d}")
    em.clear_requests()
    pools = client.list_agent_pools("acme")
    assert [p.name for p in pools] == [f"pool-{i:03d}" for i in range(130)]
    assert len(em.requests(method="GET")) == 2
    assert [p.name for p in client.list_agent_pools("acme", q="pool-12")] == \
        [f"pool-{i}" for i in range(120, 130)]


def test_pool_input_is_checked_before_any_call(em, client):
    with pytest.raises(ConfigError) as info:
        client.create_agent_pool("acme", "bad name", True)
    assert info.value.attribute == ("name",)
    with pytest.raises(ConfigError) as info:
        client.create_agent_pool("acme", "ok", True, allowed_workspace_ids="ws-abc")
    assert info.value.attribute == ("allowed_workspace_ids",)
    with pytest.raises(ConfigError):
        client.get_agent_pool("")
    assert em.requests() == []


def test_ids_cannot_escape_the_path(em, client):
    assert client.get_agent_pool("../organizations/acme") is None
    assert em.requests()[-1]["path"] == "/api/v2/agent-pools/..%2Forganizations%2Facme"  # one segment
    for bad in (".", ".."):
        with pytest.raises(ConfigError):
            client.revoke("apool-x", bad)


# -- agent tokens ---------------------------------------------------------------------------------------

def test_mint_lookup_list_revoke(em, client):
    pool = client.create_agent_pool("acme", "ci", True)
    minted = client.mint(pool.id, "tokendrop:ssm:/ci/token")
    assert isinstance(minted, MintedToken)
    assert isinstance(minted.value, Secret)
    assert minted.value.reveal() in em.minted_values()
    token = minted.token
    assert token.id.startswith("at-")
    assert (token.scope, token.description, token.expires_at, token.last_used_at) == \
        (pool.id, "tokendrop:ssm:/ci/token", None, None)
    assert token.extra["created_by"] == em.users["sandbox"].id

    assert client.lookup(pool.id, token.id) == token
    assert client.list_tokens(pool.id) == [token]

    em.mark_token_used(minted.value.reveal())
    used = client.list_tokens(pool.id)[0]
    assert used.last_used_at is not None and used.last_used_at.endswith("Z")
    assert client.lookup(pool.id, token.id).last_used_at == used.last_used_at

    assert client.revoke(pool.id, token.id) is True
    assert client.revoke(pool.id, token.id) is False
    assert client.lookup(pool.id, token.id) is None
    assert client.list_tokens(pool.id) == []


def test_mint_rejects_options(em, client):
    pool = client.create_agent_pool("acme", "ci", True)
    with pytest.raises(ConfigError, match="no options"):
        client.mint(pool.id, "x", expires_in=3600)
    assert em.requests(method="POST", path="authentication-tokens") == []


def test_listing_250_tokens_takes_3_calls(em, client):
    pool_id = em.create_agent_pool("acme", "big")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids = [em.create_agent_token(pool_id, f"t{i}", created_at=start + timedelta(seconds=i))[0]
           for i in range(250)]
    em.clear_requests()
    tokens = client.list_tokens(pool_id)
    assert [t.id for t in tokens] == ids  # oldest first, nothing lost or repeated across pages
    assert all(isinstance(t, IssuedToken) and t.scope == pool_id for t in tokens)
    calls = em.requests()
    assert len(calls) == 3
    assert all(c["path"] == f"/api/v2/agent-pools/{pool_id}/authentication-tokens" for c in calls)
    assert [c["query"]["page[number]"] for c in calls] == ["1", "2", "3"]
    assert {c["query"]["page[size]"] for c in calls} == {"100"}


# -- error mapping -------------------------------------------------------------------------------------

def test_401_is_an_auth_error_on_tfe_token(em, waits):
    bad = "x" * 14 + ".atlasv1." + "y" * 60
    with make_client(em, waits, token=bad) as c, pytest.raises(IssuerAuthError) as info:
        c.list_agent_pools("acme")
    err = info.value
    assert err.summary == "TFE rejected the token"
    assert err.attribute == ("tfe_token",)
    assert err.status == 401
    assert bad not in str(err) and bad not in repr(err)


def test_404_not_found_or_not_visible(em, client):
    with pytest.raises(IssuerNotFound, match="not found or not visible to this token") as info:
        client.list_tokens("apool-AAAAAAAAAAAAAAAA")
    assert info.value.status == 404
    assert "apool-AAAAAAAAAAAAAAAA" in info.value.summary
    with pytest.raises(IssuerNotFound):
        client.list_agent_pools("no-such-org")
    with pytest.raises(IssuerNotFound):
        client.mint("apool-AAAAAAAAAAAAAAAA", "x")
    with pytest.raises(IssuerNotFound):
        client.update_agent_pool("apool-AAAAAAAAAAAAAAAA", name="x", organization_scoped=True,
                                 allowed_workspace_ids=(), allowed_project_ids=(), excluded_workspace_ids=())
    assert client.lookup("apool-x", "at-AAAAAAAAAAAAAAAA") is None
    assert client.revoke("apool-x", "at-AAAAAAAAAAAAAAAA") is False


def test_org_without_agents_entitlement_is_not_found(em, client):
    em.seed({"organizations": [{"name": "free", "agents": False}],
             "users": [{"name": "sandbox", "organizations": ["free"]}]})
    with pytest.raises(IssuerNotFound, match="organization 'free' not found or not visible"):
        client.list_agent_pools("free")


def test_422_maps_the_pointer_to_our_attribute(em, client):
    client.create_agent_pool("acme", "dup", True)
    with pytest.raises(IssuerValidationError) as info:
        client.create_agent_pool("acme", "dup", True)
    assert info.value.attribute == ("name",)
    assert info.value.status == 422
    assert "Name has already been taken" in info.value.detail
    with pytest.raises(IssuerValidationError) as info:
        client.create_agent_pool("acme", "p2", False, allowed_workspace_ids=["ws-XXXXXXXXXXXXXXXX"])
    assert info.value.attribute == ("allowed_workspace_ids",)
    with pytest.raises(IssuerValidationError) as info:
        client.create_agent_pool("acme", "p3", False, allowed_project_ids=["prj-XXXXXXXXXXXXXXXX"])
    assert info.value.attribute == ("allowed_project_ids",)


# -- retries ---------------------------------------------------------------------------------------------

def test_429_is_retried_after_the_reset_and_then_succeeds(em, client, waits):
    pool = client.create_agent_pool("acme", "ci", True)
    headers = {"x-ratelimit-limit": "30", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "0.600"}
    em.add_fault("/authentication-tokens$", method="POST", status=429, body=RATE_LIMIT_BODY,
                 headers=headers, count=2)
    em.clear_requests()
    minted = client.mint(pool.id, "after 429")
    assert minted.token.description == "after 429"
    assert [r["status"] for r in em.requests()] == [429, 429, 201]
    assert len(em.pool_tokens(pool.id)) == 1  # a 429 never created anything, so retrying is safe
    # Each retry waited at least the server's reset, and the shared limiter was paused with it.
    assert sum(1 for s in waits.slept if s >= 0.6) >= 2


def test_retry_after_header_is_honoured(em, client, waits):
    em.add_fault("/organizations/", status=429, body=RATE_LIMIT_BODY, headers={"Retry-After": "7"})
    client.list_agent_pools("acme")
    assert any(7 <= s <= 8 for s in waits.slept)


def test_429_after_every_retry_is_rate_limited_error(em, waits):
    with make_client(em, waits, max_retries=3) as c:
        em.add_fault("/organizations/", status=429, body=RATE_LIMIT_BODY, count=10,
                     headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"})
        with pytest.raises(RateLimitedError) as info:
            c.list_agent_pools("acme")
    assert info.value.status == 429
    assert "gave up after 4 attempt(s)" in info.value.detail
    assert len(em.requests()) == 4


def test_a_server_asking_for_too_long_a_wait_fails_fast(em, waits):
    em.add_fault("/organizations/", status=429, body=RATE_LIMIT_BODY, headers={"Retry-After": "3600"})
    with make_client(em, waits) as c, pytest.raises(RateLimitedError, match="asks to wait 3600 s"):
        c.list_agent_pools("acme")
    assert len(em.requests()) == 1


def test_rate_limit_headers_pause_the_client_before_the_server_refuses(em):
    """No fakes: the server allows 5 requests per 0.3 s. The client reads x-ratelimit-remaining
    and x-ratelimit-reset and waits on its own, so a sequential run never sees a 429."""
    em.set_rate_limit(limit=5, window=0.3)
    limiter = RateLimiter(1000, 1, burst=1000, name="generous")  # far above the server's budget
    with TfeClient(TfeSettings(address=em.url, token=Secret(em.sandbox_token)), limiter=limiter) as c:
        pool = c.create_agent_pool("acme", "burst", True)
        for i in range(12):
            c.mint(pool.id, f"t{i}")
    statuses = [r["status"] for r in em.requests()]
    assert statuses == [201] * 13


def test_concurrent_burst_against_the_real_limit_slows_down_but_succeeds(em):
    """No fakes: 4 threads share one client and limiter; any 429 is retried after the reset."""
    em.set_rate_limit(limit=5, window=0.3)
    limiter = RateLimiter(1000, 1, burst=1000, name="generous")
    errors: list[BaseException] = []
    # Extra retries: on a loaded machine one thread may lose the race for a freed slot repeatedly.
    with TfeClient(TfeSettings(address=em.url, token=Secret(em.sandbox_token)), limiter=limiter,
                   max_retries=10) as c:
        pool = c.create_agent_pool("acme", "burst", True)

        def work(n: int) -> None:
            try:
                for i in range(4):
                    c.mint(pool.id, f"t{n}-{i}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert errors == []
    assert len(em.pool_tokens(pool.id)) == 16
    statuses = [r["status"] for r in em.requests()]
    assert statuses.count(201) == 17
    assert set(statuses) <= {201, 429}


def test_500_on_create_is_not_retried(em, client):
    pool = client.create_agent_pool("acme", "ci", True)
    em.add_fault("/authentication-tokens$", method="POST", status=500, when="after")
    em.clear_requests()
    with pytest.raises(IssuerError) as info:
        client.mint(pool.id, "x")
    assert info.value.status == 500
    assert len(em.requests(method="POST")) == 1
    # TFE did create it; a retry would have minted a second, unseen token.
    assert len(em.pool_tokens(pool.id)) == 1


def test_500_on_get_is_retried(em, client, waits):
    pool = client.create_agent_pool("acme", "ci", True)
    em.add_fault(r"/agent-pools/apool-\w+$", method="GET", status=500, count=2)
    em.clear_requests()
    assert client.get_agent_pool(pool.id) == pool
    assert [r["status"] for r in em.requests()] == [500, 500, 200]
    assert len(waits.slept) >= 2


def test_503_on_delete_is_retried(em, client):
    pool = client.create_agent_pool("acme", "ci", True)
    token = client.mint(pool.id, "x").token
    em.add_fault("/authentication-tokens/", method="DELETE", status=503)
    assert client.revoke(pool.id, token.id) is True


def test_lost_connection_on_post_is_not_retried_but_on_get_it_is(em, client):
    pool = client.create_agent_pool("acme", "ci", True)
    em.add_fault("/authentication-tokens$", method="POST", action="disconnect")
    with pytest.raises(IssuerError, match="not retried") as info:
        client.mint(pool.id, "x")
    assert "Could not reach TFE" in str(info.value)
    assert len(em.requests(method="POST", path="authentication-tokens")) == 1

    em.add_fault(r"/agent-pools/apool-\w+$", method="GET", action="disconnect")
    em.clear_requests()
    assert client.get_agent_pool(pool.id) == pool
    assert [r["status"] for r in em.requests()] == [None, 200]


def test_connection_refused_is_retried_even_for_post(waits):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = TfeSettings(address=f"http://127.0.0.1:{port}", token=Secret("t" * 14 + ".atlasv1." + "z" * 60))
    limiter = RateLimiter(30, 1, burst=1, clock=waits.clock, sleep=waits.sleep)
    with TfeClient(settings, limiter=limiter, sleep=waits.sleep, max_retries=2) as c, \
            pytest.raises(IssuerError, match="connection failed") as info:
        c.mint("apool-x", "x")  # never reached the server, so a retry cannot mint twice
    assert "after 3 attempt(s)" in info.value.detail
    assert "t" * 14 not in str(info.value)


def test_cancel_stops_retry_waits(em, waits):
    cancel = threading.Event()
    cancel.set()
    em.add_fault("/organizations/", status=503, count=5)
    with make_client(em, waits, cancel=cancel) as c, pytest.raises(WaitCancelled):
        c.list_agent_pools("acme")
    assert len(em.requests()) == 1


# -- secrets never leak ------------------------------------------------------------------------------------

def test_token_values_never_reach_logs_or_exceptions(em, client, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    failures: list[BaseException] = []
    pool = client.create_agent_pool("acme", "ci", True)
    minted = [client.mint(pool.id, f"t{i}") for i in range(3)]
    client.list_tokens(pool.id)
    client.lookup(pool.id, minted[0].token.id)
    client.revoke(pool.id, minted[0].token.id)
    # An error whose body quotes a live token value and the API token: neither may surface.
    leaked = minted[1].value.reveal()
    em.add_fault("/authentication-tokens$", method="POST", status=422, body={"errors": [{
        "status": "422", "title": "invalid", "detail": f"bad {leaked} and {em.sandbox_token}",
        "source": {"pointer": "/data/attributes/description"}}]})
    for call in (lambda: client.mint(pool.id, "x"),
                 lambda: client.list_tokens("apool-nope"),
                 lambda: make_client(em, Waits(), token="wrong-token-value").list_agent_pools("acme")):
        with pytest.raises(IssuerError) as info:
            call()
        failures.append(info.value)
    assert failures[0].attribute == ("description",)
    secrets_ = [m.value.reveal() for m in minted] + [em.sandbox_token, "wrong-token-value"]
    text = caplog.text + "".join(f"{e!s}{e!r}{e.summary}{e.detail}" for e in failures)
    for value in secrets_:
        assert value not in text
    for m in minted:
        assert m.value.reveal() not in repr(m)
    assert "POST /api/v2/agent-pools/" in caplog.text  # the requests were logged, without secrets


def test_debug_log_lines_carry_method_path_status_duration_only(em, client, caplog):
    caplog.set_level(logging.DEBUG, logger="tokendrop.http")
    client.list_agent_pools("acme", q="secret-search")
    lines = [r.getMessage() for r in caplog.records if r.name == "tokendrop.http"]
    assert any(re.fullmatch(r"GET /api/v2/organizations/acme/agent-pools -> 200 in \d+ ms", line)
               for line in lines), lines
    assert all("secret-search" not in line and "?" not in line for line in lines)


# -- HttpSession details -----------------------------------------------------------------------------------

@responses.activate
def test_session_headers_encoding_and_no_redirects():
    responses.add(responses.GET, "https://api.example.com/v2/items", json={"ok": True})
    responses.add(responses.GET, "https://api.example.com/v2/moved", status=302,
                  headers={"Location": "https://elsewhere.example.com/steal"})
    session = HttpSession("https://api.example.com/v2", issuer="Example", auth=Secret("s3cret"))
    resp = session.get("/items", params={"page[size]": 100, "filter[x][name]": "a b", "skip": None})
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert sent.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("tokendrop/")
    assert "page%5Bsize%5D=100" in sent.url and "filter%5Bx%5D%5Bname%5D=a%20b" in sent.url
    assert "skip" not in sent.url
    assert resp.json() == {"ok": True}
    assert "s3cret" not in repr(resp) and "ok" not in repr(resp)
    with pytest.raises(IssuerError, match="unexpected redirect"):
        session.get("/moved")
    assert len(responses.calls) == 2


def test_session_refuses_links_outside_the_api():
    session = HttpSession("https://api.example.com/v2", issuer="Example", auth=Secret("s3cret"))
    assert session.absolute("/v2/items?page=2") == "https://api.example.com/v2/items?page=2"
    for link in ("https://evil.example.com/v2/items", "http://api.example.com/v2/items",
                 "https://api.example.com/other", "//evil.example.com/v2"):
        with pytest.raises(IssuerError, match="outside its API"):
            session.absolute(link)


def _page(items: list[dict], next_link: str | None, pagination: dict | None = None) -> dict:
    doc: dict = {"data": items, "links": {"next": next_link}}
    if pagination is not None:
        doc["meta"] = {"pagination": pagination}
    return doc


def _tok(i: int) -> dict:
    return {"id": f"at-{i}", "type": "authentication-tokens", "attributes": {"description": f"t{i}"}}


@responses.activate
def test_pages_follow_links_next_when_there_is_no_meta():
    base = "https://tfe.example.com/api/v2/agent-pools/apool-1/authentication-tokens"
    # Both match the path; responses answers them in the order registered.
    responses.add(responses.GET, base, json=_page([_tok(1)], "/api/v2/agent-pools/apool-1/authentication-tokens"
                                                  "?page%5Bnumber%5D=2&page%5Bsize%5D=100"))
    responses.add(responses.GET, base, json=_page([_tok(2)], None))
    client = TfeClient(TfeSettings(address="https://tfe.example.com", token=Secret("s3cret")),
                       limiter=RateLimiter(1000, 1))
    assert [t.id for t in client.list_tokens("apool-1")] == ["at-1", "at-2"]
    assert "page%5Bnumber%5D=2" in responses.calls[1].request.url


@responses.activate
def test_pages_prefer_meta_so_a_canonical_host_in_links_does_not_matter():
    base = "https://tfe-alias.example.com/api/v2/agent-pools/apool-1/authentication-tokens"
    other_host = "https://tfe.example.com/api/v2/agent-pools/apool-1/authentication-tokens?page%5Bnumber%5D=2"
    responses.add(responses.GET, base, json=_page([_tok(1)], other_host, {"next-page": 2}))
    responses.add(responses.GET, base, json=_page([_tok(2)], None, {"next-page": None}))
    client = TfeClient(TfeSettings(address="https://tfe-alias.example.com", token=Secret("s3cret")),
                       limiter=RateLimiter(1000, 1))
    assert [t.id for t in client.list_tokens("apool-1")] == ["at-1", "at-2"]
    assert all(c.request.url.startswith(base) for c in responses.calls)


@responses.activate
def test_pages_refuse_a_foreign_next_link_and_stop_loops():
    base = "https://tfe.example.com/api/v2/agent-pools/apool-1/authentication-tokens"
    responses.add(responses.GET, base, json=_page([_tok(1)], "https://evil.example.com/api/v2/x"))
    client = TfeClient(TfeSettings(address="https://tfe.example.com", token=Secret("s3cret")),
                       limiter=RateLimiter(1000, 1))
    with pytest.raises(IssuerError, match="outside its API"):
        client.list_tokens("apool-1")
    assert len(responses.calls) == 1
    responses.replace(responses.GET, base, json=_page([_tok(1)], None, {"next-page": 1}))
    with pytest.raises(IssuerError, match="pagination loop"):
        client.list_tokens("apool-1")


def test_parse_retry_after():
    assert parse_retry_after("5") == 5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
