"""Proves, through the real cdktf-cli (node_modules/.bin/cdktf) and the repository's own cdktf.json, that
the "ci-agents" stack synthesizes (JSON and --hcl), deploys against the sandbox with no network and no
extra flags or set-up (the provider is installed offline by the synthesis), leaves the emulator's live
tokens in SSM and Vault, is stable on a second plan, and destroys cleanly (tokens revoked, sinks gone);
and that no minted token value — nor any credential — appears in state, cdktf.out, cdktf's output, the
TF_LOG=trace log or the provider log."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.terraform import scan

pytestmark = [pytest.mark.e2e, pytest.mark.cdktf]

REPO = Path(__file__).resolve().parents[2]
CDKTF = REPO / "node_modules" / ".bin" / "cdktf"
STACK = "ci-agents"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's cdktf project: its cdktf.json as is, `stacks/` and `.venv` linked in."""
    if not CDKTF.exists():
        pytest.skip("cdktf-cli is not installed: run `npm ci` (package.json pins cdktf-cli 0.21.0)")
    directory = tmp_path / "project"
    directory.mkdir()
    shutil.copy(REPO / "cdktf.json", directory / "cdktf.json")
    (directory / "stacks").symlink_to(REPO / "stacks")
    (directory / ".venv").symlink_to(Path(sys.prefix))  # the environment running these tests
    return directory


class Cdktf:
    """Runs cdktf commands in the project, each with a TF_LOG=trace file and the provider's log."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.project = project
        self.logs = project.parent / "logs"
        self.logs.mkdir()
        self.env = env
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        n = len(self.outputs)
        env = {**self.env, "TF_LOG": "trace", "TF_LOG_PATH": str(self.logs / f"{n:02d}-trace.log"),
               "TOKENDROP_LOG_PATH": str(self.logs / f"{n:02d}-provider.log")}
        done = subprocess.run([str(CDKTF), *args], cwd=self.project, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        output = done.stdout + done.stderr
        (self.logs / f"{n:02d}-cdktf-{args[0]}.txt").write_text(output)
        plan = self.project / "cdktf.out" / "stacks" / STACK / "plan"
        if plan.exists():  # each command overwrites the saved plan: keep every one for the scan
            shutil.copy(plan, self.logs / f"{n:02d}-plan")
        self.outputs.append((f"cdktf {' '.join(args)}", output))
        if check:
            assert done.returncode == 0, f"cdktf {' '.join(args)} -> {done.returncode}\n{output[-6000:]}"
        return done

    def state(self) -> dict:
        return json.loads((self.project / f"terraform.{STACK}.tfstate").read_text())

    def artifacts(self) -> Iterator[tuple[str, str]]:
        """Every file of the project (state, cdktf.out with its saved plans unzipped, logs) and every output."""
        for root in (self.project, self.logs):
            for path in sorted(root.rglob("*")):
                if not path.is_file() or ".terraform/providers" in path.as_posix() or path.is_symlink():
                    continue
                if any(part in ("stacks", ".venv") for part in path.relative_to(root).parts[:1]):
                    continue  # the linked-in sources and environment
                data = path.read_bytes()
                if data[:2] == b"PK":
                    with zipfile.ZipFile(io.BytesIO(data)) as archive:
                        for member in archive.namelist():
                            yield f"{path.name}!{member}", archive.read(member).decode("utf-8", "replace")
                    continue
                yield str(path.relative_to(root.parent)), data.decode("utf-8", "replace")
        yield from self.outputs


def cdktf_env(project: Path, sandbox_env: dict[str, str], workspaces: list[str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "USER")}
    home = project.parent / "home"
    home.mkdir()
    return {
        **keep, **sandbox_env,
        # A throwaway home: cdktf's default plugin cache (~/.terraform.d/plugin-cache) is exercised too.
        "HOME": str(home), "CDKTF_HOME": str(home / ".cdktf"),
        "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1", "DISABLE_VERSION_CHECK": "1", "CI": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "TF_IN_AUTOMATION": "1",
        "TOKENDROP_ALLOWED_WORKSPACES": ",".join(workspaces),
    }


def test_ci_agents_stack_through_cdktf(sandbox, project):
    workspaces = [sandbox.tfe.workspace_id("acme", n) for n in ("app-prod", "app-staging")]
    cdktf = Cdktf(project, cdktf_env(project, sandbox.env, workspaces))
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
    deploy = cdktf("deploy", STACK, "--auto-approve")
    output = deploy.stdout + deploy.stderr
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
    diff = cdktf("diff", STACK)
    assert "No changes" in diff.stdout + diff.stderr
    assert len(sandbox.minted()) == minted_before

    # destroy: tokens revoked at the issuer, sinks gone
    destroy = cdktf("destroy", STACK, "--auto-approve")
    assert "Destroy complete! Resources: 3 destroyed." in destroy.stdout + destroy.stderr
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
