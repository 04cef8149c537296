"""`tokendrop audit` against a deployment made by the real terraform binary in the sandbox: a clean
deployment audits clean (exit 0); after an orphan is minted, a token revoked out of band, a sink
overwritten out of band and a token aged past rotate_every, the audit flags exactly those (exit 1).
No minted token value ever appears in the audit's output."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.terraform import scan
from tokendrop_provider.delivery import issuer_description, marker
from tokendrop_provider.issuers.tfe import TfeClient
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import TfeSettings

pytestmark = pytest.mark.e2e

CONFIG = """
terraform {
  required_providers {
    tokendrop = { source = "tokendrop/tokendrop" }
  }
}

provider "tokendrop" {}

resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci-agents"
}

resource "tokendrop_tfe_agent_token" "runners" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  description   = "ci runners"
  rotate_every  = "30d"
  deliver_to    = { ssm = { name = "/ci/tfc-agent/runners" } }
}

resource "tokendrop_tfe_agent_token" "deploy" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to    = { ssm = { name = "/ci/tfc-agent/deploy" } }
}

resource "tokendrop_tfe_agent_token" "batch" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to    = { vault_kv = { mount = "secret", path = "ci/tfc-agent/batch" } }
}

resource "tokendrop_tfe_agent_token" "spare" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  rotate_every  = "30d"
  deliver_to    = { vault_kv = { mount = "secret", path = "ci/tfc-agent/spare" } }
}
"""

ADDRESSES = {f"tokendrop_tfe_agent_token.{name}" for name in ("runners", "deploy", "batch", "spare")}


def audit(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `tokendrop` command, as a pipeline would run it: only the given settings."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    command = Path(sys.executable).with_name("tokendrop")
    return subprocess.run([str(command), "audit", *args], input=stdin, capture_output=True, text=True,
                          env={**keep, **env}, timeout=120, check=False)


def by_address(document: dict) -> dict[str, dict]:
    return {row["address"]: row for row in document["tokens"] if row["address"] is not None}


def orphans(document: dict) -> dict[str, dict]:
    return {row["token_id"]: row for row in document["tokens"] if row["address"] is None}


def assert_no_values(sandbox, *results: subprocess.CompletedProcess[str]) -> None:
    values = sandbox.minted_values()
    assert values, "the canary needs minted values to look for"
    outputs = [(f"audit {' '.join(r.args[2:])}", r.stdout + r.stderr) for r in results]
    assert scan(values, outputs) == []
    assert scan(values, [("planted", f"x {values[0]} y")]) == [("planted", values[0][:6] + "…")]


def test_clean_deployment_audits_clean(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(CONFIG)
    ws.init()
    ws.apply()

    # `terraform show -json` on stdin, walking the organization too
    shown = ws.run("show", "-json", "-no-color").stdout
    result = audit(sandbox.env, "--state", "-", "--tfe-organization", "acme", "--json", stdin=shown)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress on a pipe, no warnings
    document = json.loads(result.stdout)
    assert document["schema"] == "tokendrop-audit/1"
    assert document["summary"] == {"tokens": 4, "attention": 0, "flags": dict.fromkeys(
        ("orphan", "revoked", "sink_drift", "rotation_overdue", "expiring", "previous_overdue"), 0)}
    rows = by_address(document)
    assert set(rows) == ADDRESSES
    resources = ws.resources()
    pool_id = resources["tokendrop_tfe_agent_pool.ci"]["id"]
    for address, row in rows.items():
        assert row["token_id"] == resources[address]["id"]
        assert row["scope"] == pool_id and row["scope_name"] == "ci-agents"
        assert row["issuer_status"] == "live" and row["flags"] == [] and row["attention"] is False
        assert row["sink"]["status"] == "delivered" and row["sink"]["version"] == 1 == row["sink"]["state_version"]
        assert row["marker"] == marker("tfe", pool_id, resources[address]["sink_address"])
    assert document["scopes"] == [{"issuer": "tfe", "scope": pool_id, "name": "ci-agents", "origin": "state+walk",
                                   "exists": True, "tokens": 4}]

    # `terraform state pull` on stdin, and the table
    pulled = ws.run("state", "pull").stdout
    table = audit(sandbox.env, "--state", "-", stdin=pulled)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["ADDRESS", "ISSUER", "TOKEN", "AGE", "EXPIRES", "LAST", "USED",
                                                    "SINK", "VERSION", "STATUS"]
    assert "4 tokens, 0 need attention" in table.stdout
    assert_no_values(sandbox, result, table)


def test_audit_flags_exactly_what_went_wrong(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(CONFIG)
    ws.init()
    ws.apply()
    resources = ws.resources()
    pool_id = resources["tokendrop_tfe_agent_pool.ci"]["id"]
    token = {name: resources[f"tokendrop_tfe_agent_token.{name}"] for name in ("runners", "deploy", "batch", "spare")}

    # 1. An orphan in the pool of the state, carrying the marker of spare's sink (as a crashed run leaves
    #    it), minted through the TFE API; and a token minted by hand without a marker, which is not ours.
    with TfeClient(TfeSettings(sandbox.tfe.url, Secret(sandbox.tfe.sandbox_token))) as client:
        mark = marker("tfe", pool_id, token["spare"]["sink_address"])
        orphan = client.mint(pool_id, issuer_description("left by a crash", mark)).token.id
        client.mint(pool_id, "made by hand in the UI")
    # ...and one in a pool no state knows: only a walk of the organization finds it.
    other_pool = sandbox.tfe.create_agent_pool("acme", "other")
    stray, _ = sandbox.tfe.create_agent_token(other_pool, issuer_description(None, marker("tfe", other_pool,
                                                                                            "ssm:/gone/stack")))
    # 2. Revoked out of band.
    sandbox.revoke_out_of_band(token["deploy"]["id"])
    # 3. A sink overwritten out of band.
    sandbox.vault().secrets.kv.v2.create_or_update_secret(path="ci/tfc-agent/batch", secret={"token": "someone"},
                                                          mount_point="secret")
    # 4. A token aged past rotate_every, by editing the state file.
    path = ws.directory / "terraform.tfstate"
    state = json.loads(path.read_text())
    aged = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for res in state["resources"]:
        if res["type"] == "tokendrop_tfe_agent_token" and res["name"] == "runners":
            res["instances"][0]["attributes"]["created_at"] = aged
    path.write_text(json.dumps(state, indent=2))
    # An agent used the runners token: the audit shows it.
    assert sandbox.tfe.mark_token_used(sandbox.token_value(token["runners"]["id"]))

    result = audit(sandbox.env, "--state", str(ws.directory), "--tfe-organization", "acme", "--json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    rows = by_address(document)
    assert {address: [f["code"] for f in row["flags"]] for address, row in rows.items()} == {
        "tokendrop_tfe_agent_token.runners": ["rotation_overdue"],
        "tokendrop_tfe_agent_token.deploy": ["revoked"],
        "tokendrop_tfe_agent_token.batch": ["sink_drift"],
        "tokendrop_tfe_agent_token.spare": [],
    }
    found = orphans(document)
    assert set(found) == {orphan, stray}
    assert [f["code"] for f in found[orphan]["flags"]] == ["orphan"]
    assert found[orphan]["belongs_to"] == "tokendrop_tfe_agent_token.spare"
    assert found[stray]["scope"] == other_pool and found[stray]["belongs_to"] is None
    assert document["summary"]["attention"] == 5 and document["summary"]["tokens"] == 6

    assert rows["tokendrop_tfe_agent_token.deploy"]["issuer_status"] == "revoked"
    batch_sink = rows["tokendrop_tfe_agent_token.batch"]["sink"]
    assert (batch_sink["status"], batch_sink["state_version"], batch_sink["version"]) == ("overwritten", 1, 2)
    assert rows["tokendrop_tfe_agent_token.runners"]["age_seconds"] >= 40 * 86400
    assert rows["tokendrop_tfe_agent_token.runners"]["last_used_at"] is not None
    assert rows["tokendrop_tfe_agent_token.spare"]["last_used_at"] is None
    assert [(s["type"], s["name"]) for s in document["sources"]] == [("state", str(path)), ("tfe_organization", "acme")]

    # Without the organization walk, only the scopes of the state are listed: the stray is not seen.
    narrow = audit(sandbox.env, "--state", str(path), "--json")
    assert narrow.returncode == 1
    assert set(orphans(json.loads(narrow.stdout))) == {orphan}

    # The table says the same for people; --progress draws on stderr, never on stdout.
    table = audit(sandbox.env, "--state", str(path), "--tfe-organization", "acme", "--progress")
    assert table.returncode == 1
    assert "6 tokens, 5 need attention (2 orphans, 1 revoked, 1 sink drift, 1 rotation overdue)" in table.stdout
    assert "tokendrop audit: listing scopes 2/2" in table.stderr
    assert "tokendrop audit:" not in table.stdout
    assert_no_values(sandbox, result, narrow, table)


def test_missing_credentials_exit_2(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(CONFIG)
    ws.init()
    ws.apply()
    env = {k: v for k, v in sandbox.env.items() if k != "TFE_TOKEN"}
    result = audit(env, "--state", str(ws.directory / "terraform.tfstate"), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Missing TFE token" in result.stderr and "TFE_TOKEN" in result.stderr



OTHER_ISSUERS = """
terraform {{
  required_providers {{
    tokendrop = {{ source = "tokendrop/tokendrop" }}
  }}
}}

