"""Offline installation of the tokendrop provider for synthesized stacks.

`cdktf deploy` runs, in `cdktf.out/stacks/<stack>`: `terraform init`, then — when that directory has no
`.terraform.lock.hcl` yet, or the lock misses a required provider — `terraform providers lock
-platform=linux_amd64`, which always asks the provider's origin registry and fails for a provider that
only exists locally (see cdktf-cli's cdktf-stack.ts `checkNeedsLockfileUpdate`).

So, once per stack and after cdktf has written the stack, the stack's synthesizer also writes:

1. the provider launcher into the stack's implied local mirror,
   `terraform.d/plugins/registry.terraform.io/tokendrop/tokendrop/<version>/<os>_<arch>/`, which
   `terraform init` searches with no CLI configuration (cdktf runs terraform in the stack directory);
2. the provider's entry in `.terraform.lock.hcl` (version, constraint and the `h1:` hash of that
   directory, computed as Terraform does), so cdktf finds the lock complete and skips
   `providers lock`. Entries of other providers in an existing lock file are kept.

**Portable stacks.** A stack whose configuration is run elsewhere — uploaded to HCP Terraform / TFE by
a `cloud` or `remote` backend, or applied by another CI job — cannot use that launcher: it execs this
machine's virtualenv. Such a stack (a `cloud` block or a `remote` backend in the synthesized
configuration, `TokendropProvider(..., portable=True)`, or the context flag `tokendrop:portable`) gets the
self-contained provider instead (tokendrop_provider.freeze: interpreter included, for linux_amd64), as a
packed zip in the same implied mirror, and a lock entry with that zip's `h1:` and `zh:` hashes.

cdktf never deletes a stack directory that is still synthesized, so both survive until deploy.
An explicit `provider_installation` block in the user's CLI configuration disables implied mirrors:
the provider construct warns about it at synth time (see `explicit_installation_config`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from tokendrop_provider.install import Installed, install, provider_executable, store_schema_answer_in_child

MIRROR = Path("terraform.d") / "plugins"
LOCK_FILE = ".terraform.lock.hcl"
_LOCK_HEADER = ('# This file is maintained automatically by "terraform init".\n'
                "# Manual edits may be lost in future updates.\n")


# --- the lock file --------------------------------------------------------------------------------

def package_hash(directory: Path) -> str:
    """Terraform's `h1:` hash of an unpacked provider package: SHA-256 over the sorted lines
    `<sha256 of file>  <relative path>` of every file in the directory (Go's dirhash Hash1)."""
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    summary = "".join(f"{hashlib.sha256((directory / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def lock_block(source: str, version: str, constraints: str, hashes: list[str]) -> str:
    lines = [f'provider "{source}" {{', f'  version     = "{version}"', f'  constraints = "{constraints}"',
             "  hashes = ["]
    lines += [f'    "{h}",' for h in hashes]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _block_pattern(source: str) -> re.Pattern[str]:
    return re.compile(rf'^provider "{re.escape(source)}" \{{\n(?:.*\n)*?\}}\n?', re.MULTILINE)


def merge_lock(existing: str | None, source: str, version: str, package_hashes: str | list[str]) -> str | None:
    """The lock file with our provider's entry current, or None when `existing` is already right.
    Only our entry changes; an entry that already lists our hashes for this version stays as it is
    (it may carry more hashes, e.g. from `tokendrop provider package`)."""
    hashes = [package_hashes] if isinstance(package_hashes, str) else list(package_hashes)
    block = lock_block(source, version, version, hashes)
    if not existing:
        return f"{_LOCK_HEADER}\n{block}"
    match = _block_pattern(source).search(existing)
    if match is None:
        return existing.rstrip("\n") + "\n\n" + block
    current = match.group(0)
    if f'version     = "{version}"' in current and f'constraints = "{version}"' in current \
            and all(f'"{h}"' in current for h in hashes):
        return None
    return existing[: match.start()] + block + existing[match.end():]


# --- installing into a stack directory -------------------------------------------------------------

def install_into(working_directory: Path, executable: Path | None = None) -> Installed:
    """Write the launcher into the stack's implied mirror and our entry into its lock file. Idempotent:
    unchanged files are not rewritten (their hashes and timestamps stay put)."""
    installed = install(working_directory / MIRROR, executable=executable, store_schema=False)
    store_schema_answer_in_child()
    versions = installed.path.parent.parent.parent  # .../<source>/<version>/<platform>/<file>
    for other in versions.iterdir():
        if other.is_dir() and other.name != installed.version:
            shutil.rmtree(other)  # a launcher left by an older tokendrop would confuse `init -upgrade`
    for stale in versions.glob("*.zip"):
        stale.unlink()  # a portable package from an earlier synthesis would shadow the launcher
    _write_lock(working_directory, installed.source, installed.version, [package_hash(installed.path.parent)])
    return installed


def _write_lock(working_directory: Path, source: str, version: str, hashes: list[str]) -> None:
    lock = working_directory / LOCK_FILE
    existing = lock.read_text() if lock.exists() else None
    merged = merge_lock(existing, source, version, hashes)
    if merged is not None:
        tmp = lock.with_name(lock.name + ".tmp")
        tmp.write_text(merged)
        os.replace(tmp, lock)


def install_portable(working_directory: Path) -> Path:
    """Put the self-contained provider (built, or taken from the build cache) into the stack's implied
    mirror as a packed zip, remove any launcher, and lock the zip's hashes. Returns the zip's path.
    Raises FreezeError where it cannot be built (not linux_amd64, no PyInstaller)."""
    from tokendrop_provider import freeze, package  # synth of a portable stack only: the build machinery

    frozen = freeze.build_frozen()
    platform = freeze.FROZEN_PLATFORMS[0]
    cached, h1, zh = package.frozen_archive(frozen, platform)
    versions = package.provider_dir(working_directory / MIRROR)
    target = versions / package.archive_name(frozen.version, platform)
    versions.mkdir(parents=True, exist_ok=True)
    for other in versions.iterdir():
        if other != target:  # unpacked launchers and other versions: one package per version and platform
            shutil.rmtree(other) if other.is_dir() else other.unlink()
    if not target.exists() or not (os.path.samefile(target, cached) or package.zh_zip(target) == zh):
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            os.link(cached, partial)  # the cached zip never changes: share its blocks when we can
        except OSError:
            shutil.copyfile(cached, partial)
        os.replace(partial, target)
    _write_lock(working_directory, package.PROVIDER_SOURCE, frozen.version, [h1, zh])
    return target


# --- which stacks are portable -------------------------------------------------------------------------

PORTABLE_CONTEXT = "tokendrop:portable"


def runs_remotely(synthesized: dict[str, Any]) -> bool:
    """True when the synthesized configuration uploads itself for remote execution: a `cloud` block,
    or the `remote` backend (HCP Terraform / TFE), which run plans and applies on their workers."""
    terraform = synthesized.get("terraform") or {}
    return bool(terraform.get("cloud")) or "remote" in (terraform.get("backend") or {})


def portable_flag(value: Any) -> bool | None:
    """The context flag's value: true/false (also as strings, as `cdktf synth --context` gives them)."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"context {PORTABLE_CONTEXT} must be true or false, not {value!r}")


def wants_portable(option: bool | None, context: bool | None, synthesized: dict[str, Any]) -> bool:
    """The construct option wins, then the context flag, then the backend."""
    for explicit in (option, context):
        if explicit is not None:
            return explicit
    return runs_remotely(synthesized)


def find_executable() -> Path | None:
    try:
        return provider_executable()
    except FileNotFoundError:
        return None


# --- the user's Terraform CLI configuration ----------------------------------------------------------

_INSTALLATION_BLOCK = re.compile(r"^\s*provider_installation\s*\{", re.MULTILINE)


def cli_config_path(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("TF_CLI_CONFIG_FILE") or env.get("TERRAFORM_CONFIG")
    return Path(explicit) if explicit else Path.home() / ".terraformrc"


def explicit_installation_config(env: dict[str, str] | os._Environ[str] | None = None) -> Path | None:
    """The CLI configuration file, when it has a `provider_installation` block that would hide the
    stack's implied mirror from Terraform and does not mention tokendrop itself."""
    path = cli_config_path(env)
    try:
        text = path.read_text()
    except OSError:
        return None
    if _INSTALLATION_BLOCK.search(text) and "tokendrop" not in text:
        return path
    return None


def installation_warning(config: Path, outdir: str, stack_name: str) -> str:
    mirror = Path(outdir).resolve() / "stacks" / stack_name / MIRROR
    return (f"Your Terraform CLI configuration ({config}) has a provider_installation block, so Terraform "
            f"ignores implied local mirrors such as {mirror}, where tokendrop installs its provider for this "
            f'stack. Add to that block: filesystem_mirror {{ path = "{mirror}" '
            'include = ["registry.terraform.io/tokendrop/*"] } and exclude the same pattern from `direct`; '
            "or run `tokendrop provider install --dir <mirror>` and use the configuration it prints.")


# --- the synthesis hook ---------------------------------------------------------------------------

_WRAPPERS: dict[str, type] = {}
_LOCK = threading.Lock()


def _wrapper_class(core: ModuleType) -> type:
    with _LOCK:
        wrapper = _WRAPPERS.get(core.__name__)
        if wrapper is None:
            import jsii  # already loaded by the core

            @jsii.implements(core.IStackSynthesizer)
            class OfflineProviderSynthesizer:
                """Delegates to the stack's synthesizer, then installs the provider into the stack's
                working directory. Runs for real synthesis only (App.synth, Testing.full_synth)."""

                def __init__(self, stack: Any, inner: Any, executable: Path | None, portable: bool | None,
                             context: bool | None) -> None:
                    self._stack = stack
                    self._inner = inner
                    self._executable = executable
                    self.portable = portable
                    self._context = context

                def synthesize(self, session: Any) -> None:
                    self._inner.synthesize(session)
                    manifest = session.manifest.for_stack(self._stack)
                    directory = Path(session.outdir) / manifest.working_directory
                    written = Path(session.outdir) / manifest.synthesized_stack_path
                    # `cdktf synth --hcl` writes cdk.tf: ask the stack for the JSON form instead.
                    synthesized = (json.loads(written.read_text()) if written.suffix == ".json"
                                   else self._stack.to_terraform())
                    if wants_portable(self.portable, self._context, synthesized):
                        install_portable(directory)
                        return
                    if self._executable is None:
                        return  # warned about at construction
                    install_into(directory, self._executable)

            wrapper = _WRAPPERS[core.__name__] = OfflineProviderSynthesizer
        return wrapper


def hook_stack(stack: Any, core: ModuleType, executable: Path | None, portable: bool | None = None) -> bool:
    """Wrap the stack's synthesizer once; False when it was already wrapped (a second provider block,
    whose `portable=True` still makes the stack portable)."""
    wrapper = _wrapper_class(core)
    if isinstance(stack.synthesizer, wrapper):  # jsii hands back our own Python object
        if portable:
            stack.synthesizer.portable = True
        return False
    context = portable_flag(stack.node.try_get_context(PORTABLE_CONTEXT))
    stack.synthesizer = wrapper(stack, stack.synthesizer, executable, portable, context)
    return True
