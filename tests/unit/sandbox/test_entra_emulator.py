"""The Entra emulator against msal (the official client): the two-step agent token flow with a
delivered password, the refusals a real tenant gives, secretText shown once, Graph's error shape."""

from __future__ import annotations

from pathlib import Path

import msal
import pytest
import requests

from tokendrop_provider.issuers.entra import token_roles
from tokendrop_provider.sandbox.entra import SPONSOR_USER, EntraEmulator

BIND = [f"https://graph.microsoft.com/v1.0/users/{SPONSOR_USER}"]


def http(entra: EntraEmulator) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = entra.ca_path
    return session


def app(entra: EntraEmulator, client_id: str, credential: object) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, client_credential=credential, http_client=http(entra),
                                              authority=f"{entra.url}/{entra.tenant_id}", instance_discovery=False)


def graph(entra: EntraEmulator) -> requests.Session:
    token = app(entra, entra.admin_client_id, entra.admin_secret).acquire_token_for_client(
        ["https://graph.microsoft.com/.default"])["access_token"]
    session = http(entra)
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def test_the_agent_token_flow_with_a_blueprint_password(fresh_entra_emulator):
    entra = fresh_entra_emulator
    g = graph(entra)
    blueprint = g.post(f"{entra.graph_url}/applications/microsoft.graph.agentIdentityBlueprint",
                       json={"displayName": "bp", "sponsors@odata.bind": BIND}).json()
    assert g.post(f"{entra.graph_url}/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal",
                  json={"appId": blueprint["appId"]}).status_code == 201
    agent = g.post(f"{entra.graph_url}/servicePrincipals/microsoft.graph.agentIdentity",
                   json={"displayName": "a", "agentIdentityBlueprintId": blueprint["appId"],
                         "sponsors@odata.bind": BIND}).json()
    added = g.post(f"{entra.graph_url}/applications/{blueprint['id']}/microsoft.graph.agentIdentityBlueprint/"
                   "addPassword", json={"passwordCredential": {"displayName": "dev"}})
    assert added.status_code == 200
    secret = added.json()["secretText"]
    stored = g.get(f"{entra.graph_url}/applications/{blueprint['id']}").json()["passwordCredentials"]
    assert stored[0]["secretText"] is None and stored[0]["hint"] == secret[:3]  # shown once

    blueprint_app = app(entra, blueprint["appId"], secret)
    t1 = blueprint_app.acquire_token_for_client(["api://AzureADTokenExchange/.default"], fmi_path=agent["appId"])
    assert "access_token" in t1, t1
    agent_app = app(entra, agent["appId"], {"client_assertion": lambda: t1["access_token"]})
    t2 = agent_app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert "access_token" in t2, t2
    assert token_roles(t2["access_token"]) == set()  # the agent holds only what was granted to it

    # a wrong secret, an fmi_path that is not this blueprint's agent, T1 presented by another agent
    assert app(entra, blueprint["appId"], "wrong").acquire_token_for_client(
        ["https://graph.microsoft.com/.default"])["error"] == "invalid_client"
    refused = blueprint_app.acquire_token_for_client(["api://AzureADTokenExchange/.default"],
                                                     fmi_path="00000000-0000-0000-0000-000000000000")
    assert "AADSTS82001" in refused["error_description"]
    other = g.post(f"{entra.graph_url}/servicePrincipals/microsoft.graph.agentIdentity",
                   json={"displayName": "b", "agentIdentityBlueprintId": blueprint["appId"],
                         "sponsors@odata.bind": BIND}).json()
    stolen = app(entra, other["appId"], {"client_assertion": lambda: t1["access_token"]})
    assert stolen.acquire_token_for_client(["https://graph.microsoft.com/.default"])["error"] == "invalid_client"

    # removed: the secret no longer signs in
    key_id = stored[0]["keyId"]
    assert g.post(f"{entra.graph_url}/applications/{blueprint['id']}/microsoft.graph.agentIdentityBlueprint/"
                  "removePassword", json={"keyId": key_id}).status_code == 204
    assert app(entra, blueprint["appId"], secret).acquire_token_for_client(
        ["https://graph.microsoft.com/.default"])["error"] == "invalid_client"


