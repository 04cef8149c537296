"""Plan semantics of the vault-grant resources, through the tfplugin6 service with msgpack values as
Terraform sends them: the list-nested `grants` attribute (schema, defaults, what stays known), key
rotation in place (the agent id stays known), AppRole rotation and replacement, and validation
paths that point into list elements, and the plan-time scope check of the Token Vault key (against
the Token Vault emulator). Also the generic planner's list support on a synthetic schema."""

from __future__ import annotations

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.attributes import Attr
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.resources.base import apply_defaults, changed_paths, unknown_computed
from tokendrop_provider.sandbox.approle import setup_sample_approle
from tokendrop_provider.types import BOOL, STRING, UNKNOWN, Unknown

AGENT = schema.TOKENVAULT_AGENT
APPROLE = schema.VAULT_APPROLE_SECRET_ID
SSM = {"ssm": {"name": "/agents/key", "kms_key_id": None, "tier": None, "description": None, "tags": None},
       "vault_kv": None}


def grant(service, expires_in=None, auto_refresh=None, expires_at=None):
    return {"service": service, "expires_in": expires_in, "auto_refresh": auto_refresh, "expires_at": expires_at}


@pytest.fixture
def service(openbao_server, fresh_tokenvault_emulator):
    return configured_service(tokenvault_api_url=fresh_tokenvault_emulator.url,
                              tokenvault_api_key=fresh_tokenvault_emulator.admin_key,
                              vault_address=openbao_server.url, vault_token=openbao_server.root_token)


def plan_response(svc, resource_schema, prior, config):
    return svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=resource_schema.type_name, prior_state=dynamic(prior, resource_schema),
        proposed_new_state=dynamic(config, resource_schema), config=dynamic(config, resource_schema)), None)


def plan(svc, resource_schema, prior, config):
    response = plan_response(svc, resource_schema, prior, config)
    errors = [d for d in response.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]
    assert not errors, errors
    return codec.decode(response.planned_state.msgpack), response


def agent_state(**overrides):
    state = full(AGENT, id="agt1", name="bot", deliver_to=SSM, adopt_existing=False, status="active",
                 grants=[grant("github", None, False, "2030-01-01T12:00:00.000Z"), grant("linear", None, False)],
                 sink_address="ssm:/agents/key", sink_version=1, sink_status="delivered",
                 created_at="2026-11-01T00:00:00.000Z")
    state.update(overrides)
    return state


def test_grants_are_a_list_of_nested_attributes(service):
    response = service.GetProviderSchema(pb.GetProviderSchema.Request(), None)
    attrs = {a.name: a for a in response.resource_schemas[AGENT.type_name].block.attributes}
    grants = attrs["grants"]
    assert grants.optional and grants.nested_type.nesting == pb.Schema.Object.NestingMode.LIST
    nested = {a.name: a for a in grants.nested_type.attributes}
    assert nested["service"].required and nested["expires_at"].computed and not nested["expires_at"].optional
    assert nested["auto_refresh"].optional and nested["auto_refresh"].computed
    assert not any(a.sensitive for a in attrs.values())
    assert APPROLE.type_name in response.resource_schemas


def test_create_plan(service):
    config = full(AGENT, name="bot", deliver_to=SSM, grants=[grant("github"), grant("linear")])
    planned, _ = plan(service, AGENT, None, config)
    assert isinstance(planned["id"], Unknown) and isinstance(planned["status"], Unknown)
    for planned_grant in planned["grants"]:
        assert isinstance(planned_grant["expires_at"], Unknown), "whatever the agent's record reports once granted"
        assert planned_grant["auto_refresh"] is False and planned_grant["expires_in"] is None


def test_grant_changes_update_in_place_and_keep_the_key(service):
    prior = agent_state()
    config = dict(prior, grants=[grant("github"), grant("slack")])
    planned, response = plan(service, AGENT, prior, config)
    assert not response.requires_replace
    assert planned["id"] == "agt1" and planned["sink_version"] == 1 and planned["created_at"] == prior["created_at"]
    github, slack = planned["grants"]
    assert github["expires_at"] == "2030-01-01T12:00:00.000Z", "unchanged grant keeps the expiry the server reported"
    assert isinstance(slack["expires_at"], Unknown), "a new grant gets what the server reports at apply"
    assert not any("will rotate" in d.summary for d in response.diagnostics)


