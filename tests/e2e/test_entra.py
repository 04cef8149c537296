"""Microsoft Entra Agent ID through the real terraform binary against the Graph / token emulator, moto and
OpenBao. Proves: a blueprint with a federated credential, a password delivered to SSM and one to Vault,
and two agent identities, in one apply, with the plan's warning about client secrets; the delivered
password runs the two-step agent token flow with msal; rotation (new key id, the old one removed, the
sink's next version); drift (a key removed out of band plans a new password); destroy leaves nothing
at Graph or in the sinks; a missing Graph permission fails the plan naming the role; a permission Graph
still refuses at apply leaves no blueprint behind; two federated credentials with one issuer+subject
give Graph's error; a provider killed right after addPassword converges on the next apply. Every
workspace is scanned for every secret the emulator issued (make_workspace)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import msal
import pytest
import requests

from fixtures.terraform import PROVIDER, PROVIDER_HEADER, processes_with, scan
from tokendrop_provider.issuers.entra import EntraClient
from tokendrop_provider.markers import issuer_description, marker
from tokendrop_provider.settings import Settings

pytestmark = pytest.mark.e2e

SPONSOR = "users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"
BLUEPRINT = f"""
resource "tokendrop_entra_agent_blueprint" "support" {{
  display_name = "support-agents"
  sponsors     = ["{SPONSOR}"]
}}
"""


def identities(*names: str) -> str:
    return "".join(f"""
resource "tokendrop_entra_agent_identity" "{name}" {{
  blueprint_app_id = tokendrop_entra_agent_blueprint.support.app_id
  display_name     = "support-{name}"
  sponsors         = ["{SPONSOR}"]
}}
""" for name in names)


def fic(name: str, subject: str, label: str | None = None) -> str:
    return f"""
resource "tokendrop_entra_blueprint_federated_credential" "{label or name}" {{
  blueprint_id = tokendrop_entra_agent_blueprint.support.id
  name         = "{name}"
  issuer       = "https://token.actions.githubusercontent.com"
  subject      = "{subject}"
}}
"""


def password(name: str, deliver_to: str, epoch: str = "1", valid_for: str = "30d") -> str:
    return f"""
resource "tokendrop_entra_blueprint_password" "{name}" {{
  blueprint_id = tokendrop_entra_agent_blueprint.support.id
  description  = "{name}"
  valid_for    = "{valid_for}"
  rotate_every = "7d"
  rotate_on    = {{ epoch = "{epoch}" }}
  deliver_to   = {deliver_to}
}}
"""


SSM = '{ ssm = { name = "/agents/support/blueprint" } }'
VAULT = '{ vault_kv = { path = "agents/support" } }'


def full(epoch: str = "1") -> str:
    return (PROVIDER_HEADER + BLUEPRINT + fic("github-main", "repo:acme/support:ref:refs/heads/main")
            + password("ssm", SSM, epoch) + password("vault", VAULT) + identities("triage", "billing"))


def said(result) -> str:  # type: ignore[no-untyped-def]
    """The output with terraform's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def box(sandbox, fresh_entra_emulator):
    sandbox.entra = fresh_entra_emulator
    return sandbox


def blueprints(entra) -> list[dict]:
    return [a for a in entra.world()["applications"] if a["appId"] != entra.admin_client_id]


def _msal(entra, client_id: str, credential: object, token_endpoint: str) -> msal.ConfidentialClientApplication:
    http = requests.Session()
    http.trust_env = False
    http.verify = entra.ca_path
    return msal.ConfidentialClientApplication(client_id, client_credential=credential, http_client=http,
                                              authority=token_endpoint.removesuffix("/oauth2/v2.0/token"),
                                              instance_discovery=False)


def blueprint_token(entra, delivered: dict, scope: str = "api://AzureADTokenExchange/.default",
                    fmi_path: str | None = None) -> dict:
    """A token for the client the delivered settings name, with its delivered secret."""
    app = _msal(entra, delivered["client_id"], delivered["client_secret"], delivered["token_endpoint"])
    return app.acquire_token_for_client([scope], fmi_path=fmi_path)


def agent_token(entra, delivered: dict, agent_app_id: str) -> dict:
    """What an agent does with the delivered credential, with msal: the blueprint's token for its agent
    identity (fmi_path), then its own token."""
    t1 = blueprint_token(entra, delivered, fmi_path=agent_app_id)
    assert "access_token" in t1, t1.get("error_description")
    agent = _msal(entra, agent_app_id, {"client_assertion": lambda: t1["access_token"]}, delivered["token_endpoint"])
    return agent.acquire_token_for_client(["https://graph.microsoft.com/.default"])


def test_blueprint_credentials_and_agents_rotate_drift_destroy(box, make_workspace):
    entra = box.entra
    ws = make_workspace(box.env)
    ws.write(full())
    ws.init()
    plan = ws.plan()
    assert "6 to add, 0 to change, 0 to destroy" in plan.stdout
    assert "A client secret is planned for an agent identity blueprint" in said(plan)
    assert "federated_credential" in said(plan)  # the warning names the recommended alternative
    ws.apply()

    state = ws.resources()
    (blueprint,) = blueprints(entra)
    assert state["tokendrop_entra_agent_blueprint.support"]["id"] == blueprint["id"]
    assert state["tokendrop_entra_agent_blueprint.support"]["principal_id"]
    ssm_value, version = box.ssm_value("/agents/support/blueprint")
    delivered = json.loads(ssm_value)
    assert set(delivered) == {"client_id", "client_secret", "tenant_id", "token_endpoint"}
    assert delivered["client_id"] == blueprint["appId"] and delivered["tenant_id"] == entra.tenant_id
    assert version == state["tokendrop_entra_blueprint_password.ssm"]["sink_version"]
    vault_value, _ = box.vault_value("agents/support")
    assert vault_value["client_id"] == blueprint["appId"] and vault_value["client_secret"] != delivered["client_secret"]
    keys = {c["keyId"]: c for c in blueprint["passwordCredentials"]}
    ssm_key = state["tokendrop_entra_blueprint_password.ssm"]["id"]
    assert set(keys) == {ssm_key, state["tokendrop_entra_blueprint_password.vault"]["id"]}
    assert keys[ssm_key]["hint"] == delivered["client_secret"][:3] == state["tokendrop_entra_blueprint_password.ssm"][
        "hint"]
    assert keys[ssm_key]["displayName"].startswith("ssm [td:")  # the crash marker
    triage = state["tokendrop_entra_agent_identity.triage"]["app_id"]
    assert "access_token" in agent_token(entra, delivered, triage)
    assert "access_token" in agent_token(entra, vault_value,
                                         state["tokendrop_entra_agent_identity.billing"]["app_id"])
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]

    # rotation: a new password as the sink's next version; the old key id is removed at Graph
    ws.write(full(epoch="2"))
    ws.apply()
    rotated = ws.resources()["tokendrop_entra_blueprint_password.ssm"]
    assert rotated["id"] != ssm_key
    new_value, new_version = box.ssm_value("/agents/support/blueprint")
    assert new_version == version + 1 and json.loads(new_value)["client_secret"] != delivered["client_secret"]
    keys = {c["keyId"] for c in blueprints(entra)[0]["passwordCredentials"]}
    assert ssm_key not in keys and rotated["id"] in keys
    assert blueprint_token(entra, delivered).get("error") == "invalid_client"  # the old secret is dead

    # drift: someone removes the Vault password at Graph; the plan makes a new one
    vault_key = ws.resources()["tokendrop_entra_blueprint_password.vault"]["id"]
    admin = {"client_id": entra.admin_client_id, "client_secret": entra.admin_secret,
             "token_endpoint": entra.token_endpoint}
    graph_token = blueprint_token(entra, admin, "https://graph.microsoft.com/.default")["access_token"]
    removed = requests.post(f"{entra.graph_url}/applications/{blueprint['id']}/microsoft.graph.agentIdentityBlueprint/"
                            "removePassword", json={"keyId": vault_key}, verify=entra.ca_path,
                            headers={"Authorization": f"Bearer {graph_token}"}, timeout=10)
    assert removed.status_code == 204
    drift = ws.plan()
    assert "1 to add, 0 to change, 0 to destroy" in drift.stdout
    ws.apply()
    assert ws.resources()["tokendrop_entra_blueprint_password.vault"]["id"] != vault_key
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]

    ws.destroy()
    assert blueprints(entra) == []
    assert entra.world()["servicePrincipals"] == []
    assert box.ssm_value("/agents/support/blueprint") is None
    assert box.vault_value("agents/support") is None


def test_a_missing_graph_permission_fails_the_plan_naming_it(box, make_workspace):
    entra = box.entra
    entra.roles.discard("AgentIdentityBlueprintPrincipal.Create")
    ws = make_workspace(box.env)
    ws.write(PROVIDER_HEADER + BLUEPRINT)
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode != 0
    assert "AgentIdentityBlueprintPrincipal.Create" in said(result)
    assert "Nothing was created" in said(result)
    assert [r for r in entra.requests() if r["method"] != "GET" and "/v1.0/" in r["path"]] == []


def test_a_refusal_after_the_blueprint_was_made_leaves_nothing_behind(box, make_workspace):
    entra = box.entra
    ws = make_workspace(box.env)
    ws.write(PROVIDER_HEADER + BLUEPRINT)
    ws.init()
    entra.add_fault("agentIdentityBlueprintPrincipal$", method="POST", status=403, count=1)
    result = ws.apply(check=False)
    assert result.returncode != 0
    assert "AgentIdentityBlueprintPrincipal.Create" in said(result)
    assert "was deleted again: nothing was left behind" in said(result)
    assert blueprints(entra) == []
    assert ws.resources() == {}


def test_a_second_federated_credential_with_the_same_subject_is_graphs_clear_error(box, make_workspace):
    entra = box.entra
    ws = make_workspace(box.env)
    subject = "repo:acme/support:ref:refs/heads/main"
    ws.write(PROVIDER_HEADER + BLUEPRINT + fic("one", subject) + fic("two", subject))
    ws.init()
    result = ws.apply(check=False)
    assert result.returncode != 0
    assert "same issuer and subject already exists" in said(result)
    names = [k.split(".")[1] for k in ws.resources() if "federated" in k]
    assert len(names) == 1  # one landed, the other was refused
    # with the first one in place, a new configuration repeating it fails at plan
    ws.write(PROVIDER_HEADER + BLUEPRINT + fic(names[0], subject) + fic("three", subject))
    again = ws.plan(check=False)
    assert again.returncode != 0 and "already trusts" in said(again)
    ws.write(PROVIDER_HEADER + BLUEPRINT)
    ws.apply()
    ws.destroy()
    assert blueprints(entra) == []


def test_a_provider_killed_after_add_password_converges(box, make_workspace):
    entra = box.entra
    marker = uuid.uuid4().hex
    ws = make_workspace({**box.env, "TOKENDROP_CRASH_TEST": marker})
    ws.write(PROVIDER_HEADER + BLUEPRINT + password("ssm", SSM))
    ws.init()
    ws.apply("-target=tokendrop_entra_agent_blueprint.support")

    def kill(_event: dict) -> None:
        for pid in processes_with(marker, PROVIDER):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    entra.on_event_call("password.added", kill)
    result = ws.apply(check=False)
    assert result.returncode != 0, "the provider was killed"
    assert "tokendrop_entra_blueprint_password.ssm" not in ws.resources()
    (blueprint,) = blueprints(entra)
    assert len(blueprint["passwordCredentials"]) == 1  # minted, never delivered: an orphan with our marker
    assert box.ssm_value("/agents/support/blueprint") is None

    ws.apply()
    state = ws.resources()["tokendrop_entra_blueprint_password.ssm"]
    (blueprint,) = blueprints(entra)
    assert [c["keyId"] for c in blueprint["passwordCredentials"]] == [state["id"]], "the orphan was removed"
    value, version = box.ssm_value("/agents/support/blueprint")
    assert json.loads(value)["client_secret"][:3] == state["hint"] and version == state["sink_version"]
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.destroy()
    assert blueprints(entra) == []


def test_the_audit_flags_expiring_overdue_and_orphaned_passwords(box, make_workspace):
    entra = box.entra
    ws = make_workspace(box.env)
    short_certificate = certificate("cert", CERT_VAULT).replace('valid_for    = "30d"', 'valid_for    = "3d"')
    ws.write(PROVIDER_HEADER + BLUEPRINT + password("ssm", SSM, valid_for="3d") + short_certificate)
    ws.init()
    ws.apply()
    state = ws.resources()["tokendrop_entra_blueprint_password.ssm"]
    cert_state = ws.resources()["tokendrop_entra_blueprint_certificate.cert"]
    blueprint_id = state["blueprint_id"]
    # a password minted for this sink by a run that died before delivering it
    client = EntraClient(Settings.resolve({}, env=box.env).group("entra"))
    orphan = client.mint(blueprint_id, issuer_description("ssm", marker("entra", blueprint_id, state["sink_address"])))
    path = ws.directory / "terraform.tfstate"
    raw = json.loads(path.read_text())
    for resource in raw["resources"]:
        if resource["type"] == "tokendrop_entra_blueprint_password":
            resource["instances"][0]["attributes"]["created_at"] = "2020-01-01T00:00:00Z"  # rotate_every 7d: overdue
    path.write_text(json.dumps(raw))

    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    command = Path(sys.executable).with_name("tokendrop")
    result = subprocess.run([str(command), "audit", "--state", str(path), "--json"], capture_output=True, text=True,
                            env={**keep, **box.env}, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    rows = {row["address"]: row for row in document["tokens"] if row["address"]}
    row = rows["tokendrop_entra_blueprint_password.ssm"]
    assert row["issuer"] == "entra" and row["token_id"] == state["id"] and row["issuer_status"] == "live"
    assert sorted(f["code"] for f in row["flags"]) == ["expiring", "rotation_overdue"]
    assert row["sink"]["status"] == "delivered"
    cert_row = rows["tokendrop_entra_blueprint_certificate.cert"]
    assert cert_row["issuer"] == "entra_certificate" and cert_row["token_id"] == cert_state["id"]
    assert [f["code"] for f in cert_row["flags"]] == ["expiring"] and cert_row["sink"]["status"] == "delivered"
    orphans = {row["token_id"]: row for row in document["tokens"] if row["address"] is None}
    assert set(orphans) == {orphan.token.id}
    assert orphans[orphan.token.id]["belongs_to"] == "tokendrop_entra_blueprint_password.ssm"
    private_key = box.vault_value("agents/support/certificate")[0]["private_key"]  # unknown to the emulator
    values = [m["value"] for m in entra.minted()] + [private_key]
    assert scan(values, [("audit", result.stdout + result.stderr)]) == []
    assert scan([private_key], ws.artifacts()) == []
    assert blueprints(entra)[0]["id"] == blueprint_id


def certificate(name: str, deliver_to: str, epoch: str = "1", keep: str | None = None) -> str:
    keep_line = f'  keep_previous_for = "{keep}"\n' if keep else ""
    return f"""
resource "tokendrop_entra_blueprint_certificate" "{name}" {{
  blueprint_id = tokendrop_entra_agent_blueprint.support.id
  description  = "{name}"
  valid_for    = "30d"
  rotate_on    = {{ epoch = "{epoch}" }}
{keep_line}  deliver_to   = {deliver_to}
}}
"""


def certificate_token(entra, delivered: dict, agent_app_id: str | None = None) -> dict:
    """Sign in with a delivered certificate (msal: PS256 client assertion); with an agent, run the
    fmi_path exchange for it."""
    credential = {"private_key": delivered["private_key"], "public_certificate": delivered["certificate"]}
    app = _msal(entra, delivered["client_id"], credential, delivered["token_endpoint"])
    if agent_app_id is None:
        return app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    t1 = app.acquire_token_for_client(["api://AzureADTokenExchange/.default"], fmi_path=agent_app_id)
    assert "access_token" in t1, t1.get("error_description")
    agent = _msal(entra, agent_app_id, {"client_assertion": lambda: t1["access_token"]}, delivered["token_endpoint"])
    return agent.acquire_token_for_client(["https://graph.microsoft.com/.default"])


CERT_VAULT = '{ vault_kv = { path = "agents/support/certificate" } }'


def test_a_certificate_signs_the_agent_in_and_rotates_with_an_overlap(box, make_workspace):
    entra = box.entra
    ws = make_workspace(box.env)
    ws.write(PROVIDER_HEADER + BLUEPRINT + certificate("cert", CERT_VAULT, keep="1h") + identities("triage"))
    ws.init()
    ws.apply()
    state = ws.resources()["tokendrop_entra_blueprint_certificate.cert"]
    delivered, version = box.vault_value("agents/support/certificate")
    assert set(delivered) == {"client_id", "tenant_id", "token_endpoint", "private_key", "certificate"}
    assert delivered["private_key"].startswith("-----BEGIN PRIVATE KEY")
    triage = ws.resources()["tokendrop_entra_agent_identity.triage"]["app_id"]
    assert "access_token" in certificate_token(entra, delivered, triage)  # the agent's token, from the certificate
    (blueprint,) = blueprints(entra)
    assert [c["keyId"] for c in blueprint["keyCredentials"]] == [state["id"]]
    assert state["thumbprint"] == blueprint["keyCredentials"][0]["customKeyIdentifier"]
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]

    # rotation: the new certificate is delivered as the next version; the old one stays valid for the overlap
    ws.write(PROVIDER_HEADER + BLUEPRINT + certificate("cert", CERT_VAULT, epoch="2", keep="1h") + identities("triage"))
    ws.apply()
    rotated = ws.resources()["tokendrop_entra_blueprint_certificate.cert"]
    assert rotated["id"] != state["id"] and rotated["previous_token_id"] == state["id"]
    new, new_version = box.vault_value("agents/support/certificate")
    assert new_version == version + 1 and new["private_key"] != delivered["private_key"]
    assert "access_token" in certificate_token(entra, new, triage)
    assert "access_token" in certificate_token(entra, delivered)  # the overlap
    # the overlap ends: the next apply removes the previous certificate
    path = ws.directory / "terraform.tfstate"
    raw = json.loads(path.read_text())
    for resource in raw["resources"]:
        if resource["type"] == "tokendrop_entra_blueprint_certificate":
            resource["instances"][0]["attributes"]["previous_revoke_after"] = "2020-01-01T00:00:00Z"
    raw["serial"] += 1
    path.write_text(json.dumps(raw))
    ended = ws.plan()
    assert "will be revoked" in said(ended)
    ws.apply()
    assert [c["keyId"] for c in blueprints(entra)[0]["keyCredentials"]] == [rotated["id"]]
    assert certificate_token(entra, delivered).get("error") == "invalid_client"
    assert "access_token" in certificate_token(entra, new)

    ws.destroy()
    assert blueprints(entra) == []
    assert box.vault_value("agents/support/certificate") is None
    # the emulator never sees a private key, so the fixture's canaries do not hold them: scan for them here
    assert scan([delivered["private_key"], new["private_key"]], ws.artifacts()) == []


