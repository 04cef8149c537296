"""TokenVaultWebhook: the `deliver_to.tokenvault_webhook` shape, the provider's address, and synth-time
validation naming the attribute."""

from __future__ import annotations

import pytest

from tokendrop import TfeAgentPool, TokendropProvider, TokendropValidationError, TokenVaultWebhook
from tokendrop_provider.registry.sinks import deliver_to_from_address
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import TokenVaultSettings
from tokendrop_provider.sinks.tokenvault_webhook import TokenVaultWebhookSink


def test_config_address_and_parse_back():
    assert TokenVaultWebhook("buildkite-ci").to_config() == {"tokenvault_webhook": {"service": "buildkite-ci"}}
    pinned = TokenVaultWebhook("buildkite-ci", webhook_url="https://hook.example.com")
    assert pinned.to_config() == {"tokenvault_webhook": {"service": "buildkite-ci",
                                                          "webhook_url": "https://hook.example.com"}}
    settings = TokenVaultSettings(api_key=Secret("tvkey_" + "k" * 40))
    assert pinned.address == TokenVaultWebhookSink("buildkite-ci", settings=settings).address
    assert pinned.address == "tokenvault_webhook:buildkite-ci"
    assert deliver_to_from_address(pinned.address)["tokenvault_webhook"] == {"service": "buildkite-ci",
                                                                             "webhook_url": None}


def test_synth_renders_the_nested_object(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    pool.add_token("runners", deliver_to=TokenVaultWebhook("tfc-agent", webhook_url="https://hook.example.com"))
    token = synth.one(stack, "tokendrop_tfe_agent_token")
    assert token["deliver_to"] == {"tokenvault_webhook": {"service": "tfc-agent",
                                                          "webhook_url": "https://hook.example.com"}}


@pytest.mark.parametrize(("sink", "attribute"), [
    (TokenVaultWebhook("ci/agent"), "deliver_to.tokenvault_webhook.service"),
    (TokenVaultWebhook("ci", webhook_url="http://hook.example.com"), "deliver_to.tokenvault_webhook.webhook_url"),
])
def test_bad_input_fails_at_synth_naming_the_attribute(core, stack, sink, attribute):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    with pytest.raises(TokendropValidationError) as raised:
        pool.add_token("runners", deliver_to=sink)
    assert attribute in str(raised.value)


def test_the_agents_stack_with_a_webhook(core, stack, synth, monkeypatch):
    from stacks import agents

    monkeypatch.setenv("TOKENDROP_TOKENVAULT_WEBHOOK_URL", "https://hook.example.com")
    made = agents.define(stack)
    assert {"deploy-cluster", "deployer"} <= set(made)
    [token] = synth.resources(stack, "tokendrop_buildkite_cluster_token").values()
    assert token["deliver_to"] == {"tokenvault_webhook": {"service": "buildkite-agents",
                                                          "webhook_url": "https://hook.example.com"}}
    grants = {g["service"]: g for g in synth.resources(stack, "tokendrop_tokenvault_agent_grant").values()}
    assert grants["buildkite-agents"]["agent_id"] == "${tokendrop_tokenvault_agent.deployer.id}"
    [after] = grants["buildkite-agents"]["depends_on"]  # granted once Token Vault knows the service
    assert after.startswith("tokendrop_buildkite_cluster_token.")
