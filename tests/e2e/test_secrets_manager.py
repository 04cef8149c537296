"""AWS Secrets Manager as a sink, through real terraform and moto (issue 13, part 2): create (a JSON
object with the token under `field`, replicated to another region, tokendrop's record in the
Description), refresh, rotation (AWSCURRENT on the new token, AWSPREVIOUS on the old one, which is then
revoked), drift (the secret deleted out of band: the plan heals it), a foreign secret refused before
anything is minted, and destroy (recovery window 0: gone with its replica; default: scheduled for
deletion). Every artifact is leak-scanned by `make_workspace`, and explicitly below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.sandbox.servers import FaultProxy

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
"""
NAME = "ci/tfc-agent/token"
ADDRESS = "tokendrop_tfe_agent_token.t"


def token(deliver_to: str, extra: str = "") -> str:
    return (f'resource "tokendrop_tfe_agent_token" "t" {{\n  agent_pool_id = tokendrop_tfe_agent_pool.ci.id\n'
            f"  deliver_to = {deliver_to}\n{extra}}}\n")


def secrets(sandbox, region: str = "us-east-1"):
    return boto3.client("secretsmanager", endpoint_url=sandbox.moto.url, region_name=region,
                        aws_access_key_id="test", aws_secret_access_key="test")


def current(sandbox, region: str = "us-east-1", stage: str = "AWSCURRENT") -> str | None:
    client = secrets(sandbox, region)
    try:
        return client.get_secret_value(SecretId=NAME, VersionStage=stage)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        return None


REPLICATED = (f'{{ secrets_manager = {{ name = "{NAME}", field = "TFC_AGENT_TOKEN", replica_regions = ["eu-west-1"], '
              'recovery_window_in_days = 0, tags = { team = "ci" } } }')


def test_create_refresh_rotate_heal_and_destroy(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(REPLICATED, '  rotate_on = { epoch = "1" }\n'))
    ws.init()
    ws.apply()
    first = ws.resources()[ADDRESS]
    assert first["sink_address"] == f"secrets_manager:{NAME}" and first["sink_version"] == 1
    assert json.loads(current(sandbox)) == {"TFC_AGENT_TOKEN": sandbox.token_value(first["id"])}
    assert json.loads(current(sandbox, "eu-west-1")) == {"TFC_AGENT_TOKEN": sandbox.token_value(first["id"])}
    meta = secrets(sandbox).describe_secret(SecretId=NAME)
    assert f"token={first['id']}" in meta["Description"]
    assert {t["Key"]: t["Value"] for t in meta["Tags"]}["team"] == "ci"
    assert ws.plan_exitcode().returncode == 0, "refresh reads the metadata and finds nothing to do"

    # rotation: a new version, the stages moved, the old token revoked after the write
    ws.write(HEADER + token(REPLICATED, '  rotate_on = { epoch = "2" }\n'))
    ws.apply()
    second = ws.resources()[ADDRESS]
    assert second["id"] != first["id"] and second["sink_version"] == 2
    assert json.loads(current(sandbox)) == {"TFC_AGENT_TOKEN": sandbox.token_value(second["id"])}
    assert json.loads(current(sandbox, stage="AWSPREVIOUS")) == {"TFC_AGENT_TOKEN": sandbox.token_value(first["id"])}
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sandbox.live_tokens(pool) == [second["id"]]
    assert ws.plan_exitcode().returncode == 0

    # drift: the secret is deleted out of band (with its replica); the plan sees it, the apply heals it
    client = secrets(sandbox)
    client.remove_regions_from_replication(SecretId=NAME, RemoveReplicaRegions=["eu-west-1"])
    client.delete_secret(SecretId=NAME, ForceDeleteWithoutRecovery=True)
    plan = ws.plan_exitcode()
    assert plan.returncode == 2, plan.output
    text = " ".join(plan.output.split())
    assert f"Sink drift: secrets_manager:{NAME}" in text and "no longer exists (deleted outside tokendrop)" in text
    ws.apply()
    healed = ws.resources()[ADDRESS]
    assert json.loads(current(sandbox)) == {"TFC_AGENT_TOKEN": sandbox.token_value(healed["id"])}
    assert current(sandbox, "eu-west-1") is not None, "the replica is back too"
    assert sandbox.live_tokens(pool) == [healed["id"]]
    assert ws.plan_exitcode().returncode == 0

    ws.destroy()
    assert current(sandbox) is None and current(sandbox, "eu-west-1") is None, "window 0: deleted at once"
    assert sandbox.live_tokens(pool) == [] if pool in sandbox.tfe.pools else True
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_a_foreign_secret_is_refused_before_anything_is_minted(sandbox, make_workspace):
    secrets(sandbox).create_secret(Name=NAME, SecretString="another-teams-value")
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(f'{{ secrets_manager = {{ name = "{NAME}" }} }}'))
    ws.init()
    result = ws.apply(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert f"secrets_manager:{NAME}" in text and "adopt_existing" in text, text
    assert sandbox.minted() == [], "refused before anything was minted"
    assert current(sandbox) == "another-teams-value"


def test_destroy_schedules_deletion_with_the_default_window(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(f'{{ secrets_manager = {{ name = "{NAME}" }} }}'))
    ws.init()
    ws.apply()
    state = ws.resources()[ADDRESS]
    assert current(sandbox) == sandbox.token_value(state["id"]), "a plain string without field"
    ws.destroy()
    meta = secrets(sandbox).describe_secret(SecretId=NAME)
    assert meta.get("DeletedDate") is not None, "scheduled for deletion, restorable for 7 days"
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_adopt_existing_writes_the_next_version_and_destroy_keeps_the_foreign_history(sandbox, make_workspace):
    secrets(sandbox).create_secret(Name=NAME, SecretString="another-teams-value")
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(f'{{ secrets_manager = {{ name = "{NAME}", recovery_window_in_days = 0 }} }}',
                            "  adopt_existing = true\n"))
    ws.init()
    ws.apply()
    state = ws.resources()[ADDRESS]
    assert current(sandbox) == sandbox.token_value(state["id"])
    assert current(sandbox, stage="AWSPREVIOUS") == "another-teams-value"
    assert ws.plan_exitcode().returncode == 0
    result = ws.destroy()
    text = " ".join(result.output.split())
    assert "was left in place" in text and "not written by tokendrop" in text, text
    assert current(sandbox, stage="AWSPREVIOUS") == "another-teams-value", "someone else's version is kept"
    pool = ws.resources().get("tokendrop_tfe_agent_pool.ci")
    assert pool is None and all(m["revoked"] for m in sandbox.minted()), "the token itself is revoked"


