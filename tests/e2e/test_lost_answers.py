"""Lost answers to sink writes, through real terraform, with moto or OpenBao behind the sandbox's
FaultProxy: the proxy forwards the write, the server stores it, and the answer never comes back.

- When the sink can be read back, the provider finds its token there and finishes: the token is kept
  (not revoked) and state names it.
- When the sink cannot be read back either (it goes away right after the write), the apply fails,
  saying the next apply settles it; the minted token is kept and state records it. One clean apply
  then converges, whether the write had landed or not.

After each case: one live token at the issuer for the sink, the sink holds it, state names it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.sandbox.servers import FaultProxy

pytestmark = pytest.mark.e2e

ADDRESS = "tokendrop_tfe_agent_token.t"
SINKS = {
    # deliver_to, the proxied server, the environment variable pointing at it, the rule matching the write
    "ssm": ('{ ssm = { name = "/ci/t" } }', "moto", "AWS_ENDPOINT_URL_SSM",
            {"target": "AmazonSSM.PutParameter"}),
    "vault": ('{ vault_kv = { path = "ci/t" } }', "bao", "VAULT_ADDR",
              {"method": "POST", "path": "/v1/secret/data/ci/t"}),
}


def config(sink: str, epoch: str) -> str:
    return PROVIDER_HEADER + f"""resource "tokendrop_tfe_agent_pool" "ci" {{
  organization = "acme"
  name         = "ci"
}}

resource "tokendrop_tfe_agent_token" "t" {{
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to    = {SINKS[sink][0]}
  rotate_on     = {{ epoch = "{epoch}" }}
}}
"""


def said(result) -> str:
    """Terraform's output with its line wrapping undone."""
    return " ".join(result.output.split())


def held(box, sink: str) -> tuple[str, int] | None:
    """(token value, version) in the sink, read straight from the server (not through the proxy)."""
    if sink == "ssm":
        return box.ssm_value("/ci/t")
    found = box.vault_value("ci/t")
    return None if found is None else (found[0]["token"], found[1])


@pytest.fixture(params=sorted(SINKS))
def sink(request) -> str:
    return request.param


@pytest.fixture
def proxy(sandbox, sink) -> Iterator[FaultProxy]:
    server = sandbox.moto if SINKS[sink][1] == "moto" else sandbox.bao
    with FaultProxy(server.url) as running:
        yield running


@pytest.fixture
def ws(sandbox, sink, proxy, make_workspace):
    workspace = make_workspace({**sandbox.env, SINKS[sink][2]: proxy.url})
    yield workspace
    sandbox.tfe.clear_signals()
    assert scan(sandbox.minted_values(), workspace.artifacts()) == []


def start(ws, sink: str, operation: str) -> str | None:
    """Bring the workspace to the point before the faulted apply; the token id before it, if any."""
    ws.write(config(sink, "1"))
    ws.init()
    if operation == "create":
        ws.apply("-target=tokendrop_tfe_agent_pool.ci")
        return None
    ws.apply()
    ws.write(config(sink, "2"))
    return ws.resources()[ADDRESS]["id"]


def arm_at_mint(sandbox, proxy: FaultProxy, rule: dict, **options) -> None:
    # Armed once the token is minted, so that the plan's reads of the sink pass untouched.
    sandbox.tfe.on_event_call("token.created", lambda _event: proxy.arm(**rule, **options))


def assert_converged(sandbox, ws, sink: str) -> None:
    state = ws.resources()[ADDRESS]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    value = held(sandbox, sink)
    assert value is not None, "the sink holds a value"
    assert value[0] == sandbox.token_value(state["id"]), "the sink holds the token state names"
    assert value[1] == state["sink_version"]
    assert state["sink_status"] == "delivered"
    assert sandbox.live_tokens(pool) == [state["id"]], "exactly one live token for the sink, no orphan"
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]


