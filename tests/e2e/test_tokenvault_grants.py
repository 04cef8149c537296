"""tokendrop_tokenvault_agent_grant through the real terraform binary against the Token Vault emulator
and moto. Proves: each grant goes out as the CLI sends it ({agentId, serviceName}) and state is what the
agent's record reports; an agent without inline `grants` neither reports nor revokes them; drift (a
grant that ended is granted again, a refresh policy set in the dashboard is followed); removing a grant
resource revokes exactly that grant; moving inline grants to grant resources never revokes a grant; a
key without grants:write fails the plan naming the scope; destroy; no key value in any artifact."""

from __future__ import annotations

import pytest
import requests

from fixtures.terraform import PROVIDER_HEADER, scan

pytestmark = pytest.mark.e2e

AGENT = "tokendrop_tokenvault_agent.bot"


def config(services: tuple[str, ...] = ("github", "linear"), inline: str = "") -> str:
    text = PROVIDER_HEADER + ('resource "tokendrop_tokenvault_agent" "bot" {\n  name = "triage-bot"\n'
                              f'{inline}  deliver_to = {{ ssm = {{ name = "/agents/triage/key" }} }}\n}}\n')
    for service in services:
        text += (f'resource "tokendrop_tokenvault_agent_grant" "{service}" {{\n'
                 f'  agent_id = tokendrop_tokenvault_agent.bot.id\n  service  = "{service}"\n}}\n')
    return text


@pytest.fixture
def box(sandbox, fresh_tokenvault_emulator):
    sandbox.tokenvault = fresh_tokenvault_emulator
    return sandbox


def held(em, agent_id: str) -> dict[str, dict]:
    [found] = [a for a in em.world()["agents"] if a["id"] == agent_id]
    return {g["serviceName"]: g for g in found["grants"]}


def events(em, name: str) -> list[dict]:
    return [e for e in em.events() if e["event"] == name]


def test_grant_resources_create_drift_remove_destroy(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config())
    ws.init()
    assert "3 to add, 0 to change, 0 to destroy" in ws.plan().stdout
    ws.apply()

    state = ws.resources()
    bot = state[AGENT]
    assert bot["grants"] is None, "the agent does not claim grants it does not list"
    assert [e["fields"] for e in events(em, "grant.created")] == [["agentId", "serviceName"]] * 2
    live = held(em, bot["id"])
    for service in ("github", "linear"):
        grant = state[f"tokendrop_tokenvault_agent_grant.{service}"]
        assert grant["id"] == f"{bot['id']}/{service}" and grant["agent_id"] == bot["id"]
        assert grant["expires_at"] == live[service]["grantExpiresAt"]
        assert grant["auto_refresh"] == (live[service]["refreshPolicy"] == "auto")
    key = em.current_key(bot["id"])
    listed = requests.get(f"{em.url}/api/agents/credentials", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert {g["serviceName"] for g in listed.json()["grants"]} == {"github", "linear"}
    assert ws.plan_exitcode().returncode == 0, "agent and grants agree: no fight over the grants"

    # A grant ends (expired in the dashboard): refresh notices, the plan grants it again.
    em.expire_grant(bot["id"], "github")
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "tokendrop_tokenvault_agent_grant.github will be created" in plan.stdout
    assert "Grant 'github' of Token Vault agent" in plan.output
    ws.apply()
    assert set(held(em, bot["id"])) == {"github", "linear"}
    assert ws.plan_exitcode().returncode == 0

    # The dashboard gives linear a refresh policy the route cannot set: state follows the server.
    admin = {"Authorization": f"Bearer {em.admin_key}"}
    assert requests.delete(f"{em.url}/api/agents/{bot['id']}/grants/linear", headers=admin, timeout=10).ok
    em.grant(bot["id"], "linear", refresh_policy="auto")
    ws.run("apply", "-refresh-only", "-auto-approve", "-no-color")
    assert ws.resources()["tokendrop_tokenvault_agent_grant.linear"]["auto_refresh"] is True

    # Removing a grant resource revokes exactly that grant; the agent and its key stay.
    revoked_before = len(events(em, "grant.revoked"))  # the dashboard's revoke above
    ws.write(config(("github",)))
    plan = ws.plan()
    assert "0 to add, 0 to change, 1 to destroy" in plan.stdout
    ws.apply()
    assert set(held(em, bot["id"])) == {"github"}
    assert [e["service"] for e in events(em, "grant.revoked")[revoked_before:]] == ["linear"]
    assert ws.resources()[AGENT]["sink_version"] == 1 and em.current_key(bot["id"]) == key

    ws.destroy()
    assert em.agent_ids() == []
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_moving_inline_grants_to_grant_resources_revokes_nothing(box, make_workspace):
    """The migration path: drop `grants` from the agent (it releases them, never revokes) and declare
    grant resources, which adopt the grants the agent already holds (Token Vault answers 409)."""
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config((), inline='  grants = [{ service = "github" }, { service = "linear" }]\n'))
    ws.init()
    ws.apply()
    agent_id = ws.resources()[AGENT]["id"]
    assert set(held(em, agent_id)) == {"github", "linear"}

    ws.write(config())
    result = ws.apply()
    assert events(em, "grant.revoked") == [], "no grant was revoked on the way"
    assert set(held(em, agent_id)) == {"github", "linear"}
    assert "already held a grant for 'github'" in " ".join(result.output.split())
    state = ws.resources()
    assert state[AGENT]["grants"] is None
    assert state["tokendrop_tokenvault_agent_grant.linear"]["id"] == f"{agent_id}/linear"
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_import_a_grant(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config())
    ws.init()
    ws.apply()
    agent_id = ws.resources()[AGENT]["id"]
    ws.run("state", "rm", "tokendrop_tokenvault_agent_grant.github")
    ws.run("import", "-no-color", "tokendrop_tokenvault_agent_grant.github", f"{agent_id}/github")
    assert ws.resources()["tokendrop_tokenvault_agent_grant.github"]["id"] == f"{agent_id}/github"
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_a_key_without_grants_write_fails_the_plan_naming_it(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace({**box.env, "TOKENVAULT_API_KEY": em.mint_key(["agents:read", "agents:create"])})
    ws.write(config())
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "lacks the scope grants:write" in text and "tokendrop_tokenvault_agent_grant" in text
    assert "tokenvault_api_key" in text
    assert [r for r in em.requests() if r["method"] != "GET"] == [] and em.agent_ids() == []
