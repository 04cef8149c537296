"""examples/pipelines: the Elastic CI Stack app synthesizes what its README and CloudFormation snippet
promise and Terraform validates it; the Buildkite pipeline and the compose file parse and name scripts
that exist; every shell script is syntactically valid, strict, never traced and never prints a
credential. The scripts then run for real against stand-ins for buildkite-agent, aws, vault, cdktf,
terraform, tokendrop and tfc-agent (a PATH of recording fakes): the credentials must reach the
commands that need them through the environment only, and never their arguments, the step's output,
the plan artifact or a file left behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tokendrop import SsmParameter

REPO = Path(__file__).resolve().parents[2]
PIPELINES = REPO / "examples" / "pipelines"
BUILDKITE = PIPELINES / "buildkite"
ELASTIC = PIPELINES / "elastic-ci-stack"
TFC_AGENT = PIPELINES / "tfc-agent"
SCRIPTS = sorted(PIPELINES.rglob("*.sh"))
TERRAFORM = shutil.which("terraform")
ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "TF_CLI_CONFIG_FILE": os.devnull,
       "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
for _name in ("BUILDKITE_ORGANIZATION_SLUG", "AWS_REGION", "AWS_ACCOUNT_ID", "TOKENDROP_BUILDKITE_CLUSTER",
              "TOKENDROP_BUILDKITE_QUEUE", "TOKENDROP_AGENT_TOKEN_PARAMETER", "TOKENDROP_SSM_KMS_KEY_ID",
              "TOKENDROP_STATE_BUCKET"):
    ENV.pop(_name, None)


# --- the Elastic CI Stack app -------------------------------------------------------------------------

def synth(tmp_path: Path, **settings: str) -> tuple[Path, dict]:
    config = json.loads((ELASTIC / "cdktf.json").read_text())
    assert config["app"] == "python3 main.py" and config["sendCrashReports"] == "false"
    outdir = tmp_path / "cdktf.out"
    env = {**ENV, **settings, "CDKTF_OUTDIR": str(outdir)}
    done = subprocess.run([sys.executable, "main.py"], cwd=ELASTIC, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert list(manifest["stacks"]) == ["elastic-ci-stack"]
    stack = manifest["stacks"]["elastic-ci-stack"]
    return outdir / stack["workingDirectory"], json.loads((outdir / stack["synthesizedStackPath"]).read_text())


def terraform(*args: str, cwd: Path, stdin: str | None = None) -> str:
    assert TERRAFORM, "terraform is not on PATH"
    done = subprocess.run([TERRAFORM, *args], cwd=cwd, env=ENV, input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def evaluate(expression: str, tmp_path: Path) -> object:
    """The value of a synthesized `${...}` expression, as Terraform computes it (no provider needed)."""
    assert expression.startswith("${") and expression.endswith("}")
    scratch = tmp_path / "console"
    scratch.mkdir(exist_ok=True)
    return json.loads(terraform("console", "-no-color", cwd=scratch, stdin=expression[2:-1] + "\n"))


def test_elastic_ci_stack_app(tmp_path):
    stack_dir, out = synth(tmp_path)
    (cluster,) = out["resource"]["tokendrop_buildkite_cluster"].values()
    assert cluster["name"] == "linux" and cluster["organization"] == "acme"
    (token,) = out["resource"]["tokendrop_buildkite_cluster_token"].values()
    assert token["cluster_id"] == "${tokendrop_buildkite_cluster.cluster.id}"
    assert token["deliver_to"]["ssm"]["name"] == "/buildkite/linux/agent-token"
    assert token["allowed_ip_addresses"] == "${var.agent_cidrs}"
    assert out["variable"]["agent_cidrs"]["default"] == ["10.0.0.0/8"]
    assert token["expires_in"] == "90d" and token["rotate_before_expiry"] == "14d"
    assert set(out["resource"]) == {"tokendrop_buildkite_cluster", "tokendrop_buildkite_cluster_token"}
    assert out["provider"]["tokendrop"] == [{}]  # credentials come from the environment only
    assert "s3" not in out["terraform"]["backend"]

    outputs = out["output"]
    # The CloudFormation snippet shipped with the example says what the app outputs.
    snippet = yaml.safe_load((ELASTIC / "parameters.yml").read_text())
    assert outputs["BuildkiteAgentTokenParameterStorePath"]["value"] == snippet["BuildkiteAgentTokenParameterStorePath"]
    parameters = evaluate(outputs["cloudformation_parameters"]["value"], tmp_path)
    assert {p["ParameterKey"]: p["ParameterValue"] for p in json.loads(parameters)} == snippet
    policy = evaluate(outputs["instance_role_policy"]["value"], tmp_path)
    assert json.loads(policy) == SsmParameter("/buildkite/linux/agent-token").read_policy()
    assert {"cluster_id", "agent_token_id", "agent_token_expires_at", "agent_token_parameter_version"} <= set(outputs)

    if TERRAFORM:  # the provider is installed offline by the synthesis itself
        terraform("init", "-input=false", "-no-color", "-backend=false", cwd=stack_dir)
        terraform("validate", "-no-color", cwd=stack_dir)


def test_elastic_ci_stack_app_for_a_pipeline(tmp_path):
    """Shared state in S3 for plan and apply on different agents, a customer managed key, real ARNs."""
    stack_dir, out = synth(tmp_path, TOKENDROP_STATE_BUCKET="acme-terraform-state", AWS_REGION="eu-west-1",
                           AWS_ACCOUNT_ID="123456789012", BUILDKITE_ORGANIZATION_SLUG="example",
                           TOKENDROP_SSM_KMS_KEY_ID="arn:aws:kms:eu-west-1:123456789012:key/1234abcd",
                           TOKENDROP_AGENT_TOKEN_PARAMETER="/buildkite/arm/agent-token",
                           TOKENDROP_BUILDKITE_QUEUE="arm")
    assert out["terraform"]["backend"] == {"s3": {
        "bucket": "acme-terraform-state", "key": "tokendrop/elastic-ci-stack.tfstate", "region": "eu-west-1",
        "encrypt": True, "use_lockfile": True}}
    (cluster,) = out["resource"]["tokendrop_buildkite_cluster"].values()
    assert cluster["organization"] == "example"
    (token,) = out["resource"]["tokendrop_buildkite_cluster_token"].values()
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd"
    assert token["deliver_to"]["ssm"]["name"] == "/buildkite/arm/agent-token"
    assert token["deliver_to"]["ssm"]["kms_key_id"] == key
    outputs = out["output"]
    assert outputs["BuildkiteAgentTokenParameterStoreKMSKey"]["value"] == key
    parameters = json.loads(evaluate(outputs["cloudformation_parameters"]["value"], tmp_path))
    assert {p["ParameterKey"]: p["ParameterValue"] for p in parameters} == {
        "BuildkiteAgentTokenParameterStorePath": "/buildkite/arm/agent-token", "BuildkiteQueue": "arm",
        "BuildkiteAgentTokenParameterStoreKMSKey": key}
    policy = json.loads(evaluate(outputs["instance_role_policy"]["value"], tmp_path))
    assert policy == SsmParameter("/buildkite/arm/agent-token", kms_key_id=key).read_policy("eu-west-1", "123456789012")
    assert [s["Action"] for s in policy["Statement"]] == [["ssm:GetParameter", "ssm:GetParameters"], "kms:Decrypt"]
    if TERRAFORM:
        terraform("init", "-input=false", "-no-color", "-backend=false", cwd=stack_dir)
        terraform("validate", "-no-color", cwd=stack_dir)


# --- static checks of the pipeline files and scripts ------------------------------------------------

def test_every_example_has_a_readme():
    for directory in (PIPELINES, BUILDKITE, ELASTIC, TFC_AGENT):
        text = (directory / "README.md").read_text()
        assert text.startswith("# ") and "log" in text, directory


def test_buildkite_pipeline():
    pipeline = yaml.safe_load((BUILDKITE / "pipeline.yml").read_text())
    steps = pipeline["steps"]
    by_key = {s["key"]: s for s in steps}
    assert [s["key"] for s in steps] == ["plan", "approve", "apply", "audit"]

    # every command is a script of this repository, run from the checkout's root as Buildkite does
    for step in steps:
        if "command" in step:
            script = REPO / step["command"].split()[0]
            assert script.is_file() and os.access(script, os.X_OK), step["command"]
            assert script.parent == BUILDKITE / "scripts"
    project = REPO / pipeline["env"]["CDKTF_PROJECT"]
    assert (project / "cdktf.json").is_file() and project == ELASTIC
    assert f'STACK = "{pipeline["env"]["TOKENDROP_STACK"]}"' in (project / "main.py").read_text()

    # plan -> manual block -> apply, which reuses the plan's artifact; the audit runs on the schedule only
    assert by_key["plan"]["command"].endswith("deploy.sh plan")
    assert by_key["plan"]["artifact_paths"] == ["cdktf-out.tgz"]
    assert "block" in by_key["approve"] and by_key["approve"]["depends_on"] == "plan"
    assert by_key["apply"]["command"].endswith("deploy.sh apply") and by_key["apply"]["depends_on"] == "approve"
    assert by_key["apply"]["concurrency"] == 1
    for key in ("plan", "approve", "apply"):
        assert 'build.source != "schedule"' in by_key[key]["if"]
    assert by_key["audit"]["if"] == 'build.source == "schedule"'
    assert by_key["audit"]["command"].endswith("audit.sh")
    assert by_key["audit"]["soft_fail"] == [{"exit_status": 1}]
    # each step assumes its own role; none carries a credential
    assert len({by_key[k]["env"]["AWS_ROLE_ARN"] for k in ("plan", "apply", "audit")}) == 3
    settings = {**pipeline["env"], **{k: v for s in steps for k, v in s.get("env", {}).items()}}
    for name, value in settings.items():
        assert not re.search(r"(TOKEN|SECRET|PASSWORD|ACCESS_KEY)$", name), name
        assert not re.search(r"(AKIA|hvs\.|bkua_|\.atlasv1\.)", str(value)), name


def test_tfc_agent_container_files():
    compose = yaml.safe_load((TFC_AGENT / "docker-compose.yml").read_text())
    service = compose["services"]["tfc-agent"]
    assert service["build"] == "." and service["restart"] == "unless-stopped"
    assert service["environment"]["TFC_AGENT_TOKEN_PARAMETER"] == "/ci/tfc-agent/runners"
    assert "TFC_AGENT_TOKEN" not in service["environment"]
    dockerfile = (TFC_AGENT / "Dockerfile").read_text()
    copied = re.search(r"^COPY --chmod=0755 (\S+) (\S+)$", dockerfile, re.MULTILINE)
    assert copied and (TFC_AGENT / copied.group(1)).is_file()
    assert f'ENTRYPOINT ["{copied.group(2)}"]' in dockerfile
    assert "examples/tfc-agent-on-ecs" in (TFC_AGENT / "README.md").read_text()


def test_scripts_are_found():
    names = {p.relative_to(PIPELINES).as_posix() for p in SCRIPTS}
    assert names == {"buildkite/scripts/credentials.sh", "buildkite/scripts/deploy.sh",
                     "buildkite/scripts/audit.sh", "tfc-agent/entrypoint.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_script_is_strict_and_never_traced(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.MULTILINE)
    assert re.search(r"^set \+x", text, re.MULTILINE)  # undoes a trace the caller may have switched on
    code = [line.split("#", 1)[0] for line in text.splitlines()]
    assert not [line for line in code if re.search(r"\bset\s+-[a-wyz]*x|set\s+-o\s+xtrace|bash\s+-x", line)]


# Variables whose value is a credential, by name; names of *locations* (…_PARAMETER, …_VAULT_PATH) are not.
SECRET_NAME = re.compile(r"(token|secret|password|jwt|credential|_key)(?!\w*_(parameter|path|arn|audience|role|mount))",
                         re.IGNORECASE)
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def printed_secrets(text: str) -> list[str]:
    """Lines where echo/printf writes a credential-named variable to the terminal (stdout or stderr)
    rather than into a pipe, a file or another variable (printf -v)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        code = line.split(" #", 1)[0]
        for command in re.split(r"&&|\|\||;|\$\(", code):
            match = re.match(r"\s*\(?\s*(?:umask \d+ && )?(echo|printf)\b(.*)", command)
            if not match or match.group(2).lstrip().startswith("-v"):
                continue
            secrets = [v for v in VARIABLE.findall(match.group(2)) if SECRET_NAME.search(v)]
            if not secrets:
                continue
            # "| command" or "> file" keeps it off the terminal; ">&2" or "> /dev/stderr" does not
            sink = re.search(r"\|(?!\|)|>\s*(?!&|/dev/std)", match.group(2))
            if sink is None:
                found.append(f"{line.strip()}  <- {', '.join(secrets)}")
    return found


