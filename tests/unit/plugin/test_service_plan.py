"""The server's plan semantics, by calling the tfplugin6 service directly with msgpack values, as
Terraform does: what is known at plan time, what forces replacement, what rotates, what is reported."""

from __future__ import annotations

import datetime

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.types import UNKNOWN, Unknown

TOKEN = schema.TFE_AGENT_TOKEN


def dv(value, resource_schema=TOKEN) -> pb.DynamicValue:
    return dynamic(value, resource_schema)


def ssm(name="/ci/token", **extra):
    return {"ssm": {"name": name, "kms_key_id": None, "tier": None, "description": None, "tags": None, **extra},
            "vault_kv": None}


def vault(path="ci/token", mount="secret", field="token"):
    return {"ssm": None, "vault_kv": {"mount": mount, "path": path, "field": field}}


@pytest.fixture
def service(fresh_tfe_emulator, openbao_server):
    svc = configured_service(tfe_address=fresh_tfe_emulator.url, tfe_token=fresh_tfe_emulator.sandbox_token,
                             vault_address=openbao_server.url, vault_token=openbao_server.root_token)
    svc.pool_id = fresh_tfe_emulator.create_agent_pool("acme", "unit")
    return svc


def plan(svc, prior, config, proposed=None, resource_schema=TOKEN):
    request = pb.PlanResourceChange.Request(
        type_name=resource_schema.type_name,
        prior_state=dv(prior, resource_schema),
        proposed_new_state=dv(proposed if proposed is not None else config, resource_schema),
        config=dv(config, resource_schema),
    )
    response = svc.PlanResourceChange(request, None)
    planned = (codec.attach_dynamic(codec.decode(response.planned_state.msgpack), resource_schema.cty_type)
               if response.planned_state.msgpack else None)
    return planned, response


def paths(response):
    return [[s.attribute_name or s.element_key_string for s in p.steps] for p in response.requires_replace]


def prior_state(svc, **overrides):
    state = full(TOKEN, id="at-1", agent_pool_id=svc.pool_id, description="ci runners", deliver_to=ssm(),
                 adopt_existing=False, sink_address="ssm:/ci/token", sink_version=1, sink_status="delivered",
                 created_at="2026-11-01T00:00:00Z")
    state.update(overrides)
    return state


def test_schema_is_built_once_and_describes_every_resource(service):
    first = service.GetProviderSchema(pb.GetProviderSchema.Request(), None)
    assert first is service.GetProviderSchema(pb.GetProviderSchema.Request(), None)
    assert set(first.resource_schemas) >= {"tokendrop_tfe_agent_pool", "tokendrop_tfe_agent_token"}
    assert first.server_capabilities.plan_destroy
    token_attrs = {a.name: a for a in first.resource_schemas["tokendrop_tfe_agent_token"].block.attributes}
    deliver_to = token_attrs["deliver_to"]
    # One object or a list of them: Terraform has no nesting mode for both, so it is a dynamic attribute
    # (docs/lifecycle.md, "One token, many sinks"); its blocks are checked by the provider.
    assert deliver_to.required and deliver_to.type == b'"dynamic"' and not deliver_to.HasField("nested_type")
    assert {a.name for a in schema.DELIVER_TO.nested or ()} == {"ssm", "vault_kv", "secrets_manager",
                                                                 "tokenvault_webhook"}
    assert not any(a.sensitive for a in token_attrs.values()), "no token attribute holds a secret"
    provider_attrs = {a.name: a for a in first.provider.block.attributes}
    assert provider_attrs["tfe_token"].sensitive and provider_attrs["vault_token"].sensitive


def test_create_plan_knows_what_it_can(service):
    config = full(TOKEN, agent_pool_id=service.pool_id, deliver_to=vault(mount=None, field=None))
    planned, response = plan(service, None, config)
    assert not response.diagnostics and not response.requires_replace
    assert isinstance(planned["id"], Unknown) and isinstance(planned["sink_version"], Unknown)
    # deliver_to is planned exactly as configured (a dynamic value); its defaults show in the address
    assert planned["deliver_to"]["vault_kv"] == {"mount": None, "path": "ci/token", "field": None}
    assert planned["sink_address"] == "vault_kv:secret/ci/token#token"
    assert planned["sinks"][0]["address"] == "vault_kv:secret/ci/token#token"
    assert planned["sink_status"] == "delivered" and planned["adopt_existing"] is False
    assert planned["expires_at"] is None and planned["previous_token_id"] is None


