"""One token, many sinks (issue 13, part 1), through real terraform, moto and OpenBao: one TFE agent token
delivered to SSM in two regions, a Secrets Manager secret and a Vault KV secret; drift in one region
healed by writing that sink only; a rotation that one sink refuses (Vault policy taken away during the
apply) fails naming it, keeps both tokens live, and the next apply writes the rest; destroy cleans every
sink. `make_workspace` scans every artifact for token values at teardown; the tests scan explicitly too."""

from __future__ import annotations

import json
import time
from collections import Counter

import boto3
import pytest

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.sandbox.servers import FaultProxy, create_policy_token

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
"""
ADDRESS = "tokendrop_tfe_agent_token.t"
FOUR_SINKS = """[
    { ssm = { name = "/ci/token", region = "eu-west-1" } },
    { ssm = { name = "/ci/token", region = "us-east-1" } },
    { secrets_manager = { name = "ci/token", recovery_window_in_days = 0 } },
    { vault_kv = { path = "ci/token" } },
  ]"""
SINK_ADDRESSES = ["ssm:eu-west-1:/ci/token", "ssm:us-east-1:/ci/token", "secrets_manager:ci/token",
                  "vault_kv:secret/ci/token#token"]
TWO_SINKS = '[{ ssm = { name = "/ci/token" } }, { vault_kv = { path = "ci/token" } }]'
WRITER = 'path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }'
READ_ONLY = 'path "secret/*" { capabilities = ["read", "list"] }'


def token(deliver_to: str, extra: str = "") -> str:
    return (f'resource "tokendrop_tfe_agent_token" "t" {{\n  agent_pool_id = tokendrop_tfe_agent_pool.ci.id\n'
            f"  deliver_to = {deliver_to}\n{extra}}}\n")


def aws(sandbox, service: str, region: str):  # type: ignore[no-untyped-def]
    return boto3.client(service, endpoint_url=sandbox.moto.url, region_name=region,
                        aws_access_key_id="test", aws_secret_access_key="test")


def ssm_in(sandbox, region: str) -> tuple[str, int] | None:
    client = aws(sandbox, "ssm", region)
    try:
        found = client.get_parameter(Name="/ci/token", WithDecryption=True)["Parameter"]
    except client.exceptions.ParameterNotFound:
        return None
    return found["Value"], found["Version"]


def secret_value(sandbox) -> str | None:
    client = aws(sandbox, "secretsmanager", "us-east-1")
    try:
        return client.get_secret_value(SecretId="ci/token", VersionStage="AWSCURRENT")["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        return None


def held_everywhere(sandbox) -> set[str | None]:
    """The values the four sinks hold (one element when they agree)."""
    vault = sandbox.vault_value("ci/token")
    return {(ssm_in(sandbox, "eu-west-1") or (None,))[0], (ssm_in(sandbox, "us-east-1") or (None,))[0],
            secret_value(sandbox), vault[0]["token"] if vault else None}


def test_one_token_in_two_regions_secrets_manager_and_vault(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(FOUR_SINKS, '  rotate_on = { epoch = "1" }\n'))
    ws.init()
    plan = ws.plan()
    for address in SINK_ADDRESSES:  # the plan names every sink
        assert address in plan.stdout
    ws.apply()
    first = ws.resources()[ADDRESS]
    assert [s["address"] for s in first["sinks"]] == SINK_ADDRESSES
    assert {s["status"] for s in first["sinks"]} == {"delivered"}
    assert first["sink_address"] == SINK_ADDRESSES[0]
    value = sandbox.token_value(first["id"])
    assert held_everywhere(sandbox) == {value}, "every sink holds the one token"
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sandbox.live_tokens(pool) == [first["id"]], "one token minted for four sinks"
    assert ws.plan_exitcode().returncode == 0

    # One region's parameter deleted out of band: only that sink is written again, with the same token.
    aws(sandbox, "ssm", "eu-west-1").delete_parameter(Name="/ci/token")
    plan = ws.plan()
    text = " ".join(plan.output.split())
    assert "1 of 4 sinks will be written" in text and "ssm:eu-west-1:/ci/token (missing)" in text
    assert "Sink drift: ssm:eu-west-1:/ci/token" in text and "writes no other sink" in text
    assert "will be updated in-place" in plan.stdout
    ws.apply()
    healed = ws.resources()[ADDRESS]
    assert healed["id"] == first["id"] and sandbox.live_tokens(pool) == [first["id"]]
    assert ssm_in(sandbox, "eu-west-1") == (value, 1)
    assert ssm_in(sandbox, "us-east-1") == (value, 1), "the other region was not written again"
    assert sandbox.vault_value("ci/token") == ({"token": value}, 1)
    assert [s["version"] for s in healed["sinks"]] == [s["version"] for s in first["sinks"]]
    assert ws.plan_exitcode().returncode == 0

    # A rotation writes the new token to every sink, then revokes the old one.
    ws.write(HEADER + token(FOUR_SINKS, '  rotate_on = { epoch = "2" }\n'))
    ws.apply()
    second = ws.resources()[ADDRESS]
    assert second["id"] != first["id"] and sandbox.live_tokens(pool) == [second["id"]]
    assert held_everywhere(sandbox) == {sandbox.token_value(second["id"])}
    assert ssm_in(sandbox, "eu-west-1")[1] == 2 and sandbox.vault_value("ci/token")[1] == 2
    assert ws.plan_exitcode().returncode == 0

    ws.destroy()
    assert held_everywhere(sandbox) == {None}, "destroy cleans every sink"
    assert sandbox.live_tokens(pool) == [] if pool in sandbox.tfe.pools else True
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_single_object_form_keeps_working_beside_the_list(sandbox, make_workspace):
    """`deliver_to = { ssm = {...} }` (the form every configuration used) and a list of one are the same
    token resource; switching between them changes nothing."""
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token('{ ssm = { name = "/ci/token" } }'))
    ws.init()
    ws.apply()
    state = ws.resources()[ADDRESS]
    assert state["sinks"] == [{"address": "ssm:/ci/token", "version": 1, "status": "delivered"}]
    ws.write(HEADER + token('[{ ssm = { name = "/ci/token" } }]'))
    plan = ws.plan()
    assert "must be replaced" not in plan.stdout and "will rotate" not in plan.output
    ws.apply()
    assert ws.resources()[ADDRESS]["id"] == state["id"]
    assert ws.plan_exitcode().returncode == 0
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_a_sink_refusing_a_rotation_keeps_both_tokens_and_the_next_apply_writes_it(sandbox, make_workspace):
    vault_token = create_policy_token(sandbox.bao, policy_name="fanout-writer", policy=WRITER)
    ws = make_workspace({**sandbox.env, "VAULT_TOKEN": vault_token})
    ws.write(HEADER + token(TWO_SINKS, '  rotate_on = { epoch = "1" }\n'))
    ws.init()
    ws.apply()
    first = ws.resources()[ADDRESS]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]

    # The policy is taken away once the new token is minted (the plan checked it): Vault refuses.
    sandbox.tfe.on_event_call("token.created", lambda _event: sandbox.bao.api(
        "PUT", "sys/policies/acl/fanout-writer", {"policy": READ_ONLY}))
    ws.write(HEADER + token(TWO_SINKS, '  rotate_on = { epoch = "2" }\n'))
    result = ws.apply(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "was not delivered to vault_kv:secret/ci/token#token" in text
    assert "ssm:/ci/token holds it, so it is not revoked" in text
    failed = ws.resources()[ADDRESS]
    new_id = failed["id"]
    assert new_id != first["id"] and failed["previous_token_id"] == first["id"]
    assert [s["status"] for s in failed["sinks"]] == ["delivered", "pending"]
    assert sorted(sandbox.live_tokens(pool)) == sorted([first["id"], new_id]), "each sink's token stays live"
    assert sandbox.ssm_value("/ci/token") == (sandbox.token_value(new_id), 2)
    assert sandbox.vault_value("ci/token") == ({"token": sandbox.token_value(first["id"])}, 1)

    # Fixed: the next apply writes the new token to Vault only, then revokes the previous one.
    sandbox.bao.api("PUT", "sys/policies/acl/fanout-writer", {"policy": WRITER})
    plan = ws.plan()
    text = " ".join(plan.output.split())
    assert "1 of 2 sinks will be written" in text and "vault_kv:secret/ci/token#token (pending)" in text
    ws.apply()
    done = ws.resources()[ADDRESS]
    assert done["id"] == new_id and done["previous_token_id"] is None
    assert [s["status"] for s in done["sinks"]] == ["delivered", "delivered"]
    assert sandbox.vault_value("ci/token") == ({"token": sandbox.token_value(new_id)}, 2)
    assert sandbox.ssm_value("/ci/token") == (sandbox.token_value(new_id), 2), "SSM was not written again"
    assert sandbox.live_tokens(pool) == [new_id]
    assert ws.plan_exitcode().returncode == 0
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


ROLE = "arn:aws:iam::111111111111:role/tokendrop-writer"


def test_a_sink_in_another_account_is_reached_through_an_assumed_role(sandbox, make_workspace):
    """moto serves STS and keeps each account's parameters apart (the account of assumed-role
    credentials is the role's), so the second parameter exists only in account 111111111111."""
    ws = make_workspace({**sandbox.env, "AWS_ENDPOINT_URL_STS": sandbox.moto.url})
    ws.write(HEADER + token(f'[{{ ssm = {{ name = "/ci/token" }} }}, '
                            f'{{ ssm = {{ name = "/ci/token", assume_role_arn = "{ROLE}" }} }}]'))
    ws.init()
    ws.apply()
    state = ws.resources()[ADDRESS]
    assert [s["address"] for s in state["sinks"]] == ["ssm:/ci/token", "ssm:111111111111:/ci/token"]
    value = sandbox.token_value(state["id"])
    assert sandbox.ssm_value("/ci/token") == (value, 1)
    sts = aws(sandbox, "sts", "us-east-1")
    assumed = sts.assume_role(RoleArn=ROLE, RoleSessionName="reader")["Credentials"]
    other = boto3.client("ssm", endpoint_url=sandbox.moto.url, region_name="us-east-1",
                         aws_access_key_id=assumed["AccessKeyId"], aws_secret_access_key=assumed["SecretAccessKey"],
                         aws_session_token=assumed["SessionToken"])
    found = other.get_parameter(Name="/ci/token", WithDecryption=True)["Parameter"]
    assert (found["Value"], found["Version"]) == (value, 1), "written in the role's account"
    tags = other.list_tags_for_resource(ResourceType="Parameter", ResourceId="/ci/token")["TagList"]
    assert {"Key": "managed-by", "Value": "tokendrop"} in tags
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert sandbox.ssm_value("/ci/token") is None
    assert other.get_parameters(Names=["/ci/token"])["InvalidParameters"] == ["/ci/token"]
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_measure_a_three_sink_rotation(sandbox, make_workspace):
    """The calls one `terraform apply` of a rotation makes with three sinks (SSM, Secrets Manager, Vault),
    counted by proxies in front of moto and OpenBao and by the TFE emulator's request log; printed with
    its wall time (`pytest -s`). Asserts the structure only: one mint, one revoke, one value write per
    sink, and no value read back (the new token is copied from memory)."""
    three = ('[{ ssm = { name = "/ci/token", region = "eu-west-1" } }, '
             '{ secrets_manager = { name = "ci/token", recovery_window_in_days = 0 } }, '
             '{ vault_kv = { path = "ci/token" } }]')
    with FaultProxy(sandbox.moto.url) as aws_proxy, FaultProxy(sandbox.bao.url) as vault_proxy:
        ws = make_workspace({**sandbox.env, "AWS_ENDPOINT_URL_SSM": aws_proxy.url,
                             "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws_proxy.url, "VAULT_ADDR": vault_proxy.url})
        ws.write(HEADER + token(three, '  rotate_on = { epoch = "1" }\n'))
        ws.init()
        ws.apply()
        first = ws.resources()[ADDRESS]
        ws.write(HEADER + token(three, '  rotate_on = { epoch = "2" }\n'))
        aws_proxy.seen.clear()
        vault_proxy.seen.clear()
        sandbox.tfe.clear_requests()
        started = time.monotonic()
        ws.apply()
        elapsed = time.monotonic() - started
        aws_calls = Counter(target.split(".")[-1] for _, _, target, _ in aws_proxy.seen)
        vault_calls = Counter(f"{method} {path.split('?')[0].removeprefix('/v1/')}"
                              for method, path, _, _ in vault_proxy.seen)
        tfe_calls = Counter(f"{r['method']} {r['path']}" for r in sandbox.tfe.requests())
    second = ws.resources()[ADDRESS]
    assert second["id"] != first["id"] and held_everywhere_three(sandbox) == {sandbox.token_value(second["id"])}
    print(f"\n3-sink rotation (terraform apply: refresh, plan, apply) in {elapsed:.2f}s")
    for label, calls in (("TFE", tfe_calls), ("AWS (moto)", aws_calls), ("Vault (OpenBao)", vault_calls)):
        print(f"  {label}: {sum(calls.values())} calls")
        for what, n in sorted(calls.items()):
            print(f"    {n:3d}  {what}")
    mints = sum(n for what, n in tfe_calls.items()
                if what.startswith("POST") and what.endswith("/authentication-tokens"))
    revokes = sum(n for what, n in tfe_calls.items() if what.startswith("DELETE"))
    assert (mints, revokes) == (1, 1)
    assert aws_calls["PutParameter"] == 1 and aws_calls["PutSecretValue"] == 1
    assert aws_calls["GetParameter"] == aws_calls["GetSecretValue"] == 0, "the value is never read back"
    assert sum(n for what, n in vault_calls.items() if what.startswith(("POST secret/data", "PUT secret/data"))) == 1


def held_everywhere_three(sandbox) -> set[str | None]:
    vault = sandbox.vault_value("ci/token")
    return {(ssm_in(sandbox, "eu-west-1") or (None,))[0], secret_value(sandbox), vault[0]["token"] if vault else None}


BUILDKITE = """
resource "tokendrop_buildkite_cluster" "linux" {
  name = "linux"
}

resource "tokendrop_buildkite_cluster_token" "elastic" {
  cluster_id  = tokendrop_buildkite_cluster.linux.id
  description = "elastic ci stacks"
  deliver_to = [
    { ssm = { name = "/buildkite/agent-token", region = "eu-west-1" } },
    { ssm = { name = "/buildkite/agent-token", region = "us-east-1" } },
    { secrets_manager = { name = "buildkite/agent-token", field = "BUILDKITE_AGENT_TOKEN",
                          replica_regions = ["eu-central-1"], recovery_window_in_days = 0 } },
    { vault_kv = { path = "ci/buildkite" } },
  ]
}
"""


def test_one_buildkite_token_for_two_regions_a_replicated_secret_and_vault(sandbox, fresh_buildkite_emulator,
                                                                           make_workspace):
    """The Elastic CI Stack case (issue 13): one cluster token in SSM in two regions, a Secrets Manager
    secret (JSON, replicated) and Vault; one region's parameter deleted out of band is the only sink
    written again."""
    sandbox.buildkite = fresh_buildkite_emulator
    ws = make_workspace(sandbox.env)
    ws.write(PROVIDER_HEADER + BUILDKITE)
    ws.init()
    ws.apply()
    state = ws.resources()["tokendrop_buildkite_cluster_token.elastic"]
    value = next(m["value"] for m in fresh_buildkite_emulator.minted() if m["id"] == state["id"])
    param = "/buildkite/agent-token"

    def parameter(region: str) -> tuple[str, int] | None:
        client = aws(sandbox, "ssm", region)
        try:
            found = client.get_parameter(Name=param, WithDecryption=True)["Parameter"]
        except client.exceptions.ParameterNotFound:
            return None
        return found["Value"], found["Version"]

    def secret(region: str) -> dict:
        text = aws(sandbox, "secretsmanager", region).get_secret_value(
            SecretId="buildkite/agent-token", VersionStage="AWSCURRENT")["SecretString"]
        return json.loads(text)

    assert parameter("eu-west-1") == parameter("us-east-1") == (value, 1)
    assert secret("us-east-1") == secret("eu-central-1") == {"BUILDKITE_AGENT_TOKEN": value}
    assert sandbox.vault_value("ci/buildkite") == ({"token": value}, 1)
    assert fresh_buildkite_emulator.cluster_tokens(state["cluster_id"], include_expired=False) == [state["id"]]

    aws(sandbox, "ssm", "us-east-1").delete_parameter(Name=param)
    plan = " ".join(ws.plan().output.split())
    assert "1 of 4 sinks will be written" in plan and f"ssm:us-east-1:{param} (missing)" in plan
    ws.apply()
    assert parameter("us-east-1") == (value, 1) and parameter("eu-west-1") == (value, 1)
    assert sandbox.vault_value("ci/buildkite")[1] == 1
    assert ws.resources()["tokendrop_buildkite_cluster_token.elastic"]["id"] == state["id"]
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert parameter("eu-west-1") is None and parameter("us-east-1") is None
    assert sandbox.vault_value("ci/buildkite") is None
    assert scan([value], ws.artifacts()) == []


def test_a_sink_refusing_a_create_fails_naming_it_and_the_next_apply_completes(sandbox, make_workspace):
    """A create that one sink refuses: the token stays live (the first sink holds it), the apply fails
    naming the other sink, state records which sinks hold it. Terraform taints a failed create, so the
    next apply replaces it: the token leaves its sink and is revoked, a new one is written to both."""
    vault_token = create_policy_token(sandbox.bao, policy_name="fanout-create", policy=WRITER)
    ws = make_workspace({**sandbox.env, "VAULT_TOKEN": vault_token})
    ws.write(HEADER + token(TWO_SINKS))
    ws.init()
    ws.apply("-target=tokendrop_tfe_agent_pool.ci")
    sandbox.tfe.on_event_call("token.created", lambda _event: sandbox.bao.api(
        "PUT", "sys/policies/acl/fanout-create", {"policy": READ_ONLY}))
    result = ws.apply(check=False)
    assert result.returncode == 1
    assert "was not delivered to vault_kv:secret/ci/token#token" in " ".join(result.stderr.split())
    failed = ws.resources()[ADDRESS]
    assert [s["status"] for s in failed["sinks"]] == ["delivered", "pending"]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert sandbox.live_tokens(pool) == [failed["id"]], "not revoked: SSM holds it"
    assert sandbox.ssm_value("/ci/token") == (sandbox.token_value(failed["id"]), 1)
    assert sandbox.vault_value("ci/token") is None

    sandbox.bao.api("PUT", "sys/policies/acl/fanout-create", {"policy": WRITER})
    assert "must be replaced" in ws.plan().stdout  # tainted
    ws.apply()
    done = ws.resources()[ADDRESS]
    value = sandbox.token_value(done["id"])
    assert done["id"] != failed["id"] and sandbox.live_tokens(pool) == [done["id"]]
    assert sandbox.ssm_value("/ci/token")[0] == value and sandbox.vault_value("ci/token")[0] == {"token": value}
    assert ws.plan_exitcode().returncode == 0
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


def test_each_kind_of_sink_can_be_the_one_the_token_is_copied_from(sandbox, make_workspace):
    """A repair copies the live token from the first sink that holds it: here Secrets Manager (the SSM
    parameter is gone), then Vault (SSM and Secrets Manager are gone)."""
    ws = make_workspace(sandbox.env)
    three = ('[{ ssm = { name = "/ci/token" } }, '
             '{ secrets_manager = { name = "ci/token", field = "TOKEN", recovery_window_in_days = 0 } }, '
             '{ vault_kv = { path = "ci/token" } }]')
    ws.write(HEADER + token(three))
    ws.init()
    ws.apply()
    state = ws.resources()[ADDRESS]
    value = sandbox.token_value(state["id"])
    sm = aws(sandbox, "secretsmanager", "us-east-1")

    sandbox.ssm().delete_parameter(Name="/ci/token")
    text = " ".join(ws.plan().output.split())
    assert "copies the live token" in text and "from secrets_manager:ci/token" in text
    ws.apply()
    assert sandbox.ssm_value("/ci/token") == (value, 1), "copied out of the secret's JSON field"

    sandbox.ssm().delete_parameter(Name="/ci/token")
    sm.delete_secret(SecretId="ci/token", ForceDeleteWithoutRecovery=True)
    text = " ".join(ws.plan().output.split())
    assert "2 of 3 sinks will be written" in text and "from vault_kv:secret/ci/token#token" in text
    ws.apply()
    assert sandbox.ssm_value("/ci/token") == (value, 1)
    assert json.loads(sm.get_secret_value(SecretId="ci/token", VersionStage="AWSCURRENT")["SecretString"]) == {
        "TOKEN": value}
    assert ws.resources()[ADDRESS]["id"] == state["id"] and ws.plan_exitcode().returncode == 0
    assert scan(sandbox.minted_values(), ws.artifacts()) == []
