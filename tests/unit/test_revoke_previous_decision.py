"""`revoke_previous_when`: the pure decision (overlap.py) over last use, now and the thresholds; the plan
through the provider's gRPC service against the TFE emulator, whose tokens carry `last-used-at`; the
refusal where an issuer cannot tell; and Token Vault keys reporting their `lastUsedAt`."""

from __future__ import annotations

import datetime

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.attributes import validate_config
from tokendrop_provider.overlap import DEFAULT_UNUSED_FOR, decide_previous, unswitched_warning
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.registry.issuers import ISSUERS
from tokendrop_provider.timestamps import format_rfc3339, parse_rfc3339

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)
MIN = datetime.timedelta(minutes=1)
DEADLINE = NOW + datetime.timedelta(hours=1)


# -- the decision ---------------------------------------------------------------------------------


def test_overlap_ended_waits_for_the_deadline_whatever_the_use():
    assert not decide_previous("at-1", now=NOW, revoke_after=DEADLINE, last_used_at=None).revoke
    ended = decide_previous("at-1", now=NOW, revoke_after=NOW, last_used_at=NOW)
    assert ended.revoke and "grace period has ended" in ended.reason
    assert decide_previous("at-1", now=NOW, revoke_after=None).revoke, "no deadline known: revoke"


def test_unused_keeps_a_token_used_within_the_threshold_and_says_why():
    kept = decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", last_used_at=NOW - 4 * MIN)
    assert not kept.revoke
    assert kept.reason == ("previous token at-1 used 4m ago; revoked once unused for 15m or at "
                           "2026-12-02T13:00:00Z (keep_previous_for), whichever comes first.")


@pytest.mark.parametrize(("idle", "revoke"), [
    (DEFAULT_UNUSED_FOR - datetime.timedelta(seconds=1), False),
    (DEFAULT_UNUSED_FOR, True),
    (DEFAULT_UNUSED_FOR + MIN, True),
])
def test_unused_revokes_at_the_threshold(idle, revoke):
    decision = decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", last_used_at=NOW - idle)
    assert decision.revoke is revoke
    if revoke:
        assert "previous_unused_for 15m" in decision.reason and format_rfc3339(NOW - idle) in decision.reason


def test_unused_threshold_is_configurable():
    used = NOW - 10 * MIN
    assert decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", last_used_at=used,
                           unused_for=5 * MIN).revoke
    assert not decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", last_used_at=used,
                               unused_for=30 * MIN).revoke


def test_keep_previous_for_is_the_maximum_even_while_in_use():
    decision = decide_previous("at-1", now=NOW, revoke_after=NOW - MIN, when="unused", last_used_at=NOW)
    assert decision.revoke and "grace period has ended" in decision.reason


def test_never_used_or_gone_is_revoked_and_a_future_use_counts_as_now():
    assert decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", last_used_at=None).revoke
    gone = decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", live=False, last_used_at=NOW)
    assert gone.revoke and "no longer lists" in gone.reason
    skewed = decide_previous("at-1", now=NOW, revoke_after=DEADLINE, when="unused", last_used_at=NOW + 5 * MIN)
    assert not skewed.revoke and "used just now" in skewed.reason


def test_the_new_token_unused_after_half_the_overlap_is_worth_a_warning():
    keep = datetime.timedelta(hours=2)
    assert unswitched_warning("at-2", now=NOW, created_at=NOW - 59 * MIN, last_used_at=None,
                              keep_previous_for=keep) is None
    note = unswitched_warning("at-2", now=NOW, created_at=NOW - 61 * MIN, last_used_at=None, keep_previous_for=keep)
    assert note is not None and "at-2 has not been used 1h after it was minted" in note
    assert unswitched_warning("at-2", now=NOW, created_at=NOW - 90 * MIN, last_used_at=NOW - MIN,
                              keep_previous_for=keep) is None


# -- the schema: where it is accepted ---------------------------------------------------------------


def _errors(type_name: str, **values: object) -> list[str]:
    """Errors naming the overlap arguments (the required ones are left out of these configurations)."""
    resource = schema.RESOURCES[type_name]
    config = {a.name: None for a in resource.attributes} | values
    found = [f"{'.'.join(map(str, e.attribute))}: {e.detail}"
             for e in validate_config(resource.attributes, config, resource.checks)]
    return [e for e in found if e.startswith(("revoke_previous_when", "previous_unused_for", "keep_previous_for"))]


