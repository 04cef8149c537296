"""Plan semantics of the Token Vault key and grant resources, through the tfplugin6 service with msgpack
values as Terraform sends them, against the Token Vault emulator: a key's configured expiry stays known
through a rotation and an unset one is null (never carried over); a changed scope set plans a rotation;
an expiry in the past fails only when a key is minted; the scopes the provider's key needs per
resource and per change (a refresh-only plan needs no write scope)."""

from __future__ import annotations

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.types import Unknown

KEY = schema.TOKENVAULT_KEY
KEY_GRANT = schema.TOKENVAULT_KEY_GRANT
AGENT_GRANT = schema.TOKENVAULT_AGENT_GRANT
SSM = {"ssm": {"name": "/ci/key", "kms_key_id": None, "tier": None, "description": None, "tags": None},
       "vault_kv": None}
LATER = "2031-01-01T00:00:00Z"


def service_with(em, scopes=None):
    return configured_service(tokenvault_api_url=em.url, tokenvault_api_key=em.mint_key(scopes) if scopes else
                              em.admin_key)


def plan_response(svc, resource_schema, prior, config):
    return svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=resource_schema.type_name, prior_state=dynamic(prior, resource_schema),
        proposed_new_state=dynamic(config, resource_schema), config=dynamic(config, resource_schema)), None)


def errors(response):
    return [d for d in response.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]


def planned(response):
    assert not errors(response), errors(response)
    return codec.decode(response.planned_state.msgpack)


def key_state(**overrides):
    state = full(KEY, id="key1", name="reader", scopes=["agents:read"], deliver_to=SSM, adopt_existing=False,
                 sink_address="ssm:/ci/key", sink_version=1, sink_status="delivered",
                 created_at="2026-11-01T00:00:00.000Z", expires_at=None)
    state.update(overrides)
    return state


def config_of(state, **changes):
    computed = {"id", "sink_address", "sink_version", "sink_status", "created_at", "previous_token_id",
                "previous_revoke_after"}
    return {**{k: (None if k in computed else v) for k, v in state.items()}, **changes}


def test_a_scope_change_rotates_and_a_configured_expiry_stays_known(fresh_tokenvault_emulator):
    svc = service_with(fresh_tokenvault_emulator)
    prior = key_state(expires_at=LATER)
    response = plan_response(svc, KEY, prior, config_of(prior, scopes=["agents:read", "tokens:list"]))
    state = planned(response)
    assert isinstance(state["id"], Unknown) and isinstance(state["sink_version"], Unknown)
    assert state["expires_at"] == LATER, "the successor is minted with the configured expiry"
    assert any("will rotate" in d.summary for d in response.diagnostics)


def test_an_unset_expiry_is_null_not_carried_over(fresh_tokenvault_emulator):
    svc = service_with(fresh_tokenvault_emulator)
    create = planned(plan_response(svc, KEY, None, full(KEY, name="reader", scopes=["agents:read"], deliver_to=SSM)))
    assert create["expires_at"] is None
    prior = key_state(expires_at=LATER)
    config = config_of(prior, expires_at=None)
    # Terraform proposes the prior (computed) expiry for an unset optional+computed argument.
    response = svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=KEY.type_name, prior_state=dynamic(prior, KEY), proposed_new_state=dynamic(
            {**config, "expires_at": LATER}, KEY), config=dynamic(config, KEY)), None)
    state = planned(response)
    assert state["expires_at"] is None
    assert [[s.attribute_name for s in p.steps] for p in response.requires_replace] == [["expires_at"]]


def test_a_past_expiry_fails_only_when_a_key_is_minted(fresh_tokenvault_emulator):
    svc = service_with(fresh_tokenvault_emulator)
    past = "2020-01-01T00:00:00Z"
    [error] = errors(plan_response(svc, KEY, None, full(KEY, name="reader", scopes=["agents:read"],
                                                        deliver_to=SSM, expires_at=past)))
    assert [s.attribute_name for s in error.attribute.steps] == ["expires_at"] and "INVALID_EXPIRY" in error.detail
    prior = key_state(expires_at=past)
    assert planned(plan_response(svc, KEY, prior, config_of(prior)))["expires_at"] == past, "no mint: no error"
    [error] = errors(plan_response(svc, KEY, prior, config_of(prior, rotate_on={"n": "2"})))
    assert [s.attribute_name for s in error.attribute.steps] == ["expires_at"]
    assert all(r["method"] == "GET" for r in fresh_tokenvault_emulator.requests()), "nothing was written"


@pytest.mark.parametrize(("resource", "scopes", "prior", "missing"), [
    (KEY, ["agents:read"], None, "keys:manage"),
    (KEY_GRANT, ["keys:manage"], None, "grants:write"),
    (KEY_GRANT, ["grants:write"], None, "keys:manage"),
    (AGENT_GRANT, ["agents:read"], None, "grants:write"),
    (AGENT_GRANT, ["grants:write"], None, "agents:read"),
])
def test_each_resource_names_the_scope_it_lacks(fresh_tokenvault_emulator, resource, scopes, prior, missing):
    em = fresh_tokenvault_emulator
    svc = service_with(em, scopes)
    config = {KEY.type_name: full(KEY, name="reader", scopes=["agents:read"], deliver_to=SSM),
              KEY_GRANT.type_name: full(KEY_GRANT, key_id="key1", service="github", expires_in="7d"),
              AGENT_GRANT.type_name: full(AGENT_GRANT, agent_id="agt1", service="github")}[resource.type_name]
    [error] = errors(plan_response(svc, resource, prior, config))
    assert missing in error.summary and resource.type_name in error.detail
    assert [s.attribute_name for s in error.attribute.steps] == ["tokenvault_api_key"]
    assert all(r["method"] == "GET" for r in em.requests())


def test_an_unchanged_grant_needs_no_write_scope(fresh_tokenvault_emulator):
    """Refreshing and planning an existing grant only reads: a read-only key may plan it."""
    em = fresh_tokenvault_emulator
    agent_id = em.create_agent("bot")[0]
    svc = service_with(em, ["agents:read"])
    prior = full(AGENT_GRANT, id=f"{agent_id}/github", agent_id=agent_id, service="github", auto_refresh=False)
    assert planned(plan_response(svc, AGENT_GRANT, prior, dict(prior)))["id"] == f"{agent_id}/github"
    assert all(r["method"] == "GET" for r in em.requests())
