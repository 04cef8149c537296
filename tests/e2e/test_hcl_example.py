"""examples/hcl, the plain-HCL example, run as a Terraform user would: the provider installed with
`tokendrop provider install --dir`, found through an explicit filesystem-mirror CLI configuration
(no implied mirror), then init / plan / apply / plan (no changes) / destroy against the sandbox. The
sinks must hold the live tokens and no token value may appear in any artifact."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.terraform import TERRAFORM, Workspace, base_env, scan

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hcl"
SOURCE = "registry.terraform.io/tokendrop/tokendrop"


def tokendrop_command() -> list[str]:
    script = Path(sys.executable).parent / "tokendrop"
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                  "import sys; from tokendrop_provider.cli import main; "
                                                  "sys.exit(main())"]


@pytest.fixture(scope="module")
def explicit_mirror_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A filesystem mirror filled by the CLI, and a CLI configuration naming it explicitly."""
    root = tmp_path_factory.mktemp("hcl-mirror")
    mirror = root / "plugins"
    proc = subprocess.run([*tokendrop_command(), "provider", "install", "--dir", str(mirror)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "filesystem_mirror" in proc.stdout  # the command tells the user which block to add
    config = root / "terraform.tfrc"
    config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/tokendrop/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/tokendrop/*"]\n'
        "  }\n"
        "}\n")
    return config


def test_example_is_formatted_and_valid(tmp_path: Path, explicit_mirror_config: Path) -> None:
    proc = subprocess.run([TERRAFORM, "fmt", "-check", "-diff", "-recursive", str(EXAMPLE)], capture_output=True,
                          text=True, env=base_env(Path("/dev/null")), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ws = Workspace(tmp_path / "hcl", base_env(explicit_mirror_config))
    shutil.copytree(EXAMPLE, ws.directory)
    ws.init()
    assert "Success! The configuration is valid." in ws.run("validate", "-no-color").stdout
    # The variable validation rejects a relative SSM prefix at plan time, before anything is created.
    bad = ws.plan("-var", "ssm_prefix=ci/tfc-agent", check=False)
    assert bad.returncode == 1 and "ssm_prefix must be an absolute parameter path" in bad.output


def test_hcl_example_through_terraform(sandbox, tmp_path: Path, explicit_mirror_config: Path) -> None:
    ws = Workspace(tmp_path / "hcl", {**base_env(explicit_mirror_config), **sandbox.env})
    shutil.copytree(EXAMPLE, ws.directory, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    workspace_id = sandbox.tfe.workspace_id("acme", "app-prod")
    (ws.directory / "sandbox.auto.tfvars.json").write_text(json.dumps({"workspace_ids": [workspace_id]}))

    init = ws.init()
    assert "Installing tokendrop/tokendrop" in init.stdout
    lock = (ws.directory / ".terraform.lock.hcl").read_text()
    assert f'provider "{SOURCE}"' in lock and re.search(r'"h1:[A-Za-z0-9+/=]+"', lock)
    # Installed from the explicit mirror: terraform links the mirror's directory into .terraform.
    installed = ws.directory / ".terraform" / "providers" / SOURCE
    assert installed.is_dir()
    assert str(explicit_mirror_config.parent / "plugins") in str(next(installed.glob("*/*")).resolve())

    plan = ws.plan("-out=tfplan")
    assert "3 to add, 0 to change, 0 to destroy" in plan.stdout
    assert not sandbox.writes(), "plan must not write at the issuer"
    ws.apply("tfplan")

    outputs = {k: v["value"] for k, v in json.loads(ws.run("output", "-json", "-no-color").stdout).items()}
    pool_id, runners_id, batch_id = outputs["agent_pool_id"], outputs["runners_token_id"], outputs["batch_token_id"]
    assert pool_id.startswith("apool-")
    assert sandbox.tfe.pools[pool_id].allowed_workspaces == [workspace_id]
    assert sandbox.tfe.pools[pool_id].organization_scoped is False
    assert outputs["runners_parameter"] == "ssm:/ci/tfc-agent/token" and outputs["runners_parameter_version"] == 1
    assert outputs["batch_secret"] == "vault_kv:secret/ci/tfc-agent/batch#token"
    assert outputs["batch_secret_version"] == 1

    # The sinks hold the live tokens, and the issuer has exactly those two.
    assert sorted(sandbox.live_tokens(pool_id)) == sorted([runners_id, batch_id])
    assert sandbox.ssm_value("/ci/tfc-agent/token") == (sandbox.token_value(runners_id), 1)
    assert sandbox.vault_value("ci/tfc-agent/batch") == ({"token": sandbox.token_value(batch_id)}, 1)
    tags = sandbox.ssm().list_tags_for_resource(ResourceType="Parameter", ResourceId="/ci/tfc-agent/token")
    assert {"team": "ci", "purpose": "tfc-agent"}.items() <= {t["Key"]: t["Value"] for t in tags["TagList"]}.items()
    runners = ws.resources()["tokendrop_tfe_agent_token.runners"]
    assert runners["rotate_every"] == "30d" and runners["keep_previous_for"] == "2h"
    assert runners["sink_status"] == "delivered"

    assert ws.plan_exitcode().returncode == 0, ws.results[-1]

    ws.destroy()
    assert pool_id not in sandbox.tfe.pools
    assert sandbox.ssm_value("/ci/tfc-agent/token") is None
    assert sandbox.vault_value("ci/tfc-agent/batch") is None
    assert {runners_id, batch_id} <= {m["id"] for m in sandbox.minted() if m["revoked"]}

    values = sandbox.minted_values()
    assert len(values) == 2
    assert scan(values, ws.artifacts()) == []