def test_unused_needs_keep_previous_for_and_a_shorter_threshold():
    tfe = "tokendrop_tfe_agent_token"
    assert _errors(tfe, revoke_previous_when="unused", keep_previous_for="1h") == []
    assert _errors(tfe, revoke_previous_when="unused", keep_previous_for="1h", previous_unused_for="30m") == []
    [missing] = _errors(tfe, revoke_previous_when="unused")
    assert missing.startswith("revoke_previous_when: ") and "needs keep_previous_for" in missing
    [zero] = _errors(tfe, revoke_previous_when="unused", keep_previous_for="0s")
    assert zero.startswith("revoke_previous_when: ")
    [longer] = _errors(tfe, revoke_previous_when="unused", keep_previous_for="1h", previous_unused_for="2h")
    assert longer.startswith("previous_unused_for: ") and "shorter than keep_previous_for" in longer
    [alone] = _errors(tfe, keep_previous_for="1h", previous_unused_for="20m")
    assert alone.startswith("previous_unused_for: ")
    [typo] = _errors(tfe, revoke_previous_when="idle", keep_previous_for="1h")
    assert typo.startswith("revoke_previous_when: ")


def test_unused_is_accepted_exactly_where_the_issuer_reports_last_use():
    """The registry's `reports_last_use` and the schemas agree: a new issuer cannot forget either."""
    seen = set()
    for entry in ISSUERS:
        for resource in entry.resources():
            attributes = {a.name for a in resource.schema.attributes}
            if "revoke_previous_when" not in attributes:
                continue
            seen.add(resource.schema.type_name)
            errors = [e for e in _errors(resource.schema.type_name, revoke_previous_when="unused",
                                         keep_previous_for="1h") if e.startswith("revoke_previous_when")]
            if entry.reports_last_use:
                assert errors == [], (resource.schema.type_name, errors)
            else:
                assert errors and "cannot tell when the previous token is idle" in errors[0], resource.schema.type_name
    assert seen == {"tokendrop_tfe_agent_token", "tokendrop_buildkite_cluster_token", "tokendrop_tokenvault_agent",
                    "tokendrop_tokenvault_key", "tokendrop_vault_approle_secret_id",
                    "tokendrop_entra_blueprint_password", "tokendrop_entra_blueprint_certificate"}


# -- the plan, through the gRPC service, against the TFE emulator -----------------------------------

TOKEN = schema.TFE_AGENT_TOKEN
SSM = {"ssm": {"name": "/ci/token", "kms_key_id": None, "tier": None, "description": None, "tags": None},
       "vault_kv": None}


@pytest.fixture
def tfe(fresh_tfe_emulator):
    return fresh_tfe_emulator


@pytest.fixture
def service(tfe):
    return configured_service(tfe_address=tfe.url, tfe_token=tfe.sandbox_token)


def _plan(svc, prior):
    response = svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=TOKEN.type_name, prior_state=dynamic(prior, TOKEN), proposed_new_state=dynamic(prior, TOKEN),
        config=dynamic(prior, TOKEN)), None)
    assert not [d for d in response.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR], response.diagnostics
    return codec.decode(response.planned_state.msgpack), response.diagnostics


def _rotated(tfe, *, revoke_after: datetime.timedelta, **extra):
    """State after a rotation that kept the previous token: two live tokens of one pool."""
    pool = tfe.create_agent_pool("acme", "unused")
    now = datetime.datetime.now(datetime.UTC)
    previous, previous_value = tfe.create_agent_token(pool, "old", created_at=now - datetime.timedelta(days=1))
    current, current_value = tfe.create_agent_token(pool, "new", created_at=now - 5 * MIN)
    state = full(TOKEN, id=current, agent_pool_id=pool, deliver_to=SSM, adopt_existing=False,
                 sink_address="ssm:/ci/token", sink_version=2, sink_status="delivered",
                 created_at=format_rfc3339(now - 5 * MIN), keep_previous_for="2h", revoke_previous_when="unused",
                 previous_token_id=previous, previous_revoke_after=format_rfc3339(now + revoke_after))
    state.update(extra)
    return state, previous_value, current_value


