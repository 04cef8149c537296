"""Crash safety: SIGKILL the provider (or terraform itself) at each step of a create and of a rotation —
after the mint, after the sink write, before state is saved, between the second and third write of a
token delivered to three sinks — then apply again. After every case:
exactly one live token for the sink at the issuer, the sink holds that token, no orphan carries our
marker, state names that token. And Ctrl-C during an apply lets in-flight creates finish and be saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from fixtures.terraform import PROVIDER, PROVIDER_HEADER, TERRAFORM, processes_with, scan
from tokendrop_provider.sandbox.servers import FaultProxy

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
"""

SINKS = {
    "ssm": ('{ ssm = { name = "/ci/%s" } }', lambda box, name: box.ssm_value(f"/ci/{name}")),
    "vault": ('{ vault_kv = { path = "ci/%s" } }', lambda box, name: box.vault_value(f"ci/{name}")),
}


def config(sink: str, names: list[str], epoch: str = "1", chain: bool = False) -> str:
    template = SINKS[sink][0]
    out = [HEADER]
    previous = None
    for name in names:
        depends = f"  depends_on = [tokendrop_tfe_agent_token.{previous}]\n" if chain and previous else ""
        out.append(f'resource "tokendrop_tfe_agent_token" "{name}" {{\n'
                   f"  agent_pool_id = tokendrop_tfe_agent_pool.ci.id\n"
                   f"  deliver_to    = {template % name}\n"
                   f'  rotate_on     = {{ epoch = "{epoch}" }}\n{depends}}}\n')
        previous = name
    return "".join(out)


class ClientGone(Exception):
    """Raised in the emulator after the kill: the request dies with its client and changes nothing more
    (the emulator answers 500 to nobody)."""


def killer(marker: str, needle: str, on_call: int = 1, abort: bool = True):
    """An event callback that SIGKILLs this test's processes matching `needle`, on its `on_call`-th call.
    With `abort`, the request that fired the event goes no further (a revoke never happens)."""
    calls = []

    def kill(_event: dict) -> None:
        calls.append(1)
        if len(calls) != on_call:
            return
        for pid in processes_with(marker, needle):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if abort:
            raise ClientGone

    return kill


def assert_converged(box, ws, sink: str, names: list[str]) -> None:
    resources = ws.resources()
    pool = resources["tokendrop_tfe_agent_pool.ci"]["id"]
    ids = []
    for name in names:
        state = resources[f"tokendrop_tfe_agent_token.{name}"]
        ids.append(state["id"])
        value = SINKS[sink][1](box, name)
        assert value is not None, f"sink of {name} is missing"
        held = value[0]["token"] if isinstance(value[0], dict) else value[0]
        assert held == box.token_value(state["id"]), f"sink of {name} holds the token in state"
        assert value[1] == state["sink_version"]
    assert sorted(box.live_tokens(pool)) == sorted(ids), "exactly one live token per sink, no orphans"
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]


@pytest.fixture
def crash_workspace(sandbox, make_workspace):
    marker = uuid.uuid4().hex
    ws = make_workspace({**sandbox.env, "TOKENDROP_CRASH_TEST": marker})
    ws.marker = marker
    yield ws
    sandbox.tfe.clear_signals()
    assert scan(sandbox.minted_values(), ws.artifacts()) == []


@pytest.mark.parametrize("sink", sorted(SINKS))
@pytest.mark.parametrize("step", ["after-mint", "after-sink-write"])
def test_create_survives_a_provider_kill(step, sink, sandbox, crash_workspace):
    ws = crash_workspace
    ws.write(config(sink, ["t"]))
    ws.init()
    ws.apply("-target=tokendrop_tfe_agent_pool.ci")
    event = "token.created" if step == "after-mint" else "tokens.listed"
    sandbox.tfe.on_event_call(event, killer(ws.marker, PROVIDER))
    result = ws.apply(check=False)
    assert result.returncode != 0, "the provider was killed"
    assert "tokendrop_tfe_agent_token.t" not in ws.resources()
    # The crash really happened at that step: a token was minted and nothing recorded it...
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert len(sandbox.live_tokens(pool)) == 1
    delivered = SINKS[sink][1](sandbox, "t")
    # ...and the sink was (or was not yet) written.
    assert (delivered is not None) == (step == "after-sink-write")
    ws.apply()
    assert_converged(sandbox, ws, sink, ["t"])


