"""The repository's "agents" stack (stacks/agents.py), synthesized in process with cdktf and applied
with the real terraform binary against the sandbox (Token Vault emulator in Webhook Mode with the
reference webhook, the Buildkite emulator, moto, OpenBao). Proves: two agents, agent grants and a scoped
key with a 7-day key grant deploy; the key grant went out on the key grant route as 168 hours; the
agents' and the key's values are in SSM and work at Token Vault; a Buildkite token is delivered through
Webhook Mode and the second agent reads it through the 307 to the webhook; a second plan is empty;
destroy revokes every key and grant and deletes the webhook's credential; no value in any artifact, and
no Buildkite value in the Token Vault emulator's records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

from fixtures.terraform import scan
from tokendrop_provider.sandbox.approle import setup_sample_approle

pytestmark = pytest.mark.e2e


@pytest.fixture
def box(sandbox, webhook_mode, fresh_buildkite_emulator):
    sandbox.tokenvault, _ = webhook_mode
    sandbox.buildkite = fresh_buildkite_emulator
    setup_sample_approle(sandbox.bao)
    return sandbox


REPO = Path(__file__).resolve().parents[2]


def synthesized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    # `stacks` (cdktf.json's app) as a package; appended, so nothing installed is shadowed.
    monkeypatch.setattr(sys, "path", [*sys.path, str(REPO)])
    import cdktf
    from stacks import agents

    app = cdktf.App(outdir=str(tmp_path / "out"))
    agents.define(cdktf.TerraformStack(app, "agents"))
    app.synth()
    doc = json.loads((tmp_path / "out" / "stacks" / "agents" / "cdk.tf.json").read_text())
    doc["terraform"].pop("backend", None)  # state stays in the workspace, scanned at teardown
    return doc


def test_the_agents_stack_deploys_against_the_sandbox(box, webhook_mode, make_workspace, tmp_path, monkeypatch):
    em, webhook = webhook_mode
    monkeypatch.setenv("TOKENDROP_TOKENVAULT_WEBHOOK_URL", webhook.url)  # the sandbox's TOKENVAULT_WEBHOOK_URL
    ws = make_workspace(box.env)
    (ws.directory / "main.tf.json").write_text(json.dumps(synthesized(tmp_path, monkeypatch)))
    ws.init()
    ws.apply()

    state = ws.resources()
    agent = state["tokendrop_tokenvault_agent.triage"]
    deployer = state["tokendrop_tokenvault_agent.deployer"]
    [key] = [v for k, v in state.items() if k.startswith("tokendrop_tokenvault_key.")]
    [key_grant] = [v for k, v in state.items() if k.startswith("tokendrop_tokenvault_key_grant.")]
    agent_grants = sorted((v["agent_id"], v["service"]) for k, v in state.items()
                          if k.startswith("tokendrop_tokenvault_agent_grant."))
    assert agent_grants == sorted([(agent["id"], "github"), (agent["id"], "linear"),
                                   (deployer["id"], "buildkite-agents")])
    [sent] = [e for e in em.events() if e["event"] == "key_grant.created"]
    assert sent["fields"] == ["expiresInHours", "serviceName"]
    [record] = [k for k in em.world()["keys"] if k["id"] == key["id"]]
    assert record["grants"][0]["grantExpiresAt"] == key_grant["expires_at"] is not None
    agent_key = box.ssm_value("/agents/triage-bot/tvagent-key")[0]
    release_key = box.ssm_value("/agents/triage-bot/release-key")[0]
    assert agent_key == em.current_key(agent["id"]) and release_key.startswith("tvkey_")
    seen = requests.get(f"{em.url}/api/agents/credentials", headers={"Authorization": f"Bearer {agent_key}"},
                        timeout=10).json()
    assert {g["serviceName"] for g in seen["grants"]} == {"github", "linear"}
    me = requests.get(f"{em.url}/api/agents/whoami", headers={"Authorization": f"Bearer {release_key}"}, timeout=10)
    assert me.json()["scopes"] == ["credentials:read"]

    # The Buildkite token went to the webhook, never to Token Vault; the deployer reads it via the 307.
    [token] = [v for k, v in state.items() if k.startswith("tokendrop_buildkite_cluster_token.")]
    assert token["sink_address"] == "tokenvault_webhook:buildkite-agents"
    value = next(m["value"] for m in box.buildkite.minted() if m["id"] == token["id"])
    deployer_key = box.ssm_value("/agents/triage-bot/deployer-key")[0]
    read = requests.get(f"{em.url}/api/agents/credentials", params={"service": "buildkite-agents"}, timeout=10,
                        headers={"Authorization": f"Bearer {deployer_key}"})
    assert [r.status_code for r in read.history] == [307] and read.json()["token"]["accessToken"] == value
    assert value not in json.dumps([em.requests(), em.events(), em.world()])
    assert ws.plan_exitcode().returncode == 0

    ws.destroy()
    assert webhook.services() == []
    assert em.agent_ids() == [] and [k for k in em.world()["keys"] if k["id"] == key["id"]] == []
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []
