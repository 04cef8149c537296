"""A configuration applied on a worker that has nothing installed: HCP Terraform's remote runs as far
as they can be reproduced here. The "upload" is a copy of the synthesized stack (cdktf, `CloudBackend`)
or of examples/hcl-remote into a fresh directory; the "worker" runs `terraform init && terraform apply`
there with a PATH that holds only terraform and coreutils (no Python), a fresh HOME, no CLI
configuration, and a backend override in place of the `cloud` block (as HCP Terraform's workers do).
Each test checks that the token reached SSM and that the provider process Terraform started was the
frozen executable (its /proc/<pid>/exe), byte for byte the build's."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokendrop_provider import freeze, package
from tokendrop_provider.schema import PROVIDER_SOURCE

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hcl-remote"
COREUTILS = ("cat", "cp", "ls", "mkdir", "mv", "rm", "ln", "chmod", "env", "sleep", "true", "false", "echo",
             "head", "tail", "sort", "uname", "dirname", "basename", "pwd", "readlink", "touch", "sha256sum")


@pytest.fixture
def worker_env(tmp_path: Path, sandbox) -> dict[str, str]:
    """The worker's environment: sandbox settings, PATH = terraform + coreutils only, a fresh HOME."""
    bin_dir = tmp_path / "worker-bin"
    bin_dir.mkdir()
    terraform = shutil.which("terraform")
    assert terraform, "terraform is not on PATH"
    (bin_dir / "terraform").symlink_to(os.path.realpath(terraform))
    for name in COREUTILS:
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    home = tmp_path / "worker-home"
    home.mkdir()
    env = {"PATH": str(bin_dir), "HOME": str(home), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
           "TF_CLI_CONFIG_FILE": os.devnull, **sandbox.env}
    assert not [p for p in ("python", "python3", "python3.11", "sh") if shutil.which(p, path=env["PATH"])]
    return env


def upload(source: Path, worker: Path) -> Path:
    """What a configuration upload carries: the directory, without local Terraform state or caches."""
    shutil.copytree(source, worker, ignore=shutil.ignore_patterns(".terraform", "terraform.tfstate*"))
    # HCP Terraform replaces the configuration's backend on its workers; here: local state.
    (worker / "zz_worker_backend_override.tf.json").write_text(json.dumps(
        {"terraform": {"backend": {"local": {"path": "terraform.tfstate"}}}}))
    return worker


