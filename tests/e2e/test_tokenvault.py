"""Token Vault agents through the real terraform binary against the Token Vault emulator, moto and
OpenBao. Proves: create (agent, key in the sink, grants sent as the CLI sends them and read back);
grant changes in place (same key, same sink version); a key lacking a scope fails the plan naming it;
key rotation through rotate-key (the old key is refused by the agent endpoint, the sink holds
the new one as the next version, the agent id stays); drift (grants expired or added out of band, key
rotated out of band, agent deleted); a provider killed between rotate-key and the sink write (the next
apply repairs the dead key even after the configuration went back); destroy; and that no key value
ever appears in an artifact."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
import requests

from fixtures.terraform import PROVIDER, PROVIDER_HEADER, processes_with, scan

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER

SSM = '{ ssm = { name = "/agents/triage/key" } }'
VAULT = '{ vault_kv = { path = "agents/triage" } }'
ADDRESS = "tokendrop_tokenvault_agent.bot"

GRANTS = """[
    { service = "github" },
    { service = "linear" },
  ]"""


def agent(grants: str = GRANTS, deliver_to: str = SSM, extra: str = "") -> str:
    return HEADER + (f'resource "tokendrop_tokenvault_agent" "bot" {{\n'
                     f'  name        = "triage-bot"\n  description = "issue triage"\n'
                     f"  grants      = {grants}\n  deliver_to  = {deliver_to}\n{extra}}}\n")


@pytest.fixture
def box(sandbox, fresh_tokenvault_emulator):
    sandbox.tokenvault = fresh_tokenvault_emulator
    return sandbox


def credentials(em, key: str, service: str | None = None) -> requests.Response:
    """The agent side: what an agent holding `key` gets from Token Vault."""
    return requests.get(f"{em.url}/api/agents/credentials", params={"service": service} if service else None,
                        headers={"Authorization": f"Bearer {key}"}, timeout=10)


def grants_at(em, agent_id: str) -> dict[str, dict]:
    """The agent's grants as Token Vault holds them, by service."""
    [found] = [a for a in em.world()["agents"] if a["id"] == agent_id]
    return {g["serviceName"]: g for g in found["grants"]}


def key_values(em) -> list[str]:
    return [m["value"] for m in em.minted()]


def writes(em) -> list[dict]:
    return [r for r in em.requests() if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]


def test_create_change_grants_rotate_destroy(box, make_workspace):
    em = box.tokenvault
    before = {m["id"] for m in em.minted()}  # the emulator is shared: its registry outlives resets
    ws = make_workspace(box.env)
    ws.write(agent())
    ws.init()

    plan = ws.plan("-out=tfplan")
    assert "1 to add, 0 to change, 0 to destroy" in plan.stdout
    assert writes(em) == [], "plan writes nothing at Token Vault"
    ws.apply("tfplan")

    bot = ws.resources()[ADDRESS]
    assert em.agent_ids("triage-bot") == [bot["id"]], "one agent, and state names it"
    key = em.current_key(bot["id"])
    assert box.ssm_value("/agents/triage/key") == (key, 1)
    assert bot["sink_address"] == "ssm:/agents/triage/key" and bot["sink_version"] == 1
    assert bot["status"] == "active" and bot["sink_status"] == "delivered"
    # Each grant went out as the CLI sends it ({agentId, serviceName}); state is what the agent's record says.
    assert [e["fields"] for e in em.events() if e["event"] == "grant.created"] == [["agentId", "serviceName"]] * 2
    live = grants_at(em, bot["id"])
    for element in bot["grants"]:
        held = live[element["service"]]
        assert (element["expires_in"], element["expires_at"]) == (None, held["grantExpiresAt"])
        assert element["auto_refresh"] == (held["refreshPolicy"] == "auto")
    assert [g["service"] for g in bot["grants"]] == ["github", "linear"]
    # The delivered key works at the agent endpoint and sees exactly the configured grants.
    listed = credentials(em, key)
    assert listed.status_code == 200
    assert {g["serviceName"] for g in listed.json()["grants"]} == {"github", "linear"}
    assert credentials(em, key, "github").status_code == 200
    assert ws.plan_exitcode().returncode == 0

    # Grants change in place: one removed, one added. The key and the sink stay.
    ws.write(agent(grants="""[
    { service = "github" },
    { service = "slack" },
  ]"""))
    plan = ws.plan()
    assert f"{ADDRESS} will be updated in-place" in plan.stdout and "will rotate" not in plan.output
    ws.apply()
    after = ws.resources()[ADDRESS]
    assert after["id"] == bot["id"] and after["sink_version"] == 1 and after["created_at"] == bot["created_at"]
    assert em.current_key(bot["id"]) == key and box.ssm_value("/agents/triage/key") == (key, 1)
    live = grants_at(em, bot["id"])
    assert set(live) == {"github", "slack"}
    assert [g["service"] for g in after["grants"]] == ["github", "slack"]
    assert after["grants"][0] == bot["grants"][0], "the kept grant was not granted again"
    assert after["grants"][1]["expires_at"] == live["slack"]["grantExpiresAt"]
    assert credentials(em, key, "linear").json()["detail"]["code"] == "POLICY_DENIED"
    assert ws.plan_exitcode().returncode == 0

    # Rotation: rotate-key keeps the agent; the old key is refused at once; the sink gets version 2.
    ws.write(agent(grants="""[
    { service = "github" },
    { service = "slack" },
  ]""", extra='  rotate_on = { epoch = "2" }\n'))
    plan = ws.plan()
    assert "will rotate" in plan.output and "rotate_on changed" in plan.output
    assert "must be replaced" not in plan.stdout
    ws.apply()
    rotated = ws.resources()[ADDRESS]
    new_key = em.current_key(bot["id"])
    assert rotated["id"] == bot["id"] and em.agent_ids() == [bot["id"]], "the same agent, no other"
    assert new_key != key and box.ssm_value("/agents/triage/key") == (new_key, 2)
    assert rotated["sink_version"] == 2 and rotated["created_at"] != bot["created_at"]
    assert rotated["grants"] == after["grants"], "grants untouched by the rotation"
    refused = credentials(em, key)
    assert refused.status_code == 401 and refused.json()["detail"]["code"] == "INVALID_AGENT_KEY"
    assert credentials(em, new_key, "github").status_code == 200
    assert ws.plan_exitcode().returncode == 0

    ws.destroy()
    assert em.agent_ids() == [] and box.ssm_value("/agents/triage/key") is None
    assert credentials(em, new_key).status_code == 401

    # Canary scan: no key value ever issued appears in state, plans, logs or output...
    values = [m["value"] for m in em.minted() if m["id"] not in before]
    assert len(values) == 2, "one key at create, one at the rotation"
    assert scan(key_values(em), ws.artifacts()) == []
    # ...and the scan finds one where it is.
    planted = ("planted.txt", f"leaked: {values[1]}")
    assert [name for name, _ in scan(values, [*ws.artifacts(), planted])] == ["planted.txt"]


