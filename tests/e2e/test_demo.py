"""`scripts/demo.py` (what `make demo` runs), end to end through cdktf-cli, terraform and the sandbox.

Proves: on the repo's own stacks and on a throwaway two-stack app, the demo deploys, prints each stack,
pool and token with its sink and version, reads the sinks back, scans state, cdktf.out and cdktf's
output for every minted value, destroys, checks revocation and sink removal, stops the sandbox and
exits 0; a leak (a provisioner echoing a token) is found and fails the demo; a failed deploy still
destroys and stops the sandbox. The canary scanner itself is checked on planted values.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"
CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"
TOKEN = "AbCdEfGhIjKlMn.atlasv1.q0w9e8r7t6y5u4i3o2p1a0s9d8f7g6h5j4k3l2z1x0c9v8b7n6m5QWERTY"


def load_demo():
    spec = importlib.util.spec_from_file_location("tokendrop_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def needs_cdktf() -> None:
    if not CDKTF.exists():
        pytest.skip(f"{CDKTF} is missing: run `npm ci` (make demo does) to install cdktf-cli")
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEMO), "--cdktf", str(CDKTF), *args], capture_output=True,
                          text=True, timeout=900, check=False)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain `text` (the demo's temporary directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


def work_dir(output: str) -> str:
    m = re.search(r"logs in (/\S+?)/sandbox/logs", output)
    assert m, output
    return m.group(1)


# --- the scanner ------------------------------------------------------------------------------------


def test_scan_finds_planted_values_in_every_form(tmp_path: Path):
    demo = load_demo()
    (tmp_path / "clean.json").write_text(json.dumps({"id": "at-1", "sink_version": 1}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "raw.log").write_text(f"apply output ... {TOKEN} ...")
    private = base64.b64encode(b'{"v":"' + TOKEN.encode() + b'"}').decode()
    (tmp_path / "private.tfstate").write_text(json.dumps({"private": private}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tfplan", b"\x00\x01" + TOKEN.encode() + b"\x02")
    (tmp_path / "saved.plan").write_bytes(buffer.getvalue())

    result = demo.scan({"token at-1": TOKEN, "token at-2": "never-written-value-1234567890"}, [tmp_path])

    hits = {(Path(hit.artifact.split("!")[0]).name, hit.label) for hit in result.hits}
    assert hits == {("raw.log", "token at-1"), ("private.tfstate", "token at-1"), ("saved.plan", "token at-1")}
    assert any(hit.artifact.endswith("saved.plan!tfplan") for hit in result.hits)
    assert (result.files, result.archives) == (4, 1)  # four files, and the plan's member opened
    assert TOKEN not in repr(result)  # reports name the token, never show it


def test_scan_is_clean_without_the_values(tmp_path: Path):
    demo = load_demo()
    (tmp_path / "state.tfstate").write_text(json.dumps({"id": "at-1", "sink_address": "ssm:/ci/token"}))
    assert demo.scan({"token at-1": TOKEN}, [tmp_path, tmp_path / "missing"]).hits == []


def test_every_sink_of_a_state_is_read_back_in_its_own_region():
    """A token delivered to SSM in two regions and to Vault (deliver_to a list, as state holds a dynamic
    value) gives three sinks, each with its region and the version its `sinks` entry records."""
    demo = load_demo()
    attrs = {"deliver_to": {"value": [{"ssm": {"name": "/bk/t", "region": "eu-west-1"}},
                                      {"ssm": {"name": "/bk/t", "region": "us-east-1"}},
                                      {"vault_kv": {"path": "ci/bk"}}], "type": ["tuple", []]},
             "sinks": [{"address": "ssm:eu-west-1:/bk/t", "version": 2, "status": "delivered"},
                       {"address": "ssm:us-east-1:/bk/t", "version": 1, "status": "delivered"},
                       {"address": "vault_kv:secret/ci/bk#token", "version": 3, "status": "delivered"}],
             "sink_address": "ssm:eu-west-1:/bk/t", "sink_version": 2}
    sinks = demo.Sink.all_of(attrs)
    assert [(s.describe(), s.version) for s in sinks] == [
        ("SSM parameter /bk/t in eu-west-1", 2), ("SSM parameter /bk/t in us-east-1", 1),
        ("Vault secret/ci/bk (field token)", 3)]
    one = demo.Sink.all_of({"deliver_to": {"ssm": {"name": "/x"}}, "sink_version": 4})  # state before `sinks`
    assert [(s.describe(), s.version) for s in one] == [("SSM parameter /x", 4)]


# --- the demo end to end ------------------------------------------------------------------------------

APP = '''
"""A throwaway app: this provider's resources through escape hatches; the provider goes into each
stack's implied local mirror after synth (the real stacks do this their own way)."""
import sys
from pathlib import Path

from cdktf import App, TerraformStack