def test_create_plan_with_an_unknown_pool_makes_no_call(service, fresh_tfe_emulator):
    fresh_tfe_emulator.clear_requests()
    config = full(TOKEN, agent_pool_id=UNKNOWN, deliver_to=ssm())
    planned, response = plan(service, None, config)
    assert not response.diagnostics
    assert isinstance(planned["agent_pool_id"], Unknown)
    assert fresh_tfe_emulator.requests() == []


def test_create_plan_fails_for_a_pool_that_does_not_exist(service):
    config = full(TOKEN, agent_pool_id="apool-doesnotexist", deliver_to=ssm())
    _, response = plan(service, None, config)
    [diag] = response.diagnostics
    assert diag.severity == pb.Diagnostic.Severity.ERROR and "Agent pool not found" in diag.summary
    assert [s.attribute_name for s in diag.attribute.steps] == ["agent_pool_id"]


def test_tag_change_updates_in_place_and_keeps_the_token(service):
    prior = prior_state(service)
    config = dict(prior, deliver_to=ssm(tags={"team": "ci"}))
    planned, response = plan(service, prior, config)
    assert not response.requires_replace and not response.diagnostics
    assert planned["id"] == "at-1" and planned["sink_version"] == 1


def test_description_change_rotates_with_a_reason(service):
    prior = prior_state(service)
    config = dict(prior, description="renamed")
    planned, response = plan(service, prior, config)
    assert not response.requires_replace
    assert isinstance(planned["id"], Unknown) and isinstance(planned["sink_version"], Unknown)
    [warning] = response.diagnostics
    assert warning.severity == pb.Diagnostic.Severity.WARNING
    assert "description changed" in warning.detail and "revokes at-1" in warning.detail


def test_pool_change_forces_replacement(service, fresh_tfe_emulator):
    other = fresh_tfe_emulator.create_agent_pool("acme", "other")
    prior = prior_state(service)
    _, response = plan(service, prior, dict(prior, agent_pool_id=other))
    assert paths(response) == [["agent_pool_id"]]


def test_moving_to_another_sink_forces_replacement(service):
    prior = prior_state(service)
    # the whole attribute: a path into a dynamic value differs between its object and list forms
    _, response = plan(service, prior, dict(prior, deliver_to=ssm(name="/ci/elsewhere")))
    assert paths(response) == [["deliver_to"]]
    _, response = plan(service, prior, dict(prior, deliver_to=vault()))
    assert paths(response) == [["deliver_to"]]
    _, response = plan(service, prior, dict(prior, deliver_to=[ssm(), vault()]))
    assert paths(response) == [["deliver_to"]], "adding a sink replaces the resource"
    _, response = plan(service, prior, dict(prior, deliver_to=[ssm()]))
    assert paths(response) == [], "one object or a list of it: the same sink"


def test_rotation_due_is_planned_with_its_reason(service):
    minted = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=31, hours=2)
    prior = prior_state(service, rotate_every="30d", created_at=minted.strftime("%Y-%m-%dT%H:%M:%SZ"))
    planned, response = plan(service, prior, prior)
    assert isinstance(planned["id"], Unknown)
    assert "rotation due: minted 31d ago, rotate_every 30d" in response.diagnostics[0].detail


def test_keep_previous_for_keeps_the_old_id_known(service):
    prior = prior_state(service, keep_previous_for="1h")
    planned, _ = plan(service, prior, dict(prior, rotate_on={"epoch": "2"}))
    assert planned["previous_token_id"] == "at-1" and isinstance(planned["previous_revoke_after"], Unknown)


def test_previous_token_past_its_deadline_is_planned_for_revocation(service):
    prior = prior_state(service, keep_previous_for="1h", previous_token_id="at-0",
                        previous_revoke_after="2026-01-01T00:00:00Z")
    planned, response = plan(service, prior, prior)
    assert planned["previous_token_id"] is None and planned["id"] == "at-1"
    assert "at-0 will be revoked" in response.diagnostics[0].summary