def test_drift_is_noticed_and_repaired(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(agent(deliver_to=VAULT))
    ws.init()
    ws.apply()
    bot = ws.resources()[ADDRESS]
    assert box.vault_value("agents/triage") == ({"token": em.current_key(bot["id"])}, 1)

    # A grant expires and someone grants another service in the dashboard.
    em.expire_grant(bot["id"], "github")
    response = requests.post(f"{em.url}/api/agents/{bot['id']}/grants", json={"agentId": bot["id"],
                             "serviceName": "notion"}, headers={"Authorization": f"Bearer {em.admin_key}"}, timeout=10)
    assert response.status_code == 201
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and f"{ADDRESS} will be updated in-place" in plan.stdout
    assert "Grants of Token Vault agent" in plan.output and "github" in plan.output
    ws.apply()
    assert set(grants_at(em, bot["id"])) == {"github", "linear"}
    assert ws.resources()[ADDRESS]["sink_version"] == 1
    assert ws.plan_exitcode().returncode == 0

    # The dashboard gives a grant a refresh policy the agent grant route cannot set: refresh shows it
    # (state follows the server), the plan shows the drift, and the apply grants it again as configured.
    assert requests.delete(f"{em.url}/api/agents/{bot['id']}/grants/linear", timeout=10,
                           headers={"Authorization": f"Bearer {em.admin_key}"}).status_code == 200
    em.grant(bot["id"], "linear", refresh_policy="auto")
    ws.run("apply", "-refresh-only", "-auto-approve", "-no-color")
    assert [g["auto_refresh"] for g in ws.resources()[ADDRESS]["grants"]] == [False, True]
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "auto_refresh" in plan.stdout
    ws.apply()
    assert grants_at(em, bot["id"])["linear"]["refreshPolicy"] == "none"
    assert [g["auto_refresh"] for g in ws.resources()[ADDRESS]["grants"]] == [False, False]
    assert ws.plan_exitcode().returncode == 0

    # Someone rotates the key outside Terraform: the sink now holds a dead key; the plan rotates.
    em.rotate_key(bot["id"])
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "Dead key in vault_kv:secret/agents/triage#token" in plan.output
    assert '"stale"' in plan.stdout or "stale" in plan.output
    ws.apply()
    repaired = ws.resources()[ADDRESS]
    assert repaired["id"] == bot["id"] and repaired["sink_version"] == 2
    assert box.vault_value("agents/triage") == ({"token": em.current_key(bot["id"])}, 2)
    assert ws.plan_exitcode().returncode == 0

    # The agent is deleted out of band: refresh drops it, the plan creates a new one.
    assert em.delete_agent(bot["id"])
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and f"{ADDRESS} will be created" in plan.stdout
    ws.apply()
    recreated = ws.resources()[ADDRESS]
    assert recreated["id"] != bot["id"] and em.agent_ids() == [recreated["id"]]
    assert box.vault_value("agents/triage") == ({"token": em.current_key(recreated["id"])}, 3)
    assert set(grants_at(em, recreated["id"])) == {"github", "linear"}
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(key_values(em), ws.artifacts()) == []


def test_import_adopts_an_agent_whose_key_is_in_the_sink(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(agent())
    ws.init()
    ws.apply()
    bot = ws.resources()[ADDRESS]
    ws.run("state", "rm", ADDRESS)
    ws.run("import", "-no-color", ADDRESS, f"{bot['id']}/ssm:/agents/triage/key")
    imported = ws.resources()[ADDRESS]
    assert imported["id"] == bot["id"] and imported["name"] == "triage-bot" and imported["sink_version"] == 1
    assert imported["description"] == "issue triage" and imported["created_at"] == bot["created_at"]
    assert {g["service"] for g in imported["grants"]} == {"github", "linear"}
    assert ws.plan_exitcode().returncode == 0, "import reads back everything state holds"
    assert em.agent_ids() == [bot["id"]] and box.ssm_value("/agents/triage/key")[1] == 1
    ws.destroy()
    assert scan(key_values(em), ws.artifacts()) == []


# --- a provider killed between rotate-key and the sink write -------------------------------------------

def _provider_pids(marker: str) -> list[int]:
    return processes_with(marker, PROVIDER)


def test_rotation_killed_after_rotate_key_is_repaired(box, make_workspace):
    em = box.tokenvault
    marker = uuid.uuid4().hex
    ws = make_workspace({**box.env, "TOKENDROP_CRASH_TEST": marker})
    ws.write(agent(extra='  rotate_on = { epoch = "1" }\n'))
    ws.init()
    ws.apply()
    bot = ws.resources()[ADDRESS]
    delivered = em.current_key(bot["id"])

    def kill(_event: dict) -> None:
        for pid in _provider_pids(marker):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)  # let the kill land before the emulator answers

    em.on_event_call("agent.key_rotated", kill)
    ws.write(agent(extra='  rotate_on = { epoch = "2" }\n'))
    result = ws.apply(check=False)
    assert result.returncode != 0, "the provider was killed"
    # The crash happened in the worst place: the key was rotated, the sink still has the dead one.
    assert em.current_key(bot["id"]) != delivered
    assert box.ssm_value("/agents/triage/key") == (delivered, 1)
    assert credentials(em, delivered).status_code == 401
    assert ws.resources()[ADDRESS]["created_at"] == bot["created_at"], "state was not saved"

    # Even with the configuration back as it was (nothing asks for a rotation any more), refresh sees
    # that the agent's key is newer than the delivered one, and the plan rotates again.
    ws.write(agent(extra='  rotate_on = { epoch = "1" }\n'))
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "Dead key in ssm:/agents/triage/key" in plan.output
    ws.apply()
    repaired = ws.resources()[ADDRESS]
    key = em.current_key(bot["id"])
    assert repaired["id"] == bot["id"] and em.agent_ids() == [bot["id"]]
    assert box.ssm_value("/agents/triage/key") == (key, 2) and repaired["sink_version"] == 2
    assert credentials(em, key, "github").status_code == 200
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(key_values(em), ws.artifacts()) == []


@pytest.mark.parametrize("step", ["after-create", "after-sink-write"])
def test_create_killed_midway_converges(step, box, make_workspace):
    """Killed right after POST /api/agents, the next apply creates the agent again and deletes the
    orphan (found by the marker in its description); killed after the sink write (at the orphan sweep),
    it adopts the delivered agent instead of creating another, and grants its services."""
    em = box.tokenvault
    marker = uuid.uuid4().hex
    ws = make_workspace({**box.env, "TOKENDROP_CRASH_TEST": marker})
    ws.write(agent())
    ws.init()

    def kill(_event: dict) -> None:
        for pid in _provider_pids(marker):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)

    em.on_event_call("agent.created" if step == "after-create" else "agents.listed", kill)
    assert ws.apply(check=False).returncode != 0
    [first] = em.agent_ids("triage-bot")
    delivered = box.ssm_value("/agents/triage/key")
    assert (delivered is not None) == (step == "after-sink-write") and ADDRESS not in ws.resources()

    ws.apply()
    bot = ws.resources()[ADDRESS]
    assert em.agent_ids("triage-bot") == [bot["id"]], "exactly one agent"
    assert (bot["id"] == first) == (step == "after-sink-write"), "adopted, or the orphan was deleted"
    assert box.ssm_value("/agents/triage/key") == (em.current_key(bot["id"]), 1)
    assert set(grants_at(em, bot["id"])) == {"github", "linear"}
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(key_values(em), ws.artifacts()) == []