from tokendrop_provider.install import install, provider_version

ORG = {org!r}
LEAK = {leak!r}


def provider(stack):
    stack.add_override("terraform.required_providers.tokendrop",
                       {{"source": "tokendrop/tokendrop", "version": provider_version()}})
    stack.add_override("provider.tokendrop", [{{}}])


class CiAgents(TerraformStack):
    def __init__(self, scope, name):
        super().__init__(scope, name)
        provider(self)
        self.add_override("resource.tokendrop_tfe_agent_pool.ci", {{"organization": ORG, "name": name}})
        self.add_override("resource.tokendrop_tfe_agent_token.runners", {{
            "agent_pool_id": "${{tokendrop_tfe_agent_pool.ci.id}}",
            "deliver_to": {{"ssm": {{"name": f"/{{name}}/tfc-agent/token"}}}}}})
        self.add_override("resource.tokendrop_tfe_agent_token.batch", {{
            "agent_pool_id": "${{tokendrop_tfe_agent_pool.ci.id}}",
            "deliver_to": {{"vault_kv": {{"mount": "secret", "path": f"{{name}}/tfc-agent/batch"}}}}}})
        if LEAK:  # a careless provisioner that prints the delivered token into terraform's output
            read = ("import boto3; print(boto3.client('ssm').get_parameter("
                    f"Name='/{{name}}/tfc-agent/token', WithDecryption=True)['Parameter']['Value'])")
            self.add_override("resource.terraform_data.leak", {{
                "triggers_replace": ["${{tokendrop_tfe_agent_token.runners.id}}"],
                "provisioner": [{{"local-exec": {{"command": f"{{sys.executable}} -c \\"{{read}}\\""}}}}]}})


class Agents(TerraformStack):
    """A Buildkite cluster token into Vault and a Token Vault agent whose key goes to SSM."""

    def __init__(self, scope, name):
        super().__init__(scope, name)
        provider(self)
        self.add_override("resource.tokendrop_buildkite_cluster.linux", {{"name": "linux"}})
        self.add_override("resource.tokendrop_buildkite_cluster_token.default", {{
            "cluster_id": "${{tokendrop_buildkite_cluster.linux.id}}", "description": "linux agents",
            "deliver_to": {{"vault_kv": {{"path": "ci/buildkite/linux"}}}}}})
        self.add_override("resource.tokendrop_tokenvault_agent.triage", {{
            "name": "triage-bot", "grants": [{{"service": "github"}}],
            "deliver_to": {{"ssm": {{"name": "/agents/triage/key"}}}}}})


app = App()
for name in {stacks!r}:
    (Agents if name == "agents" else CiAgents)(app, name)
app.synth()
for name in {stacks!r}:
    install(Path(app.outdir) / "stacks" / name / "terraform.d" / "plugins")
