"""Offline installation of the provider into a Terraform plugin mirror.

The mirror entry is a small launcher script that execs this installation's provider executable, so
`terraform init` finds the provider with no network and records it in the lock file. (The lock
file's hash covers the launcher, which names this machine's Python environment; see
`tokendrop provider package` for a portable artifact.)

Terraform starts the provider three to five times per command, so the launcher starts it the fast
way when it can: the console script's interpreter run directly with `-I -S` and the few directories
the provider imports from named up front, instead of `site` processing every `.pth` file of the
environment. Install also compiles the provider's bytecode, so that no launch compiles it (an
environment with PYTHONDONTWRITEBYTECODE set, as in many CI images, would otherwise compile every
module at every launch), and stores the serialized schema answer, so that the launch which only asks
for the schema loads neither protobuf nor the provider core (plugin/schema_cache.py).
"""

from __future__ import annotations

import compileall
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
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


def _script_interpreter(executable: Path) -> Path | None:
    """The Python that a console script's `#!` line names, or None for anything else."""
    try:
        with executable.open("rb") as script:
            first = script.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if len(words) == 1 else None


def import_roots() -> list[str]:
    """The directories the provider and its libraries are imported from in this environment: the one
    holding `tokendrop_provider` (the source tree for an editable install), then every site directory
    on this interpreter's path (site-packages, dist-packages, the user site) and the scheme's own."""
    roots = [str(Path(__file__).resolve().parent.parent)]
    sites = [entry for entry in sys.path if Path(entry).name in ("site-packages", "dist-packages")]
    for directory in [*sites, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]:
        if directory not in roots:
            roots.append(directory)
    return roots


# What the fast launcher runs. If the provider or its libraries do not import from the named
# directories (a library that only a .pth file puts on the path), it falls back to the console script.
_BOOT = """\
import sys
sys.path.extend({roots})
try:
    from importlib.util import find_spec
    from tokendrop_provider import lazy
    lazy.import_grpc_core()
    if find_spec("google.protobuf") is None or find_spec("msgpack") is None:
        raise ImportError("google.protobuf or msgpack")
    from tokendrop_provider.main import main
except ImportError:
    import os
    os.execv({script}, [{script}, *sys.argv[1:]])
sys.exit(main())
"""


def launcher_script(executable: Path) -> str:
    head = ("#!/bin/sh\n"
            "# tokendrop provider launcher, written by `tokendrop provider install`.\n")
    interpreter = _script_interpreter(executable)
    if interpreter is None or interpreter.resolve() != Path(sys.executable).resolve():
        return head + f"exec {shlex.quote(str(executable))} \"$@\"\n"
    # -I: no PYTHON* variables, user site or current directory; -S: no site-packages scan (the paths
    # below are all the provider needs). Same program as the console script, without ~15 ms of site.
    boot = _BOOT.format(roots=json.dumps(import_roots()), script=json.dumps(str(executable)))
    return head + (f"# Runs {executable} directly with its interpreter.\n"
                   f"exec {shlex.quote(str(interpreter))} -I -S -c {shlex.quote(boot)} \"$@\"\n")


def compile_bytecode() -> None:
    """Compile the provider's modules once, here, rather than at every launch. A read-only install
    (pip already compiled it) is left as it is."""
    package = Path(__file__).resolve().parent
    if os.access(package, os.W_OK):
        compileall.compile_dir(package, quiet=2, workers=1)


def schema_answer() -> bytes:
    """The serialized GetProviderSchema answer of these sources (map entries in key order, so the bytes
    are the same from run to run)."""
    from .plugin.gen import tfplugin6_pb2
    from .plugin.service import ProviderService
    from .provider import ProviderCore

    answer = ProviderService(ProviderCore()).GetProviderSchema(tfplugin6_pb2.GetProviderSchema.Request(), None)
    return answer.SerializeToString(deterministic=True)


def store_schema_answer() -> bool:
    """Store the serialized GetProviderSchema answer beside the bytecode, for the launches that only ask
    for the schema (plugin/schema_cache.py). False where it cannot be stored (read-only install)."""
    from .plugin import schema_cache

    return schema_cache.store(schema_answer())


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


def store_schema_answer_in_child() -> bool:
    """The same, built in a child interpreter unless the stored answer is current: synthesis calls this,
    and must not load protobuf or the provider core itself. (The provider never stores it while it runs:
    a packaged provider's directory is hashed into Terraform's lock file.)"""
    from .plugin import schema_cache

    if schema_cache.load() is not None:
        return True
    done = subprocess.run([sys.executable, "-c", "import sys; from tokendrop_provider.install import "
                           "store_schema_answer; sys.exit(0 if store_schema_answer() else 1)"],
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                          capture_output=True, check=False, timeout=120)
    return done.returncode == 0


def install(mirror: Path | None = None, executable: Path | None = None, version: str | None = None,
            target_platform: str | None = None, store_schema: bool = True) -> Installed:
    """Write the launcher into `mirror` (unpacked layout). Idempotent: an identical launcher is left
    untouched so that lock-file hashes stay stable. `store_schema=False` leaves the stored schema answer
    to the caller (synthesis stores it from a child interpreter: `store_schema_answer_in_child`)."""
    mirror = (mirror or default_mirror()).expanduser().resolve()
    version = version or provider_version()
    target_platform = target_platform or terraform_platform()
    executable = executable or provider_executable()
    directory = mirror / PROVIDER_SOURCE / version / target_platform
    path = directory / f"terraform-provider-{PROVIDER_TYPE}_v{version}"
    content = launcher_script(executable)
    compile_bytecode()
    if store_schema:
        store_schema_answer()
    directory.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != content:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(content)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)  # noqa: S103 - a shared mirror must be runnable
        os.replace(tmp, path)
    return Installed(mirror=mirror, path=path, source=PROVIDER_SOURCE, version=version, platform=target_platform)