@pytest.mark.parametrize(("body", "message"), [
    ({"displayName": "bp"}, "sponsors property is required"),
    ({"displayName": "bp", "sponsors@odata.bind": ["https://graph.microsoft.com/v1.0/servicePrincipals/x"]},
     "users or groups only"),
    ({"sponsors@odata.bind": BIND}, "displayName"),
])
def test_a_blueprint_needs_a_name_and_a_sponsor(fresh_entra_emulator, body, message):
    entra = fresh_entra_emulator
    answer = graph(entra).post(f"{entra.graph_url}/applications/microsoft.graph.agentIdentityBlueprint", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "Request_BadRequest"
    assert message in answer.json()["error"]["message"]


def test_graph_checks_the_token_and_its_roles(fresh_entra_emulator):
    entra = fresh_entra_emulator
    anonymous = http(entra).get(f"{entra.graph_url}/applications/x")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    entra.roles = {"Application.Read.All"}
    denied = graph(entra).post(f"{entra.graph_url}/applications/microsoft.graph.agentIdentityBlueprint",
                               json={"displayName": "bp", "sponsors@odata.bind": BIND})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert entra.world()["applications"][0]["appId"] == entra.admin_client_id
    assert len(entra.world()["applications"]) == 1


def test_a_fresh_object_answers_404_to_its_first_reads_when_switched_on(fresh_entra_emulator):
    entra = fresh_entra_emulator
    entra.consistency_reads = 1
    g = graph(entra)
    blueprint = g.post(f"{entra.graph_url}/applications/microsoft.graph.agentIdentityBlueprint",
                       json={"displayName": "bp", "sponsors@odata.bind": BIND}).json()
    first = g.get(f"{entra.graph_url}/applications/{blueprint['id']}")
    assert first.status_code == 404 and first.json()["error"]["code"] == "Request_ResourceNotFound"
    assert g.get(f"{entra.graph_url}/applications/{blueprint['id']}").status_code == 200


def test_key_credentials_are_updated_whole_and_only_certificates_are_taken(fresh_entra_emulator, tmp_path):
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tokendrop_provider.sandbox.entra import make_certificate

    entra = fresh_entra_emulator
    g = graph(entra)
    blueprint = g.post(f"{entra.graph_url}/applications/microsoft.graph.agentIdentityBlueprint",
                       json={"displayName": "bp", "sponsors@odata.bind": BIND}).json()
    url = f"{entra.graph_url}/applications/{blueprint['id']}/microsoft.graph.agentIdentityBlueprint"
    path, pem = make_certificate("bp-cert", str(tmp_path))
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    entry = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der).decode(),
             "displayName": "one"}
    assert g.patch(url, json={"keyCredentials": [entry]}).status_code == 204
    plain = g.get(f"{entra.graph_url}/applications/{blueprint['id']}").json()["keyCredentials"]
    selected = g.get(f"{entra.graph_url}/applications/{blueprint['id']}",
                     params={"$select": "id,keyCredentials"}).json()["keyCredentials"]
    assert plain[0]["key"] is None and selected[0]["key"] == entry["key"]  # `key` only when selected
    # the registered certificate signs the blueprint in (msal: PS256 assertion, x5t#S256)
    key_and_cert = Path(path).read_text()  # the file make_certificate wrote
    signed_in = app(entra, blueprint["appId"], {"private_key": key_and_cert, "public_certificate": pem})
    assert "access_token" in signed_in.acquire_token_for_client(["https://graph.microsoft.com/.default"])

    private = key_and_cert[:key_and_cert.index("-----BEGIN CERTIFICATE")]
    refused = g.patch(url, json={"keyCredentials": [{**entry, "key": base64.b64encode(private.encode()).decode()}]})
    assert refused.status_code == 400 and "X.509 certificate" in refused.json()["error"]["message"]
    assert g.patch(url, json={"keyCredentials": [{**entry, "usage": "Sign"}]}).status_code == 400
    assert g.patch(url, json={"keyCredentials": []}).status_code == 204  # the whole collection, emptied
    assert g.get(f"{entra.graph_url}/applications/{blueprint['id']}").json()["keyCredentials"] == []

    entra.roles.discard("AgentIdentityBlueprint.UpdateBranding.All")
    renamed = graph(entra).patch(url, json={"displayName": "other"})
    assert renamed.status_code == 403 and "UpdateBranding" in renamed.json()["error"]["message"]