@pytest.mark.parametrize(("scopes", "prior", "missing"), [
    (["agents:read", "grants:write"], None, "agents:create"),
    (["agents:read", "agents:create"], None, "grants:write"),
    (["agents:create", "grants:write"], "existing", "agents:read"),
    (["agents:read", "grants:write"], "rotating", "agents:manage"),
])
def test_a_key_without_a_needed_scope_fails_the_plan_naming_it(scopes, prior, missing, openbao_server,
                                                                fresh_tokenvault_emulator):
    svc = configured_service(tokenvault_api_url=fresh_tokenvault_emulator.url,
                             tokenvault_api_key=fresh_tokenvault_emulator.mint_key(scopes),
                             vault_address=openbao_server.url, vault_token=openbao_server.root_token)
    before = {"existing": agent_state(), "rotating": agent_state(rotate_every="720h")}.get(prior)
    config = dict(before) if before else full(AGENT, name="bot", deliver_to=SSM, grants=[grant("github")])
    response = plan_response(svc, AGENT, before, config)
    [error] = [d for d in response.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]
    assert missing in error.summary and f"--scopes {missing}" in error.detail
    assert [s.attribute_name for s in error.attribute.steps] == ["tokenvault_api_key"]
    assert fresh_tokenvault_emulator.agent_ids() == []


def test_reordering_grants_keeps_their_expiry(service):
    prior = agent_state()
    planned, _ = plan(service, AGENT, prior, dict(prior, grants=list(reversed(prior["grants"]))))
    assert [g["service"] for g in planned["grants"]] == ["linear", "github"]
    assert planned["grants"][1]["expires_at"] == "2030-01-01T12:00:00.000Z"


def test_rotation_keeps_the_agent_id_known(service):
    prior = agent_state(rotate_on={"epoch": "1"})
    planned, response = plan(service, AGENT, prior, dict(prior, rotate_on={"epoch": "2"}))
    assert planned["id"] == "agt1", "rotate-key keeps the agent"
    assert isinstance(planned["sink_version"], Unknown) and isinstance(planned["created_at"], Unknown)
    assert planned["grants"] == prior["grants"]
    assert any("will rotate" in d.summary for d in response.diagnostics)


def test_a_stale_key_found_by_refresh_plans_a_rotation(service):
    prior = agent_state(sink_status="stale")
    planned, response = plan(service, AGENT, prior, prior)
    assert planned["id"] == "agt1" and isinstance(planned["sink_version"], Unknown)
    assert planned["sink_status"] == "delivered"
    assert any("ssm:/agents/key is stale" in d.detail for d in response.diagnostics)


def test_renaming_replaces_the_agent(service):
    prior = agent_state()
    _, response = plan(service, AGENT, prior, dict(prior, name="other"))
    assert [[s.attribute_name for s in p.steps] for p in response.requires_replace] == [["name"]]


def test_validation_points_into_the_list(service):
    config = full(AGENT, name="bot", deliver_to=SSM,
                  grants=[grant("github"), grant("linear", "12h"), grant("github"), grant("slack", auto_refresh=True)])
    response = service.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=AGENT.type_name, config=dynamic(config, AGENT)), None)
    found = {(d.attribute.steps[1].element_key_int, d.attribute.steps[2].attribute_name): d.detail
             for d in response.diagnostics}
    assert set(found) == {(1, "expires_in"), (2, "service"), (3, "auto_refresh")}
    assert "not applied to an agent grant" in found[(1, "expires_in")]
    assert "already granted by grants[0]" in found[(2, "service")]
    assert "auto_refresh: true is not applied" in found[(3, "auto_refresh")]