def test_a_provider_killed_after_adding_a_certificate_converges(box, make_workspace):
    entra = box.entra
    marker_env = uuid.uuid4().hex
    ws = make_workspace({**box.env, "TOKENDROP_CRASH_TEST": marker_env})
    ws.write(PROVIDER_HEADER + BLUEPRINT + certificate("cert", CERT_VAULT))
    ws.init()
    ws.apply("-target=tokendrop_entra_agent_blueprint.support")

    def kill(_event: dict) -> None:
        for pid in processes_with(marker_env, PROVIDER):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    entra.on_event_call("keys.updated", kill)
    assert ws.apply(check=False).returncode != 0, "the provider was killed"
    assert len(blueprints(entra)[0]["keyCredentials"]) == 1  # added, never delivered
    assert box.vault_value("agents/support/certificate") is None
    ws.apply()
    state = ws.resources()["tokendrop_entra_blueprint_certificate.cert"]
    assert [c["keyId"] for c in blueprints(entra)[0]["keyCredentials"]] == [state["id"]], "the orphan was removed"
    delivered, version = box.vault_value("agents/support/certificate")
    assert version == state["sink_version"] and "access_token" in certificate_token(entra, delivered)
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.destroy()
    assert blueprints(entra) == []
    assert scan([delivered["private_key"]], ws.artifacts()) == []  # not among the emulator's canaries


def test_blueprints_identities_and_credentials_import_without_changes(box, make_workspace):
    entra = box.entra
    ws = make_workspace(box.env)
    # rotate_on and valid_for are not readable from Graph: with them, an imported password rotates once
    # (docs/lifecycle.md), so this one has neither.
    minimal_password = ('resource "tokendrop_entra_blueprint_password" "ssm" {\n'
                        "  blueprint_id = tokendrop_entra_agent_blueprint.support.id\n"
                        '  description  = "ssm"\n'
                        f"  deliver_to   = {SSM}\n}}\n")
    config = (PROVIDER_HEADER + BLUEPRINT + fic("github-main", "repo:acme/support:ref:refs/heads/main")
              + identities("triage") + minimal_password)
    ws.write(config)
    ws.init()
    ws.apply()
    state = ws.resources()
    blueprint_id = state["tokendrop_entra_agent_blueprint.support"]["id"]
    imports = {
        "tokendrop_entra_agent_blueprint.support": blueprint_id,
        "tokendrop_entra_agent_identity.triage": state["tokendrop_entra_agent_identity.triage"]["id"],
        "tokendrop_entra_blueprint_federated_credential.github-main": f"{blueprint_id}/github-main",
        "tokendrop_entra_blueprint_password.ssm": f"{blueprint_id}/ssm:/agents/support/blueprint",  # by the record
    }
    for address in imports:
        ws.run("state", "rm", address)
    blocks = "".join(f'import {{\n  to = {address}\n  id = "{id_}"\n}}\n' for address, id_ in imports.items())
    ws.write(config + blocks)
    plan = ws.plan()
    assert "4 to import, 0 to add, 0 to change, 0 to destroy" in plan.stdout, plan.stdout
    ws.apply()
    key = "tokendrop_entra_blueprint_password.ssm"
    assert ws.resources()[key]["id"] == state[key]["id"]  # adopted through the sink's record, not minted again
    ws.write(config)
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.destroy()
    assert blueprints(entra) == []


