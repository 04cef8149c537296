"""Token lifecycle through real terraform: declarative rotation (rotate_on, rotate_every, keep_previous_for),
ownership of sinks (two resources on one sink, adopt_existing), and sink writes that fail part way
(nothing left behind, a clear error)."""

from __future__ import annotations

import datetime

import pytest

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.sandbox.servers import create_policy_token

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
"""


def token(name: str, deliver_to: str, extra: str = "") -> str:
    return (f'resource "tokendrop_tfe_agent_token" "{name}" {{\n'
            f"  agent_pool_id = tokendrop_tfe_agent_pool.ci.id\n  deliver_to = {deliver_to}\n{extra}}}\n")


SSM = '{ ssm = { name = "/ci/token" } }'
VAULT = '{ vault_kv = { path = "ci/token" } }'


def test_rotate_on_writes_a_new_version_then_revokes(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token("t", SSM, '  rotate_on = { epoch = "1" }\n'))
    ws.init()
    ws.apply()
    first = ws.resources()["tokendrop_tfe_agent_token.t"]

    ws.write(HEADER + token("t", SSM, '  rotate_on = { epoch = "2" }\n'))
    plan = ws.plan()
    assert "will be updated in-place" in plan.stdout and "will rotate" in plan.output
    assert 'rotate_on changed' in plan.output
    ws.apply()
    second = ws.resources()["tokendrop_tfe_agent_token.t"]
    assert second["id"] != first["id"] and second["sink_version"] == 2
    assert sandbox.ssm_value("/ci/token") == (sandbox.token_value(second["id"]), 2)
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sandbox.live_tokens(pool) == [second["id"]], "the old token is revoked after the write"
    assert ws.plan_exitcode().returncode == 0


def test_rotate_every_and_keep_previous_for(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token("t", VAULT, '  rotate_every = "30d"\n  keep_previous_for = "2h"\n'))
    ws.init()
    ws.apply()
    first = ws.resources()["tokendrop_tfe_agent_token.t"]
    assert ws.plan_exitcode().returncode == 0

    ws.shift_state_time("tokendrop_tfe_agent_token.t", "created_at", datetime.timedelta(days=31))
    plan = ws.plan()
    assert "rotation due: minted 31d ago, rotate_every 30d" in plan.output
    ws.apply()
    second = ws.resources()["tokendrop_tfe_agent_token.t"]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert second["previous_token_id"] == first["id"] and second["previous_revoke_after"]
    assert sorted(sandbox.live_tokens(pool)) == sorted([first["id"], second["id"]]), "previous kept for 2h"
    assert sandbox.vault_value("ci/token") == ({"token": sandbox.token_value(second["id"])}, 2)
    assert ws.plan_exitcode().returncode == 0, "nothing to do while the grace period lasts"

    ws.shift_state_time("tokendrop_tfe_agent_token.t", "previous_revoke_after", datetime.timedelta(hours=3))
    plan = ws.plan()
    assert f"Previous token {first['id']} will be revoked" in plan.output
    ws.apply()
    assert sandbox.live_tokens(pool) == [second["id"]]
    assert ws.resources()["tokendrop_tfe_agent_token.t"]["previous_token_id"] is None
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert sandbox.live_tokens(pool) == [] if pool in sandbox.tfe.pools else True
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_two_resources_on_one_sink_conflict_unless_adopted(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token("a", SSM, '  description = "first"\n'))
    ws.init()
    ws.apply()
    a = ws.resources()["tokendrop_tfe_agent_token.a"]

    ws.write(HEADER + token("a", SSM, '  description = "first"\n') + token("b", SSM, '  description = "second"\n'))
    result = ws.apply(check=False)
    assert result.returncode == 1
    assert "ssm:/ci/token is already in use" in result.stderr
    assert a["id"] in result.stderr, "the error names the current owner's token"
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sandbox.live_tokens(pool) == [a["id"]], "no token was minted for the refused resource"

    ws.write(HEADER + token("b", SSM, '  description = "second"\n  adopt_existing = true\n'))
    ws.run("state", "rm", "tokendrop_tfe_agent_token.a")
    ws.apply()
    b = ws.resources()["tokendrop_tfe_agent_token.b"]
    assert sandbox.ssm_value("/ci/token") == (sandbox.token_value(b["id"]), 2)


def test_a_read_only_vault_token_fails_the_plan(sandbox, make_workspace):
    read_only = create_policy_token(sandbox.bao, policy_name="read-only-ci",
                                    policy='path "secret/*" { capabilities = ["read", "list"] }')
    ws = make_workspace({**sandbox.env, "VAULT_TOKEN": read_only})
    ws.write(HEADER + token("t", VAULT))
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "cannot deliver to vault_kv:secret/ci/token#token" in text and "'create' on secret/data/ci/token" in text
    assert sandbox.minted() == [] and sandbox.writes() == []


def test_vault_403_at_apply_revokes_the_minted_token(sandbox, make_workspace):
    """The token's policy is taken away while the apply runs, after the mint (the plan, even the one
    Terraform makes at apply time, checked it): the write is denied, and the token minted for it is
    revoked before the error is reported."""
    writer = 'path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }'
    vault_token = create_policy_token(sandbox.bao, policy_name="ci-writer", policy=writer)
    ws = make_workspace({**sandbox.env, "VAULT_TOKEN": vault_token})
    ws.write(HEADER + token("t", VAULT))
    ws.init()
    ws.apply("-target=tokendrop_tfe_agent_pool.ci")
    sandbox.tfe.on_event_call("token.created", lambda _event: sandbox.bao.api(
        "PUT", "sys/policies/acl/ci-writer", {"policy": 'path "secret/*" { capabilities = ["read", "list"] }'}))
    result = ws.apply(check=False)
    assert result.returncode == 1
    assert "secret/" in result.stderr and "denied" in result.stderr.lower()
    assert "was revoked again: nothing was left behind" in " ".join(result.stderr.split())
    minted = sandbox.minted()
    assert len(minted) == 1 and minted[0]["revoked"], "the token minted for the failed write is revoked"
    assert "tokendrop_tfe_agent_token.t" not in ws.resources()
    assert sandbox.vault_value("ci/token") is None
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_ssm_throttled_past_retries_revokes_the_minted_token(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token("t", SSM))
    ws.init()
    sandbox.moto.throttle(1000)
    result = ws.apply(check=False)
    sandbox.moto.reset_counters()
    assert result.returncode == 1
    assert "throttl" in result.stderr.lower() and "/ci/token" in result.stderr
    assert "was revoked again: nothing was left behind" in " ".join(result.stderr.split())
    minted = sandbox.minted()
    assert len(minted) == 1 and minted[0]["revoked"]
    assert sandbox.ssm_value("/ci/token") is None
    # The next apply delivers normally.
    ws.apply()
    assert sandbox.ssm_value("/ci/token")[0] == sandbox.token_value(ws.resources()["tokendrop_tfe_agent_token.t"]["id"])


def test_vault_cas_conflict_revokes_the_minted_token(sandbox, make_workspace):
    """Someone writes the Vault path between tokendrop's look at the sink and its compare-and-set write:
    the write fails, the token minted for it is revoked, the error names the path, nothing is left."""
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token("t", VAULT))
    ws.init()
    ws.apply("-target=tokendrop_tfe_agent_pool.ci")

    def write_behind_our_back(_event: dict) -> None:
        sandbox.vault().secrets.kv.v2.create_or_update_secret(path="ci/token", secret={"token": "theirs"},
                                                              mount_point="secret")

    sandbox.tfe.on_event_call("token.created", write_behind_our_back)
    result = ws.apply(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "secret/ci/token" in text and "was revoked again: nothing was left behind" in text
    minted = sandbox.minted()
    assert len(minted) == 1 and minted[0]["revoked"]
    assert sandbox.vault_value("ci/token")[0] == {"token": "theirs"}, "their value is untouched"
    assert "tokendrop_tfe_agent_token.t" not in ws.resources()
    assert scan(sandbox.minted_values(), ws.artifacts()) == []
