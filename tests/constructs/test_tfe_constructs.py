"""The TFE constructs synthesize the provider's resources: attribute names from schema.py, the nested
`deliver_to` object, durations as the provider's text, references between resources and in outputs,
and the provider block pinned to the installed version. Runs on cdktf and cdktn."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tokendrop import (
    SsmParameter,
    TfeAgentPool,
    TfeAgentToken,
    TokendropProvider,
    TokendropResource,
    VaultSecret,
)
from tokendrop_provider import schema
from tokendrop_provider.install import provider_version

POOL = schema.TFE_AGENT_POOL.type_name
TOKEN = schema.TFE_AGENT_TOKEN.type_name


def ci_agents(stack):
    """The issue's example, verbatim."""
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci-agents",
                        organization_scoped=False, allowed_workspace_ids=["ws-abc123"], allowed_project_ids=[])
    runners = pool.add_token("runners", description="ci runners",
                             deliver_to=SsmParameter("/ci/tfc-agent/token", kms_key_id="alias/ci",
                                                     tags={"team": "ci"}),
                             rotate_every=timedelta(days=30))
    batch = pool.add_token("batch", deliver_to=VaultSecret(mount="secret", path="ci/tfc-agent/batch", field="token"))
    other = TfeAgentToken(stack, "other", agent_pool_id="apool-123", deliver_to=SsmParameter("/ci/other"))
    return pool, runners, batch, other


def test_pool_and_tokens(core, stack, synth):
    ci_agents(stack)
    pool = synth.one(stack, POOL)
    assert pool == {"organization": "acme", "name": "ci-agents", "organization_scoped": False,
                    "allowed_workspace_ids": ["ws-abc123"], "allowed_project_ids": []}
    tokens = synth.resources(stack, TOKEN)
    assert len(tokens) == 3
    by_path = {k: v for k, v in tokens.items()}
    runners = next(v for k, v in by_path.items() if k.startswith("pool_runners"))
    assert runners == {
        "agent_pool_id": "${tokendrop_tfe_agent_pool.pool.id}",
        "description": "ci runners",
        "deliver_to": {"ssm": {"name": "/ci/tfc-agent/token", "kms_key_id": "alias/ci", "tags": {"team": "ci"}}},
        "rotate_every": "30d",
    }
    batch = next(v for k, v in by_path.items() if k.startswith("pool_batch"))
    assert batch["deliver_to"] == {"vault_kv": {"mount": "secret", "path": "ci/tfc-agent/batch", "field": "token"}}
    assert tokens["other"] == {"agent_pool_id": "apool-123", "deliver_to": {"ssm": {"name": "/ci/other"}}}


def test_testing_matchers(core, stack):
    ci_agents(stack)
    synthesized = core.Testing.synth(stack)
    assert core.Testing.to_have_resource_with_properties(
        synthesized, TOKEN, {"deliver_to": {"ssm": {"name": "/ci/tfc-agent/token"}}})
    assert core.Testing.to_have_resource_with_properties(synthesized, POOL, {"name": "ci-agents"})
    assert not core.Testing.to_have_resource_with_properties(synthesized, POOL, {"name": "other"})
    assert core.Testing.to_have_provider(synthesized, "tokendrop")


def test_tokens_are_children_of_their_pool(core, stack):
    pool, runners, _batch, other = ci_agents(stack)
    assert runners.node.path == "ci-agents/pool/runners"
    assert runners.node.scope is pool
    assert other.node.path == "ci-agents/other"
    assert isinstance(pool, TfeAgentPool) and isinstance(pool, TokendropResource)
    assert isinstance(pool, core.TerraformResource) and isinstance(runners, core.TerraformResource)
    assert runners.sink == SsmParameter("/ci/tfc-agent/token", kms_key_id="alias/ci", tags={"team": "ci"})


