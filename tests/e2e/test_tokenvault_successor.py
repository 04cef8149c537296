"""Rotation of a Token Vault agent's key by a successor agent (`rotation = "successor"`), through the real
terraform binary, against an emulator where rotate-key is human-only (the sandbox switch for
docs/wire.md "Left open" 5). Proves: the plan shows the new agent id and the grant resource moving to
it; apply creates a successor with the same name and the predecessor's grants, writes its key as the
next sink version and never calls rotate-key; the predecessor and its key stay for keep_previous_for and
the first apply after that deletes it; with rotate-key (the default) the same apply fails saying a human
must rotate; destroy deletes every agent; no key in any artifact."""

from __future__ import annotations

import datetime

import pytest
import requests

from fixtures.terraform import PROVIDER_HEADER, scan

pytestmark = pytest.mark.e2e

AGENT = "tokendrop_tokenvault_agent.deployer"
GRANT = "tokendrop_tokenvault_agent_grant.github"
PARAMETER = "/agents/deployer/key"


def config(generation: str, rotation: str = 'rotation = "successor"\n  keep_previous_for = "1h"') -> str:
    return PROVIDER_HEADER + f"""
resource "tokendrop_tokenvault_agent" "deployer" {{
  name       = "deployer"
  {rotation}
  rotate_on  = {{ generation = "{generation}" }}
  deliver_to = {{ ssm = {{ name = "{PARAMETER}" }} }}
}}

resource "tokendrop_tokenvault_agent_grant" "github" {{
  agent_id = tokendrop_tokenvault_agent.deployer.id
  service  = "github"
}}
"""


@pytest.fixture
def box(sandbox, fresh_tokenvault_emulator):
    sandbox.tokenvault = fresh_tokenvault_emulator
    fresh_tokenvault_emulator.agent_rotation_human_only = True  # the provider's key may not rotate agent keys
    return sandbox


def works(em, key: str) -> bool:
    answer = requests.get(f"{em.url}/api/agents/credentials", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return answer.status_code == 200


def grants_of(em, agent_id: str) -> list[str]:
    return sorted(g["serviceName"] for a in em.world()["agents"] if a["id"] == agent_id for g in a["grants"])


def test_a_successor_agent_takes_over_and_the_predecessor_retires(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config("1"))
    ws.init()
    ws.apply()
    first = ws.resources()[AGENT]
    first_key, version = box.ssm_value(PARAMETER)
    assert version == 1 and works(em, first_key) and grants_of(em, first["id"]) == ["github"]

    ws.write(config("2"))
    plan = ws.plan()
    assert f"{AGENT} will be updated in-place" in plan.stdout and "will rotate" in plan.output
    assert f"{GRANT} must be replaced" in plan.stdout, "the grant moves to the successor, shown in the plan"
    ws.apply()
    second = ws.resources()[AGENT]
    second_key, version = box.ssm_value(PARAMETER)
    assert second["id"] != first["id"] and version == 2 and second["sink_version"] == 2
    assert second["previous_token_id"] == first["id"] and second["previous_revoke_after"]
    assert works(em, second_key) and works(em, first_key), "the predecessor's key lasts keep_previous_for"
    assert grants_of(em, second["id"]) == ["github"], "the successor holds the predecessor's grants"
    assert ws.resources()[GRANT]["agent_id"] == second["id"]
    assert [a["name"] for a in em.world()["agents"]] == ["deployer", "deployer"]
    assert not em.requests("POST", "rotate-key"), "rotate-key is never called"
    assert ws.plan_exitcode().returncode == 0, "nothing to do while the grace period lasts"

    ws.shift_state_time(AGENT, "previous_revoke_after", datetime.timedelta(hours=2))
    assert f"Previous token {first['id']} will be revoked" in ws.plan().output
    ws.apply()
    assert em.agent_ids() == [second["id"]] and not works(em, first_key) and works(em, second_key)
    assert ws.resources()[AGENT]["previous_token_id"] is None
    assert ws.plan_exitcode().returncode == 0

    ws.destroy()
    assert em.agent_ids() == []
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_rotate_key_refused_as_human_only_says_so(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config("1", rotation=""))
    ws.init()
    ws.apply()
    ws.write(config("2", rotation=""))
    result = ws.apply(check=False)
    assert result.returncode == 1 and "human" in " ".join(result.stderr.split()).lower()
    assert len(em.agent_ids()) == 1
    ws.destroy()