provider "tokendrop" {{}}

resource "tokendrop_buildkite_cluster" "linux" {{
  name = "linux"
}}

resource "tokendrop_buildkite_cluster_token" "elastic" {{
  cluster_id  = tokendrop_buildkite_cluster.linux.id
  description = "elastic stack"
  expires_in  = "5d"
  deliver_to  = {{ ssm = {{ name = "/buildkite/linux/agent-token" }} }}
}}

resource "tokendrop_tokenvault_agent" "bot" {{
  name       = "triage-bot"
  deliver_to = {{ ssm = {{ name = "/agents/triage/key" }} }}
}}

resource "tokendrop_vault_approle_secret_id" "ci" {{
  role_name         = "{role}"
  ttl               = "720h"
  keep_previous_for = "1h"
  rotate_on         = {{ generation = "{generation}" }}
  deliver_to        = {{ vault_kv = {{ path = "ci/vault-login" }} }}
}}
"""


def test_buildkite_tokenvault_and_approle(sandbox, fresh_buildkite_emulator, fresh_tokenvault_emulator,
                                          make_workspace):
    import uuid

    from tokendrop_provider.issuers.vault_approle import VaultAppRoleIssuer
    from tokendrop_provider.sandbox.approle import setup_sample_approle
    from tokendrop_provider.settings import VaultSettings

    sandbox.buildkite, sandbox.tokenvault = fresh_buildkite_emulator, fresh_tokenvault_emulator
    role = f"ci-{uuid.uuid4().hex[:8]}"
    setup_sample_approle(sandbox.bao, role=role)
    ws = make_workspace(sandbox.env)
    ws.write(OTHER_ISSUERS.format(role=role, generation="1"))
    ws.init()
    # Buildkite and Vault resources planned at once: their first imports of `requests` race (lazy.py).
    ws.apply()
    ws.write(OTHER_ISSUERS.format(role=role, generation="2"))  # a rotation that keeps the previous secret id
    ws.apply()
    resources = ws.resources()
    secret = resources["tokendrop_vault_approle_secret_id.ci"]
    assert secret["previous_token_id"]
    walk = ("--buildkite-organization", "acme", "--tokenvault", "--approle-role", f"approle/{role}")

    # Freshly applied: only the Buildkite token, minted to expire in 5 days, needs attention (the default
    # window is 7 days); --expiring-within 3d makes it clean.
    first = audit(sandbox.env, "--state", str(ws.directory), *walk, "--json")
    assert first.returncode == 1, first.stderr
    document = json.loads(first.stdout)
    assert {r["address"]: [f["code"] for f in r["flags"]] for r in document["tokens"]} == {
        "tokendrop_buildkite_cluster_token.elastic": ["expiring"],
        "tokendrop_tokenvault_agent.bot": [],
        "tokendrop_vault_approle_secret_id.ci": [],
    }
    rows = by_address(document)
    assert rows["tokendrop_vault_approle_secret_id.ci"]["previous_token"] == {
        "id": secret["previous_token_id"], "revoke_after": secret["previous_revoke_after"], "live": True}
    assert rows["tokendrop_tokenvault_agent.bot"]["scope"] == "triage-bot"
    for row in rows.values():
        assert row["issuer_status"] == "live" and row["sink"]["status"] == "delivered"
    relaxed = audit(sandbox.env, "--state", str(ws.directory), *walk, "--expiring-within", "3d")
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr

    # Orphans: a Token Vault agent and an AppRole secret id carrying the markers of their sinks, and a
    # Buildkite token in a cluster no state knows. Then the previous secret id's grace period ends.
    tv_orphan, _ = sandbox.tokenvault.create_agent(
        "triage-bot", issuer_description(None, marker("tokenvault", "triage-bot", "ssm:/agents/triage/key")))
    issuer = VaultAppRoleIssuer(VaultSettings(address=sandbox.bao.url, token=Secret(sandbox.bao.root_token)))
    minted = issuer.mint(f"approle/{role}", issuer_description(None, marker(
        "vault-approle", f"approle/{role}", secret["sink_address"])), ttl="1h")
    cluster = sandbox.buildkite.create_cluster("acme", "stray")
    bk_orphan = sandbox.buildkite.create_cluster_token(cluster, issuer_description("old", marker(
        "buildkite", f"acme/{cluster}", "ssm:/gone")))[0]
    path = ws.directory / "terraform.tfstate"
    state = json.loads(path.read_text())
    for res in state["resources"]:
        if res["type"] == "tokendrop_vault_approle_secret_id":
            res["instances"][0]["attributes"]["previous_revoke_after"] = "2020-01-01T00:00:00Z"
    path.write_text(json.dumps(state))

    second = audit(sandbox.env, "--state", str(path), *walk, "--json")
    assert second.returncode == 1, second.stderr
    document = json.loads(second.stdout)
    assert [f["code"] for f in by_address(document)["tokendrop_vault_approle_secret_id.ci"]["flags"]] == [
        "previous_overdue"]
    found = orphans(document)
    assert set(found) == {tv_orphan, minted.token.id, bk_orphan}
    assert found[tv_orphan]["belongs_to"] == "tokendrop_tokenvault_agent.bot"
    assert found[minted.token.id]["belongs_to"] == "tokendrop_vault_approle_secret_id.ci"
    assert found[bk_orphan]["scope"] == f"acme/{cluster}" and found[bk_orphan]["belongs_to"] is None

    # The canary: no key, token or secret id (minted by terraform or by this test) in any output.
    delivered = sandbox.vault_value("ci/vault-login")
    values = [*sandbox.buildkite.minted_values(), *sandbox.tokenvault.minted_values(), minted.value.reveal(),
              delivered[0]["secret_id"], delivered[0]["role_id"]]
    outputs = [(f"audit {i}", r.stdout + r.stderr) for i, r in enumerate((first, relaxed, second))]
    assert scan(values, outputs) == []


FANOUT = """
terraform {
  required_providers {
    tokendrop = { source = "tokendrop/tokendrop" }
  }
}

