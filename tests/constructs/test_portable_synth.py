"""Portable stacks: a stack applied somewhere else (HCP Terraform / TFE via a `cloud` block or `remote`
backend, `portable=True`, or the `tokendrop:portable` context flag) gets the self-contained provider as a
packed zip in its implied mirror, locked by that zip's h1:/zh: hashes, and no launcher naming this
machine's virtualenv. The run on a Python-less worker is in tests/e2e/test_portable_stack.py."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tokendrop import SsmParameter, TfeAgentPool, TokendropProvider, TokendropValidationError
from tokendrop import _offline as offline
from tokendrop_provider import package
from tokendrop_provider.freeze import FrozenBuild
from tokendrop_provider.install import provider_version, terraform_platform
from tokendrop_provider.schema import PROVIDER_SOURCE

VERSION = provider_version()
PROVIDER_DIR = Path(offline.MIRROR) / PROVIDER_SOURCE
ZIP = PROVIDER_DIR / package.archive_name(VERSION, "linux_amd64")


def synthesize(core: ModuleType, tmp_path: Path, *, portable: bool | None = None, backend: str | None = None,
               context: dict[str, Any] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = core.App(outdir=str(tmp_path / "out"), context=context or {})
    stack = core.TerraformStack(app, "agents")
    if backend == "cloud":
        core.CloudBackend(stack, organization="acme", workspaces=core.NamedCloudWorkspace("agents"))
    elif backend == "remote":
        core.RemoteBackend(stack, organization="acme", workspaces=core.NamedRemoteWorkspace(name="agents"))
    TokendropProvider(stack, "tokendrop", portable=portable)
    TfeAgentPool(stack, "pool", organization="acme", name="p").add_token("t", deliver_to=SsmParameter("/t"))
    app.synth()
    return tmp_path / "out" / "stacks" / "agents"


def assert_portable(directory: Path, frozen: FrozenBuild) -> None:
    archive = directory / ZIP
    assert sorted(p.relative_to(directory / PROVIDER_DIR) for p in (directory / PROVIDER_DIR).rglob("*")) == \
        [Path(ZIP.name)]  # the zip only: no launcher directory beside it
    _cached, h1, zh = package.frozen_archive(frozen, "linux_amd64")
    assert package.zh_zip(archive) == zh
    lock = (directory / offline.LOCK_FILE).read_text()
    assert package.lock_file_hashes(lock) == {h1, zh}
    assert str(Path.cwd()) not in lock


def test_recorded_hashes_are_those_of_the_frozen_build(frozen_provider: FrozenBuild) -> None:
    cached, h1, zh = package.frozen_archive(frozen_provider, "linux_amd64")
    assert h1 == package.h1_zip(cached) == package.h1_dir(frozen_provider.directory)  # unpacks to the build
    assert zh == package.zh_zip(cached)


@pytest.mark.parametrize("backend", ["cloud", "remote"])
def test_remote_execution_backend_makes_the_stack_portable(core: ModuleType, tmp_path: Path, backend: str,
                                                           frozen_provider: FrozenBuild) -> None:
    assert_portable(synthesize(core, tmp_path, backend=backend), frozen_provider)


def test_portable_option_and_context_flag(cdktf: ModuleType, tmp_path: Path, frozen_provider: FrozenBuild) -> None:
    assert_portable(synthesize(cdktf, tmp_path / "option", portable=True), frozen_provider)
    assert_portable(synthesize(cdktf, tmp_path / "context", context={"tokendrop:portable": "true"}),
                    frozen_provider)


def test_explicit_false_keeps_the_launcher_and_resynthesis_switches_back(cdktf: ModuleType, tmp_path: Path,
                                                                        frozen_provider: FrozenBuild) -> None:
    portable = synthesize(cdktf, tmp_path, portable=True)
    assert (portable / ZIP).is_file()
    local = synthesize(cdktf, tmp_path, backend="cloud", portable=False)  # same outdir: synthesized again
    assert not (local / ZIP).exists()
    launcher = local / PROVIDER_DIR / VERSION / terraform_platform() / f"terraform-provider-tokendrop_v{VERSION}"
    assert launcher.is_file()
    lock = (local / offline.LOCK_FILE).read_text()
    assert package.lock_file_hashes(lock) == {offline.package_hash(launcher.parent)}


def test_resynthesis_leaves_the_zip_and_lock_alone(cdktf: ModuleType, tmp_path: Path,
                                                   frozen_provider: FrozenBuild) -> None:
    directory = synthesize(cdktf, tmp_path, portable=True)
    before = [(directory / p).stat().st_mtime_ns for p in (ZIP, offline.LOCK_FILE)]
    offline.install_portable(directory)
    assert [(directory / p).stat().st_mtime_ns for p in (ZIP, offline.LOCK_FILE)] == before


def test_plain_stack_is_not_portable(cdktf: ModuleType, tmp_path: Path) -> None:
    directory = synthesize(cdktf, tmp_path)
    assert not (directory / ZIP).exists()
    assert (directory / PROVIDER_DIR / VERSION / terraform_platform()).is_dir()


@pytest.mark.parametrize("flag", ["maybe", "2"])
def test_bad_context_flag_names_it(cdktf: ModuleType, tmp_path: Path, flag: str) -> None:
    with pytest.raises(TokendropValidationError, match=r"portable.*tokendrop:portable must be true or false"):
        synthesize(cdktf, tmp_path, context={"tokendrop:portable": flag})


def test_bad_portable_option_names_it(cdktf: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(TokendropValidationError, match=r"portable.*must be True or False"):
        synthesize(cdktf, tmp_path, portable="yes")  # type: ignore[arg-type]


def test_runs_remotely_reads_the_synthesized_backend() -> None:
    assert offline.runs_remotely({"terraform": {"cloud": {"organization": "acme"}}})
    assert offline.runs_remotely({"terraform": {"backend": {"remote": {"organization": "acme"}}}})
    assert not offline.runs_remotely({"terraform": {"backend": {"s3": {"bucket": "b"}}}})
    assert not offline.runs_remotely({})
