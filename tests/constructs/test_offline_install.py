"""Synthesis installs the provider into each stack's implied local mirror and records it in the stack's
lock file, so `terraform init` (and cdktf, which skips `providers lock` when the lock is complete) need no
network. Once per stack, idempotent, and only during real synthesis."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tokendrop import SsmParameter, TfeAgentPool, TokendropProvider
from tokendrop import _offline as offline
from tokendrop_provider.install import PROVIDER_TYPE, install, provider_executable, provider_version, terraform_platform
from tokendrop_provider.schema import PROVIDER_SOURCE

VERSION = provider_version()
PLUGIN = Path(offline.MIRROR) / PROVIDER_SOURCE / VERSION / terraform_platform()
LAUNCHER = PLUGIN / f"terraform-provider-{PROVIDER_TYPE}_v{VERSION}"
TERRAFORM_ENV = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")


def define(stack):
    TokendropProvider(stack, "tokendrop")
    TfeAgentPool(stack, "pool", organization="acme", name="p").add_token("t", deliver_to=SsmParameter("/t"))


@pytest.fixture
def full_synth(core):
    """Testing.full_synth, cleaning up its temporary output directories."""
    made: list[str] = []

    def run(stack) -> Path:
        made.append(core.Testing.full_synth(stack))
        return Path(made[-1])

    yield run
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


def test_synthesis_writes_launcher_and_lock(core, stack, full_synth):
    define(stack)
    directory = full_synth(stack) / "stacks" / "ci-agents"
    launcher = directory / LAUNCHER
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    assert str(provider_executable()) in launcher.read_text()
    lock = (directory / offline.LOCK_FILE).read_text()
    assert f'provider "{PROVIDER_SOURCE}"' in lock
    assert f'version     = "{VERSION}"' in lock and f'constraints = "{VERSION}"' in lock
    assert f'"{offline.package_hash(launcher.parent)}"' in lock


def test_testing_synth_writes_nothing(core, stack, tmp_path, monkeypatch):
    # Testing.synth renders JSON only; the stack's synthesizer (and so the install) is not involved.
    calls = []
    monkeypatch.setattr(offline, "install_into", lambda *a, **k: calls.append(a))
    define(stack)
    core.Testing.synth(stack)
    assert calls == []


@needs_terraform
def test_terraform_init_and_validate_offline(core, stack, full_synth):
    define(stack)
    assert core.Testing.to_be_valid_terraform(str(full_synth(stack)))  # runs terraform init + validate


@needs_terraform
def test_package_hash_is_terraforms(tmp_path):
    install(tmp_path / offline.MIRROR)
    (tmp_path / "main.tf.json").write_text(
        '{"terraform": {"required_providers": {"tokendrop": {"source": "tokendrop/tokendrop"}}}}')
    done = subprocess.run(["terraform", "init", "-no-color", "-backend=false"], cwd=tmp_path, env=TERRAFORM_ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f'"{offline.package_hash(tmp_path / PLUGIN)}"' in (tmp_path / ".terraform.lock.hcl").read_text()


def test_once_per_stack_and_idempotent(cdktf, tmp_path, monkeypatch):
    installs: list[Path] = []
    real = offline.install_into
    monkeypatch.setattr(offline, "install_into", lambda d, e=None: installs.append(d) or real(d, e))
    app = cdktf.App(outdir=str(tmp_path / "out"))
    for name in ("one", "two"):
        stack = cdktf.TerraformStack(app, name)
        define(stack)
        TokendropProvider(stack, "second", alias="second")  # a second block: no second hook
        for i in range(5):
            TfeAgentPool(stack, f"extra{i}", organization="acme", name=f"p{i}")
    plain = cdktf.TerraformStack(app, "plain")  # no tokendrop: nothing installed there
    cdktf.TerraformOutput(plain, "x", value="y")
    app.synth()
    assert sorted(p.name for p in installs) == ["one", "two"]
    assert not (tmp_path / "out" / "stacks" / "plain" / "terraform.d").exists()

    launcher = tmp_path / "out" / "stacks" / "one" / LAUNCHER
    lock = tmp_path / "out" / "stacks" / "one" / offline.LOCK_FILE
    before = (launcher.stat().st_mtime_ns, lock.stat().st_mtime_ns)
    offline.install_into(tmp_path / "out" / "stacks" / "one")
    assert (launcher.stat().st_mtime_ns, lock.stat().st_mtime_ns) == before  # nothing rewritten


def test_launchers_of_other_versions_are_removed(tmp_path):
    stale = tmp_path / offline.MIRROR / PROVIDER_SOURCE / "0.0.1" / terraform_platform()
    stale.mkdir(parents=True)
    (stale / "terraform-provider-tokendrop_v0.0.1").write_text("#!/bin/sh\n")
    offline.install_into(tmp_path)
    assert not stale.parent.exists()
    assert (tmp_path / LAUNCHER).exists()


OTHER = '''provider "registry.terraform.io/hashicorp/aws" {
  version     = "6.0.0"
  constraints = "~> 6.0"
  hashes = [
    "h1:aws=",
  ]
}
'''


def test_merge_lock_new_file():
    merged = offline.merge_lock(None, PROVIDER_SOURCE, "1.2.3", "h1:abc=")
    assert merged is not None and merged.startswith("# This file is maintained automatically")
    assert offline.lock_block(PROVIDER_SOURCE, "1.2.3", "1.2.3", ["h1:abc="]) in merged


def test_merge_lock_keeps_other_providers():
    merged = offline.merge_lock(OTHER, PROVIDER_SOURCE, "1.2.3", "h1:abc=")
    assert merged is not None and merged.startswith(OTHER)
    assert merged.count("provider ") == 2


def test_merge_lock_replaces_only_a_stale_entry():
    stale = OTHER + "\n" + offline.lock_block(PROVIDER_SOURCE, "1.2.2", "1.2.2", ["h1:old="]) + "\n" + OTHER.replace(
        "hashicorp/aws", "hashicorp/null")
    merged = offline.merge_lock(stale, PROVIDER_SOURCE, "1.2.3", "h1:abc=")
    assert merged is not None
    assert "h1:old=" not in merged and '"h1:abc="' in merged and 'version     = "1.2.3"' in merged
    assert "hashicorp/aws" in merged and "hashicorp/null" in merged


def test_merge_lock_leaves_a_current_entry_alone():
    current = OTHER + "\n" + offline.lock_block(PROVIDER_SOURCE, "1.2.3", "1.2.3", ["h1:abc=", "zh:more"])
    assert offline.merge_lock(current, PROVIDER_SOURCE, "1.2.3", "h1:abc=") is None


def test_explicit_provider_installation_is_warned_about(core, stack, tmp_path, monkeypatch):
    config = tmp_path / "cli.tfrc"
    config.write_text('provider_installation {\n  direct {}\n}\n')
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(config))
    provider = TokendropProvider(stack, "tokendrop")
    warnings = [str(m.data) for m in provider.node.metadata if "warn" in m.type]
    assert len(warnings) == 1 and str(config) in warnings[0] and "filesystem_mirror" in warnings[0]
    assert "stacks/ci-agents/terraform.d/plugins" in warnings[0]


def test_a_configuration_that_names_tokendrop_is_fine(tmp_path):
    config = tmp_path / "cli.tfrc"
    config.write_text('provider_installation {\n  filesystem_mirror {\n    path = "/m"\n'
                      '    include = ["registry.terraform.io/tokendrop/*"]\n  }\n  direct {}\n}\n')
    assert offline.explicit_installation_config({"TF_CLI_CONFIG_FILE": str(config)}) is None
    assert offline.explicit_installation_config({"TF_CLI_CONFIG_FILE": os.devnull}) is None
    assert offline.explicit_installation_config({"TF_CLI_CONFIG_FILE": str(tmp_path / "missing")}) is None


def test_missing_provider_executable_is_warned_about(core, stack, monkeypatch, full_synth):
    monkeypatch.setattr(offline, "find_executable", lambda: None)
    provider = TokendropProvider(stack, "tokendrop")
    warnings = [str(m.data) for m in provider.node.metadata if "warn" in m.type]
    assert any("terraform-provider-tokendrop is not installed" in w for w in warnings)
    directory = full_synth(stack) / "stacks" / "ci-agents"
    assert (directory / "cdk.tf.json").exists() and not (directory / "terraform.d").exists()