def test_rotation_whose_state_was_lost_converges(box, make_workspace):
    """The rotation was delivered, but Terraform never saved the state (pushed back here), and the
    configuration went back: refresh sees the sink ahead of state and the key newer than state's, and
    the next apply rotates once more so that state, sink and agent agree."""
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(agent(extra='  rotate_on = { epoch = "1" }\n'))
    ws.init()
    ws.apply()
    before = ws.state()
    ws.write(agent(extra='  rotate_on = { epoch = "2" }\n'))
    ws.apply()
    assert box.ssm_value("/agents/triage/key")[1] == 2
    before["serial"] = ws.state()["serial"] + 1
    (ws.directory / "lost.tfstate").write_text(json.dumps(before))
    ws.run("state", "push", "-force", "lost.tfstate")
    (ws.directory / "lost.tfstate").unlink()

    ws.write(agent(extra='  rotate_on = { epoch = "1" }\n'))
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "will rotate" in plan.output
    ws.apply()
    bot = ws.resources()[ADDRESS]
    assert em.agent_ids() == [bot["id"]] and bot["sink_version"] == 3
    assert box.ssm_value("/agents/triage/key") == (em.current_key(bot["id"]), 3)
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(key_values(em), ws.artifacts()) == []


# --- bad input: a clear error naming the attribute, and nothing written ---------------------------------