def test_the_secret_printing_check_finds_what_it_should():
    assert printed_secrets('echo "token is $TFC_AGENT_TOKEN"')
    assert printed_secrets("printf '%s\\n' \"$jwt\" >&2")
    assert printed_secrets('  x=1; echo ${AWS_SECRET_ACCESS_KEY}')
    assert printed_secrets("printf 'x' \\\n  \"$token\"")
    assert not printed_secrets("printf '%s' \"$jwt\" | vault write auth/jwt/login jwt=-")
    assert not printed_secrets("printf -v \"$1\" '%s' \"$_jwt\"")
    assert not printed_secrets("(umask 077 && printf '%s' \"$jwt\" > \"$request\")")
    assert not printed_secrets("printf 'reading %s\\n' \"$TFC_AGENT_TOKEN_PARAMETER\" >&2")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_script_never_prints_a_credential(script):
    assert printed_secrets(script.read_text()) == []


# --- the scripts, run against recording fakes -------------------------------------------------------

FAKE_TOOL = r'''#!__PYTHON__
"""Recording stand-in for a tool the pipeline scripts call: obeys world.json, logs argv and the
credential environment to calls.jsonl."""
import json, os, shutil, stat, sys
from pathlib import Path

HOME = Path(__HOME__)
WORLD = json.loads((HOME / "world.json").read_text())
TOOL = Path(sys.argv[0]).name
ARGS = sys.argv[1:]
WATCHED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "VAULT_TOKEN",
           "BUILDKITE_API_TOKEN", "TFE_TOKEN", "TFC_AGENT_TOKEN", "BUILDKITE_AGENT_ACCESS_TOKEN")
entry = {"tool": TOOL, "argv": ARGS, "cwd": os.getcwd(), "env": {k: os.environ[k] for k in WATCHED if k in os.environ}}


def finish(code=0, out="", **extra):
    entry.update(extra)
    with open(HOME / "calls.jsonl", "a") as log:
        log.write(json.dumps(entry) + "\n")
    sys.stdout.write(out)
    sys.exit(code)


def option(name):
    for i, arg in enumerate(ARGS):
        if arg == name:
            return ARGS[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


if TOOL == "buildkite-agent":
    if ARGS[:2] == ["oidc", "request-token"]:
        finish(out=WORLD["oidc"][option("--audience")])
    if ARGS[:2] == ["redactor", "add"]:
        finish(stdin=None if "--help" in ARGS else sys.stdin.read())
    if ARGS[:2] == ["artifact", "download"]:
        shutil.copy(HOME / "artifacts" / ARGS[2], Path(ARGS[3]) / ARGS[2])
        finish()
elif TOOL == "aws":
    if ARGS[:2] == ["sts", "assume-role-with-web-identity"]:
        request = Path(option("--cli-input-json").removeprefix("file://"))
        body = json.loads(request.read_text())
        mode = stat.S_IMODE(request.stat().st_mode)
        if body["WebIdentityToken"] != WORLD["oidc"]["sts.amazonaws.com"]:
            finish(254, request_mode=mode)
        finish(out="\t".join(WORLD["aws"]) + "\n", request=str(request), request_mode=mode, body=body)
    if ARGS[:2] == ["ssm", "get-parameter"]:
        value = WORLD["ssm"].get(option("--name"))
        if value is None:
            sys.stderr.write("An error occurred (ParameterNotFound) when calling the GetParameter operation: \n")
            finish(254)
        finish(out=value + "\n")
elif TOOL == "vault":
    if ARGS[:3] == ["write", "-field=token", "auth/jwt/login"]:
        jwt = sys.stdin.read() if "jwt=-" in ARGS else None
        if jwt != WORLD["oidc"][WORLD["vault_audience"]]:
            sys.stderr.write("Error writing data to auth/jwt/login: permission denied\n")
            finish(2)
        finish(out=WORLD["vault_token"] + "\n")
    if ARGS[:2] == ["kv", "get"]:
        if os.environ.get("VAULT_TOKEN") != WORLD["vault_token"]:
            finish(2)
        finish(out=WORLD["kv"][ARGS[-1]][option("-field")])
    if ARGS[:3] == ["token", "revoke", "-self"]:
        finish()
elif TOOL in ("cdktf", "cdktn"):
    out = Path("cdktf.out")
    if ARGS[0] == "synth":
        stack = out / "stacks" / WORLD["stack"]
        plugin = stack / "terraform.d/plugins/registry.terraform.io/tokendrop/tokendrop/0.1.0/linux_amd64"
        plugin.mkdir(parents=True, exist_ok=True)
        launcher = plugin / "terraform-provider-tokendrop_v0.1.0"
        launcher.write_text("#!/bin/sh\n# tokendrop provider launcher\nexec " + WORLD["provider"] + ' "$@"\n')
        launcher.chmod(0o755)
        (stack / "cdk.tf.json").write_text('{"provider": {"tokendrop": [{}]}')
        (stack / ".terraform.lock.hcl").write_text('provider "registry.terraform.io/tokendrop/tokendrop" {}\n')
        (stack / ".terraform").mkdir(exist_ok=True)
        (stack / ".terraform" / "terraform.tfstate").write_text("{}")
        (out / "manifest.json").write_text("{}")
        finish()
    if ARGS[0] in ("diff", "deploy"):
        if not (out / "stacks" / ARGS[1] / "cdk.tf.json").exists():
            finish(1)
        if ARGS[0] == "diff":
            (out / "stacks" / ARGS[1] / "plan").write_text("saved plan")
        finish(out="No changes. Your infrastructure matches the configuration.\n")
elif TOOL == "terraform":
    if ARGS[1] == "init":
        finish()
    if ARGS[1:3] == ["state", "pull"]:
        finish(out=json.dumps({"version": 4, "resources": []}) + "\n")
elif TOOL == "tokendrop":
    state = json.loads(sys.stdin.read())
    code = WORLD["audit_exit"]
    if code == 2:
        sys.stderr.write("tokendrop audit: error: BUILDKITE_API_TOKEN is not set\n")
        finish(2, state=state)
    report = {"summary": {"tokens": 2, "attention": code}, "tokens": [
        {"address": "tokendrop_buildkite_cluster_token.agents", "token_id": "t-1", "scope": "acme/c1",
          "attention": code == 1, "flags": [{"code": "expiring", "detail": "soon"}] if code else []},
        {"address": None, "token_id": "t-2", "scope": "acme/c1", "attention": False, "flags": []}]}
    finish(code, out=json.dumps(report), state=state)
elif TOOL == "tfc-agent":
    finish(token_matches=os.environ.get("TFC_AGENT_TOKEN") == WORLD["ssm"]["/ci/tfc-agent/runners"])
sys.stderr.write(f"fake {TOOL}: unexpected call {ARGS}\n")
finish(97)
'''
FAKES = ("buildkite-agent", "aws", "vault", "cdktf", "terraform", "tokendrop", "tfc-agent")


@dataclass
class Run:
    returncode: int
    output: str
    calls: list[dict]

    def of(self, tool: str) -> list[dict]:
        return [c for c in self.calls if c["tool"] == tool]


class Fakes:
    """A directory of fake tools first on PATH, a world they obey, and fresh canary credentials."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        (root / "artifacts").mkdir()
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        provider = root / "opt" / "tokendrop" / "bin" / "terraform-provider-tokendrop"
        provider.parent.mkdir(parents=True)
        provider.write_text("#!/bin/sh\nexit 0\n")
        provider.chmod(0o755)

        def canary(prefix: str) -> str:
            return f"{prefix}{uuid.uuid4().hex}"

        self.world = {
            "stack": "elastic-ci-stack",
            "provider": str(provider),
            "oidc": {"sts.amazonaws.com": f"eyJhws.{canary('aws')}.{canary('sig')}",
                     "vault.acme.example": f"eyJvlt.{canary('vault')}.{canary('sig')}"},
            "vault_audience": "vault.acme.example",
            "aws": ["ASIA" + uuid.uuid4().hex[:16].upper(), canary("secret-"), canary("session-")],
            "vault_token": canary("hvs."),
            "kv": {"secret/ci/tokendrop/buildkite-api": {"token": canary("bkua_")},
                   "secret/ci/tokendrop/tfe": {"token": canary("tfe.atlasv1.")}},
            "ssm": {"/ci/tfc-agent/runners": canary("agent-token-")},
            "audit_exit": 0,
        }
        self.save()
        source = FAKE_TOOL.replace("__PYTHON__", sys.executable).replace("__HOME__", repr(str(root)))
        for name in FAKES:
            (self.bin / name).write_text(source)
            (self.bin / name).chmod(0o755)

    def save(self) -> None:
        (self.root / "world.json").write_text(json.dumps(self.world))

    @property
    def secrets(self) -> list[str]:
        """Every credential value in this world (the AWS access key id is an identifier, not a secret)."""
        return [*self.world["oidc"].values(), *self.world["aws"][1:], self.world["vault_token"],
                *(f["token"] for f in self.world["kv"].values()), *self.world["ssm"].values()]

    def run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> Run:
        log = self.root / "calls.jsonl"
        log.unlink(missing_ok=True)
        base = {k: os.environ[k] for k in ("LANG", "HOME", "USER") if k in os.environ}
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env={
            **base, "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(self.tmp), **env})
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Run(done.returncode, done.stdout + done.stderr, calls)

    def assert_nothing_leaked(self, run: Run) -> None:
        for secret in self.secrets:
            assert secret not in run.output, "a credential reached the step's output"
            for call in run.calls:
                assert not any(secret in arg for arg in call["argv"]), f"a credential in the arguments of {call}"
        assert list(self.tmp.iterdir()) == [], "the step left files behind in TMPDIR"


PIPELINE_ENV = {
    "TOKENDROP_STACK": "elastic-ci-stack", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/buildkite-tokendrop-plan",
    "VAULT_ADDR": "https://vault.acme.example:8200", "VAULT_JWT_ROLE": "buildkite-tokendrop-deploy",
    "VAULT_OIDC_AUDIENCE": "vault.acme.example", "BUILDKITE_API_TOKEN_VAULT_PATH": "secret/ci/tokendrop/buildkite-api",
    "TFE_TOKEN_VAULT_PATH": "secret/ci/tokendrop/tfe", "BUILDKITE_PIPELINE_SLUG": "infra/tokendrop",
    "BUILDKITE_BUILD_NUMBER": "42", "BUILDKITE_AGENT_ACCESS_TOKEN": "agent-session-token",
    "BUILDKITE_ORGANIZATION_SLUG": "acme", "AWS_PROFILE": "agent-default",
}


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path / "fakes")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A build checkout holding the project the pipeline deploys."""
    project = tmp_path / "checkout" / "project"
    project.mkdir(parents=True)
    (project / "cdktf.json").write_text('{"language": "python", "app": "python3 main.py"}')
    return project.parent


def deploy(fakes: Fakes, checkout: Path, action: str, **env: str) -> Run:
    return fakes.run(["bash", str(BUILDKITE / "scripts" / "deploy.sh"), action], checkout,
                     {**PIPELINE_ENV, "CDKTF_PROJECT": "project", **env})


def assert_step_credentials(fakes: Fakes, call: dict) -> None:
    world = fakes.world
    assert call["env"] == {
        "AWS_ACCESS_KEY_ID": world["aws"][0], "AWS_SECRET_ACCESS_KEY": world["aws"][1],
        "AWS_SESSION_TOKEN": world["aws"][2], "VAULT_TOKEN": world["vault_token"],
        "BUILDKITE_API_TOKEN": world["kv"]["secret/ci/tokendrop/buildkite-api"]["token"],
        "TFE_TOKEN": world["kv"]["secret/ci/tokendrop/tfe"]["token"],
    }  # ...and neither the agent's own access token nor its default AWS profile


def test_plan_then_apply_with_short_lived_credentials(fakes, checkout):
    plan = deploy(fakes, checkout, "plan")
    assert plan.returncode == 0, plan.output
    fakes.assert_nothing_leaked(plan)

    # OIDC -> STS (the token in a 0600 request file, not an argument) -> Vault (the token on stdin)
    requests = plan.of("buildkite-agent")
    audiences = [c["argv"][3] for c in requests if c["argv"][:2] == ["oidc", "request-token"]]
    assert audiences == ["sts.amazonaws.com", "vault.acme.example"]
    (sts,) = plan.of("aws")
    assert sts["request_mode"] == 0o600 and not Path(sts["request"]).exists()
    assert sts["body"]["RoleArn"] == PIPELINE_ENV["AWS_ROLE_ARN"]
    assert sts["body"]["RoleSessionName"] == "buildkite-infra-tokendrop-42"
    vault = [c["argv"] for c in plan.of("vault")]
    assert vault[0] == ["write", "-field=token", "auth/jwt/login", "role=buildkite-tokendrop-deploy", "jwt=-"]
    assert vault[-1] == ["token", "revoke", "-self"]  # the Vault token does not outlive the step
    redacted = {c["stdin"] for c in requests if c["argv"][:2] == ["redactor", "add"] and c.get("stdin")}
    assert redacted == set(fakes.secrets) - set(fakes.world["oidc"].values()) - set(fakes.world["ssm"].values())

    # one synthesis, planned as is; every cdktf run gets the credentials by environment only
    cdktf = plan.of("cdktf")
    assert [c["argv"] for c in cdktf] == [["synth"], ["diff", "elastic-ci-stack", "--skip-synth"]]
    for call in cdktf:
        assert call["cwd"] == str(checkout / "project")
        assert_step_credentials(fakes, call)

    # the artifact: configuration only (no .terraform/, no saved plan), no credential
    with tarfile.open(checkout / "cdktf-out.tgz") as archive:
        names = archive.getnames()
        contents = [archive.extractfile(m).read().decode() for m in archive.getmembers() if m.isfile()]
    assert "cdktf.out/stacks/elastic-ci-stack/cdk.tf.json" in names
    assert "cdktf.out/stacks/elastic-ci-stack/.terraform.lock.hcl" in names
    assert any(n.endswith("terraform-provider-tokendrop_v0.1.0") for n in names)
    assert not [n for n in names if ".terraform/" in n or n.endswith("/plan")]
    assert not [s for s in fakes.secrets for text in contents if s in text]

    # apply, on another agent: the reviewed artifact, deployed without a new synthesis
    shutil.move(checkout / "cdktf-out.tgz", fakes.root / "artifacts" / "cdktf-out.tgz")
    shutil.rmtree(checkout / "project" / "cdktf.out")
    apply = deploy(fakes, checkout, "apply", AWS_ROLE_ARN="arn:aws:iam::123456789012:role/buildkite-tokendrop-apply")
    assert apply.returncode == 0, apply.output
    fakes.assert_nothing_leaked(apply)
    assert apply.of("buildkite-agent")[0]["argv"] == ["artifact", "download", "cdktf-out.tgz", ".", "--step", "plan"]
    assert apply.of("aws")[0]["body"]["RoleArn"].endswith("role/buildkite-tokendrop-apply")
    (deploy_call,) = apply.of("cdktf")
    assert deploy_call["argv"] == ["deploy", "elastic-ci-stack", "--skip-synth", "--auto-approve"]
    assert_step_credentials(fakes, deploy_call)


