"""Bad input fails `terraform plan` with a clear error naming the attribute, and nothing is written at
the issuer (the emulator's request log proves it)."""

from __future__ import annotations

import pytest

from fixtures.terraform import PROVIDER_HEADER

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER

POOL = """
resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "%s"
}
"""

TOKEN = """
resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
resource "tokendrop_tfe_agent_token" "t" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to    = %s
}
"""

CASES = {
    "ssm name breaking AWS rules": (TOKEN % '{ ssm = { name = "/ci/has space/token" } }', "deliver_to.ssm.name"),
    "ssm name under the reserved aws prefix": (TOKEN % '{ ssm = { name = "/aws/token" } }', "deliver_to.ssm.name"),
    "empty pool name": (POOL % "", "name"),
    "pool name with a slash": (POOL % "ci/agents", "name"),
    "token with no sink": (TOKEN % "{}", "deliver_to"),
    "token with two sinks": (TOKEN % '{ ssm = { name = "/ci/t" }, vault_kv = { path = "ci/t" } }',
                             "deliver_to.vault_kv"),
    "vault path with ..": (TOKEN % '{ vault_kv = { path = "ci/../../sys/t" } }', "deliver_to.vault_kv.path"),
    "malformed rotate_every": (TOKEN.replace("deliver_to    = %s", 'rotate_every = "monthly"\n  deliver_to = %s')
                               % '{ ssm = { name = "/ci/t" } }', "rotate_every"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_the_plan_naming_the_attribute(case, sandbox, make_workspace):
    body, attribute = CASES[case]
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + body)
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1, result
    assert "Error:" in result.stderr
    assert attribute in result.stderr, (attribute, result.stderr)
    assert sandbox.writes() == []


def test_missing_tfe_credentials_fail_the_plan(sandbox, make_workspace):
    env = {k: v for k, v in sandbox.env.items() if k != "TFE_TOKEN"}
    ws = make_workspace(env)
    ws.write(HEADER + POOL % "ci")
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "Missing TFE token" in result.stderr and "TFE_TOKEN" in result.stderr
    assert sandbox.tfe.requests() == []


def test_missing_vault_address_fails_the_plan(sandbox, make_workspace):
    env = {k: v for k, v in sandbox.env.items() if k != "VAULT_ADDR"}
    ws = make_workspace(env)
    ws.write(HEADER + TOKEN % '{ vault_kv = { path = "ci/t" } }')
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "vault_address" in result.stderr and "VAULT_ADDR" in result.stderr
    assert sandbox.writes() == []


def test_unknown_organization_fails_the_plan(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + POOL.replace('"acme"', '"nope"') % "ci")
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "Organization not found" in result.stderr and "organization" in result.stderr
    assert sandbox.writes() == []
