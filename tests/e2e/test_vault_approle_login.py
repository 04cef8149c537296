"""The provider logs in to Vault with AppRole (VAULT_APPROLE_ROLE_ID / VAULT_APPROLE_SECRET_ID, no
VAULT_TOKEN) and delivers with the token it gets, limited by that role's policy."""

from __future__ import annotations

import pytest

from fixtures.terraform import PROVIDER_HEADER, scan

pytestmark = pytest.mark.e2e

CONFIG = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
resource "tokendrop_tfe_agent_token" "t" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to    = { vault_kv = { path = "%s" } }
}
"""

WRITER_POLICY = """
path "secret/data/ci/*"     { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/ci/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
"""


@pytest.fixture
def approle_login(sandbox):
    bao = sandbox.bao
    auths = bao.api("GET", "sys/auth") or {}
    if "approle/" not in (auths.get("data") or auths):
        bao.api("POST", "sys/auth/approle", {"type": "approle"})
    bao.api("PUT", "sys/policies/acl/tokendrop-writer", {"policy": WRITER_POLICY})
    bao.api("POST", "auth/approle/role/tokendrop-writer", {"token_policies": ["tokendrop-writer"], "token_ttl": "10m"})
    role_id = bao.api("GET", "auth/approle/role/tokendrop-writer/role-id")["data"]["role_id"]
    secret_id = bao.api("POST", "auth/approle/role/tokendrop-writer/secret-id", {})["data"]["secret_id"]
    env = {k: v for k, v in sandbox.env.items() if k != "VAULT_TOKEN"}
    return {**env, "VAULT_APPROLE_ROLE_ID": role_id, "VAULT_APPROLE_SECRET_ID": secret_id}, secret_id


def test_delivery_with_an_approle_login(sandbox, approle_login, make_workspace):
    env, secret_id = approle_login
    ws = make_workspace(env)
    ws.write(CONFIG % "ci/approle-login")
    ws.init()
    ws.apply()
    token = ws.resources()["tokendrop_tfe_agent_token.t"]
    assert sandbox.vault_value("ci/approle-login") == ({"token": sandbox.token_value(token["id"])}, 1)
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert sandbox.vault_value("ci/approle-login") is None
    assert scan([*sandbox.minted_values(), secret_id], ws.artifacts()) == [], "neither tokens nor the login secret"


def test_the_role_policy_limits_where_the_login_may_deliver(sandbox, approle_login, make_workspace):
    env, _ = approle_login
    ws = make_workspace(env)
    ws.write(CONFIG % "elsewhere/token")
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1, "the plan fails: the role's policy does not reach that path"
    text = " ".join(result.stderr.split())
    assert "cannot deliver to vault_kv:secret/elsewhere/token#token" in text
    assert "'create' on secret/data/elsewhere/token" in text
    assert sandbox.minted() == [] and sandbox.writes() == []
