"""The repository's "entra-agents" stack (stacks/entra_agents.py), synthesized in process with cdktf and
applied with the real terraform binary against the sandbox (Entra emulator, moto, OpenBao), then the
example agent (examples/entra-agent/agent.py) signs in as each agent identity with the delivered
certificate (Vault) and password (SSM). Proves: the stack deploys; the agent obtains an agent-identity
token (its `sub` is the agent identity, impersonated by the blueprint); a second plan is empty; destroy
leaves nothing at Graph or in the sinks; no secret in any artifact or in the agent's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.terraform import scan

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "examples" / "entra-agent" / "agent.py"


@pytest.fixture
def box(sandbox, fresh_entra_emulator):
    sandbox.entra = fresh_entra_emulator
    return sandbox


def synthesized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    monkeypatch.setattr(sys, "path", [*sys.path, str(REPO)])  # `stacks` as a package; nothing shadowed
    import cdktf
    from stacks import entra_agents

    app = cdktf.App(outdir=str(tmp_path / "out"))
    entra_agents.define(cdktf.TerraformStack(app, entra_agents.NAME))
    app.synth()
    doc = json.loads((tmp_path / "out" / "stacks" / entra_agents.NAME / "cdk.tf.json").read_text())
    doc["terraform"].pop("backend", None)  # state stays in the workspace, scanned at teardown
    return doc


def run_agent(box, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **box.env}
    return subprocess.run([sys.executable, str(AGENT), *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_the_entra_agents_stack_deploys_and_the_example_agent_signs_in(box, make_workspace, tmp_path, monkeypatch):
    entra = box.entra
    ws = make_workspace(box.env)
    (ws.directory / "main.tf.json").write_text(json.dumps(synthesized(tmp_path, monkeypatch)))
    ws.init()
    ws.apply()
    outputs = {k: v["value"] for k, v in json.loads(ws.run("output", "-json").stdout).items()}
    assert outputs["certificate_sink_address"] == "vault_kv:secret/agents/support/certificate#token"
    assert outputs["password_sink_address"] == "ssm:/agents/support/blueprint-password"

    private_key = box.vault_value("agents/support/certificate")[0]["private_key"]  # the emulator never sees it
    runs = []
    for agent, source in (("triage", ("--vault-path", "agents/support/certificate")),
                          ("billing", ("--ssm-name", "/agents/support/blueprint-password"))):
        done = run_agent(box, "--agent-client-id", outputs[f"{agent}_client_id"], *source)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["sub"] == seen["appid"] == outputs[f"{agent}_client_id"]
        assert seen["xms_par_app_azp"] == outputs["blueprint_client_id"]  # the blueprint impersonated it
        runs.append(done)
    (blueprint,) = [a for a in entra.world()["applications"] if a["appId"] == outputs["blueprint_client_id"]]
    assert len(blueprint["keyCredentials"]) == 1 and len(blueprint["passwordCredentials"]) == 1
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]

    ws.destroy()
    assert [a for a in entra.world()["applications"] if a["appId"] != entra.admin_client_id] == []
    assert entra.world()["servicePrincipals"] == []
    assert box.vault_value("agents/support/certificate") is None
    assert box.ssm_value("/agents/support/blueprint-password") is None
    delivered = [m["value"] for m in entra.minted()] + [private_key]
    assert scan([private_key], ws.artifacts()) == []
    assert scan(delivered, [(f"agent {i}", r.stdout + r.stderr) for i, r in enumerate(runs)]) == []
