"""TokenVaultClient against the Token Vault emulator: the CLI's wire (docs/wire.md, "Token Vault") for
agents, agent grants, scoped keys and key grants; scopes checked up front and SCOPE_DENIED as a typed
error naming the scope; the TokenIssuer contract (a token is an agent's key, rotated in place); error
mapping and scrubbing; retries that never repeat a create. Waits go through a recording sleep: no
test waits for real."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tokendrop_provider.errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
)
from tokendrop_provider.issuers.tokenvault import (
    TokenVaultClient,
    TokenVaultHumanOnlyError,
    TokenVaultScopeError,
    normalize_url,
)
from tokendrop_provider.ratelimit import RateLimiter
from tokendrop_provider.sandbox.tokenvault import TokenVaultEmulator
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import TokenVaultSettings
from tokendrop_provider.timestamps import parse_rfc3339


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float, cancel: threading.Event | None) -> bool:
        self.slept.append(seconds)
        return False


@pytest.fixture
def em(fresh_tokenvault_emulator: TokenVaultEmulator) -> TokenVaultEmulator:
    return fresh_tokenvault_emulator


def make_client(em: TokenVaultEmulator, key: str | None = None, **kw) -> TokenVaultClient:
    sleeps = kw.pop("sleep", None) or Sleeps()
    limiter = RateLimiter(1000, 1, name="test")
    return TokenVaultClient(TokenVaultSettings(api_url=em.url, api_key=Secret(key or em.admin_key)),
                            limiter=limiter, sleep=sleeps, **kw)


@pytest.fixture
def client(em: TokenVaultEmulator):
    with make_client(em) as c:
        yield c


# -- construction ------------------------------------------------------------------------------------

def test_missing_key_names_the_setting():
    with pytest.raises(ConfigError) as err:
        TokenVaultClient(TokenVaultSettings(api_url="https://api.tokenvault.uk", api_key=None))
    assert err.value.attribute == ("tokenvault_api_key",) and "TOKENVAULT_API_KEY" in err.value.detail


def test_only_a_tvkey_key_is_accepted(em):
    """The provider authenticates as a scoped API key: an agent key or anything else fails before any call."""
    for wrong in ("tvagent_" + "a" * 40, "some-id-token"):
        with pytest.raises(ConfigError) as err:
            make_client(em, key=wrong)
        assert err.value.attribute == ("tokenvault_api_key",) and "tvkey_" in err.value.detail
        assert wrong not in str(err.value)


def test_url_must_be_https_unless_loopback():
    assert normalize_url("api.tokenvault.uk/") == "https://api.tokenvault.uk"
    assert normalize_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    for bad in ("http://api.tokenvault.uk", "ftp://x", "https://user:pw@api.tokenvault.uk", "https://x/?q=1"):
        with pytest.raises(ConfigError) as err:
            normalize_url(bad)
        assert err.value.attribute == ("tokenvault_api_url",)


# -- agents and grants -------------------------------------------------------------------------------

def test_agents_round_trip(client, em):
    agent, key = client.create_agent("triage", "issue triage")
    assert isinstance(key, Secret) and key.reveal() == em.current_key(agent.id) and "tvagent" not in repr(key)
    assert (agent.name, agent.description, agent.status, agent.grants) == ("triage", "issue triage", "active", ())
    assert agent.key_created_at
    [summary] = client.list_agents()
    assert (summary.id, summary.name, summary.grant_count) == (agent.id, "triage", 0)

    github = client.add_grant(agent.id, "github")
    assert (github.service, github.expires_at, github.auto_refresh) == ("github", None, False)
    client.add_grant(agent.id, "linear")
    assert client.list_agents()[0].grant_count == 2, "grantCount arrives as a float"
    assert {g.service for g in client.get_agent(agent.id).grants} == {"github", "linear"}

    em.expire_grant(agent.id, "github")  # still listed, with a past grantExpiresAt: it no longer counts
    assert [g.service for g in client.get_agent(agent.id).grants] == ["linear"]

    assert client.remove_grant(agent.id, "linear") and not client.remove_grant(agent.id, "linear")
    client.set_status(agent.id, "suspended")
    assert client.get_agent(agent.id).status == "suspended"
    assert client.delete_agent(agent.id) and not client.delete_agent(agent.id)
    assert client.get_agent(agent.id) is None


def test_agent_grant_sends_exactly_the_cli_body_and_reports_what_the_agent_holds(client, em):
    """internal/api/agents.go AddGrants sends {agentId, serviceName} and nothing else."""
    agent, _ = client.create_agent("bot")
    grant = client.add_grant(agent.id, "github")
    [event] = [e for e in em.events() if e["event"] == "grant.created"]
    assert event["fields"] == ["agentId", "serviceName"]
    # What the client returns is the agent's record, not an echo of the request: a grant the dashboard
    # set to auto refresh with an expiry shows as such.
    assert client.remove_grant(agent.id, "github")
    em.grant(agent.id, "github", expires_in=timedelta(hours=5), refresh_policy="auto")
    held = client.get_agent(agent.id).grants[0]
    assert held.auto_refresh and held.expires_at and grant.expires_at is None


def test_a_grant_the_agent_does_not_hold_afterwards_is_an_error(client, em):
    agent, _ = client.create_agent("bot")
    em.add_fault(r"/api/agents/[^/]+/grants$", method="POST", status=201, body={"success": True})
    with pytest.raises(IssuerError) as err:
        client.add_grant(agent.id, "github")
    assert err.value.attribute == ("grants",) and "no live grant" in err.value.detail


def test_rotate_agent_key_keeps_the_agent(client, em):
    agent, key = client.create_agent("bot")
    rotated, new_key = client.rotate_agent_key(agent.id)
    assert rotated.id == agent.id and new_key != key and new_key.reveal() == em.current_key(agent.id)
    assert rotated.key_created_at and rotated.key_created_at >= agent.key_created_at


# -- scoped keys and key grants -----------------------------------------------------------------------

def test_keys_round_trip(client, em):
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    key, secret = client.create_key("ci", ["credentials:read", "tokens:list"], expires)
    assert secret.reveal().startswith("tvkey_") and "tvkey" not in repr(secret)
    assert (key.name, key.scopes, key.grants) == ("ci", ("credentials:read", "tokens:list"), ())
    assert parse_rfc3339(key.expires_at) == parse_rfc3339(expires)
    assert key.id in {k.id for k in client.list_keys()}

    week = client.grant_key(key.id, "github", expires_in_hours=7 * 24)
    left = parse_rfc3339(week.expires_at) - datetime.now(UTC)
    assert timedelta(days=7) - timedelta(minutes=1) < left <= timedelta(days=7)
    assert client.grant_key(key.id, "linear").expires_at is None
    [event, _] = [e for e in em.events() if e["event"] == "key_grant.created"]
    assert event["fields"] == ["expiresInHours", "serviceName"]
    assert {g.service for g in client.get_key(key.id).grants} == {"github", "linear"}
    assert client.ungrant_key(key.id, "linear") and not client.ungrant_key(key.id, "linear")

    # Rotating another principal's key is human-only; the key itself may.
    with pytest.raises(TokenVaultHumanOnlyError) as human:
        client.rotate_api_key(key.id)
    assert human.value.status == 403 and "HUMAN_ONLY" in human.value.detail
    with make_client(em, key=secret.reveal()) as itself:
        new_secret = itself.rotate_api_key(key.id)
    assert new_secret.reveal() != secret.reveal()
    assert client.revoke_key(key.id) and not client.revoke_key(key.id) and client.get_key(key.id) is None


def test_key_grant_expiry_is_checked_before_any_call(client, em):
    key, _ = client.create_key("ci", ["tokens:list"], None)
    em.clear_requests()
    for hours in (0, 721, True):
        with pytest.raises(ConfigError) as err:
            client.grant_key(key.id, "github", expires_in_hours=hours)
        assert err.value.attribute == ("expires_in",)
    assert em.requests() == []


# -- scopes -------------------------------------------------------------------------------------------

def test_a_missing_scope_is_a_typed_error_naming_it(em):
    """SCOPE_DENIED {code, message, missingScope} (internal/api/client.go parseErrorBody)."""
    with make_client(em, key=em.mint_key(["agents:read"])) as client, \
            pytest.raises(TokenVaultScopeError) as err:
        client.create_agent("bot")
    assert err.value.missing == ("agents:create",) and err.value.status == 403
    assert err.value.attribute == ("tokenvault_api_key",)
    assert "agents:create" in err.value.summary and "--scopes agents:create" in err.value.detail
    assert em.agent_ids() == []


def test_scopes_are_checked_up_front_with_whoami(em):
    with make_client(em, key=em.mint_key(["agents:read", "grants:write"])) as client:
        assert client.missing_scopes(["agents:read", "grants:write"]) == []
        with pytest.raises(TokenVaultScopeError) as err:
            client.require_scopes(["agents:read", "agents:create", ("agents:delete", "agents:manage")], "the plan")
        assert err.value.missing == ("agents:create", "agents:delete or agents:manage")
        assert "agents:read, grants:write" in err.value.detail, "says which scopes the key has"
        client.missing_scopes(["agents:create"])
    assert len(em.requests(path="/api/agents/whoami")) == 1, "asked once per client"
    assert [r["method"] for r in em.requests()] == ["GET"], "nothing but whoami was called"


# -- the TokenIssuer contract -------------------------------------------------------------------------

def test_issuer_contract(client, em):
    assert client.rotates_in_place and not client.lookups_by_listing
    minted = client.mint("triage", "issue triage [td:0123456789ab]")
    token = minted.token
    assert token.scope == "triage" and token.description == "issue triage [td:0123456789ab]"
    assert token.created_at and token.expires_at is None and token.extra["grants"] == ()
    other = client.mint("someone-else", "[td:ffffffffffff]")

    assert client.lookup("triage", token.id).id == token.id
    assert [t.id for t in client.list_tokens("triage")] == [token.id], "only the agents of that name"

    rekeyed = client.rekey("triage", token.id)
    assert rekeyed.token.id == token.id and rekeyed.value != minted.value
    assert em.current_key(token.id) == rekeyed.value.reveal()

    assert client.revoke("triage", token.id) and not client.revoke("triage", token.id)
    assert client.lookup("triage", token.id) is None
    assert [t.id for t in client.list_tokens("someone-else")] == [other.token.id]
    with pytest.raises(ConfigError):
        client.mint("x", "y", expires_in=3)


# -- errors -------------------------------------------------------------------------------------------

def test_a_wrong_or_expired_key_is_an_auth_error_naming_the_setting(em):
    wrong = "tvkey_" + "w" * 40
    with make_client(em, key=wrong) as client, pytest.raises(IssuerAuthError) as err:
        client.list_agents()
    assert err.value.status == 401 and err.value.attribute == ("tokenvault_api_key",)
    assert "INVALID_KEY" in err.value.detail and wrong not in str(err.value)
    expiring = em.mint_key(["agents:read"], expires_in=timedelta(hours=1))
    em.advance(2 * 3600)
    with make_client(em, key=expiring) as client, pytest.raises(IssuerAuthError) as expired:
        client.list_agents()
    assert "past its expiry" in expired.value.detail


def test_validation_errors_name_the_attribute(client, em):
    agent, _ = client.create_agent("bot")
    client.add_grant(agent.id, "github")
    with pytest.raises(IssuerValidationError) as duplicate:
        client.add_grant(agent.id, "github")
    assert duplicate.value.status == 409 and duplicate.value.attribute == ("grants",)
    assert "GRANT_EXISTS" in duplicate.value.detail
    with pytest.raises(IssuerNotFound) as unknown:
        client.add_grant(agent.id, "no-such-service")
    assert unknown.value.attribute == ("grants",) and "SERVICE_NOT_FOUND" in unknown.value.detail
    em.add_fault(r"/api/agents$", method="POST", status=422,
                 body={"detail": [{"loc": ["body", "name"], "msg": "name is taken", "input": "x"}]})
    with pytest.raises(IssuerValidationError) as invalid:
        client.create_agent("bot")
    assert invalid.value.attribute == ("name",) and "name: name is taken" in invalid.value.detail


def test_a_locked_vault_says_so(client, em):
    em.add_fault("/api/agents", status=423, body={"detail": {"code": "VAULT_LOCKED", "message": "locked"}})
    with pytest.raises(IssuerError) as err:
        client.list_agents()
    assert err.value.summary == "Token Vault is locked"


def test_keys_are_scrubbed_from_errors(client, em):
    for leaked in ("tvagent_" + "A" * 40, "tvkey_" + "B" * 40):
        em.add_fault("/api/agents", status=400, body={"detail": f"bad key {leaked}"})
        with pytest.raises(IssuerValidationError) as err:
            client.list_agents()
        assert leaked not in str(err.value) and "***" in err.value.detail


def test_a_create_that_may_have_happened_is_never_repeated(em):
    sleeps = Sleeps()
    with make_client(em, sleep=sleeps) as client:
        em.add_fault(r"/api/agents$", method="POST", when="after", action="disconnect")
        with pytest.raises(IssuerError) as err:
            client.create_agent("bot")
        assert "not retried" in err.value.detail
        assert len(em.agent_ids("bot")) == 1, "created once, by the one request"
        # Reads are retried.
        em.add_fault("/api/agents", method="GET", status=503, count=2)
        assert len(client.list_agents()) == 1
        assert len(sleeps.slept) == 2


def test_a_failed_read_after_create_does_not_lose_the_key(em):
    with make_client(em, max_retries=0) as client:
        em.add_fault(r"/api/agents/[^/]+$", method="GET", status=500)
        agent, key = client.create_agent("bot", "d")
        assert key.reveal() == em.current_key(agent.id)
        assert agent.key_created_at is None and agent.description == "d"


# --- scoped keys as a TokenIssuer (tokendrop_tokenvault_key) ----------------------------------------

def test_keys_as_an_issuer_carry_the_marker_in_the_name_and_list_by_scope(em, client):
    from tokendrop_provider.delivery import split_description
    from tokendrop_provider.issuers.tokenvault import TokenVaultKeys

    keys = TokenVaultKeys(client)
    assert keys.kind != client.kind, "keys and agents must not share a listing cache or ownership records"
    expiry = (em.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    minted = keys.mint("ci-reader", "[td:0123456789ab]", scopes=["agents:read"], expires_at=expiry)
    assert minted.value.reveal().startswith("tvkey_")
    [record] = [k for k in em.world()["keys"] if k["id"] == minted.token.id]
    assert record["name"] == "ci-reader [td:0123456789ab]" and record["scopes"] == ["agents:read"]
    assert minted.token.scope == "ci-reader" and split_description(minted.token.description)[1] == "td:0123456789ab"
    assert parse_rfc3339(minted.token.expires_at) == parse_rfc3339(expiry)
    other = keys.mint("ci-reader-2", "[td:0123456789ab]", scopes=["agents:read"])
    assert [t.id for t in keys.list_tokens("ci-reader")] == [minted.token.id], "a scope is the exact name"
    assert keys.lookup("ci-reader", minted.token.id) is not None
    assert keys.revoke("ci-reader-2", other.token.id) is True
    assert keys.revoke("ci-reader-2", other.token.id) is False and keys.lookup("x", other.token.id) is None
    assert "tvkey_" not in f"{minted.value} {minted.value!r} {minted.token}"


def test_one_key_listing_serves_every_key_name(em, client):
    """GET /api/keys answers the whole account: refreshing keys of many names costs one listing."""
    from tokendrop_provider.issuers.tokenvault import TokenVaultKeys

    keys = TokenVaultKeys(client)
    minted = {name: keys.mint(name, "[td:0123456789ab]", scopes=["agents:read"]).token.id for name in "abc"}
    em.clear_requests()
    assert {name: [t.id for t in keys.list_tokens(name)] for name in "abc"} == {n: [i] for n, i in minted.items()}
    assert [r["path"] for r in em.requests()] == ["/api/keys"]
