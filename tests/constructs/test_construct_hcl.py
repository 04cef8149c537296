"""`cdktf synth --hcl`: protocol-6 nested attributes render as object attributes (`deliver_to = { ssm = {
... } }`), never as blocks; strings are escaped; and Terraform itself accepts the result with the
provider's schema (init from the stack's offline mirror, then validate)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tokendrop import SsmParameter, TfeAgentPool, TfeAgentToken, TokendropProvider, VaultSecret

REPO = Path(__file__).resolve().parents[2]


def define(stack, core):
    var = core.TerraformVariable(stack, "team", type="string", default="ci")
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci-agents", organization_scoped=False,
                        allowed_workspace_ids=["ws-abc123", "ws-def456"], allowed_project_ids=[])
    pool.add_token("runners", description='ci "runners"\\one\nline two',
                   deliver_to=SsmParameter("/ci/tfc-agent/token", kms_key_id="alias/ci",
                                           tags={"team": var.string_value, "cost-center": "42"}),
                   rotate_every=timedelta(days=30), rotate_on={"image": "tfc-agent:1.15"})
    pool.add_token("batch", deliver_to=VaultSecret(mount="secret", path="ci/tfc-agent/batch"))
    TfeAgentToken(stack, "other", agent_pool_id="apool-123", deliver_to=SsmParameter("/ci/other"),
                  adopt_existing=True)


def test_nested_attributes_are_objects_not_blocks(core, stack):
    define(stack, core)
    hcl = core.Testing.synth_hcl(stack)
    assert re.search(r"^deliver_to = \{\nssm = \{\nname = \"/ci/tfc-agent/token\"", hcl, re.MULTILINE), hcl
    assert re.search(r"^deliver_to = \{\nvault_kv = \{\nmount = \"secret\"\npath = \"ci/tfc-agent/batch\"\n"
                     r"field = \"token\"\n\}\n\}", hcl, re.MULTILINE), hcl
    assert not re.search(r"^(deliver_to|ssm|vault_kv|tags|rotate_on) \{", hcl, re.MULTILINE), hcl
    assert 'tags = {\nteam = "${var.team}"\ncost-center = "42"\n}' in hcl
    assert 'agent_pool_id = "${tokendrop_tfe_agent_pool.pool.id}"' in hcl
    assert 'allowed_workspace_ids = [\n"ws-abc123",\n"ws-def456"\n]' in hcl
    assert 'rotate_every = "30d"' in hcl
    assert "organization_scoped = false" in hcl and "adopt_existing = true" in hcl
    # One quoted line: quotes, backslashes and newlines escaped (no heredoc, whose value would differ).
    assert 'description = "ci \\"runners\\"\\\\one\\nline two"' in hcl


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")
@pytest.mark.parametrize("core_name", ["cdktf", "cdktn"])
def test_terraform_accepts_the_hcl_stack(core_name, tmp_path):
    # What `cdktf synth --hcl` does: run the app with SYNTH_HCL_OUTPUT=true (read by each stack's
    # synthesizer when node starts, so it needs a process of its own).
    outdir = tmp_path / "cdktf.out"
    env = {**os.environ, "SYNTH_HCL_OUTPUT": "true", "CDKTF_OUTDIR": str(outdir), "TOKENDROP_CDK_CORE": core_name,
           "TOKENDROP_ALLOWED_WORKSPACES": "ws-abc123", "TF_CLI_CONFIG_FILE": os.devnull,
           "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    done = subprocess.run([sys.executable, "-m", "stacks.app"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    directory = outdir / "stacks" / "ci-agents"
    hcl = (directory / "cdk.tf").read_text()
    assert "deliver_to = {" in hcl and "deliver_to {" not in hcl
    for args in (["init", "-input=false", "-no-color", "-backend=false"], ["validate", "-no-color"]):
        done = subprocess.run(["terraform", *args], cwd=directory, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "The configuration is valid" in done.stdout
