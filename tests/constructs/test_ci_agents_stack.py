"""The ready-made "ci-agents" stack of cdktf.json: a pool restricted to chosen workspaces, a token to SSM
(tags, 30-day rotation) and one to Vault, outputs for ids, sinks, versions and read policies, and
settings from the environment or cdktf context with sandbox defaults. On both cores."""

from __future__ import annotations

import json

import pytest
from stacks import app as stacks_app
from stacks import ci_agents
from stacks.ci_agents import CiAgentsSettings

SETTINGS_ENV = ("TOKENDROP_ORGANIZATION", "TOKENDROP_POOL_NAME", "TOKENDROP_ALLOWED_WORKSPACES",
                "TOKENDROP_SSM_PREFIX", "TOKENDROP_SSM_KMS_KEY_ID", "TOKENDROP_VAULT_MOUNT", "TOKENDROP_VAULT_PREFIX",
                "TOKENDROP_ROTATE_EVERY")


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch):
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_sandbox(core, stack, synth):
    tokens = ci_agents.define(stack)
    out = synth(stack)
    pool = synth.one(stack, "tokendrop_tfe_agent_pool")
    assert pool == {"organization": "acme", "name": "ci-agents", "organization_scoped": False,
                    "allowed_workspace_ids": []}
    by_name = {k.split("_")[1]: v for k, v in out["resource"]["tokendrop_tfe_agent_token"].items()}
    assert by_name["runners"]["deliver_to"] == {"ssm": {
        "name": "/ci/tfc-agent/runners", "tags": {"team": "platform", "consumer": "tfc-agent"}}}
    assert by_name["runners"]["rotate_every"] == "30d" and by_name["runners"]["keep_previous_for"] == "1h"
    assert by_name["batch"]["deliver_to"] == {"vault_kv": {"mount": "secret", "path": "ci/tfc-agent/batch",
                                                           "field": "token"}}
    assert set(out["output"]) == {"pool_id"} | {f"{t}_{o}" for t in ("runners", "batch")
                                                for o in ("token_id", "sink_address", "sink_version", "read_policy")}
    assert out["output"]["batch_read_policy"]["value"] == tokens["batch"].sink.read_policy()
    assert out["output"]["runners_read_policy"]["value"].startswith("${jsonencode(")


def test_settings_from_the_environment(core, stack, synth, monkeypatch):
    monkeypatch.setenv("TOKENDROP_ORGANIZATION", "initech")
    monkeypatch.setenv("TOKENDROP_ALLOWED_WORKSPACES", "ws-aaa, ws-bbb ws-ccc")
    monkeypatch.setenv("TOKENDROP_SSM_PREFIX", "/platform/agents/")
    monkeypatch.setenv("TOKENDROP_SSM_KMS_KEY_ID", "alias/ci")
    monkeypatch.setenv("TOKENDROP_VAULT_MOUNT", "kv")
    monkeypatch.setenv("TOKENDROP_ROTATE_EVERY", "14d")
    ci_agents.define(stack)
    pool = synth.one(stack, "tokendrop_tfe_agent_pool")
    assert pool["organization"] == "initech" and pool["allowed_workspace_ids"] == ["ws-aaa", "ws-bbb", "ws-ccc"]
    tokens = synth.resources(stack, "tokendrop_tfe_agent_token")
    runners = next(v for k, v in tokens.items() if "runners" in k)
    assert runners["deliver_to"]["ssm"]["name"] == "/platform/agents/runners"
    assert runners["deliver_to"]["ssm"]["kms_key_id"] == "alias/ci"
    assert runners["rotate_every"] == "14d"
    assert next(v for k, v in tokens.items() if "batch" in k)["deliver_to"]["vault_kv"]["mount"] == "kv"


def test_settings_from_context(core, testing_app):
    app = testing_app(core, context={"organization": "umbrella", "allowed_workspace_ids": ["ws-ctx"],
                                    "vault_prefix": "/teams/ci/"})
    settings = CiAgentsSettings.from_scope(core.TerraformStack(app, "s"))
    assert settings.organization == "umbrella"
    assert settings.allowed_workspace_ids == ["ws-ctx"]
    assert settings.vault_prefix == "teams/ci"
    assert settings.ssm_prefix == "/ci/tfc-agent"


def test_environment_wins_over_context(core, monkeypatch, testing_app):
    monkeypatch.setenv("TOKENDROP_ORGANIZATION", "from-env")
    app = testing_app(core, context={"organization": "from-context"})
    assert CiAgentsSettings.from_scope(core.TerraformStack(app, "s")).organization == "from-env"


def test_bad_settings_fail_with_the_construct_path(core, stack, monkeypatch):
    monkeypatch.setenv("TOKENDROP_ALLOWED_WORKSPACES", "app-prod")  # a name, not an id
    with pytest.raises(ValueError, match=r"ci-agents/pool: allowed_workspace_ids: 'app-prod' is not a workspace id"):
        ci_agents.define(stack)


@pytest.mark.parametrize("core_name", ["cdktf", "cdktn"])
def test_the_app_defines_every_stack(core_name, tmp_path):
    app = stacks_app.build(core_name, outdir=str(tmp_path))
    app.synth()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["stacks"]) == {m.NAME for m in stacks_app.STACKS} == {"ci-agents", "buildkite", "agents",
                                                                                   "entra-agents"}
    assert (tmp_path / "stacks" / "ci-agents" / "terraform.d" / "plugins").is_dir()
