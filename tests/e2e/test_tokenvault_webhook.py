"""Zero-knowledge delivery through Token Vault Webhook Mode, through the real terraform binary: a
Buildkite cluster token delivered to `deliver_to.tokenvault_webhook` (a store ticket from the Token Vault
emulator, the value posted to the reference webhook), an agent (its `tvagent_` key in SSM) granted the
service reads the token by following Token Vault's 307 to the webhook, as the CLI does; refresh reads
metadata only and is clean; a credential overwritten at the webhook is noticed and repaired; rotation
(`rotate_on`) stores the new token and revokes the old; `tokendrop audit` reads the sink; import adopts the
token the webhook holds; destroy deletes the credential through Token Vault's /v1/storage call; a key
without the tokens scopes fails the plan naming them. Leak checks: the workspace scan (every Buildkite
value, every agent key, the provider key) and, beyond it, the store tickets; the Token Vault emulator's
request log, events and world never hold a delivered value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator

pytestmark = pytest.mark.e2e

TOKEN = "tokendrop_buildkite_cluster_token.agents"
AGENT = "tokendrop_tokenvault_agent.deployer"
SERVICE = "buildkite-ci"
AGENT_KEY_PARAMETER = "/agents/deployer/key"


def config(webhook_url: str, rotate: str = "1") -> str:
    return PROVIDER_HEADER + f"""
resource "tokendrop_buildkite_cluster" "linux" {{
  name = "linux"
}}

resource "tokendrop_buildkite_cluster_token" "agents" {{
  cluster_id  = tokendrop_buildkite_cluster.linux.id
  description = "linux agents"
  rotate_on   = {{ generation = "{rotate}" }}
  deliver_to = {{
    tokenvault_webhook = {{ service = "{SERVICE}", webhook_url = "{webhook_url}" }}
  }}
}}

resource "tokendrop_tokenvault_agent" "deployer" {{
  name       = "deployer"
  deliver_to = {{ ssm = {{ name = "{AGENT_KEY_PARAMETER}" }} }}
}}

