"""Proves, through the real terraform binary, that a TFE agent pool and two agent tokens go through
init (offline, lock file written), plan, apply, plan (no changes), import and destroy; that the sinks
hold the live tokens; that state holds ids, addresses, versions and timestamps only; and that no
minted token value appears in any artifact."""

from __future__ import annotations

import re

import pytest

from fixtures.terraform import scan

pytestmark = pytest.mark.e2e

CONFIG = """
terraform {{
  required_providers {{
    tokendrop = {{ source = "tokendrop/tokendrop" }}
  }}
}}

provider "tokendrop" {{}}

resource "tokendrop_tfe_agent_pool" "ci" {{
  organization          = "acme"
  name                  = "ci-agents"
  organization_scoped   = false
  allowed_workspace_ids = ["{workspace}"]
}}

resource "tokendrop_tfe_agent_token" "runners" {{
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  description   = "ci runners"
  deliver_to = {{
    ssm = {{ name = "/ci/tfc-agent/token", kms_key_id = "alias/ci", tags = {{ team = "ci" }} }}
  }}
}}

resource "tokendrop_tfe_agent_token" "batch" {{
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to = {{
    vault_kv = {{ mount = "secret", path = "ci/tfc-agent/batch", field = "token" }}
  }}
}}

output "runners_token_id" {{
  value = tokendrop_tfe_agent_token.runners.id
}}
"""

# Attributes a token resource may keep in state; anything else is a regression worth a look.
TOKEN_STATE_KEYS = {
    "id", "agent_pool_id", "description", "deliver_to", "rotate_every", "rotate_on", "keep_previous_for",
    "adopt_existing", "sink_address", "sink_version", "sink_status", "created_at", "expires_at",
    "previous_token_id", "previous_revoke_after", "revoke_previous_when", "previous_unused_for", "sinks",
}


def test_pool_and_tokens_through_terraform(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(CONFIG.format(workspace=sandbox.tfe.workspace_id("acme", "app-prod")))

    init = ws.init()
    assert "Installing tokendrop/tokendrop" in init.stdout
    lock = (ws.directory / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/tokendrop/tokendrop"' in lock
    assert re.search(r'"h1:[A-Za-z0-9+/=]+"', lock)

    plan = ws.plan("-out=tfplan")
    assert "3 to add, 0 to change, 0 to destroy" in plan.stdout
    assert not sandbox.writes(), "plan must not write at the issuer"

    ws.apply("tfplan")
    resources = ws.resources()
    pool = resources["tokendrop_tfe_agent_pool.ci"]
    runners = resources["tokendrop_tfe_agent_token.runners"]
    batch = resources["tokendrop_tfe_agent_token.batch"]
    assert pool["id"].startswith("apool-") and pool["organization_scoped"] is False

    # The sinks hold the live tokens; the issuer has exactly those two.
    assert sorted(sandbox.live_tokens(pool["id"])) == sorted([runners["id"], batch["id"]])
    assert sandbox.ssm_value("/ci/tfc-agent/token") == (sandbox.token_value(runners["id"]), 1)
    assert sandbox.vault_value("ci/tfc-agent/batch") == ({"token": sandbox.token_value(batch["id"])}, 1)
    assert runners["sink_address"] == "ssm:/ci/tfc-agent/token" and runners["sink_version"] == 1
    assert batch["sink_address"] == "vault_kv:secret/ci/tfc-agent/batch#token"
    for attrs in (runners, batch):
        assert set(attrs) <= TOKEN_STATE_KEYS
        assert attrs["sink_status"] == "delivered"

    # A second plan is empty.
    assert ws.plan_exitcode().returncode == 0

    # Import: forget the token resource and adopt it again from its sink.
    ws.run("state", "rm", "tokendrop_tfe_agent_token.runners")
    ws.run("import", "-no-color", "tokendrop_tfe_agent_token.runners",
           f"{pool['id']}/ssm:/ci/tfc-agent/token")
    imported = ws.resources()["tokendrop_tfe_agent_token.runners"]
    assert imported["id"] == runners["id"] and imported["sink_version"] == 1
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.show_json()

    ws.destroy()
    assert not sandbox.tfe.pools, "the pool is deleted"
    assert sandbox.ssm_value("/ci/tfc-agent/token") is None
    assert sandbox.vault_value("ci/tfc-agent/batch") is None
    revoked = {m["id"] for m in sandbox.minted() if m["revoked"]}
    assert {runners["id"], batch["id"]} <= revoked

    # The canary scan: no token value in any state, plan, show -json, trace log, provider log or output.
    values = sandbox.minted_values()
    assert len(values) == 2
    assert scan(values, ws.artifacts()) == []
    # ...and the scan does find a value where one is.
    planted = ("planted.txt", f"leaked: {values[0]}")
    assert [name for name, _ in scan(values, [*ws.artifacts(), planted])] == ["planted.txt"]


def test_refresh_notices_out_of_band_changes(sandbox, make_workspace):
    """A token revoked at the issuer leaves state and is planned again; a sink overwritten by someone
    else plans a new token."""
    ws = make_workspace(sandbox.env)
    ws.write(CONFIG.format(workspace=sandbox.tfe.workspace_id("acme", "app-prod")))
    ws.init()
    ws.apply()
    resources = ws.resources()
    runners, batch = resources["tokendrop_tfe_agent_token.runners"], resources["tokendrop_tfe_agent_token.batch"]

    sandbox.revoke_out_of_band(runners["id"])
    sandbox.vault().secrets.kv.v2.create_or_update_secret(path="ci/tfc-agent/batch", secret={"token": "someone"},
                                                          mount_point="secret")
    plan = ws.plan_exitcode()
    assert plan.returncode == 2
    assert "tokendrop_tfe_agent_token.runners will be created" in plan.stdout
    assert "tokendrop_tfe_agent_token.batch will be updated in-place" in plan.stdout
    assert '"overwritten" -> "delivered"' in plan.stdout
    assert "vault_kv:secret/ci/tfc-agent/batch#token" in plan.output

    ws.apply()
    after = ws.resources()
    new_runners, new_batch = after["tokendrop_tfe_agent_token.runners"], after["tokendrop_tfe_agent_token.batch"]
    assert new_runners["id"] != runners["id"] and new_batch["id"] != batch["id"]
    assert sandbox.ssm_value("/ci/tfc-agent/token")[0] == sandbox.token_value(new_runners["id"])
    data, version = sandbox.vault_value("ci/tfc-agent/batch")
    assert data == {"token": sandbox.token_value(new_batch["id"])} and version == 3
    pool_id = after["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sorted(sandbox.live_tokens(pool_id)) == sorted([new_runners["id"], new_batch["id"]])
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(sandbox.minted_values(), ws.artifacts()) == []
