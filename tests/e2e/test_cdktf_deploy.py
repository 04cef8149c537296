"""Proves, through the real cdktf-cli (node_modules/.bin/cdktf) and the repository's own cdktf.json, that
the "ci-agents" stack synthesizes (JSON and --hcl), deploys against the sandbox with no network and no
extra flags or set-up (the provider is installed offline by the synthesis), leaves the emulator's live
tokens in SSM and Vault, is stable on a second plan, and destroys cleanly (tokens revoked, sinks gone);
and that no minted token value — nor any credential — appears in state, cdktf.out, cdktf's output, the
TF_LOG=trace log or the provider log."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fixtures.cdk_cli import REPO, STACK, CdkCli, cli_env, copy_project
from fixtures.terraform import scan

pytestmark = [pytest.mark.e2e, pytest.mark.cdktf]

CDKTF = REPO / "node_modules" / ".bin" / "cdktf"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path, CDKTF,
                        "cdktf-cli is not installed: run `npm ci` (package.json pins cdktf-cli 0.21.0)")


def cdktf_env(project: Path, sandbox_env: dict[str, str], workspaces: list[str]) -> dict[str, str]:
    return cli_env(project, sandbox_env, workspaces, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")


def test_ci_agents_stack_through_cdktf(sandbox, project):
    workspaces = [sandbox.tfe.workspace_id("acme", n) for n in ("app-prod", "app-staging")]
    cdktf = CdkCli(CDKTF, project, cdktf_env(project, sandbox.env, workspaces))
    stack_dir = project / "cdktf.out" / "stacks" / STACK

    # --hcl synthesis, through the CLI (which also formats it)
    cdktf("synth", "--hcl", "--output", "hcl.out")
    hcl = (project / "hcl.out" / "stacks" / STACK / "cdk.tf").read_text()
    assert "deliver_to = {" in hcl and "ssm = {" in hcl and "vault_kv = {" in hcl and "deliver_to {" not in hcl
    shutil.rmtree(project / "hcl.out")

    # synth: the provider lands in the stack's implied mirror, with a lock entry
    cdktf("synth")
    launchers = list((stack_dir / "terraform.d" / "plugins").rglob("terraform-provider-tokendrop_v*"))
    assert len(launchers) == 1 and os.access(launchers[0], os.X_OK)
    assert 'provider "registry.terraform.io/tokendrop/tokendrop"' in (stack_dir / ".terraform.lock.hcl").read_text()

    # deploy: no flags, no network (the registry is unreachable here)
    output = cdktf("deploy", STACK, "--auto-approve")
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in output
    assert "providers lock" not in output and "registry.terraform.io/.well-known" not in output

    state = cdktf.state()
    resources = {f"{r['type']}.{r['name']}": r["instances"][0]["attributes"] for r in state["resources"]}
    pool = resources["tokendrop_tfe_agent_pool.pool"]
    tokens = {name.split(".")[1].split("_")[1]: attrs for name, attrs in resources.items()
              if name.startswith("tokendrop_tfe_agent_token.")}
    assert set(tokens) == {"runners", "batch"}
    assert sorted(sandbox.tfe.pools[pool["id"]].allowed_workspaces) == sorted(workspaces)
    assert sorted(sandbox.live_tokens(pool["id"])) == sorted(t["id"] for t in tokens.values())

    # the sinks hold the live tokens the emulator minted, at the versions state records
    runners, batch = tokens["runners"], tokens["batch"]
    value, version = sandbox.ssm_value("/ci/tfc-agent/runners")
    assert value == sandbox.token_value(runners["id"]) and version == runners["sink_version"] == 1
    data, version = sandbox.vault_value("ci/tfc-agent/batch")
    assert data == {"token": sandbox.token_value(batch["id"])} and version == batch["sink_version"] == 1
    tags = {t["Key"]: t["Value"] for t in sandbox.ssm().list_tags_for_resource(
        ResourceType="Parameter", ResourceId="/ci/tfc-agent/runners")["TagList"]}
    assert tags["team"] == "platform" and tags["consumer"] == "tfc-agent"

    outputs = {k: v["value"] for k, v in state["outputs"].items()}
    assert outputs["pool_id"] == pool["id"]
    assert outputs["runners_token_id"] == runners["id"] and outputs["batch_token_id"] == batch["id"]
    assert outputs["runners_sink_address"] == "ssm:/ci/tfc-agent/runners"
    assert outputs["batch_sink_address"] == "vault_kv:secret/ci/tfc-agent/batch#token"
    assert outputs["runners_sink_version"] == 1 and outputs["batch_sink_version"] == 1
    assert json.loads(outputs["runners_read_policy"])["Statement"][0]["Resource"] == \
        "arn:aws:ssm:*:*:parameter/ci/tfc-agent/runners"
    assert outputs["batch_read_policy"] == 'path "secret/data/ci/tfc-agent/batch" { capabilities = ["read"] }'

    # a second plan changes nothing and mints nothing
    minted_before = len(sandbox.minted())
    assert "No changes" in cdktf("diff", STACK)
    assert len(sandbox.minted()) == minted_before

    # destroy: tokens revoked at the issuer, sinks gone
    assert "Destroy complete! Resources: 3 destroyed." in cdktf("destroy", STACK, "--auto-approve")
    assert sandbox.live_tokens(pool["id"]) == []
    assert all(m["revoked"] for m in sandbox.minted())
    assert sandbox.ssm_value("/ci/tfc-agent/runners") is None
    assert sandbox.vault_value("ci/tfc-agent/batch") is None

    # canary scan: no minted value anywhere, no credential in state, cdktf.out or cdktf's output
    values = sandbox.minted_values()
    assert len(values) == 2
    artifacts = list(cdktf.artifacts())
    names = {name for name, _ in artifacts}
    assert any(n.endswith("-trace.log") for n in names) and any("terraform.ci-agents.tfstate" in n for n in names)
    assert any("cdktf.out/stacks/ci-agents/cdk.tf.json" in n for n in names)
    assert sum(n.startswith("02-plan!") or n.startswith("04-plan!") for n in names) >= 2, "saved plans unscanned"
    assert scan(values, artifacts) == []
    credentials = [sandbox.env["TFE_TOKEN"], sandbox.env["VAULT_TOKEN"]]
    assert scan(credentials, [(n, t) for n, t in artifacts if not n.startswith("logs/")]) == []
    # ...and the scan does find a value where one is
    (project / "cdktf.out" / "planted.txt").write_text(f"leaked: {values[1]}")
    assert [name for name, _ in scan(values, cdktf.artifacts())] == ["project/cdktf.out/planted.txt"]