resource "tokendrop_tokenvault_agent_grant" "buildkite" {{
  agent_id   = tokendrop_tokenvault_agent.deployer.id
  service    = "{SERVICE}"
  depends_on = [tokendrop_buildkite_cluster_token.agents]  # Token Vault knows the service once it is stored
}}
"""


@pytest.fixture
def box(sandbox, webhook_mode, fresh_buildkite_emulator: BuildkiteEmulator):
    sandbox.tokenvault, _ = webhook_mode
    sandbox.buildkite = fresh_buildkite_emulator
    return sandbox


def read_as_agent(tv_url: str, agent_key: str) -> requests.Response:
    """What `tvault tk get` does with an agent key (internal/api/tokens.go getTokenValueAgent): GET
    /api/agents/credentials?service=…, following the 307 to the webhook (requests follows it, as Go's client
    does, and drops the Authorization header on the way to another host)."""
    return requests.get(f"{tv_url}/api/agents/credentials", params={"service": SERVICE}, timeout=10,
                        headers={"Authorization": f"Bearer {agent_key}"})


def test_webhook_mode_delivery_agent_read_drift_rotation_destroy(box, webhook_mode, make_workspace):
    em, webhook = webhook_mode
    bk = box.buildkite
    ws = make_workspace(box.env)
    ws.write(config(webhook.url))
    ws.init()
    assert "4 to add, 0 to change, 0 to destroy" in ws.plan().stdout
    assert webhook.requests("POST", "/v1/store") == [], "a plan stores nothing"
    ws.apply()

    state = ws.resources()
    token = state[TOKEN]
    assert token["sink_address"] == f"tokenvault_webhook:{SERVICE}" and token["sink_version"] == 1
    assert token["sink_status"] == "delivered"
    value = next(m["value"] for m in bk.minted() if m["id"] == token["id"])
    with webhook.lock:
        assert webhook.tokens[SERVICE]["fields"] == {"accessToken": value}
    meta = webhook.metadata(SERVICE)
    assert meta is not None and f"token={token['id']}" in meta["tokendrop"] and meta["tokenType"] == "PlainText"
    assert [e["event"] for e in webhook.events()] == ["token.stored"]

    # The agent reads the token through Token Vault's redirect; its key came from SSM, where tokendrop put it.
    agent_key = box.ssm_value(AGENT_KEY_PARAMETER)[0]
    assert agent_key.startswith("tvagent_")
    answer = read_as_agent(em.url, agent_key)
    assert answer.status_code == 200, answer.text
    assert [r.status_code for r in answer.history] == [307]
    assert answer.history[0].headers["Location"].startswith(f"{webhook.url}/v1/credential?ticket=")
    assert answer.json()["token"]["accessToken"] == value
    assert "Authorization" not in answer.request.headers, "the agent key never reaches the webhook"
    assert ws.plan_exitcode().returncode == 0, "refresh reads the metadata back and finds nothing to do"

    # `tokendrop audit` reads the sink through its registry entry: Token Vault's metadata, never the value.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    audited = subprocess.run([str(Path(sys.executable).with_name("tokendrop")), "audit", "--state", str(ws.directory),
                              "--json"], capture_output=True, text=True, env={**keep, **box.env}, timeout=120,
                             check=False)
    [row] = [r for r in json.loads(audited.stdout)["tokens"] if r["address"] == TOKEN]
    assert row["sink"]["status"] == "delivered" and row["sink"]["version"] == 1, audited.stderr
    assert value not in audited.stdout + audited.stderr

    # Someone stores another credential for the service (with their own ticket): refresh notices, apply repairs.
    ticket = requests.post(f"{em.url}/api/vault/store-ticket", json={"serviceName": SERVICE}, timeout=10,
                           headers={"Authorization": f"Bearer {em.admin_key}"}).json()
    assert requests.post(f"{webhook.url}/v1/store", timeout=10, json={
        "ticket": ticket["ticket"], "service": SERVICE,
        "tokenData": {"tokenType": "PlainText", "accessToken": "someone-elses"}}).ok
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "overwritten" in plan.output
    ws.apply()
    repaired = ws.resources()[TOKEN]
    assert repaired["sink_status"] == "delivered"
    repaired_value = next(m["value"] for m in bk.minted() if m["id"] == repaired["id"])
    assert read_as_agent(em.url, agent_key).json()["token"]["accessToken"] == repaired_value

    # Rotation: a new Buildkite token is stored as the next version; the previous one is revoked.
    ws.write(config(webhook.url, rotate="2"))
    assert "will rotate" in ws.plan().output
    ws.apply()
    rotated = ws.resources()[TOKEN]
    assert rotated["id"] != repaired["id"] and rotated["sink_version"] == repaired["sink_version"] + 1
    rotated_value = next(m["value"] for m in bk.minted() if m["id"] == rotated["id"])
    assert read_as_agent(em.url, agent_key).json()["token"]["accessToken"] == rotated_value
    live = bk.cluster_tokens(rotated["cluster_id"], include_expired=False)
    assert repaired["id"] not in live and rotated["id"] in live
    assert ws.plan_exitcode().returncode == 0

    # Import adopts the token from its sink: the record Token Vault reads back from the webhook names it.
    ws.run("state", "rm", TOKEN)
    ws.run("import", "-no-color", TOKEN, f"{rotated['cluster_id']}/tokenvault_webhook:{SERVICE}")
    imported = ws.resources()[TOKEN]
    assert imported["id"] == rotated["id"] and imported["sink_version"] == rotated["sink_version"]
    # rotate_on is configuration only, so an import cannot restore it: the next apply rotates once more.
    assert "rotate_on changed" in ws.plan().output
    ws.apply()
    after = ws.resources()[TOKEN]
    after_value = next(m["value"] for m in bk.minted() if m["id"] == after["id"])
    assert read_as_agent(em.url, agent_key).json()["token"]["accessToken"] == after_value
    assert ws.plan_exitcode().returncode == 0

    # Destroy: the credential is deleted through Token Vault (its signed /v1/storage delete), the token revoked.
    ws.destroy()
    assert webhook.services() == [] and em.world()["webhookServices"] == []
    assert bk.cluster_tokens(after["cluster_id"], include_expired=False) == []
    assert read_as_agent(em.url, agent_key).status_code == 401, "the agent is gone too"

    # Token Vault never held a delivered value: not in its log, its events or its world.
    values = [m["value"] for m in bk.minted()]
    records = json.dumps([em.requests(), em.events(), em.world()])
    assert len(values) >= 3 and not [v for v in values if v in records]
    # The store tickets (credentials for one store each) reached no artifact either.
    assert em.issued_tickets
    assert scan(em.issued_tickets, ws.artifacts()) == []


def test_a_key_without_the_tokens_scopes_fails_the_plan_naming_them(box, webhook_mode, make_workspace):
    em, webhook = webhook_mode
    before = {m["id"] for m in box.buildkite.minted()}
    weak = em.mint_key(["agents:read", "agents:create", "grants:write"])
    ws = make_workspace({**box.env, "TOKENVAULT_API_KEY": weak})
    ws.write(config(webhook.url))
    ws.init()
    plan = ws.plan_exitcode()
    assert plan.returncode == 1
    assert "tokens:create, tokens:list, tokens:delete" in plan.output and "tokenvault_api_key" in plan.output
    assert webhook.requests("POST", "/v1/store") == [] and {m["id"] for m in box.buildkite.minted()} == before