def test_a_previous_token_in_use_is_kept_and_the_plan_says_why(tfe, service):
    prior, previous_value, _ = _rotated(tfe, revoke_after=datetime.timedelta(hours=2))
    assert tfe.mark_token_used(previous_value, datetime.datetime.now(datetime.UTC) - 4 * MIN)
    tfe.clear_requests()
    planned, diagnostics = _plan(service, prior)
    assert planned["previous_token_id"] == prior["previous_token_id"]
    [kept] = [d for d in diagnostics if "is kept" in d.summary]
    assert f"previous token {prior['previous_token_id']} used 4m ago; revoked once unused for 15m or at " \
           f"{prior['previous_revoke_after']}" in kept.detail
    assert all(r["method"] == "GET" for r in tfe.requests()), "the plan only reads"


def test_a_previous_token_idle_for_the_threshold_is_revoked_by_the_plan(tfe, service):
    prior, previous_value, _ = _rotated(tfe, revoke_after=datetime.timedelta(hours=2), previous_unused_for="10m")
    assert tfe.mark_token_used(previous_value, datetime.datetime.now(datetime.UTC) - 11 * MIN)
    planned, diagnostics = _plan(service, prior)
    assert planned["previous_token_id"] is None and planned["previous_revoke_after"] is None
    [revoked] = [d for d in diagnostics if "will be revoked" in d.summary]
    assert "unused for at least previous_unused_for 10m" in revoked.detail


def test_the_deadline_revokes_a_previous_token_still_in_use(tfe, service):
    prior, previous_value, _ = _rotated(tfe, revoke_after=-MIN)
    assert tfe.mark_token_used(previous_value)
    planned, diagnostics = _plan(service, prior)
    assert planned["previous_token_id"] is None
    assert any("grace period has ended" in d.detail for d in diagnostics)


def test_overlap_ended_ignores_use(tfe, service):
    prior, _, _ = _rotated(tfe, revoke_after=datetime.timedelta(hours=2), revoke_previous_when=None)
    planned, diagnostics = _plan(service, prior)  # never used, but the overlap lasts
    assert planned["previous_token_id"] == prior["previous_token_id"] and list(diagnostics) == []


def test_consumers_that_have_not_switched_are_warned_about(tfe, service):
    now = datetime.datetime.now(datetime.UTC)
    prior, previous_value, current_value = _rotated(tfe, revoke_after=datetime.timedelta(hours=2),
                                                    created_at=format_rfc3339(now - 61 * MIN))
    assert tfe.mark_token_used(previous_value, now - MIN)
    _, diagnostics = _plan(service, prior)
    [kept] = [d for d in diagnostics if "is kept" in d.summary]
    assert f"The new token {prior['id']} has not been used 1h after it was minted" in kept.detail
    assert tfe.mark_token_used(current_value, now)
    _, diagnostics = _plan(configured_service(tfe_address=tfe.url, tfe_token=tfe.sandbox_token), prior)
    assert not any("has not been used" in d.detail for d in diagnostics)


# -- Token Vault keys report their last use --------------------------------------------------------


def test_token_vault_keys_carry_last_used_at(fresh_tokenvault_emulator):
    import requests

    from tokendrop_provider.issuers.tokenvault import TokenVaultClient, TokenVaultKeys
    from tokendrop_provider.secret import Secret
    from tokendrop_provider.settings import TokenVaultSettings

    em = fresh_tokenvault_emulator
    with TokenVaultClient(TokenVaultSettings(api_url=em.url, api_key=Secret(em.admin_key))) as client:
        keys = TokenVaultKeys(client)
        minted = keys.mint("ci-reader", "[td:0123456789ab]", scopes=["agents:read"])
        assert keys.lookup("ci-reader", minted.token.id).last_used_at is None, "never used yet"
        used = requests.get(f"{em.url}/api/agents/whoami", timeout=10,
                            headers={"Authorization": f"Bearer {minted.value.reveal()}"})
        assert used.status_code == 200
        looked_up = keys.lookup("ci-reader", minted.token.id)
        assert looked_up is not None and looked_up.last_used_at is not None
        assert parse_rfc3339(looked_up.last_used_at) <= em.now()