def test_sponsors_and_names_change_in_place(box, make_workspace):
    entra = box.entra
    other = "groups/47309f33-e0ff-4be6-8efe-28b504c8cd2e"
    ws = make_workspace(box.env)
    ws.write(PROVIDER_HEADER + BLUEPRINT + identities("triage"))
    ws.init()
    ws.apply()
    before = ws.resources()
    both = f'["{SPONSOR}", "{other}"]'
    renamed = BLUEPRINT.replace(f'["{SPONSOR}"]', f'["{other}"]').replace('"support-agents"', '"support-agents-v2"')
    changed = PROVIDER_HEADER + renamed + identities("triage").replace(f'["{SPONSOR}"]', both)
    ws.write(changed)
    plan = ws.plan()
    assert "0 to add, 2 to change, 0 to destroy" in plan.stdout
    ws.apply()
    after = ws.resources()
    address = "tokendrop_entra_agent_blueprint.support"
    assert after[address]["id"] == before[address]["id"]  # not replaced
    (blueprint,) = blueprints(entra)
    assert blueprint["displayName"] == "support-agents-v2"
    client = EntraClient(Settings.resolve({}, env=box.env).group("entra"))
    assert client.sponsors(blueprint["id"]) == [other]
    agent = after["tokendrop_entra_agent_identity.triage"]["id"]
    assert client.sponsors(agent, agent_identity=True) == sorted([SPONSOR, other])
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]

    # without Application.ReadWrite.All, a sponsor change fails the plan naming the attribute and the role
    entra.roles.discard("Application.ReadWrite.All")
    ws.write(PROVIDER_HEADER + renamed + identities("triage").replace(f'["{SPONSOR}"]', f'["{other}"]'))
    refused = ws.plan(check=False)
    assert refused.returncode != 0 and "Application.ReadWrite.All" in said(refused)
    assert client.sponsors(agent, agent_identity=True) == sorted([SPONSOR, other])  # nothing was changed
    # terraform destroy plans the configuration first: the configuration the permissions allow
    ws.write(changed)
    ws.destroy()
    assert blueprints(entra) == []


def test_an_apply_waits_out_replication_lag(box, make_workspace):
    entra = box.entra
    entra.consistency_reads = 2  # every new object answers 404 to its first two reads
    ws = make_workspace(box.env)
    ws.write(PROVIDER_HEADER + BLUEPRINT + password("ssm", SSM) + identities("triage"))
    ws.init()
    ws.apply()
    (blueprint,) = blueprints(entra)
    reads = [r["status"] for r in entra.requests("GET", f"/applications/{blueprint['id']}$")]
    assert reads[:3] == [404, 404, 200]  # the password's read of the blueprint it was created with
    entra.settle()
    entra.consistency_reads = 0
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.destroy()
    assert blueprints(entra) == []


def test_a_password_delivered_to_secrets_manager_is_one_json_secret(box, make_workspace):
    import boto3

    entra = box.entra
    ws = make_workspace(box.env)
    sink = '{ secrets_manager = { name = "agents/support/blueprint", recovery_window_in_days = 0 } }'
    ws.write(PROVIDER_HEADER + BLUEPRINT + password("sm", sink) + identities("triage"))
    ws.init()
    ws.apply()
    client = boto3.client("secretsmanager", endpoint_url=box.moto.url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    held = json.loads(client.get_secret_value(SecretId="agents/support/blueprint",
                                              VersionStage="AWSCURRENT")["SecretString"])
    assert set(held) == {"client_id", "client_secret", "tenant_id", "token_endpoint"}
    triage = ws.resources()["tokendrop_entra_agent_identity.triage"]["app_id"]
    assert "access_token" in agent_token(entra, held, triage)
    ws.destroy()
    assert blueprints(entra) == []