def child_executables(parent: int) -> set[str]:
    """/proc/<pid>/exe of every live child of `parent`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.add(os.readlink(entry / "exe"))
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile, or not ours to read
    return found


def terraform(worker: Path, env: dict[str, str], *args: str) -> tuple[str, set[str]]:
    """Run terraform on the worker; (output, executables of the processes it started)."""
    proc = subprocess.Popen(["terraform", *args, "-no-color", "-input=false"], cwd=worker, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            executable=str(Path(env["PATH"]) / "terraform"))
    seen: set[str] = set()
    while proc.poll() is None:  # the provider lives through each command; look at it while it does
        seen |= child_executables(proc.pid)
        time.sleep(0.005)
    output = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, output
    return output, seen


def installed_executable(worker: Path, frozen: freeze.FrozenBuild) -> Path:
    return worker / ".terraform" / "providers" / PROVIDER_SOURCE / frozen.version / "linux_amd64" / \
        freeze.executable_name(frozen.version)


def apply_on_worker(worker: Path, env: dict[str, str], frozen: freeze.FrozenBuild) -> None:
    output, _ = terraform(worker, env, "init", "-lockfile=readonly")
    assert "tokendrop/tokendrop" in output
    executable = installed_executable(worker, frozen)
    assert filecmp.cmp(executable, frozen.executable, shallow=False)
    _, started = terraform(worker, env, "apply", "-auto-approve")
    assert str(executable.resolve()) in started, started


def test_cdktf_stack_with_cloud_backend_applies_on_a_python_less_worker(tmp_path: Path, sandbox, worker_env,
                                                                         frozen_provider: freeze.FrozenBuild
                                                                         ) -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import cdktf

    from tokendrop import SsmParameter, TfeAgentPool, TokendropProvider

    app = cdktf.App(outdir=str(tmp_path / "cdktf.out"))
    stack = cdktf.TerraformStack(app, "agents")
    cdktf.CloudBackend(stack, organization="acme", workspaces=cdktf.NamedCloudWorkspace("agents"))
    TokendropProvider(stack, "tokendrop")
    TfeAgentPool(stack, "pool", organization="acme", name="remote").add_token(
        "runners", deliver_to=SsmParameter("/remote/cdktf"))
    app.synth()
    synthesized = tmp_path / "cdktf.out" / "stacks" / "agents"
    assert "cloud" in json.loads((synthesized / "cdk.tf.json").read_text())["terraform"]

    worker = upload(synthesized, tmp_path / "worker")
    apply_on_worker(worker, worker_env, frozen_provider)
    [minted] = sandbox.minted()
    assert sandbox.ssm_value("/remote/cdktf") == (minted["value"], 1)


def test_hcl_remote_example_applies_on_a_python_less_worker(tmp_path: Path, sandbox, worker_env,
                                                            frozen_provider: freeze.FrozenBuild) -> None:
    configuration = tmp_path / "hcl-remote"
    shutil.copytree(EXAMPLE, configuration)
    # The steps of examples/hcl-remote/README.md, with this checkout's tokendrop command.
    tokendrop = Path(sys.executable).parent / "tokendrop"
    proc = subprocess.run([str(tokendrop), "provider", "package", "--self-contained", "--platform", "linux_amd64",
                           "--out", "terraform.d/plugins"], cwd=configuration, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-contained, no Python needed" in proc.stdout
    (configuration / "terraform.d" / "plugins" / ".terraform.lock.hcl").rename(configuration / ".terraform.lock.hcl")
    for sums in (configuration / "terraform.d" / "plugins").glob("*_SHA256SUMS"):
        sums.unlink()
    _cached, h1, zh = package.frozen_archive(frozen_provider, "linux_amd64")
    assert package.lock_file_hashes((configuration / ".terraform.lock.hcl").read_text()) == {h1, zh}

    worker = upload(configuration, tmp_path / "worker")
    apply_on_worker(worker, worker_env, frozen_provider)
    [minted] = sandbox.minted()
    assert sandbox.ssm_value("/ci/tfc-agent/remote") == (minted["value"], 1)


@pytest.mark.cdktf
def test_cdktf_deploy_of_a_portable_stack(tmp_path: Path, sandbox, frozen_provider: freeze.FrozenBuild) -> None:
    """`cdktf deploy` of the repository's ci-agents stack with the context flag `tokendrop:portable`: the
    CLI's own init (no `providers lock`, since the lock names the zip) installs and runs the frozen build."""
    from fixtures.cdk_cli import REPO, STACK, CdkCli, cli_env, copy_project

    cli = REPO / "node_modules" / ".bin" / "cdktf"
    project = copy_project(tmp_path, cli, "cdktf-cli is not installed: run `npm ci`")
    config = json.loads((project / "cdktf.json").read_text())
    config["context"]["tokendrop:portable"] = True
    (project / "cdktf.json").write_text(json.dumps(config, indent=2))
    workspaces = [sandbox.tfe.workspace_id("acme", n) for n in ("app-prod", "app-staging")]
    cdktf = CdkCli(cli, project, cli_env(project, sandbox.env, workspaces,
                                         JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20"))

    output = cdktf("deploy", STACK, "--auto-approve")
    assert "Apply complete! Resources: 3 added" in output and "providers lock" not in output
    stack_dir = project / "cdktf.out" / "stacks" / STACK
    assert [p.name for p in (stack_dir / "terraform.d").rglob("*") if p.is_file()] == \
        [package.archive_name(frozen_provider.version, "linux_amd64")]
    assert filecmp.cmp(installed_executable(stack_dir, frozen_provider), frozen_provider.executable, shallow=False)
    [runners] = [r["instances"][0]["attributes"] for r in cdktf.state()["resources"]
                 if r["instances"][0]["attributes"].get("sink_address") == "ssm:/ci/tfc-agent/runners"]
    value, version = sandbox.ssm_value("/ci/tfc-agent/runners")
    assert value == sandbox.token_value(runners["id"]) and version == runners["sink_version"] == 1
