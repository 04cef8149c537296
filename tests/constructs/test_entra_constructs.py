"""The Entra constructs: the issue's API (EntraAgentBlueprint + add_identity / trust / add_password), the
federated issuers' constructors, and bad input refused at synth. Runs on cdktf and cdktn."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokendrop import (
    EntraAgentBlueprint,
    Federated,
    SsmParameter,
    TokendropProvider,
    TokendropValidationError,
    VaultSecret,
)
from tokendrop_provider import schema

SPONSOR = "users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"
BLUEPRINT = schema.ENTRA_AGENT_BLUEPRINT.type_name
IDENTITY = schema.ENTRA_AGENT_IDENTITY.type_name
FIC = schema.ENTRA_BLUEPRINT_FEDERATED_CREDENTIAL.type_name
PASSWORD = schema.ENTRA_BLUEPRINT_PASSWORD.type_name
CERTIFICATE = schema.ENTRA_BLUEPRINT_CERTIFICATE.type_name


def test_a_blueprint_with_identities_trust_and_passwords_synthesizes(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    blueprint = EntraAgentBlueprint(stack, "support", display_name="support-agents", sponsors=[SPONSOR])
    blueprint.add_identity("triage", display_name="support-triage")
    blueprint.add_identity("billing", display_name="support-billing")
    blueprint.trust(federated=Federated.github_actions("acme/support-agent", branch="main"))
    blueprint.trust(federated=Federated.hcp_terraform("acme", "agents", "support", "apply"))
    blueprint.trust(federated=Federated.managed_identity("7f3c1a2e-5b6d-4e8f-9a0b-1c2d3e4f5a6b",
                                                         "59e617e5-e447-4adc-8b88-00af644d7c92"))
    blueprint.add_password("ssm", deliver_to=SsmParameter("/agents/support/blueprint"), valid_for=timedelta(days=90),
                           rotate_before_expiry=timedelta(days=14))
    blueprint.add_password("vault", deliver_to=VaultSecret(path="agents/support"))
    blueprint.add_certificate("cert", deliver_to=VaultSecret(path="agents/support/cert"), valid_for=timedelta(days=30),
                              keep_previous_for=timedelta(hours=24))

    assert synth.one(stack, BLUEPRINT) == {"display_name": "support-agents", "sponsors": [SPONSOR]}
    identities = synth.resources(stack, IDENTITY)
    assert sorted(i["display_name"] for i in identities.values()) == ["support-billing", "support-triage"]
    assert all(i["sponsors"] == [SPONSOR] and i["blueprint_app_id"].endswith(".app_id}")
               for i in identities.values())
    fics = {f["name"]: f for f in synth.resources(stack, FIC).values()}
    assert fics["github-acme-support-agent-main"]["subject"] == "repo:acme/support-agent:ref:refs/heads/main"
    assert fics["github-acme-support-agent-main"]["issuer"] == "https://token.actions.githubusercontent.com"
    assert fics["github-acme-support-agent-main"]["audiences"] == ["api://AzureADTokenExchange"]
    assert fics["tfc-acme-support-apply"]["subject"] == \
        "organization:acme:project:agents:workspace:support:run_phase:apply"
    managed = fics["managed-identity-59e617e5-e447-4adc-8b88-00af644d7c92"]
    assert managed["issuer"] == "https://login.microsoftonline.com/7f3c1a2e-5b6d-4e8f-9a0b-1c2d3e4f5a6b/v2.0"
    assert managed["subject"] == "59e617e5-e447-4adc-8b88-00af644d7c92"
    passwords = synth.resources(stack, PASSWORD)
    assert {p["deliver_to"].popitem()[0] for p in passwords.values()} == {"ssm", "vault_kv"}
    assert {p["blueprint_id"] for p in passwords.values()} == {"${tokendrop_entra_agent_blueprint.support.id}"}
    assert any(p.get("valid_for") == "90d" for p in passwords.values())
    assert synth.one(stack, CERTIFICATE) == {
        "blueprint_id": "${tokendrop_entra_agent_blueprint.support.id}", "valid_for": "30d",
        "keep_previous_for": "1d",
        "deliver_to": {"vault_kv": {"path": "agents/support/cert", "mount": "secret", "field": "token"}}}


@pytest.mark.parametrize(("make", "message"), [
    (lambda s: EntraAgentBlueprint(s, "bp", display_name="x", sponsors=[]), "sponsors"),
    (lambda s: EntraAgentBlueprint(s, "bp", display_name="x", sponsors=["servicePrincipals/abc"]), "sponsors"),
    (lambda s: EntraAgentBlueprint(s, "bp", display_name="x", sponsors=[SPONSOR]).trust(
        federated=Federated("https://issuer.example.com", "sub", "n" * 121)), "name"),
    (lambda s: EntraAgentBlueprint(s, "bp", display_name="x", sponsors=[SPONSOR]).trust(
        federated=Federated("http://issuer.example.com", "sub", "plain-http")), "issuer"),
    (lambda s: EntraAgentBlueprint(s, "bp", display_name="x", sponsors=[SPONSOR]).add_certificate(
        "c", deliver_to=VaultSecret(path="a/b"), rsa_bits=1024), "rsa_bits"),
])
def test_bad_input_is_refused_at_synth(core, stack, make, message):
    with pytest.raises(TokendropValidationError) as raised:
        make(stack)
    assert f": {message}:" in str(raised.value)


def test_the_same_trust_twice_is_refused_at_synth(core, stack):
    blueprint = EntraAgentBlueprint(stack, "bp", display_name="x", sponsors=[SPONSOR])
    blueprint.trust(federated=Federated.github_actions("acme/a", environment="prod"))
    with pytest.raises(TokendropValidationError, match="subject: the blueprint already trusts"):
        blueprint.trust("again", federated=Federated.github_actions("acme/a", environment="prod"), name="other")
    with pytest.raises(ValueError, match="exactly one of branch"):
        Federated.github_actions("acme/a", branch="main", tag="v1")