def test_references_in_outputs_and_other_resources(core, stack, synth):
    pool, runners, batch, _ = ci_agents(stack)
    core.TerraformOutput(stack, "pool_id", value=pool.pool_id)
    core.TerraformOutput(stack, "token_id", value=runners.token_id)
    core.TerraformOutput(stack, "sink_version", value=runners.sink_version)
    core.TerraformOutput(stack, "sink_address", value=batch.sink_address)
    core.TerraformOutput(stack, "created_at", value=pool.created_at)
    core.TerraformOutput(stack, "scope", value=pool.attribute("allowed_workspace_ids"))
    # a token's id can feed another resource, like any reference
    TfeAgentToken(stack, "chained", agent_pool_id=pool.pool_id,
                  deliver_to=SsmParameter("/ci/chained"), rotate_on={"previous": runners.token_id})
    out = synth(stack)
    runners_name = next(k for k in out["resource"][TOKEN] if k.startswith("pool_runners"))
    batch_name = next(k for k in out["resource"][TOKEN] if k.startswith("pool_batch"))
    assert out["output"]["pool_id"]["value"] == "${tokendrop_tfe_agent_pool.pool.id}"
    assert out["output"]["token_id"]["value"] == f"${{tokendrop_tfe_agent_token.{runners_name}.id}}"
    assert out["output"]["sink_version"]["value"] == f"${{tokendrop_tfe_agent_token.{runners_name}.sink_version}}"
    assert out["output"]["sink_address"]["value"] == f"${{tokendrop_tfe_agent_token.{batch_name}.sink_address}}"
    assert out["output"]["created_at"]["value"] == "${tokendrop_tfe_agent_pool.pool.created_at}"
    assert out["output"]["scope"]["value"] == "${tokendrop_tfe_agent_pool.pool.allowed_workspace_ids}"
    chained = out["resource"][TOKEN]["chained"]
    assert chained["rotate_on"] == {"previous": f"${{tokendrop_tfe_agent_token.{runners_name}.id}}"}


@pytest.mark.parametrize(("given", "text"), [
    (timedelta(days=30), "30d"),
    (timedelta(weeks=2), "2w"),
    (timedelta(hours=36), "36h"),
    (timedelta(minutes=90), "90m"),
    (timedelta(hours=1, seconds=1), "3601s"),
    ("720h", "720h"),  # text is passed through as written
])
def test_durations(core, stack, synth, given, text):
    TokendropProvider(stack, "tokendrop")
    TfeAgentToken(stack, "t", agent_pool_id="apool-1", deliver_to=SsmParameter("/t"),
                  rotate_every=given, keep_previous_for=timedelta(0))
    token = synth.one(stack, TOKEN)
    assert token["rotate_every"] == text
    assert token["keep_previous_for"] == "0s"