provider "tokendrop" {}

resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci-agents"
}

resource "tokendrop_tfe_agent_token" "fleet" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to = [
    { ssm = { name = "/ci/fleet", region = "eu-west-1" } },
    { ssm = { name = "/ci/fleet", region = "us-east-1" } },
    { ssm = { name = "/ci/fleet", assume_role_arn = "arn:aws:iam::111111111111:role/tokendrop-writer" } },
    { vault_kv = { path = "ci/fleet" } },
  ]
}
"""
FANOUT_SINKS = ["ssm:eu-west-1:/ci/fleet", "ssm:us-east-1:/ci/fleet", "ssm:111111111111:/ci/fleet",
                "vault_kv:secret/ci/fleet#token"]


def test_every_sink_of_a_fanout_is_audited_in_its_region_and_account(sandbox, make_workspace):
    """One token in SSM in two regions, in another account through an assumed role, and in Vault: the
    audit reads each sink where it is; one region's parameter deleted out of band is one finding,
    naming that sink, and the other sinks stay delivered."""
    import boto3

    env = {**sandbox.env, "AWS_ENDPOINT_URL_STS": sandbox.moto.url}
    ws = make_workspace(env)
    ws.write(FANOUT)
    ws.init()
    ws.apply()
    shown = ws.run("show", "-json", "-no-color").stdout
    clean = audit(env, "--state", "-", "--json", stdin=shown)
    assert clean.returncode == 0, clean.stderr + clean.stdout
    row = by_address(json.loads(clean.stdout))["tokendrop_tfe_agent_token.fleet"]
    assert [(s["address"], s["status"], s["version"]) for s in row["sinks"]] == [
        (address, "delivered", 1) for address in FANOUT_SINKS]

    boto3.client("ssm", endpoint_url=sandbox.moto.url, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").delete_parameter(Name="/ci/fleet")
    drifted = audit(env, "--state", "-", "--json", stdin=shown)
    assert drifted.returncode == 1, drifted.stderr
    row = by_address(json.loads(drifted.stdout))["tokendrop_tfe_agent_token.fleet"]
    assert [s["status"] for s in row["sinks"]] == ["delivered", "missing", "delivered", "delivered"]
    assert [(f["code"], f["detail"].split()[0]) for f in row["flags"]] == [("sink_drift", FANOUT_SINKS[1])]
    table = audit(env, "--state", "-", stdin=shown)
    assert table.returncode == 1
    assert [FANOUT_SINKS[1], "1->none", "missing"] in [line.split() for line in table.stdout.splitlines()]
    assert_no_values(sandbox, clean, drifted, table)
    ws.destroy()