def test_approle_changes_rotate_or_replace(service, openbao_server):
    setup_sample_approle(openbao_server, role="plan-unit")
    setup_sample_approle(openbao_server, role="plan-unit-2")
    prior = full(APPROLE, id="9f1c0000-0000-0000-0000-000000000000", role_name="plan-unit", mount="approle",
                 ttl="24h", metadata={"pipeline": "a"}, deliver_to=SSM, adopt_existing=False,
                 sink_address="ssm:/agents/key", sink_version=1, sink_status="delivered",
                 created_at="2026-11-01T00:00:00Z", expires_at="2030-01-01T00:00:00Z")
    planned, response = plan(service, APPROLE, prior, dict(prior, metadata={"pipeline": "b"}))
    assert not response.requires_replace and isinstance(planned["id"], Unknown)
    assert isinstance(planned["expires_at"], Unknown)
    assert any("metadata changed" in d.detail for d in response.diagnostics)
    _, response = plan(service, APPROLE, prior, dict(prior, role_name="plan-unit-2"))
    assert [[s.attribute_name for s in p.steps] for p in response.requires_replace] == [["role_name"]]
    planned, response = plan(service, APPROLE, None, full(APPROLE, role_name="plan-unit", deliver_to=SSM))
    assert planned["mount"] == "approle" and isinstance(planned["expires_at"], Unknown)


# --- the generic planner on list-nested attributes ------------------------------------------------------

ITEMS = (Attr("items", description="", optional=True, nesting="list", nested=(
    Attr("name", STRING, required=True, on_change="replace"),
    Attr("flag", BOOL, optional=True, computed=True, default=False),
    Attr("seen", STRING, computed=True),
)),)


def test_defaults_and_unknowns_apply_per_element():
    config = {"items": [{"name": "a", "flag": None, "seen": None}, {"name": "b", "flag": True, "seen": None}]}
    planned = apply_defaults(ITEMS, config, config)
    assert [i["flag"] for i in planned["items"]] == [False, True]
    planned = unknown_computed(ITEMS, planned, config)
    assert all(isinstance(i["seen"], Unknown) for i in planned["items"])


def test_changed_paths_compare_elements_by_index():
    prior = {"items": [{"name": "a", "flag": False, "seen": "x"}]}
    planned = {"items": [{"name": "b", "flag": False, "seen": "x"}, {"name": "c", "flag": False, "seen": None}]}
    assert changed_paths(ITEMS, prior, planned, "replace") == [("items", 0, "name"), ("items", 1, "name")]
    assert changed_paths(ITEMS, prior, {"items": UNKNOWN}, "replace") == [("items", 0, "name")], "may change"
    assert changed_paths(ITEMS, prior, prior, "replace") == []


def test_keep_previous_for_zero_means_no_grace_period(service, openbao_server):
    """"0s" revokes at once, like unset, so the plan must not promise a previous token (apply would then
    return a different value and Terraform would reject the result)."""
    setup_sample_approle(openbao_server, role="plan-unit")
    prior = full(APPROLE, id="9f1c0000-0000-0000-0000-000000000000", role_name="plan-unit", mount="approle",
                 deliver_to=SSM, adopt_existing=False, keep_previous_for="0s", rotate_on={"epoch": "1"},
                 sink_address="ssm:/agents/key", sink_version=1, sink_status="delivered",
                 created_at="2026-11-01T00:00:00Z")
    planned, _ = plan(service, APPROLE, prior, dict(prior, rotate_on={"epoch": "2"}))
    assert planned["previous_token_id"] is None and planned["previous_revoke_after"] is None
    planned, _ = plan(service, APPROLE, prior, dict(prior, rotate_on={"epoch": "2"}, keep_previous_for="1h"))
    assert planned["previous_token_id"] == prior["id"]


@pytest.mark.parametrize(("ttl", "num_uses", "attribute"), [("0", None, "ttl"), ("30m", 0, "num_uses")])
def test_approle_ttl_or_num_uses_beyond_the_roles_limit_fails_the_plan(service, openbao_server, ttl, num_uses,
                                                                       attribute):
    role = setup_sample_approle(openbao_server, role="limited", secret_id_ttl="1h")["role"]
    openbao_server.api("POST", f"auth/approle/role/{role}", {"secret_id_num_uses": 3})
    config = full(APPROLE, role_name=role, mount="approle", ttl=ttl, num_uses=num_uses, deliver_to=SSM)
    response = service.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=APPROLE.type_name, prior_state=dynamic(None, APPROLE), proposed_new_state=dynamic(config, APPROLE),
        config=dynamic(config, APPROLE)), None)
    [diag] = response.diagnostics
    assert diag.severity == pb.Diagnostic.Severity.ERROR and "does not allow this" in diag.summary
    assert "Nothing was created" in diag.detail
    assert [s.attribute_name for s in diag.attribute.steps] == [attribute]
