"""Bad input is refused when the construct is created, with the construct path and the attribute at
fault, using the provider's own rules; references are unknown at synth and pass, as at plan time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokendrop import (
    SsmParameter,
    TfeAgentPool,
    TfeAgentToken,
    TokendropProvider,
    TokendropValidationError,
    VaultSecret,
)
from tokendrop_provider import schema


@pytest.fixture
def pool(stack):
    TokendropProvider(stack, "tokendrop")
    return TfeAgentPool(stack, "pool", organization="acme", name="ci-agents")


def error_of(action) -> TokendropValidationError:
    with pytest.raises(TokendropValidationError) as info:
        action()
    return info.value


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p.add_token("runners", deliver_to=SsmParameter("ci/tfc-agent/token")),
     "ci-agents/pool/runners: deliver_to.ssm.name: parameter name 'ci/tfc-agent/token' uses a hierarchy, so it "
     "must be fully qualified and start with '/'"),
    (lambda p: p.add_token("runners", deliver_to=SsmParameter("/aws/reserved")),
     "ci-agents/pool/runners: deliver_to.ssm.name: parameter name '/aws/reserved' is reserved"),
    (lambda p: TfeAgentPool(p.node.scope, "empty", organization="acme", name=""),
     "ci-agents/empty: name: must not be empty"),
    (lambda p: p.add_token("none", deliver_to=None),
     "ci-agents/pool/none: deliver_to: is required"),
    (lambda p: p.add_token("empty", deliver_to={}),
     "ci-agents/pool/empty: deliver_to: set exactly one sink: `ssm` or `vault_kv`"),
    (lambda p: p.add_token("none", deliver_to=[]),
     "ci-agents/pool/none: deliver_to: must name at least one sink (an empty list delivers the token nowhere)"),
    (lambda p: p.add_token("twice", deliver_to=[SsmParameter("/a"), VaultSecret("b"), SsmParameter("/a")]),
     "ci-agents/pool/twice: deliver_to[2]: delivers to ssm:/a again (already sink 0)"),
    (lambda p: p.add_token("region", deliver_to=[SsmParameter("/a", region="Europe")]),
     "ci-agents/pool/region: deliver_to[0].ssm.region: 'Europe' is not an AWS region name (e.g. eu-west-1)"),
    (lambda p: p.add_token("two", deliver_to={"ssm": {"name": "/a"}, "vault_kv": {"path": "b"}}),
     "ci-agents/pool/two: deliver_to.vault_kv: set exactly one sink, not both"),
    (lambda p: p.add_token("same", deliver_to=[SsmParameter("/a", region="eu-west-1"), {"ssm": {"name": "/a"},
                                                                                       "vault_kv": {"path": "b"}}]),
     "ci-agents/pool/same: deliver_to[1].vault_kv: set exactly one sink, not both `ssm` and `vault_kv`"),
    (lambda p: p.add_token("short", deliver_to=SsmParameter("/a"), rotate_every=timedelta(minutes=30)),
     "ci-agents/pool/short: rotate_every: must be at least 1h (got 30m)"),
    (lambda p: p.add_token("text", deliver_to=SsmParameter("/a"), rotate_every="30 days"),
     "ci-agents/pool/text: rotate_every: '30 days' is not a duration"),
    (lambda p: p.add_token("negative", deliver_to=SsmParameter("/a"), keep_previous_for=timedelta(seconds=-5)),
     "ci-agents/pool/negative: keep_previous_for: must not be negative (got -5 seconds)"),
    (lambda p: p.add_token("typo", deliver_to={"ssm": {"nmae": "/a"}}),
     "ci-agents/pool/typo: deliver_to.ssm.nmae: unknown attribute; expected one of assume_role_arn, description"),
    (lambda p: p.add_token("tags", deliver_to=SsmParameter("/a", tags={"managed-by": "me"})),
     "ci-agents/pool/tags: deliver_to.ssm.tags: tag key 'managed-by' is reserved"),
    (lambda p: p.add_token("kms", deliver_to=SsmParameter("/a", kms_key_id="alias/")),
     "ci-agents/pool/kms: deliver_to.ssm.kms_key_id: kms_key_id 'alias/' needs an alias name"),
    (lambda p: p.add_token("tier", deliver_to=SsmParameter("/a", tier="Premium")),
     "ci-agents/pool/tier: deliver_to.ssm.tier: must be one of 'Standard', 'Advanced', 'Intelligent-Tiering'"),
    (lambda p: p.add_token("vault", deliver_to=VaultSecret("data/ci/x")),
     "ci-agents/pool/vault: deliver_to.vault_kv.path: path 'data/ci/x' starts with 'data'/"),
    (lambda p: p.add_token("desc", deliver_to=VaultSecret("ci/x"), description="x" * 201),
     "ci-agents/pool/desc: description: must be at most 200 characters (got 201)"),
    (lambda p: TfeAgentPool(p.node.scope, "badname", organization="acme", name="ci agents"),
     "ci-agents/badname: name: must contain only letters, numbers, - and _"),
    (lambda p: TfeAgentPool(p.node.scope, "typed", organization="acme", name=5),
     "ci-agents/typed: name: must be a string (got int 5)"),
    (lambda p: TfeAgentPool(p.node.scope, "ws", organization="acme", name="p", organization_scoped=False,
                            allowed_workspace_ids=["ws-ok", "nope"]),
     "ci-agents/ws: allowed_workspace_ids: 'nope' is not a workspace id (ws-…)"),
    (lambda p: TfeAgentPool(p.node.scope, "scoped", organization="acme", name="p", organization_scoped=True,
                            allowed_workspace_ids=["ws-1"]),
     "ci-agents/scoped: allowed_workspace_ids: only applies to a pool with organization_scoped = false"),
    (lambda p: TfeAgentToken(p.node.scope, "pool_id", agent_pool_id="pool-1", deliver_to=VaultSecret("x")),
     "ci-agents/pool_id: agent_pool_id: is not an agent pool id (apool-…)"),
])
def test_errors_name_the_construct_and_the_attribute(pool, make, expected):
    error = error_of(lambda: make(pool))
    assert str(error).startswith(expected), str(error)
    assert error.construct_path == expected.split(": ")[0]


def test_every_problem_is_reported_at_once(pool):
    error = error_of(lambda: pool.add_token("many", deliver_to=VaultSecret("data/x", mount="/secret"),
                                            rotate_every="soon"))
    lines = str(error).splitlines()
    assert {p.attribute for p in error.problems} == {"deliver_to.vault_kv.mount", "deliver_to.vault_kv.path",
                                                     "rotate_every"}
    assert len(lines) == 3 and all(line.startswith("ci-agents/pool/many: ") for line in lines)


def test_a_refused_construct_is_not_added_to_the_tree(core, stack, pool, synth):
    with pytest.raises(TokendropValidationError):
        pool.add_token("bad", deliver_to=SsmParameter("no/slash"))
    assert pool.node.try_find_child("bad") is None
    pool.add_token("bad", deliver_to=SsmParameter("/fixed"))  # the id is still free
    assert len(synth.resources(stack, schema.TFE_AGENT_TOKEN.type_name)) == 1


def test_unknown_argument_is_a_type_error(pool):
    with pytest.raises(TypeError, match="unexpected argument"):
        TfeAgentPool(pool.node.scope, "x", organization="acme", name="p", bogus=1)
    with pytest.raises(TypeError, match="deliver_to"):
        pool.add_token("t")  # type: ignore[call-arg]


def test_references_are_unknown_at_synth(core, stack, pool, synth):
    var = core.TerraformVariable(stack, "v", type="string")
    count = core.TerraformVariable(stack, "n", type="number")
    ids = core.TerraformVariable(stack, "ids", type="list(string)")
    tags = core.TerraformVariable(stack, "tags", type="map(string)")
    # Each would be invalid as a literal of that shape; as references Terraform checks them at plan.
    TfeAgentPool(stack, "p2", organization=var.string_value, name=core.Fn.lower(var.string_value),
                 organization_scoped=False, allowed_workspace_ids=ids.list_value)
    pool.add_token("t", deliver_to=SsmParameter(var.string_value, tags=core.Token.as_string_map(tags.value)),
                   rotate_every=var.string_value, description=core.Token.as_string(count.number_value))
    pool.add_token("mixed", deliver_to=VaultSecret(path=var.string_value, mount="secret"),
                   rotate_on={"v": var.string_value})
    TfeAgentPool(stack, "p3", organization="acme", name="p3", organization_scoped=False,
                 allowed_workspace_ids=["ws-literal", var.string_value])
    out = synth(stack)
    assert out["resource"]["tokendrop_tfe_agent_pool"]["p2"]["allowed_workspace_ids"] == "${var.ids}"


def test_literals_beside_references_are_checked(stack, pool):
    # Known attributes of the same resource are still checked when another one is a reference.
    error = error_of(lambda: TfeAgentPool(stack, "p", organization="${var.org}", name="",
                                          organization_scoped=False, allowed_workspace_ids=["${var.x}"]))
    assert str(error) == "ci-agents/p: name: must not be empty"


def test_provider_refuses_literal_credentials(core, stack):
    error = error_of(lambda: TokendropProvider(stack, "tokendrop", tfe_token="abc.atlasv1.xyz",
                                               vault_token="hvs.x"))
    assert [p.attribute for p in error.problems] == ["tfe_token", "vault_token"]
    assert "would be written into cdktf.out" in str(error) and "TFE_TOKEN" in str(error)
    assert "abc.atlasv1.xyz" not in str(error)


def test_provider_settings_are_checked_against_the_schema(stack):
    error = error_of(lambda: TokendropProvider(stack, "tokendrop", vault_skip_verify="yes"))
    assert str(error) == "ci-agents/tokendrop: vault_skip_verify: must be true or false (got str 'yes')"
    with pytest.raises(TypeError, match="tfe_adress"):
        TokendropProvider(stack, "tokendrop", tfe_adress="https://x")


def test_resolvables_pass_and_objects_in_the_wrong_place_do_not(core, stack, pool, synth):
    flag = core.TerraformVariable(stack, "scoped", type="bool")
    TfeAgentPool(stack, "p2", organization="acme", name="p2", organization_scoped=flag.boolean_value)
    assert synth(stack)["resource"]["tokendrop_tfe_agent_pool"]["p2"]["organization_scoped"] == "${var.scoped}"
    error = error_of(lambda: TfeAgentToken(stack, "t", agent_pool_id=pool, deliver_to=VaultSecret("x")))
    assert str(error).startswith("ci-agents/t: agent_pool_id: must be a string (got TfeAgentPool")
    error = error_of(lambda: TfeAgentToken(stack, "t", agent_pool_id="apool-1", deliver_to="/ci/x"))
    assert str(error) == ("ci-agents/t: deliver_to: expected a sink such as SsmParameter(...) or VaultSecret(...) "
                          "(got str)")