'''


def throwaway_app(directory: Path, *, stacks=("ci-agents", "agents"), org="acme", leak=False) -> Path:
    directory.mkdir()
    (directory / "main.py").write_text(textwrap.dedent(APP.format(org=org, leak=leak, stacks=list(stacks))))
    (directory / "cdktf.json").write_text(json.dumps({"language": "python", "app": f"{sys.executable} main.py",
                                                      "sendCrashReports": "false"}))
    return directory


def assert_cleaned_up(output: str, project: Path, states_before: frozenset[Path] = frozenset()) -> None:
    assert "Sandbox stopped." in output
    assert not processes_mentioning(work_dir(output)), "a sandbox process outlived the demo"
    assert set(project.glob("*.tfstate*")) <= states_before, "the demo left state files behind"
    shutil.rmtree(work_dir(output), ignore_errors=True)  # a failed demo keeps its logs for the user


@pytest.mark.e2e
@pytest.mark.cdktf
def test_demo_on_a_two_stack_app(tmp_path: Path):
    needs_cdktf()
    project = throwaway_app(tmp_path / "app")

    result = run_demo("--project-dir", str(project))

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^Sandbox up: moto, openbao, tfe(, \w+)* on 127\.0\.0\.1", out, re.M), out
    assert re.search(r"^Deploying 2 stacks \((ci-agents, agents|agents, ci-agents)\) with cdktf", out, re.M), out
    tfe = out.split("Stack ci-agents:\n", 1)[1].split("Stack ", 1)[0]
    assert re.match(r"  pool ci-agents \(apool-\w+\) in organization acme\n", tfe), tfe
    assert re.search(r"^    token at-\w+ -> SSM parameter /ci-agents/tfc-agent/token, version 1$", tfe, re.M), tfe
    assert re.search(r"^    token at-\w+ -> Vault secret/ci-agents/tfc-agent/batch \(field token\), version 1$",
                     tfe, re.M), tfe
    agents = out.split("Stack agents:\n", 1)[1].split("Read back", 1)[0]
    assert re.search(r"^  cluster linux \([0-9a-f-]{36}\) in organization acme\n"
                     r"    token [0-9a-f-]{36} -> Vault secret/ci/buildkite/linux \(field token\), version 1$",
                     agents, re.M), agents
    assert re.search(r"^  agent triage-bot \(\w+\) with grants github; key -> SSM parameter /agents/triage/key, "
                     r"version 1$", agents, re.M), agents
    assert "Read back from the stores: each of the 4 sinks holds its token's live value." in out
    assert re.search(r"^No token value in state, cdktf\.out or cdktf's output: scanned \d+ files for 4 token values "
                     r"and \d+ sandbox credentials\.$", out, re.M), out
    assert re.search(r"^Destroyed in [\d.]+s: 4 of 4 tokens revoked at the issuer, 4 sinks removed", out, re.M)
    assert out.rstrip().endswith("Demo passed.")
    assert len(out.splitlines()) <= 20, "the demo should print a short summary, not a wall of logs"
    assert not Path(work_dir(out)).exists(), "the temporary directory is removed after a successful run"
    assert_cleaned_up(out, project)


@pytest.mark.e2e
@pytest.mark.cdktf
def test_demo_fails_when_a_token_leaks_into_cdktf_output(tmp_path: Path):
    needs_cdktf()
    project = throwaway_app(tmp_path / "app", stacks=("ci-agents",), leak=True)

    result = run_demo("--project-dir", str(project))

    out = result.stdout
    assert result.returncode == 1, out
    assert re.search(r"^FAILED: secret values leaked:\n    token at-\w+ \(tfe\) found in \S+/logs/cdktf-deploy\.log$",
                     out, re.M), out
    assert re.search(r"^Destroyed in [\d.]+s\.$", out, re.M), out  # clean-up still destroys
    assert "Demo FAILED." in out
    leaked = re.findall(r"token (at-\w+) \(tfe\) found", out)
    assert leaked and all(len(t) < 30 for t in leaked)  # ids are named, values are not printed
    assert ".atlasv1." not in out
    assert_cleaned_up(out, project)


@pytest.mark.e2e
@pytest.mark.cdktf
def test_failed_deploy_still_destroys_and_stops_the_sandbox(tmp_path: Path):
    needs_cdktf()
    project = throwaway_app(tmp_path / "app", stacks=("ci-agents",), org="no-such-org")

    result = run_demo("--project-dir", str(project))

    out = result.stdout
    assert result.returncode == 1, out
    assert "FAILED: cdktf deploy failed (exit code 1)" in out
    assert "Error: Organization not found" in out  # the useful part of cdktf's log, not the init chatter
    assert "Initializing provider plugins" not in out
    assert "Logs kept in" in out and "Demo FAILED." in out
    assert_cleaned_up(out, project)


@pytest.mark.e2e
@pytest.mark.cdktf
def test_demo_on_the_repo_stacks():
    needs_cdktf()
    if not (ROOT / "cdktf.json").exists():
        pytest.skip("the repo has no cdktf.json yet (the stacks are being written)")
    stale = [p for p in ROOT.glob("terraform.*.tfstate") if json.loads(p.read_text() or "{}").get("resources")]
    if stale:
        pytest.skip(f"{stale[0]} holds resources from another deploy; the demo refuses to touch it")

    states_before = frozenset(ROOT.glob("*.tfstate*"))

    result = run_demo()

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    manifest = json.loads((ROOT / json.loads((ROOT / "cdktf.json").read_text()).get("output", "cdktf.out")
                           / "manifest.json").read_text())
    for stack in manifest["stacks"]:
        assert f"Stack {stack}:" in out
    assert re.search(r"^  pool \S+ \(apool-\w+\) in organization \S+$", out, re.M), out
    assert re.search(r"token at-\w+ -> SSM parameter /\S+, version \d+$", out, re.M), out
    assert re.search(r"token at-\w+ -> Vault \S+ \(field \w+\), version \d+$", out, re.M), out
    # the buildkite stack's Elastic CI Stack token: one parameter per region, each read back in its region
    assert re.search(r"^One token, several regions, each read back there: buildkite: token [0-9a-f-]{36} in SSM "
                     r"parameter /\S+ in eu-west-1, us-east-1\.$", out, re.M), out
    assert re.search(r"token [0-9a-f-]{36} -> SSM parameter /\S+ in us-east-1, version 1; SSM parameter /\S+ in "
                     r"eu-west-1, version 1$", out, re.M), out
    assert re.search(r"^No token value in state, cdktf\.out or cdktf's output: scanned \d+ files", out, re.M), out
    assert re.search(r"^Destroyed in [\d.]+s: (\d+) of \1 tokens revoked", out, re.M), out
    assert out.rstrip().endswith("Demo passed.")
    assert_cleaned_up(out, ROOT, states_before)