def test_sink_drift_found_by_refresh_plans_a_new_token(service):
    prior = prior_state(service, sink_status="overwritten")
    planned, response = plan(service, prior, prior)
    assert isinstance(planned["id"], Unknown) and planned["sink_status"] == "delivered"
    assert "ssm:/ci/token is overwritten" in response.diagnostics[0].detail


def test_destroy_plan_is_null(service):
    planned, response = plan(service, prior_state(service), None, proposed=None)
    assert planned is None or response.planned_state.msgpack == codec.encode(None, TOKEN.cty_type)


@pytest.mark.parametrize(("deliver_to", "path"), [
    (ssm(name="aws/reserved"), ["deliver_to", "ssm", "name"]),
    (ssm(name="/has space"), ["deliver_to", "ssm", "name"]),
    (vault(path="ci/../escape"), ["deliver_to", "vault_kv", "path"]),
    ({"ssm": None, "vault_kv": None}, ["deliver_to"]),
    ({**ssm(), "vault_kv": vault()["vault_kv"]}, ["deliver_to", "vault_kv"]),
])
def test_validation_names_the_attribute(service, deliver_to, path):
    config = full(TOKEN, agent_pool_id="apool-x", deliver_to=deliver_to)
    response = service.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=TOKEN.type_name, config=dv(config)), None)
    assert response.diagnostics, deliver_to
    assert [s.attribute_name for s in response.diagnostics[0].attribute.steps] == path


def test_unexpected_errors_become_one_diagnostic_without_traceback(service, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("kaput")

    monkeypatch.setattr(service.core.resources[TOKEN.type_name], "plan", boom)
    _, response = plan(service, None, full(TOKEN, agent_pool_id="apool-x", deliver_to=ssm()))
    [diag] = response.diagnostics
    assert diag.summary == "Unexpected error in the tokendrop provider"
    assert "RuntimeError: kaput" in diag.detail and "Traceback" not in diag.detail


def test_state_of_schema_version_0_is_upgraded_to_deliver_to_as_written(service):
    """Version 0 stored deliver_to as an object of every sink kind with defaults filled in; version 1
    serves it as a dynamic value, which compares with its type: the upgrade keeps only what a
    configuration usually writes, so `deliver_to = { vault_kv = { path = "ci/t" } }` plans no change."""
    import json

    raw = full(TOKEN, id="at-1", agent_pool_id=service.pool_id, sink_address="vault_kv:secret/ci/t#token",
               deliver_to={"ssm": None, "vault_kv": {"mount": "secret", "path": "ci/t", "field": "token"},
                           "secrets_manager": None})
    answer = service.UpgradeResourceState(pb.UpgradeResourceState.Request(
        type_name=TOKEN.type_name, version=0, raw_state=pb.RawState(json=json.dumps(raw).encode())), None)
    assert not answer.diagnostics
    type_json, value = codec.decode(answer.upgraded_state.msgpack)["deliver_to"]
    assert value == {"vault_kv": {"path": "ci/t"}}
    assert json.loads(type_json) == ["object", {"vault_kv": ["object", {"path": "string"}]}]
    assert schema.TFE_AGENT_TOKEN.version == 1

    # version 1 state JSON holds a dynamic value as {"value", "type"}: read back with that very type
    listed = [{"ssm": {"name": "/a", "region": "eu-west-1"}}, {"vault_kv": {"path": "ci/t"}}]
    typed_json = ["tuple", [["object", {"ssm": ["object", {"name": "string", "region": "string"}]}],
                            ["object", {"vault_kv": ["object", {"path": "string"}]}]]]
    current = dict(raw, deliver_to={"value": listed, "type": typed_json})
    answer = service.UpgradeResourceState(pb.UpgradeResourceState.Request(
        type_name=TOKEN.type_name, version=1, raw_state=pb.RawState(json=json.dumps(current).encode())), None)
    assert not answer.diagnostics
    type_json, value = codec.decode(answer.upgraded_state.msgpack)["deliver_to"]
    assert value == listed and json.loads(type_json) == typed_json
