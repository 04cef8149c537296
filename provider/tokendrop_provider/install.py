"""Offline installation of the provider into a Terraform plugin mirror.

The mirror entry is a small launcher script that execs this installation's provider executable, so
`terraform init` finds the provider with no network and records it in the lock file. (The lock
file's hash covers the launcher, which names this machine's Python environment; see
`tokendrop provider package` for a portable artifact.)
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import stat
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .schema import PROVIDER_SOURCE

PROVIDER_TYPE = "tokendrop"


def provider_version() -> str:
    try:
        return metadata.version("tokendrop")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def terraform_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{sys.platform.replace('linux2', 'linux')}_{arch}"


def provider_executable() -> Path:
    """The `terraform-provider-tokendrop` console script of this Python environment."""
    candidate = Path(sys.executable).parent / "terraform-provider-tokendrop"
    if candidate.exists():
        return candidate
    found = shutil.which("terraform-provider-tokendrop")
    if found:
        return Path(found)
    raise FileNotFoundError("terraform-provider-tokendrop is not installed in this Python environment "
                            "(pip install tokendrop)")


def launcher_script(executable: Path) -> str:
    return ("#!/bin/sh\n"
            "# tokendrop provider launcher, written by `tokendrop provider install`.\n"
            f"exec {shlex.quote(str(executable))} \"$@\"\n")


@dataclass(frozen=True)
class Installed:
    mirror: Path
    path: Path
    source: str
    version: str
    platform: str

    def cli_config(self) -> str:
        host_ns = "/".join(self.source.split("/")[:2])
        return (
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f"    path    = \"{self.mirror}\"\n"
            f"    include = [\"{host_ns}/*\"]\n"
            "  }\n"
            "  direct {\n"
            f"    exclude = [\"{host_ns}/*\"]\n"
            "  }\n"
            "}\n"
        )


def default_mirror() -> Path:
    """Terraform's implied local mirror in the user's home directory."""
    return Path.home() / ".terraform.d" / "plugins"


def install(mirror: Path | None = None, executable: Path | None = None, version: str | None = None,
            target_platform: str | None = None) -> Installed:
    """Write the launcher into `mirror` (unpacked layout). Idempotent: an identical launcher is left
    untouched so that lock-file hashes stay stable."""
    mirror = (mirror or default_mirror()).expanduser().resolve()
    version = version or provider_version()
    target_platform = target_platform or terraform_platform()
    executable = executable or provider_executable()
    directory = mirror / PROVIDER_SOURCE / version / target_platform
    path = directory / f"terraform-provider-{PROVIDER_TYPE}_v{version}"
    content = launcher_script(executable)
    directory.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != content:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(content)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)  # noqa: S103 - a shared mirror must be runnable
        os.replace(tmp, path)
    return Installed(mirror=mirror, path=path, source=PROVIDER_SOURCE, version=version, platform=target_platform)