def test_a_secret_scheduled_for_deletion_out_of_band_is_restored_and_rewritten(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(f'{{ secrets_manager = {{ name = "{NAME}" }} }}'))
    ws.init()
    ws.apply()
    first = ws.resources()[ADDRESS]
    secrets(sandbox).delete_secret(SecretId=NAME, RecoveryWindowInDays=30)  # the console's Delete
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "no longer exists (deleted outside tokendrop)" in " ".join(plan.output.split())
    applied = ws.apply()
    assert "was scheduled for deletion outside tokendrop: it was restored" in " ".join(applied.output.split())
    healed = ws.resources()[ADDRESS]
    assert healed["id"] != first["id"] and healed["sink_version"] == 2
    assert current(sandbox) == sandbox.token_value(healed["id"])
    assert secrets(sandbox).describe_secret(SecretId=NAME).get("DeletedDate") is None
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sandbox.live_tokens(pool) == [healed["id"]]
    assert ws.plan_exitcode().returncode == 0


def audit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `tokendrop audit`, with only the sandbox settings (as in tests/e2e/test_audit.py)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    command = Path(sys.executable).with_name("tokendrop")
    return subprocess.run([str(command), "audit", *args], capture_output=True, text=True, env={**keep, **env},
                          timeout=120, check=False)


def test_the_audit_reads_the_secret_and_flags_an_out_of_band_write(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(f'{{ secrets_manager = {{ name = "{NAME}" }} }}'))
    ws.init()
    ws.apply()
    clean = audit(sandbox.env, "--state", str(ws.directory), "--json")
    assert clean.returncode == 0, clean.stderr
    row = json.loads(clean.stdout)["tokens"][0]
    assert row["sink"]["status"] == "delivered" and row["sink"]["version"] == 1 and row["flags"] == []
    secrets(sandbox).put_secret_value(SecretId=NAME, SecretString="written-by-hand")
    drifted = audit(sandbox.env, "--state", str(ws.directory), "--json")
    assert drifted.returncode == 1, drifted.stderr
    row = json.loads(drifted.stdout)["tokens"][0]
    assert [flag["code"] for flag in row["flags"]] == ["sink_drift"]
    assert "is at version 2, not 1" in row["flags"][0]["detail"] and "did not write" in row["flags"][0]["detail"]
    assert scan(sandbox.minted_values(), [("audit", clean.stdout + drifted.stdout + drifted.stderr)]) == []