def test_apply_refuses_an_artifact_whose_provider_this_agent_lacks(fakes, checkout):
    fakes.world["provider"] = "/opt/elsewhere/bin/terraform-provider-tokendrop"
    fakes.save()
    assert deploy(fakes, checkout, "plan").returncode == 0
    shutil.move(checkout / "cdktf-out.tgz", fakes.root / "artifacts" / "cdktf-out.tgz")
    apply = deploy(fakes, checkout, "apply")
    assert apply.returncode == 1
    assert "starts the tokendrop provider with /opt/elsewhere/bin/terraform-provider-tokendrop" in apply.output
    assert apply.of("cdktf") == [] and apply.of("aws") == []  # stopped before any credential was fetched


@pytest.mark.parametrize(("missing", "message"), [
    ("AWS_ROLE_ARN", "set AWS_ROLE_ARN to the IAM role"),
    ("VAULT_JWT_ROLE", "set VAULT_JWT_ROLE"),
    ("TOKENDROP_STACK", "set TOKENDROP_STACK"),
])
def test_a_missing_setting_is_named(fakes, checkout, missing, message):
    env = {**PIPELINE_ENV, "CDKTF_PROJECT": "project"}
    del env[missing]
    run = fakes.run(["bash", str(BUILDKITE / "scripts" / "deploy.sh"), "plan"], checkout, env)
    assert run.returncode != 0 and message in run.output
    assert run.of("cdktf") == []