def test_the_decision_costs_no_call_beyond_the_refresh(tfe, clean_moto):
    """Refresh lists the pool once; the plan's look at both tokens' last use is answered from it."""
    from fixtures.servers import aws_settings_for
    from tokendrop_provider.delivery import owner_fingerprint
    from tokendrop_provider.secret import Secret
    from tokendrop_provider.sinks.base import Ownership
    from tokendrop_provider.sinks.ssm import SsmSink

    env = clean_moto.env()
    service = configured_service(tfe_address=tfe.url, tfe_token=tfe.sandbox_token, aws_region=env["AWS_REGION"],
                                 aws_endpoint_url_ssm=env["AWS_ENDPOINT_URL_SSM"],
                                 aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    prior, previous_value, current_value = _rotated(tfe, revoke_after=datetime.timedelta(hours=2))
    owner = owner_fingerprint(TOKEN.type_name, prior["agent_pool_id"], "ssm:/ci/token", None)
    sink = SsmSink("/ci/token", settings=aws_settings_for(clean_moto))  # the sink as the rotation left it
    sink.create(Secret(previous_value), Ownership(prior["previous_token_id"], "tfe", owner))
    sink.replace(Secret(current_value), Ownership(prior["id"], "tfe", owner), expected_version=1)
    assert tfe.mark_token_used(previous_value, datetime.datetime.now(datetime.UTC) - MIN)
    tfe.clear_requests()
    read = service.ReadResource(pb.ReadResource.Request(type_name=TOKEN.type_name,
                                                        current_state=dynamic(prior, TOKEN)), None)
    assert not read.diagnostics, read.diagnostics
    refreshed = codec.attach_dynamic(codec.decode(read.new_state.msgpack), TOKEN.cty_type)
    assert refreshed["sink_status"] == "delivered"
    refresh_calls = [r["path"] for r in tfe.requests()]
    tfe.clear_requests()
    planned, diagnostics = _plan(service, refreshed)
    assert planned["previous_token_id"] == prior["previous_token_id"]
    assert any("is kept" in d.summary for d in diagnostics)
    assert [r["path"] for r in tfe.requests()] == [], f"the refresh made {refresh_calls}; the plan adds none"
    # one pool listing (and the account lookup that keys the rate budget, once per process)
    assert sorted(refresh_calls) == ["/api/v2/account/details",
                                     f"/api/v2/agent-pools/{prior['agent_pool_id']}/authentication-tokens"]


def test_token_vault_key_rotation_waits_while_the_previous_key_is_in_use(fresh_tokenvault_emulator):
    """The same decision for scoped keys, from Token Vault's `lastUsedAt`."""
    from tokendrop_provider.issuers.tokenvault import TokenVaultClient, TokenVaultKeys
    from tokendrop_provider.secret import Secret
    from tokendrop_provider.settings import TokenVaultSettings

    em = fresh_tokenvault_emulator
    key_schema = schema.TOKENVAULT_KEY
    with TokenVaultClient(TokenVaultSettings(api_url=em.url, api_key=Secret(em.admin_key))) as client:
        keys = TokenVaultKeys(client)
        previous = keys.mint("reader", "[td:0123456789ab]", scopes=["agents:read"]).token
        current = keys.mint("reader", "[td:0123456789ab]", scopes=["agents:read"]).token
    now = datetime.datetime.now(datetime.UTC)
    state = full(key_schema, id=current.id, name="reader", scopes=["agents:read"],
                 deliver_to={**SSM, "ssm": {**SSM["ssm"], "name": "/ci/key"}}, adopt_existing=False,
                 sink_address="ssm:/ci/key", sink_version=2, sink_status="delivered", created_at=current.created_at,
                 keep_previous_for="2h", revoke_previous_when="unused", previous_token_id=previous.id,
                 previous_revoke_after=format_rfc3339(now + datetime.timedelta(hours=2)))

    def plan(prior):
        svc = configured_service(tokenvault_api_url=em.url, tokenvault_api_key=em.admin_key)
        response = svc.PlanResourceChange(pb.PlanResourceChange.Request(
            type_name=key_schema.type_name, prior_state=dynamic(prior, key_schema),
            proposed_new_state=dynamic(prior, key_schema), config=dynamic(prior, key_schema)), None)
        assert not [d for d in response.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]
        return codec.decode(response.planned_state.msgpack), response.diagnostics

    em.mark_key_used(previous.id, now - 2 * MIN)
    planned, diagnostics = plan(state)
    assert planned["previous_token_id"] == previous.id
    assert any(f"previous token {previous.id} used 2m ago" in d.detail for d in diagnostics)
    em.mark_key_used(previous.id, now - 16 * MIN)
    planned, diagnostics = plan(state)
    assert planned["previous_token_id"] is None
    assert any("unused for at least previous_unused_for 15m" in d.detail for d in diagnostics)