@pytest.mark.parametrize("sink", sorted(SINKS))
@pytest.mark.parametrize("step", ["after-mint", "after-sink-write"])
def test_rotation_survives_a_provider_kill(step, sink, sandbox, crash_workspace):
    ws = crash_workspace
    ws.write(config(sink, ["t"], epoch="1"))
    ws.init()
    ws.apply()
    ws.write(config(sink, ["t"], epoch="2"))
    before = ws.resources()["tokendrop_tfe_agent_token.t"]
    # A rotation writes the sink and then revokes the old token.
    event = "token.created" if step == "after-mint" else "token.revoking"
    sandbox.tfe.on_event_call(event, killer(ws.marker, PROVIDER))
    result = ws.apply(check=False)
    assert result.returncode != 0
    assert ws.resources()["tokendrop_tfe_agent_token.t"]["id"] == before["id"], "state still has the old token"
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert len(sandbox.live_tokens(pool)) == 2, "old and newly minted tokens are both alive"
    version = SINKS[sink][1](sandbox, "t")[1]
    assert version == (2 if step == "after-sink-write" else 1)
    ws.apply()
    assert_converged(sandbox, ws, sink, ["t"])


@pytest.mark.parametrize("sink", sorted(SINKS))
def test_rotation_killed_while_the_issuer_completes_the_revoke(sink, sandbox, crash_workspace):
    """The provider dies while its revoke of the old token is in flight, and the issuer carries the revoke
    out anyway: state names a dead token, the sink holds the new one."""
    ws = crash_workspace
    ws.write(config(sink, ["t"], epoch="1"))
    ws.init()
    ws.apply()
    before = ws.resources()["tokendrop_tfe_agent_token.t"]
    ws.write(config(sink, ["t"], epoch="2"))
    sandbox.tfe.on_event_call("token.revoking", killer(ws.marker, PROVIDER, abort=False))
    assert ws.apply(check=False).returncode != 0
    deadline = time.monotonic() + 30
    while not any(e["event"] == "token.revoked" and e["id"] == before["id"] for e in sandbox.tfe.events()):
        assert time.monotonic() < deadline, "the issuer finished the revoke"
        time.sleep(0.05)
    ws.apply()
    assert_converged(sandbox, ws, sink, ["t"])


@pytest.mark.parametrize("sink", sorted(SINKS))
@pytest.mark.parametrize("operation", ["create", "rotation"])
def test_state_lost_after_the_provider_finished(operation, sink, sandbox, crash_workspace):
    """The provider delivered, but the state never recorded it (Terraform died between the answer and
    its state write): simulated exactly by pushing back the state from before the apply."""
    ws = crash_workspace
    ws.write(config(sink, ["t"], epoch="1"))
    ws.init()
    if operation == "create":
        ws.apply("-target=tokendrop_tfe_agent_pool.ci")
    else:
        ws.apply()
    before = ws.state()
    if operation == "rotation":
        ws.write(config(sink, ["t"], epoch="2"))
    ws.apply()
    delivered = ws.resources()["tokendrop_tfe_agent_token.t"]
    minted = len(sandbox.minted())

    before["serial"] = ws.state()["serial"] + 1
    (ws.directory / "lost.tfstate").write_text(json.dumps(before))
    ws.run("state", "push", "-force", "lost.tfstate")
    (ws.directory / "lost.tfstate").unlink()

    ws.apply()
    if operation == "create":
        assert ws.resources()["tokendrop_tfe_agent_token.t"]["id"] == delivered["id"], "the token is adopted"
        assert len(sandbox.minted()) == minted, "nothing new was minted"
    else:
        # Refresh takes the delivered token into state, but the state's rotate_on is the old one, so the
        # rotation is carried out once more: one extra token, and the intermediate one is revoked.
        assert len(sandbox.minted()) == minted + 1
    assert_converged(sandbox, ws, sink, ["t"])


@pytest.mark.parametrize("sink", sorted(SINKS))
def test_terraform_killed_mid_apply(sink, sandbox, crash_workspace):
    """Terraform and its provider die while `b` is being minted, after `a` was delivered."""
    ws = crash_workspace
    names = ["a", "b"]
    ws.write(config(sink, names, chain=True))
    ws.init()
    ws.apply("-target=tokendrop_tfe_agent_pool.ci")
    # The second mint is b's: `a` has been delivered by then.
    sandbox.tfe.on_event_call("token.created", killer(ws.marker, "terraform", on_call=2), count=2)
    result = ws.apply(check=False)
    assert result.returncode != 0
    assert SINKS[sink][1](sandbox, "a") is not None and SINKS[sink][1](sandbox, "b") is None
    ws.apply()
    assert_converged(sandbox, ws, sink, names)


def test_ctrl_c_lets_in_flight_creates_finish_and_be_saved(sandbox, crash_workspace):
    ws = crash_workspace
    names = [f"t{i}" for i in range(6)]
    ws.write(config("vault", names))
    ws.init()
    ws.apply("-target=tokendrop_tfe_agent_pool.ci")
    sandbox.tfe.set_latency(0.6)
    env = {**ws.env, "TF_LOG": ""}
    proc = subprocess.Popen([TERRAFORM, "apply", "-auto-approve", "-no-color", "-parallelism=3"], cwd=ws.directory,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(e["event"] == "token.created" for e in sandbox.tfe.events()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    output, _ = proc.communicate(timeout=120)
    sandbox.tfe.set_latency(0)
    text = output.decode()
    assert "Interrupt received" in text or "Gracefully shutting down" in text, text
    resources = ws.resources()
    pool = resources["tokendrop_tfe_agent_pool.ci"]["id"]
    saved = {r["id"] for a, r in resources.items() if a.startswith("tokendrop_tfe_agent_token.")}
    assert saved, "at least the in-flight creates were saved"
    assert set(sandbox.live_tokens(pool)) == saved, "every live token is in state: nothing orphaned"
    ws.apply()
    assert_converged(sandbox, ws, "vault", names)


# --- one token, many sinks: a crash between the second and the third sink write -----------------

FANOUT = """[
    { ssm = { name = "/ci/a" } },
    { ssm = { name = "/ci/b" } },
    { vault_kv = { path = "ci/c" } },
  ]"""


def fanout_config(epoch: str) -> str:
    return (HEADER + 'resource "tokendrop_tfe_agent_token" "t" {\n  agent_pool_id = tokendrop_tfe_agent_pool.ci.id\n'
            f'  deliver_to = {FANOUT}\n  rotate_on = {{ epoch = "{epoch}" }}\n}}\n')


class KillingProxy(FaultProxy):
    """In front of OpenBao: SIGKILLs this test's provider when the data write of `path` arrives, and
    drops that request. The two SSM sinks come first in `deliver_to`, so the provider dies between the
    second and the third sink write (after the third sink's ownership record, written first)."""

    def __init__(self, upstream: str, marker: str, path: str) -> None:
        super().__init__(upstream)
        self.marker, self.path, self.kills = marker, path, 0

    def _take(self, method: str, path: str, target: str):  # type: ignore[no-untyped-def]
        if method in ("POST", "PUT") and path.startswith(self.path) and self.kills == 0:
            self.kills += 1
            for pid in processes_with(self.marker, PROVIDER):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return "drop_request"
        return super()._take(method, path, target)


def assert_fanout_converged(box, ws) -> str:
    state = ws.resources()["tokendrop_tfe_agent_token.t"]
    value = box.token_value(state["id"])
    assert box.ssm_value("/ci/a")[0] == value and box.ssm_value("/ci/b")[0] == value
    assert box.vault_value("ci/c")[0] == {"token": value}
    assert [s["status"] for s in state["sinks"]] == ["delivered"] * 3
    pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
    assert box.live_tokens(pool) == [state["id"]], "exactly one live token for the three sinks, no orphan"
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    return str(state["id"])


@pytest.mark.parametrize("operation", ["create", "rotation"])
def test_killed_between_the_second_and_third_sink_write(operation, sandbox, make_workspace):
    marker = uuid.uuid4().hex
    with KillingProxy(sandbox.bao.url, marker, "/v1/secret/data/ci/c") as proxy:
        ws = make_workspace({**sandbox.env, "TOKENDROP_CRASH_TEST": marker, "VAULT_ADDR": proxy.url})
        ws.write(fanout_config("1"))
        ws.init()
        if operation == "create":
            ws.apply("-target=tokendrop_tfe_agent_pool.ci")
        else:
            proxy.kills = 1  # not yet
            ws.apply()
            before = ws.resources()["tokendrop_tfe_agent_token.t"]
            proxy.kills = 0
            ws.write(fanout_config("2"))
        result = ws.apply(check=False)
        assert result.returncode != 0 and proxy.kills == 1, "the provider was killed at the third write"
        pool = ws.resources()["tokendrop_tfe_agent_pool.ci"]["id"]
        live = sandbox.live_tokens(pool)
        if operation == "create":
            assert "tokendrop_tfe_agent_token.t" not in ws.resources()
            [new] = live
            assert sandbox.vault_value("ci/c") is None
        else:
            assert ws.resources()["tokendrop_tfe_agent_token.t"]["id"] == before["id"], "state kept the old token"
            assert len(live) == 2 and before["id"] in live
            [new] = [t for t in live if t != before["id"]]
            assert sandbox.vault_value("ci/c")[0] == {"token": sandbox.token_value(before["id"])}
        assert sandbox.ssm_value("/ci/a")[0] == sandbox.token_value(new) == sandbox.ssm_value("/ci/b")[0]

        ws.apply()
        final = assert_fanout_converged(sandbox, ws)
        if operation == "create":
            assert final == new, "the token the first two sinks hold was adopted, not minted again"
        assert scan(sandbox.minted_values(), ws.artifacts()) == []