def test_import_adopts_the_token_from_its_secret(sandbox, make_workspace):
    config = (f'{{ secrets_manager = {{ name = "{NAME}", replica_regions = ["eu-west-1"], '
              'tags = { team = "ci" }, field = "TFC AGENT]TOKEN" } }')
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(config))
    ws.init()
    ws.apply()
    before = ws.resources()[ADDRESS]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    ws.run("state", "rm", ADDRESS)
    ws.run("import", "-no-color", ADDRESS, f"{pool}/secrets_manager:{NAME}")
    imported = ws.resources()[ADDRESS]
    assert imported["id"] == before["id"] and imported["sink_version"] == 1
    assert imported["sink_address"] == f"secrets_manager:{NAME}"
    plan = ws.plan_exitcode()
    assert plan.returncode == 0, plan.stdout


# --- lost answers (as tests/e2e/test_lost_answers.py does for SSM and Vault) ------------------------

LOST = f'{{ secrets_manager = {{ name = "{NAME}" }} }}'
# The write that decides what consumers read: the create, or the move of AWSCURRENT.
DECISIVE = {"create": "secretsmanager.CreateSecret", "rotation": "secretsmanager.UpdateSecretVersionStage"}


def said(result) -> str:
    return " ".join(result.output.split())


def held(sandbox) -> str | None:
    return current(sandbox)


def lost_answer_start(ws, operation: str) -> str | None:
    ws.write(HEADER + token(LOST, '  rotate_on = { epoch = "1" }\n'))
    ws.init()
    if operation == "create":
        ws.apply("-target=tokendrop_tfe_agent_pool.ci")
        return None
    ws.apply()
    ws.write(HEADER + token(LOST, '  rotate_on = { epoch = "2" }\n'))
    return ws.resources()[ADDRESS]["id"]


def converged(sandbox, ws) -> None:
    state = ws.resources()[ADDRESS]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert held(sandbox) == sandbox.token_value(state["id"]), "the secret holds the token state names"
    assert state["sink_status"] == "delivered"
    assert sandbox.live_tokens(pool) == [state["id"]], "exactly one live token, no orphan"
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]


@pytest.mark.parametrize("operation", ["create", "rotation"])
def test_a_lost_answer_is_read_back_and_the_delivered_token_kept(operation, sandbox, make_workspace):
    with FaultProxy(sandbox.moto.url) as proxy:
        ws = make_workspace({**sandbox.env, "AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url})
        before = lost_answer_start(ws, operation)
        # armed once the token is minted, so that the plan's reads pass; three drops, as many as
        # botocore would send: a resend must not be what saves the delivery
        sandbox.tfe.on_event_call("token.created", lambda _event: proxy.arm(
            "drop_response", target=DECISIVE[operation], count=3))
        result = ws.apply()
        assert proxy.faults(), "the answer to the write was really dropped"
        assert "was lost" in said(result) and "so it was kept" in said(result)
        state = ws.resources()[ADDRESS]
        assert state["id"] != before and held(sandbox) == sandbox.token_value(state["id"])
        proxy.disarm()
        ws.apply()
        converged(sandbox, ws)
    sandbox.tfe.clear_signals()


@pytest.mark.parametrize(("target", "mode", "landed"), [
    ("secretsmanager.UpdateSecretVersionStage", "drop_response", True),
    ("secretsmanager.PutSecretValue", "drop_request", False),
], ids=["landed", "not-landed"])
def test_an_unknown_rotation_keeps_both_tokens_and_the_next_apply_settles_it(target, mode, landed, sandbox,
                                                                              make_workspace):
    with FaultProxy(sandbox.moto.url) as proxy:
        ws = make_workspace({**sandbox.env, "AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url})
        before = lost_answer_start(ws, "rotation")
        # the write is stored (or never arrives), and Secrets Manager is unreachable from then on
        sandbox.tfe.on_event_call("token.created", lambda _event: proxy.arm(mode, target=target, then_down=True))
        result = ws.apply(check=False)
        assert result.returncode != 0
        assert "Cannot tell whether" in said(result) and "the next apply settles it" in said(result)
        state = ws.resources()[ADDRESS]
        pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
        assert state["sink_status"] == "unknown" and state["previous_token_id"] == before
        assert {before, state["id"]} <= set(sandbox.live_tokens(pool)), "both kept: either may be in the secret"
        assert (held(sandbox) == sandbox.token_value(state["id"])) == landed
        proxy.disarm()
        ws.apply()
        converged(sandbox, ws)
    sandbox.tfe.clear_signals()