def test_a_refused_login_stops_the_step(fakes, checkout):
    fakes.world["oidc"]["vault.acme.example"] = "not-a-jwt"
    fakes.save()
    run = deploy(fakes, checkout, "plan")
    assert run.returncode == 1 and "the OIDC token for audience vault.acme.example is not a JWT" in run.output
    assert run.of("cdktf") == [] and run.of("vault") == []


@pytest.mark.parametrize("exit_code", [0, 1, 2])
def test_nightly_audit(fakes, checkout, exit_code):
    fakes.world["audit_exit"] = exit_code
    fakes.save()
    env = {**PIPELINE_ENV, "CDKTF_PROJECT": "project", "TFE_TOKEN_VAULT_PATH": ""}
    run = fakes.run(["bash", str(BUILDKITE / "scripts" / "audit.sh")], checkout, env)
    assert run.returncode == exit_code, run.output
    fakes.assert_nothing_leaked(run)
    (audit,) = run.of("tokendrop")
    assert audit["argv"] == ["audit", "--state", "-", "--buildkite-organization", "acme", "--no-progress", "--json"]
    assert audit["state"] == {"version": 4, "resources": []}  # piped from `terraform state pull`
    assert "TFE_TOKEN" not in audit["env"] and "BUILDKITE_AGENT_ACCESS_TOKEN" not in audit["env"]
    assert audit["env"]["BUILDKITE_API_TOKEN"] == fakes.world["kv"]["secret/ci/tokendrop/buildkite-api"]["token"]
    report = checkout / "audit.json"
    if exit_code == 0:
        assert "nothing needs attention" in run.output and report.exists()
    elif exit_code == 1:
        assert "tokendrop_buildkite_cluster_token.agents: expiring" in run.output
        assert "1 of 2 tokens need attention" in run.output and report.exists()
    else:
        assert "could not run (exit 2)" in run.output and not report.exists()


