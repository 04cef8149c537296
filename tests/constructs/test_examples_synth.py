"""Every example under examples/ runs as the script a user copies (`python3 main.py`, as its cdktf.json
says), synthesizes what its README promises, and Terraform validates the result with the provider
installed offline by the synthesis itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "TF_CLI_CONFIG_FILE": os.devnull,
       "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
for name in ("TFE_ORGANIZATION", "TFE_ADDRESS", "AWS_REGION", "AWS_ACCOUNT_ID", "VAULT_KV_MOUNT"):
    ENV.pop(name, None)


def synth_example(name: str, tmp_path: Path) -> tuple[Path, dict]:
    directory = EXAMPLES / name
    config = json.loads((directory / "cdktf.json").read_text())
    assert config["app"] == "python3 main.py" and config["sendCrashReports"] == "false"
    assert (directory / "README.md").read_text().startswith("# ")
    outdir = tmp_path / "cdktf.out"
    done = subprocess.run([sys.executable, "main.py"], cwd=directory, env={**ENV, "CDKTF_OUTDIR": str(outdir)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    (stack,) = manifest["stacks"].values()
    stack_dir = outdir / stack["workingDirectory"]
    if shutil.which("terraform"):
        for args in (["init", "-input=false", "-no-color", "-backend=false"], ["validate", "-no-color"]):
            check = subprocess.run(["terraform", *args], cwd=stack_dir, env=ENV, capture_output=True, text=True,
                                   timeout=120, check=False)
            assert check.returncode == 0, check.stdout + check.stderr
    return stack_dir, json.loads((outdir / stack["synthesizedStackPath"]).read_text())


def test_examples_are_all_tested():
    # Every CDKTF example app (a directory with a main.py); examples/resources/ holds the HCL snippets
    # of the generated docs.
    assert {p.name for p in EXAMPLES.iterdir() if (p / "main.py").exists()} == {
        "tfe-token-to-ssm", "tfe-token-to-vault", "tfc-agent-on-ecs"}


def test_tfe_token_to_ssm(tmp_path):
    _, out = synth_example("tfe-token-to-ssm", tmp_path)
    (token,) = out["resource"]["tokendrop_tfe_agent_token"].values()
    assert token["deliver_to"] == {"ssm": {"name": "/ci/tfc-agent/token", "tags": {"team": "platform"}}}
    assert token["rotate_every"] == "30d"
    assert set(out["output"]) == {"pool_id", "token_id", "parameter", "parameter_version", "read_policy"}


def test_tfe_token_to_vault(tmp_path):
    _, out = synth_example("tfe-token-to-vault", tmp_path)
    (token,) = out["resource"]["tokendrop_tfe_agent_token"].values()
    assert token["deliver_to"]["vault_kv"] == {"mount": "secret", "path": "ci/tfc-agent/vault-agents",
                                               "field": "token"}
    assert out["output"]["read_policy"]["value"] == (
        'path "secret/data/ci/tfc-agent/vault-agents" { capabilities = ["read"] }')
    assert "TFC_AGENT_TOKEN={{ index .Data.data \"token\" }}" in out["output"]["agent_template"]["value"]


def test_tfc_agent_on_ecs(tmp_path):
    _, out = synth_example("tfc-agent-on-ecs", tmp_path)
    (token,) = out["resource"]["tokendrop_tfe_agent_token"].values()
    assert token["deliver_to"] == {"secrets_manager": {"name": "ci/tfc-agent/ecs", "tags": {"consumer": "ecs"}}}
    definitions = out["locals"]["tfc_agent_containers"]
    assert definitions.startswith("${jsonencode(")
    # the secret's partial ARN (its random suffix is unknown before it exists): ECS resolves it by name
    assert '"valueFrom" = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci/tfc-agent/ecs"' in definitions
    assert '"name" = "TFC_AGENT_TOKEN"' in definitions
    assert "ssm" not in definitions
    assert "tostring(tokendrop_tfe_agent_token." in definitions  # a rotation changes the task definition
    assert ".sink_version)" in definitions
    policy = out["output"]["execution_role_policy"]["value"]
    assert "secretsmanager:GetSecretValue" in policy
    assert "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci/tfc-agent/ecs-??????" in policy
    assert "ssm:" not in policy


@pytest.mark.parametrize("name", ["tfe-token-to-ssm", "tfe-token-to-vault", "tfc-agent-on-ecs"])
def test_no_secret_settings_in_the_examples(name):
    source = (EXAMPLES / name / "main.py").read_text()
    for setting in ("tfe_token", "vault_token", "aws_secret_access_key"):
        assert setting not in source