@pytest.mark.parametrize("operation", ["create", "rotation"])
def test_a_lost_answer_is_read_back_and_the_delivered_token_kept(operation, sink, sandbox, proxy, ws):
    before = start(ws, sink, operation)
    # SSM: three drops, as many as botocore would send; a resend must not be what saves the delivery.
    arm_at_mint(sandbox, proxy, SINKS[sink][3], mode="drop_response", count=3)
    result = ws.apply()
    assert proxy.faults(), "the answer to the write was really dropped"
    assert "was lost" in said(result) and "so it was kept" in said(result)
    state = ws.resources()[ADDRESS]
    assert state["id"] != before
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert state["id"] in sandbox.live_tokens(pool), "the delivered token was not revoked"
    assert held(sandbox, sink)[0] == sandbox.token_value(state["id"])
    proxy.disarm()
    ws.apply()
    assert_converged(sandbox, ws, sink)


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "not-landed"])
@pytest.mark.parametrize("operation", ["create", "rotation"])
def test_an_unknown_outcome_keeps_the_token_and_the_next_apply_settles_it(operation, landed, sink, sandbox,
                                                                           proxy, ws):
    before = start(ws, sink, operation)
    # The write is stored (or never arrives), and the sink is unreachable from then on: nothing can be
    # read back.
    mode = "drop_response" if landed else "drop_request"
    arm_at_mint(sandbox, proxy, SINKS[sink][3], mode=mode, then_down=True)
    result = ws.apply(check=False)
    assert result.returncode != 0
    assert "Cannot tell whether" in said(result) and "the next apply settles it" in said(result)
    state = ws.resources()[ADDRESS]
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    minted = [t for t in sandbox.live_tokens(pool) if t != before]
    assert state["id"] in minted, "state records the token that may be in the sink"
    assert state["sink_status"] == "unknown"
    assert (held(sandbox, sink) is not None and held(sandbox, sink)[0] == sandbox.token_value(state["id"])) == landed
    if before is not None:
        assert before in sandbox.live_tokens(pool), "the token the sink held before is kept too"
        assert state["previous_token_id"] == before
    proxy.disarm()
    ws.apply()
    assert_converged(sandbox, ws, sink)


def test_a_token_vault_agent_whose_key_delivery_is_unsettled_is_replaced_by_the_next_apply(
        sandbox, fresh_tokenvault_emulator, make_workspace):
    """Token Vault: the agent's key went to SSM and the sink became unreachable before the answer. The
    failed create records the agent (tainted) without claiming any grant; the next apply replaces it."""
    sandbox.tokenvault = em = fresh_tokenvault_emulator
    with FaultProxy(sandbox.moto.url) as proxy:
        ws = make_workspace({**sandbox.env, "AWS_ENDPOINT_URL_SSM": proxy.url})
        ws.write(PROVIDER_HEADER + """resource "tokendrop_tokenvault_agent" "bot" {
  name        = "lost-answer-bot"
  grants      = [{ service = "github" }]
  deliver_to  = { ssm = { name = "/agents/lost/key" } }
}
""")
        ws.init()
        em.on_event_call("agent.created", lambda _event: proxy.arm(
            "drop_response", target="AmazonSSM.PutParameter", then_down=True))
        result = ws.apply(check=False)
        assert result.returncode != 0 and "the next apply settles it" in said(result)
        state = ws.resources()["tokendrop_tokenvault_agent.bot"]
        assert state["sink_status"] == "unknown" and not state["grants"], "no grant claimed: none was given"
        assert ws.state()["resources"][0]["instances"][0].get("status") == "tainted"
        first = state["id"]
        assert sandbox.ssm_value("/agents/lost/key") is not None, "the key landed in SSM"
        proxy.disarm()
        ws.apply()
        state = ws.resources()["tokendrop_tokenvault_agent.bot"]
        agents = [a for a in em.world()["agents"] if a["name"] == "lost-answer-bot"]
        assert [a["id"] for a in agents] == [state["id"]] and state["id"] != first, "replaced: one agent left"
        assert [g["serviceName"] for g in agents[0]["grants"]] == ["github"]
        assert sandbox.ssm_value("/agents/lost/key")[1] == state["sink_version"]
        assert state["sink_status"] == "delivered"
        assert ws.plan_exitcode().returncode == 0, ws.results[-1]
        assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []
