"""The Microsoft Entra client against the Graph / token emulator (https on 127.0.0.1, real msal):
the three ways the provider signs in, objects and passwords, Graph's errors, throttling, replication
lag and a lost POST answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokendrop_provider.errors import IssuerAuthError, IssuerError, IssuerValidationError
from tokendrop_provider.issuers.entra import EntraClient, token_roles
from tokendrop_provider.sandbox.entra import SPONSOR_USER, EntraEmulator, make_certificate
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import EntraSettings

SPONSORS = [f"users/{SPONSOR_USER}"]
FAST = (0.01, 0.02, 0.05, 0.1)


def settings(entra: EntraEmulator, **changes: object) -> EntraSettings:
    base = {"tenant_id": entra.tenant_id, "client_id": entra.admin_client_id,
            "client_secret": Secret(entra.admin_secret), "graph_url": entra.graph_url,
            "authority_host": entra.url, "ca_cert": entra.ca_path}
    return EntraSettings(**{**base, **changes})  # type: ignore[arg-type]


def client(entra: EntraEmulator, **changes: object) -> EntraClient:
    return EntraClient(settings(entra, **changes), consistency_delays=FAST, backoff_base=0.01)


def blueprint_with_principal(c: EntraClient):  # type: ignore[no-untyped-def]
    blueprint = c.create_blueprint("support", SPONSORS)
    c.create_blueprint_principal(blueprint.app_id)
    return blueprint


def test_blueprint_agents_and_passwords_round_trip(fresh_entra_emulator):
    c = client(fresh_entra_emulator)
    blueprint = blueprint_with_principal(c)
    agent = c.create_agent_identity("triage", blueprint.app_id, SPONSORS)
    assert c.get_service_principal(agent.id).blueprint_app_id == blueprint.app_id

    minted = c.mint(blueprint.id, "dev [td:0123456789ab]", end_date_time="2027-01-01T00:00:00Z")
    listed = c.list_tokens(blueprint.id)
    assert [t.id for t in listed] == [minted.token.id]
    assert listed[0].description == "dev [td:0123456789ab]" and listed[0].expires_at == "2027-01-01T00:00:00Z"
    assert listed[0].extra["hint"] == minted.value.reveal()[:3]
    assert c.lookup(blueprint.id, minted.token.id) is not None
    # the value Graph showed once is nowhere in what a read returns
    assert minted.value.reveal() not in repr(fresh_entra_emulator.world())

    assert c.revoke(blueprint.id, minted.token.id) is True
    assert c.lookup(blueprint.id, minted.token.id) is None
    assert c.revoke(blueprint.id, minted.token.id) is False  # already gone: idempotent
    assert c.delete_service_principal(agent.id) is True
    assert c.delete_blueprint(blueprint.id) is True
    assert c.get_blueprint(blueprint.id) is None


def test_certificate_and_federated_sign_in(fresh_entra_emulator, tmp_path):
    entra = fresh_entra_emulator
    with_cert = client(entra, client_secret=None, client_certificate_path=entra.admin_cert_path)
    assert with_cert.create_blueprint("by-certificate", SPONSORS).app_id

    stranger, _ = make_certificate("stranger", str(tmp_path))
    refused = client(entra, client_secret=None, client_certificate_path=stranger)
    with pytest.raises(IssuerAuthError, match="refused the provider's credentials") as raised:
        refused.create_blueprint("nope", SPONSORS)
    assert "not registered" in raised.value.detail

    admin_object = entra.app_by_app_id(entra.admin_client_id)["id"]
    with_cert.create_federated_credential(admin_object, "ci", "https://ci.example.com", "job:deploy",
                                          ["api://AzureADTokenExchange"])
    token_file = tmp_path / "token"
    token_file.write_text(entra.workload_token("https://ci.example.com", "job:deploy"))
    federated = client(entra, client_secret=None, oidc_token_file_path=str(token_file))
    assert federated.create_blueprint("by-federation", SPONSORS).app_id
    token_file.write_text(entra.workload_token("https://ci.example.com", "job:other"))
    other = client(entra, client_secret=None, oidc_token_file_path=str(token_file))
    with pytest.raises(IssuerAuthError, match="refused"):
        other.create_blueprint("nope", SPONSORS)


def test_a_missing_permission_is_named_before_and_by_the_call(fresh_entra_emulator):
    entra = fresh_entra_emulator
    entra.roles.discard("AgentIdentityBlueprint.Create")
    c = client(entra)
    assert c.missing_roles(("AgentIdentityBlueprint.Create", "AgentIdentityBlueprint.ReadWrite.All"),
                           ("AgentIdentity.Create.All",)) == ["AgentIdentityBlueprint.Create"]
    assert "AgentIdentity.Create.All" in token_roles(c.access_token())
    with pytest.raises(IssuerAuthError) as raised:
        c.create_blueprint("support", SPONSORS)
    assert raised.value.status == 403
    assert "Authorization_RequestDenied" in raised.value.detail
    assert "application permission AgentIdentityBlueprint.Create" in raised.value.detail
    assert entra.world()["applications"] == [a for a in entra.world()["applications"]
                                             if a["appId"] == entra.admin_client_id]


def test_graph_errors_carry_code_and_message(fresh_entra_emulator):
    c = client(fresh_entra_emulator)
    blueprint = blueprint_with_principal(c)
    c.create_federated_credential(blueprint.id, "gh", "https://token.actions.githubusercontent.com", "repo:a/b:ref:x",
                                  ["api://AzureADTokenExchange"])
    with pytest.raises(IssuerValidationError) as raised:
        c.create_federated_credential(blueprint.id, "gh2", "https://token.actions.githubusercontent.com",
                                      "repo:a/b:ref:x", ["api://AzureADTokenExchange"])
    assert "same issuer and subject already exists" in raised.value.detail
    with pytest.raises(IssuerValidationError, match="refused") as missing:
        c.create_agent_identity("x", "00000000-0000-0000-0000-000000000000", SPONSORS)
    assert "Request_BadRequest" in missing.value.detail


def test_throttling_is_waited_out(fresh_entra_emulator):
    entra = fresh_entra_emulator
    c = client(entra)
    entra.add_fault("graph.agentIdentityBlueprint$", method="POST", status=429, headers={"Retry-After": "1"}, count=2)
    assert c.create_blueprint("support", SPONSORS).id
    posts = entra.requests("POST", "graph.agentIdentityBlueprint$")
    assert [r["status"] for r in posts] == [429, 429, 201]


def test_a_read_after_a_create_waits_for_replication(fresh_entra_emulator):
    entra = fresh_entra_emulator
    entra.consistency_reads = 2
    c = client(entra)
    blueprint = c.create_blueprint("support", SPONSORS)
    assert c.get_blueprint(blueprint.id).app_id == blueprint.app_id
    reads = entra.requests("GET", f"/applications/{blueprint.id}$")
    assert [r["status"] for r in reads] == [404, 404, 200]
    # an object this process did not create is not waited for: a 404 means gone
    entra.consistency_reads = 0
    assert client(entra).get_blueprint("5f0e3c1a-0000-4000-8000-000000000000") is None
    assert len(entra.requests("GET", "/applications/5f0e3c1a")) == 1


def test_an_add_password_whose_answer_is_lost_is_not_sent_again(fresh_entra_emulator):
    entra = fresh_entra_emulator
    c = client(entra)
    blueprint = blueprint_with_principal(c)
    entra.add_fault("/addPassword$", method="POST", when="after", action="disconnect")
    with pytest.raises(IssuerError, match="Could not reach") as raised:
        c.mint(blueprint.id, "dev [td:0123456789ab]")
    assert "not retried" in raised.value.detail
    assert len(entra.requests("POST", "/addPassword$")) == 1
    # Graph made it: the marker in its display name lets the next apply find and remove it
    (orphan,) = c.list_tokens(blueprint.id)
    assert orphan.description.endswith("[td:0123456789ab]")
    secret = entra.minted()[-1]["value"]
    assert secret not in str(raised.value)


def test_plain_http_to_a_remote_graph_is_refused(fresh_entra_emulator):
    from tokendrop_provider.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        client(fresh_entra_emulator, graph_url="http://graph.example.com/v1.0")
    assert raised.value.attribute == ("entra_graph_url",)


def test_a_pkcs12_certificate_with_a_password_signs_in(fresh_entra_emulator, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    entra = fresh_entra_emulator
    raw = Path(entra.admin_cert_path).read_bytes()
    key = serialization.load_pem_private_key(raw, None)
    cert = x509.load_pem_x509_certificate(raw[raw.index(b"-----BEGIN CERTIFICATE"):])
    pfx = tmp_path / "admin.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(
        b"admin", key, cert, None, serialization.BestAvailableEncryption(b"pfx-password")))  # type: ignore[arg-type]
    c = client(entra, client_secret=None, client_certificate_path=str(pfx),
               client_certificate_password=Secret("pfx-password"))
    assert c.create_blueprint("by-pfx", SPONSORS).app_id
    wrong = client(entra, client_secret=None, client_certificate_path=str(pfx),
                   client_certificate_password=Secret("not-the-password"))
    from tokendrop_provider.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        wrong.create_blueprint("nope", SPONSORS)
    assert raised.value.attribute == ("entra_client_certificate_path",)