BAD = {
    "empty agent name": (agent().replace('name        = "triage-bot"', 'name = ""'), "name"),
    # The agent grant route takes neither (docs/wire.md): refused rather than reported as set.
    "grant expiry": (agent(grants='[{ service = "github", expires_in = "12h" }]'), "grants[0].expires_in"),
    "grant auto refresh": (agent(grants='[{ service = "linear" }, { service = "github", auto_refresh = true }]'),
                           "grants[1].auto_refresh"),
    "duplicate service": (agent(grants='[{ service = "github" }, { service = "linear" }, { service = "github" }]'),
                          "grants[2].service"),
    "empty service": (agent(grants='[{ service = "" }]'), "grants[0].service"),
    "keep_previous_for": (agent(extra='  keep_previous_for = "1h"\n'), "keep_previous_for"),
    "two sinks": (agent(deliver_to='{ ssm = { name = "/a" }, vault_kv = { path = "a" } }'), "deliver_to.vault_kv"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_the_plan_naming_the_attribute(case, box, make_workspace):
    body, attribute = BAD[case]
    ws = make_workspace(box.env)
    ws.write(body)
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1, result
    assert "Error:" in result.stderr and attribute in result.stderr, result.stderr
    assert box.tokenvault.requests() == [], "not a single call reached Token Vault"


def test_missing_api_key_fails_the_plan(box, make_workspace):
    ws = make_workspace({k: v for k, v in box.env.items() if k != "TOKENVAULT_API_KEY"})
    ws.write(agent())
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "Missing Token Vault API key" in result.stderr
    assert "tokenvault_api_key" in result.stderr and "TOKENVAULT_API_KEY" in result.stderr
    assert box.tokenvault.requests() == []


def test_a_key_lacking_a_scope_fails_the_plan_naming_it(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace({**box.env, "TOKENVAULT_API_KEY": em.mint_key(["agents:read", "agents:create"])})
    ws.write(agent())
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "lacks the scope grants:write" in text and "tokenvault_api_key" in text
    assert writes(em) == [] and em.agent_ids() == []


def test_unknown_service_fails_the_apply_naming_grants(box, make_workspace):
    """Token Vault alone knows which services its vault holds: the agent is created and delivered, the
    grant fails with Token Vault's reason, and the resource is tainted so the next apply starts over."""
    ws = make_workspace(box.env)
    ws.write(agent(grants='[{ service = "no-such-service" }]'))
    ws.init()
    result = ws.apply(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "SERVICE_NOT_FOUND" in text and "grants" in text
    assert ws.resources()[ADDRESS]["grants"] == [], "state records what exists: the agent, no grant"
    assert "tainted" in ws.run("state", "show", "-no-color", ADDRESS).stdout
    ws.write(agent())
    ws.apply()
    bot = ws.resources()[ADDRESS]
    assert box.tokenvault.agent_ids() == [bot["id"]], "the tainted agent was replaced, not left behind"
    ws.destroy()
    assert scan(key_values(box.tokenvault), ws.artifacts()) == []