def test_tfc_agent_entrypoint(fakes, tmp_path):
    entrypoint = str(TFC_AGENT / "entrypoint.sh")
    env = {"TFC_AGENT_TOKEN_PARAMETER": "/ci/tfc-agent/runners", "AWS_REGION": "eu-west-1",
           "TFC_AGENT_BIN": str(fakes.bin / "tfc-agent")}
    run = fakes.run(["bash", entrypoint], tmp_path, env)
    assert run.returncode == 0, run.output
    fakes.assert_nothing_leaked(run)
    (get,) = run.of("aws")
    assert get["argv"] == ["ssm", "get-parameter", "--name", "/ci/tfc-agent/runners", "--with-decryption",
                           "--query", "Parameter.Value", "--output", "text"]
    (agent,) = run.of("tfc-agent")
    assert agent["token_matches"] and agent["argv"] == []
    assert "read from SSM parameter /ci/tfc-agent/runners" in run.output

    missing = fakes.run(["bash", entrypoint], tmp_path, {**env, "TFC_AGENT_TOKEN_PARAMETER": "/ci/nope"})
    assert missing.returncode == 1 and "cannot read SSM parameter /ci/nope" in missing.output
    assert missing.of("tfc-agent") == []
    preset = fakes.run(["bash", entrypoint], tmp_path, {**env, "TFC_AGENT_TOKEN": "typed-in"})
    assert preset.returncode == 1 and "TFC_AGENT_TOKEN is already set" in preset.output
    unconfigured = {k: v for k, v in env.items() if k != "TFC_AGENT_TOKEN_PARAMETER"}
    unset = fakes.run(["bash", entrypoint], tmp_path, unconfigured)
    assert unset.returncode != 0 and "set TFC_AGENT_TOKEN_PARAMETER" in unset.output


def test_the_leak_check_catches_a_printed_credential(fakes, tmp_path):
    script = tmp_path / "leaky.sh"
    script.write_text('#!/usr/bin/env bash\nset -euo pipefail\nt=$(aws ssm get-parameter --name /ci/tfc-agent/runners '
                      '--with-decryption --query Parameter.Value --output text)\necho "$t"\n')
    run = fakes.run(["bash", str(script)], tmp_path, {})
    with pytest.raises(AssertionError, match="reached the step's output"):
        fakes.assert_nothing_leaked(run)


def test_modes_of_the_scripts():
    for script in SCRIPTS:
        executable = bool(script.stat().st_mode & stat.S_IXUSR)
        assert executable == (script.name != "credentials.sh"), script  # credentials.sh is sourced, not run