def test_lifecycle_arguments(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    TfeAgentToken(stack, "t", agent_pool_id="apool-1", deliver_to=VaultSecret("ci/t"),
                  rotate_on={"image": "tfc-agent:1.15"}, keep_previous_for=timedelta(hours=2), adopt_existing=True)
    token = synth.one(stack, TOKEN)
    assert token["rotate_on"] == {"image": "tfc-agent:1.15"}
    assert token["keep_previous_for"] == "2h"
    assert token["adopt_existing"] is True
    assert "rotate_every" not in token  # unset arguments are left out, not null


def test_sets_are_sorted_lists_and_tags_keep_their_case(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    TfeAgentPool(stack, "pool", organization="acme", name="p", organization_scoped=False,
                 allowed_workspace_ids={"ws-b", "ws-a"}, excluded_workspace_ids=("ws-c",))
    TfeAgentToken(stack, "t", agent_pool_id="apool-1",
                  deliver_to=SsmParameter("/t", tags={"CostCenter": "42", "team": "ci"}, tier="Advanced"))
    assert synth.one(stack, POOL)["allowed_workspace_ids"] == ["ws-a", "ws-b"]
    assert synth.one(stack, POOL)["excluded_workspace_ids"] == ["ws-c"]
    ssm = synth.one(stack, TOKEN)["deliver_to"]["ssm"]
    assert ssm == {"name": "/t", "tier": "Advanced", "tags": {"CostCenter": "42", "team": "ci"}}


def test_deliver_to_as_a_mapping(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    TfeAgentToken(stack, "t", agent_pool_id="apool-1", deliver_to={"vault_kv": {"path": "ci/t"}})
    assert synth.one(stack, TOKEN)["deliver_to"] == {"vault_kv": {"path": "ci/t"}}


def test_provider_block(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    out = synth(stack)
    assert out["terraform"]["required_providers"]["tokendrop"] == {
        "source": "tokendrop/tokendrop", "version": provider_version()}
    assert out["provider"]["tokendrop"] == [{}]


def test_provider_settings_alias_and_references(core, stack, synth):
    token = core.TerraformVariable(stack, "tfe_token", type="string", sensitive=True)
    TokendropProvider(stack, "tokendrop")
    other = TokendropProvider(stack, "eu", alias="eu", tfe_address="https://tfe.eu.example.com",
                              tfe_token=token.string_value, vault_skip_verify=False)
    TfeAgentToken(stack, "t", agent_pool_id="apool-1", deliver_to=SsmParameter("/t"), provider=other)
    out = synth(stack)
    assert out["provider"]["tokendrop"] == [
        {}, {"alias": "eu", "tfe_address": "https://tfe.eu.example.com", "tfe_token": "${var.tfe_token}",
             "vault_skip_verify": False}]
    assert synth.one(stack, TOKEN)["provider"] == "tokendrop.eu"


def test_meta_arguments(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="p",
                        lifecycle=core.TerraformResourceLifecycle(prevent_destroy=True))
    TfeAgentToken(stack, "t", agent_pool_id="apool-1", deliver_to=SsmParameter("/t"), depends_on=[pool])
    assert synth.one(stack, POOL)["lifecycle"] == {"prevent_destroy": True}
    assert synth.one(stack, TOKEN)["depends_on"] == ["tokendrop_tfe_agent_pool.pool"]


def test_add_override_still_works(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="p")
    pool.add_override("name", "overridden")
    assert synth.one(stack, POOL)["name"] == "overridden"


def test_arguments_and_read_policy(core, stack):
    _, runners, batch, _ = ci_agents(stack)
    assert runners.arguments["deliver_to"]["ssm"]["name"] == "/ci/tfc-agent/token"
    assert runners.read_policy()["Statement"][0]["Resource"] == "arn:aws:ssm:*:*:parameter/ci/tfc-agent/token"
    assert batch.read_policy().startswith('path "secret/data/ci/tfc-agent/batch"')
    mapping = TfeAgentToken(stack, "mapped", agent_pool_id="apool-1", deliver_to={"ssm": {"name": "/m"}})
    with pytest.raises(ValueError, match="ci-agents/mapped: read_policy"):
        mapping.read_policy()


def test_missing_provider_block_is_reported_by_cdktf(core, stack):
    TfeAgentPool(stack, "pool", organization="acme", name="p")
    with pytest.raises(Exception, match="tokendrop"):
        core.Testing.synth(stack, True)  # with validations: cdktf's provider-presence check names us


def test_policy_outputs_stay_json_text(core, stack, synth):
    _, runners, _, _ = ci_agents(stack)
    core.TerraformOutput(stack, "policy", value=core.Fn.jsonencode(runners.read_policy()))
    value = synth(stack)["output"]["policy"]["value"]
    assert value.startswith("${jsonencode(") and "ssm:GetParameter" in value
    assert json.loads(runners.sink.read_policy_json())["Version"] == "2012-10-17"


def test_provider_alias_can_be_set_later(core, stack, synth):
    provider = TokendropProvider(stack, "tokendrop")
    provider.alias = "late"
    assert synth(stack)["provider"]["tokendrop"] == [{"alias": "late"}]
