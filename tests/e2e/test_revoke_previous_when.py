"""`revoke_previous_when = "unused"` through real terraform against the TFE emulator (whose tokens carry
`last-used-at`): after a rotation the previous token is kept while the emulator reports it in use, and the
plan says why; once it is idle for `previous_unused_for` the next apply revokes it; `keep_previous_for`
bounds the wait even while it is in use. And the fallback a consumer reads during the overlap, in each
sink (issue 13, section 3). Every artifact is scanned for token values (make_workspace)."""

from __future__ import annotations

import datetime

import boto3
import pytest

from fixtures.terraform import PROVIDER_HEADER

pytestmark = pytest.mark.e2e

CONFIG = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}

resource "tokendrop_tfe_agent_token" "t" {
  agent_pool_id        = tokendrop_tfe_agent_pool.ci.id
  deliver_to           = { ssm = { name = "/ci/token" } }
  keep_previous_for    = "2h"
  revoke_previous_when = "unused"
  previous_unused_for  = "10m"
  rotate_on            = { n = "%s" }
}
"""
ADDRESS = "tokendrop_tfe_agent_token.t"


def _used(sandbox, token_id: str, ago: datetime.timedelta) -> None:
    """An agent used the token `ago` before now (the emulator's last-used-at)."""
    assert sandbox.tfe.mark_token_used(sandbox.token_value(token_id), datetime.datetime.now(datetime.UTC) - ago)


def test_the_previous_token_is_revoked_once_unused_and_at_the_latest_after_keep_previous_for(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(CONFIG % "1")
    ws.init()
    ws.apply()
    first = ws.resources()[ADDRESS]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]

    ws.write(CONFIG % "2")
    plan = ws.plan()
    assert f"keeps {first['id']} valid until the issuer reports it unused for 10m, for at most 2h" in \
        " ".join(plan.output.split())
    ws.apply()
    second = ws.resources()[ADDRESS]
    assert second["previous_token_id"] == first["id"]
    assert sorted(sandbox.live_tokens(pool)) == sorted([first["id"], second["id"]])
    assert sandbox.ssm_value("/ci/token") == (sandbox.token_value(second["id"]), 2)

    # In use: plan and apply keep it, and say why.
    _used(sandbox, first["id"], datetime.timedelta(minutes=3))
    plan = ws.plan_exitcode()
    assert plan.returncode == 0, plan.output
    text = " ".join(plan.output.split())
    assert f"Previous token {first['id']} is kept" in text
    assert (f"previous token {first['id']} used 3m ago; revoked once unused for 10m or at "
            f"{second['previous_revoke_after']} (keep_previous_for)") in text
    ws.apply()
    assert first["id"] in sandbox.live_tokens(pool)
    assert ws.resources()[ADDRESS]["previous_token_id"] == first["id"]

    # Idle for longer than previous_unused_for: the next apply revokes it, and nothing else.
    _used(sandbox, first["id"], datetime.timedelta(minutes=11))
    plan = ws.plan()
    assert f"Previous token {first['id']} will be revoked" in plan.output
    assert "unused for at least previous_unused_for 10m" in " ".join(plan.output.split())
    ws.apply()
    assert sandbox.live_tokens(pool) == [second["id"]]
    after = ws.resources()[ADDRESS]
    assert after["previous_token_id"] is None and after["id"] == second["id"] and after["sink_version"] == 2
    assert ws.plan_exitcode().returncode == 0

    # keep_previous_for is the maximum: a previous token still in use goes when it has passed.
    ws.write(CONFIG % "3")
    ws.apply()
    third = ws.resources()[ADDRESS]
    assert third["previous_token_id"] == second["id"]
    _used(sandbox, second["id"], datetime.timedelta(0))
    assert second["id"] in sandbox.live_tokens(pool) and ws.plan_exitcode().returncode == 0
    ws.shift_state_time(ADDRESS, "previous_revoke_after", datetime.timedelta(hours=3))  # keep_previous_for ran out
    plan = ws.plan()
    assert f"Previous token {second['id']} will be revoked" in plan.output
    assert "grace period has ended" in plan.output
    ws.apply()
    assert sandbox.live_tokens(pool) == [third["id"]]
    ws.destroy()


FALLBACK = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
""" + "".join(f"""
resource "tokendrop_tfe_agent_token" "{name}" {{
  agent_pool_id     = tokendrop_tfe_agent_pool.ci.id
  description       = "{name}"
  deliver_to        = {sink}
  keep_previous_for = "1h"
  rotate_on         = {{ n = "%(n)s" }}
}}
""" for name, sink in (("ssm", '{ ssm = { name = "/ci/fallback" } }'),
                       ("sm", '{ secrets_manager = { name = "ci/fallback", recovery_window_in_days = 0 } }'),
                       ("kv", '{ vault_kv = { path = "ci/fallback" } }')))


def test_consumers_read_the_previous_value_during_the_overlap(sandbox, make_workspace):
    """After a rotation kept by keep_previous_for, each sink names the previous value the way its
    consumers read it: SSM `name:previous`, Secrets Manager AWSPREVIOUS, Vault KV the version recorded
    in tokendrop_previous_version."""
    ws = make_workspace(sandbox.env)
    ws.write(FALLBACK % {"n": "1"})
    ws.init()
    ws.apply()
    first = {n: ws.resources()[f"tokendrop_tfe_agent_token.{n}"]["id"] for n in ("ssm", "sm", "kv")}
    ws.write(FALLBACK % {"n": "2"})
    ws.apply()
    second = {n: ws.resources()[f"tokendrop_tfe_agent_token.{n}"]["id"] for n in ("ssm", "sm", "kv")}
    old, new = ({n: sandbox.token_value(ids[n]) for n in ids} for ids in (first, second))

    ssm = sandbox.ssm()
    for label, want in (("previous", old["ssm"]), ("current", new["ssm"])):
        assert ssm.get_parameter(Name=f"/ci/fallback:{label}", WithDecryption=True)["Parameter"]["Value"] == want

    sm = boto3.client("secretsmanager", endpoint_url=sandbox.moto.url, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    for stage, want in (("AWSPREVIOUS", old["sm"]), ("AWSCURRENT", new["sm"])):
        assert sm.get_secret_value(SecretId="ci/fallback", VersionStage=stage)["SecretString"] == want

    meta = sandbox.vault().secrets.kv.v2.read_secret_metadata(path="ci/fallback", mount_point="secret")["data"]
    previous = int(meta["custom_metadata"]["tokendrop_previous_version"])
    assert previous == 1 and meta["current_version"] == 2
    read = sandbox.vault().secrets.kv.v2.read_secret_version(path="ci/fallback", mount_point="secret",
                                                             version=previous, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"token": old["kv"]}
    assert all(t in sandbox.tfe.pool_tokens(ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"])
               for t in first.values()), "the previous tokens are still valid during the overlap"
    ws.destroy()
