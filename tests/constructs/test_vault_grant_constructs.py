"""The vault-grant constructs: the issue's API verbatim (TokenVaultAgent + grant(), VaultAppRoleSecretId),
grants validated as they are added, and the agents stack. Runs on cdktf and cdktn."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokendrop import (
    SsmParameter,
    TokendropProvider,
    TokendropValidationError,
    TokenVaultAgent,
    TokenVaultAgentGrant,
    TokenVaultKey,
    VaultAppRoleSecretId,
    VaultSecret,
)
from tokendrop_provider import schema

AGENT = schema.TOKENVAULT_AGENT.type_name
APPROLE = schema.VAULT_APPROLE_SECRET_ID.type_name
GRANT = schema.TOKENVAULT_AGENT_GRANT.type_name
KEY = schema.TOKENVAULT_KEY.type_name
KEY_GRANT = schema.TOKENVAULT_KEY_GRANT.type_name


def test_the_issue_example_synthesizes(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    bot = TokenVaultAgent(stack, "triage", name="triage-bot", description="issue triage",
                          deliver_key_to=SsmParameter("/agents/triage/tvagent-key"))
    bot.grant("github")
    bot.grant("linear")
    VaultAppRoleSecretId(stack, "ci-login", role_name="ci", mount="approle", ttl=timedelta(hours=24),
                         cidr_list=["10.0.0.0/8"], num_uses=0, metadata={"pipeline": "deploy"},
                         deliver_to=SsmParameter("/ci/vault/secret-id"))
    assert synth.one(stack, AGENT) == {
        "name": "triage-bot", "description": "issue triage",
        "deliver_to": {"ssm": {"name": "/agents/triage/tvagent-key"}},
    }
    # grant() declares one grant resource per service, referring to the agent's id.
    grants = synth.resources(stack, GRANT)
    assert sorted(g["service"] for g in grants.values()) == ["github", "linear"]
    assert {g["agent_id"] for g in grants.values()} == {"${tokendrop_tokenvault_agent.triage.id}"}
    assert synth.one(stack, APPROLE) == {
        "role_name": "ci", "mount": "approle", "ttl": "1d", "cidr_list": ["10.0.0.0/8"], "num_uses": 0,
        "metadata": {"pipeline": "deploy"}, "deliver_to": {"ssm": {"name": "/ci/vault/secret-id"}},
    }


@pytest.mark.parametrize(("service", "message"), [
    ("linear", "grants: 'linear' is already granted"),  # a duplicate service
    ("", "service: must not be empty"),
    ("a/b", "service: must not contain /"),
])
def test_a_bad_grant_fails_when_it_is_added(core, stack, synth, service, message):
    TokendropProvider(stack, "tokendrop")
    bot = TokenVaultAgent(stack, "triage", name="triage-bot", deliver_key_to=VaultSecret(path="agents/triage"))
    bot.grant("linear")
    with pytest.raises(TokendropValidationError) as raised:
        bot.grant(service)
    assert "triage" in str(raised.value) and message in str(raised.value)
    assert list(bot.grants) == ["linear"], "a refused grant is not kept"
    assert len(synth.resources(stack, GRANT)) == 1, "nor declared"


def test_inline_grants_and_grant_resources_on_one_agent_fail_at_synth(core, stack):
    """Inline grants are authoritative (the agent revokes what they do not list), so mixing them with
    grant resources would make the two fight: refused, naming `grants`."""
    TokendropProvider(stack, "tokendrop")
    bot = TokenVaultAgent(stack, "triage", name="triage-bot", deliver_key_to=SsmParameter("/agents/triage/key"),
                          grants=[{"service": "github"}])
    with pytest.raises(TokendropValidationError) as raised:
        bot.grant("linear")
    assert "triage: grants: " in str(raised.value) and "not both" in str(raised.value)


def test_a_grant_resource_on_its_own(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    TokenVaultAgentGrant(stack, "g", agent_id="agt_123", service="github")
    assert synth.one(stack, GRANT) == {"agent_id": "agt_123", "service": "github"}
    with pytest.raises(TokendropValidationError) as raised:
        TokenVaultAgentGrant(stack, "h", agent_id="a/b", service="github")
    assert "h: agent_id: must not contain /" in str(raised.value)


@pytest.mark.parametrize(("arguments", "attribute"), [
    ({"name": ""}, "name"),
    ({"deliver_key_to": None}, "deliver_to"),
])
def test_bad_agent_input_fails_at_synth(core, stack, arguments, attribute):
    TokendropProvider(stack, "tokendrop")
    kwargs = {"name": "bot", "deliver_key_to": SsmParameter("/agents/bot/key"), **arguments}
    with pytest.raises(TokendropValidationError) as raised:
        TokenVaultAgent(stack, "bot", **kwargs)
    assert attribute in str(raised.value)


@pytest.mark.parametrize(("arguments", "attribute"), [
    ({"ttl": "-1h"}, "ttl"),
    ({"num_uses": -1}, "num_uses"),
    ({"cidr_list": ["10.0.0.300/8"]}, "cidr_list"),
    ({"token_bound_cidrs": ["not a cidr"]}, "token_bound_cidrs"),
])
def test_bad_approle_input_fails_at_synth(core, stack, arguments, attribute):
    TokendropProvider(stack, "tokendrop")
    kwargs = {"role_name": "ci", "deliver_to": SsmParameter("/ci/vault/secret-id"), **arguments}
    with pytest.raises(TokendropValidationError) as raised:
        VaultAppRoleSecretId(stack, "login", **kwargs)
    assert "login" in str(raised.value) and attribute in str(raised.value)


def test_the_agents_stack(core, stack, synth):
    from stacks import agents

    made = agents.define(stack)
    assert set(made) == {"triage", "release-key", "ci-login"}
    assert "grants" not in synth.one(stack, AGENT)
    assert sorted(g["service"] for g in synth.resources(stack, GRANT).values()) == ["github", "linear"]
    assert synth.one(stack, APPROLE)["rotate_before_expiry"] == "2h"
    assert synth.one(stack, KEY) == {
        "name": "triage-bot-release", "scopes": ["credentials:read"], "rotate_every": "30d",
        "deliver_to": {"ssm": {"name": "/agents/triage-bot/release-key"}}}
    assert synth.one(stack, KEY_GRANT) == {"key_id": "${tokendrop_tokenvault_key.release-key.id}",
                                           "service": "github", "expires_in": "1w"}  # 7 days


def test_a_key_and_its_time_limited_grant(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    key = TokenVaultKey(stack, "reader", name="ci-reader", scopes=["agents:read", "tokens:list"],
                        deliver_to=VaultSecret(path="ci/tokenvault"), keep_previous_for=timedelta(hours=1))
    key.grant("github", expires_in=timedelta(hours=12))
    key.grant("linear")
    grants = {g["service"]: g for g in synth.resources(stack, KEY_GRANT).values()}
    assert grants["github"]["expires_in"] == "12h" and "expires_in" not in grants["linear"]
    assert synth.one(stack, KEY)["keep_previous_for"] == "1h"


@pytest.mark.parametrize(("call", "message"), [
    (lambda key: key.grant("github", expires_in=timedelta(minutes=30)), "expires_in: must be at least 1h"),
    (lambda key: key.grant("github", expires_in=timedelta(days=31)), "expires_in: must be at most 30d"),
    (lambda key: key.grant("github", expires_in="90m"), "expires_in: must be a whole number of hours"),
    (lambda key: key.grant("linear"), "grant: 'linear' is already granted"),
])
def test_a_bad_key_grant_fails_when_it_is_added(core, stack, synth, call, message):
    TokendropProvider(stack, "tokendrop")
    key = TokenVaultKey(stack, "reader", name="ci-reader", scopes=["agents:read"],
                        deliver_to=SsmParameter("/ci/tokenvault/key"))
    key.grant("linear")
    with pytest.raises(TokendropValidationError) as raised:
        call(key)
    assert "reader" in str(raised.value) and message in str(raised.value)
    assert len(synth.resources(stack, KEY_GRANT)) == 1, "a refused grant is not declared"


@pytest.mark.parametrize(("scopes", "message"), [
    (["keys:manage"], "only a signed-in human may delegate it"),
    (["agents:everything"], "scopes"),
    ([], "scopes"),
])
def test_a_key_with_scopes_a_key_cannot_get_fails_at_synth(core, stack, scopes, message):
    TokendropProvider(stack, "tokendrop")
    with pytest.raises(TokendropValidationError) as raised:
        TokenVaultKey(stack, "reader", name="ci-reader", scopes=scopes, deliver_to=SsmParameter("/ci/k"))
    assert "reader: scopes" in str(raised.value) and message in str(raised.value)
