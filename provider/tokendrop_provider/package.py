"""`tokendrop provider package`: a self-contained provider artifact for CI runners, HCP Terraform agents
and private mirrors.

For each platform the artifact is one zip, `terraform-provider-tokendrop_<version>_<os>_<arch>.zip`:

    terraform-provider-tokendrop_v<version>   the launcher, a POSIX sh script
    lib/boot.py                               puts lib/ first on sys.path and starts the provider
    lib/manifest.json                         what was bundled (wheels, platform, Python versions)
    lib/common/                               this package + wheels shared by every bundled Python
    lib/cp3XY/                                wheels built for one CPython version (only with several)

The runner needs nothing but a CPython of a bundled version: the libraries are manylinux2014 wheels
from the package index, pinned to requirements/runtime.txt, and the launcher keeps the runner's own
site-packages, PYTHON* variables and working directory out of sys.path.

With --self-contained (the default for the platform of the build machine, when PyInstaller is
installed) that platform's zip holds the frozen provider instead (see freeze.py): the executable and
its `_internal/` directory, interpreter included, so the runner needs no Python at all.

The zips are laid out as a filesystem mirror (packed layout) or a network mirror (index.json and
<version>.json with h1:/zh: hashes), next to a `.terraform.lock.hcl` covering every platform built.

Reproducible: entries sorted, fixed timestamps and modes, no directory entries (Terraform's h1 of a
zip must equal the h1 of the directory it unpacks to, which lists files only), bytecode compiled with
hash-based invalidation and a fixed hash seed. The same wheels and interpreter give the same h1;
the same zlib also gives the same zh.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from . import freeze
from .errors import TokendropError
from .install import PROVIDER_TYPE, provider_version, terraform_platform
from .schema import PROVIDER_SOURCE

# Terraform platform -> (wheel platform tag, `uname -m` values the bundle runs on).
PLATFORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "linux_amd64": ("manylinux2014_x86_64", ("x86_64", "amd64")),
    "linux_arm64": ("manylinux2014_aarch64", ("aarch64", "arm64")),
}
DEFAULT_PLATFORMS = ("linux_amd64", "linux_arm64")
DEFAULT_PYTHONS = ("3.11",)
MIN_PYTHON = (3, 11)
LAYOUTS = ("filesystem", "network")
DEFAULT_OUT = Path("dist") / "provider-mirror"
# The CDK halves must never reach a runner: they start node and weigh tens of megabytes.
NEVER_BUNDLED = frozenset({"cdktf", "cdktn", "jsii", "constructs"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold
PROVIDER_FILES = (".py", ".pyi", ".proto", ".typed")

Log = Callable[[str], None]


class PackageError(TokendropError):
    """The artifact cannot be built (a wheel missing for a platform, an unpinned dependency, ...)."""


# -- names, pins and requirements -------------------------------------------------------------------


def normalize(name: str) -> str:
    """PEP 503 project name normalisation: `Charset_Normalizer` and `charset-normalizer` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """normalized name -> exact version, from `name==version` lines (extras and markers dropped)."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(read_pins(path.parent / line[3:].strip()))
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)\s*(;.*)?", line)
        if not match:
            raise PackageError(f"{path}:{number} is not an exact pin", f"expected name==version, found {line!r}")
        pins[normalize(match.group(1))] = match.group(3)
    return pins


def installed_versions() -> dict[str, str]:
    """The versions this Python environment runs: the pins when tokendrop was installed from a wheel."""
    return {normalize(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def default_pins() -> tuple[dict[str, str], str]:
    """(pins, where they come from): the checkout's requirements/runtime.txt when running from one."""
    root = Path(__file__).resolve().parents[2]
    runtime = root / "requirements" / "runtime.txt"
    if runtime.is_file() and (root / "pyproject.toml").is_file():
        return read_pins(runtime), str(runtime)
    return installed_versions(), "the versions installed in this Python environment"


def provider_requirements() -> list[str]:
    """The provider's own dependencies (tokendrop's Requires-Dist without extras: no cdktf/cdktn)."""
    try:
        requires = metadata.distribution("tokendrop").requires or []
    except metadata.PackageNotFoundError as err:
        raise PackageError("tokendrop's package metadata is missing",
                           "install it first (pip install tokendrop, or pip install -e . in a checkout)") from err
    return [r for r in requires if ";" not in r or "extra" not in r.split(";", 1)[1]]


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # normalized
    version: str
    tags: tuple[str, str, str]  # python, abi, platform

    @classmethod
    def parse(cls, path: Path) -> Wheel:
        parts = path.name[:-len(".whl")].split("-")
        if len(parts) not in (5, 6):
            raise PackageError(f"not a wheel file name: {path.name}")
        return cls(path, normalize(parts[0]), parts[1], (parts[-3], parts[-2], parts[-1]))

    @property
    def pure(self) -> bool:
        return self.tags[2] == "any"


# -- pip --------------------------------------------------------------------------------------------


def _pip(args: Sequence[str], *, isolated: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *(["--isolated"] if isolated else []), *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def _pip_tail(proc: subprocess.CompletedProcess[str], lines: int = 12) -> str:
    text = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return "\n".join(text[-lines:])


def fetch_wheels(platform: str, python: str, requirements: Sequence[str], pins: Mapping[str, str],
                 dest: Path, index_args: Sequence[str] = ()) -> list[Wheel]:
    """Download (or take from pip's cache) the wheels of `requirements` and their dependencies for one
    platform and CPython version, every one pinned by `pins`."""
    dest.mkdir(parents=True, exist_ok=True)
    requirements_file = dest.parent / f"requirements-{platform}-{python}.txt"
    constraints_file = dest.parent / f"constraints-{platform}-{python}.txt"
    requirements_file.write_text("".join(f"{r}\n" for r in requirements))
    constraints_file.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    proc = _pip(["download", "--dest", str(dest), "--only-binary=:all:", "--platform", PLATFORMS[platform][0],
                 "--implementation", "cp", "--python-version", python, "--progress-bar", "off",
                 "-r", str(requirements_file), "-c", str(constraints_file), *index_args])
    if proc.returncode != 0:
        raise _explain_pip_failure(proc, platform, python, pins, dest.parent / "probe", index_args)
    wheels = sorted((Wheel.parse(p) for p in dest.glob("*.whl")), key=lambda w: w.name)
    for wheel in wheels:
        if wheel.name in NEVER_BUNDLED:
            raise PackageError(f"{wheel.name} would be bundled into the provider",
                               "the provider must not depend on the CDK libraries; check tokendrop's dependencies")
        pinned = pins.get(wheel.name)
        if pinned is None:
            raise PackageError(f"{wheel.name} {wheel.version} is needed by the provider but not pinned",
                               "add an exact pin for it to requirements/runtime.txt (or to --constraints)")
        if pinned != wheel.version:
            raise PackageError(f"{wheel.name} resolved to {wheel.version}, pinned {pinned}")
    return wheels


def _explain_pip_failure(proc: subprocess.CompletedProcess[str], platform: str, python: str,
                         pins: Mapping[str, str], probe_dir: Path, index_args: Sequence[str]) -> PackageError:
    """Name the package that has no wheel for the platform. pip says so directly for a top-level
    requirement, but only "ResolutionImpossible" for a dependency: then each pinned package it names
    is looked up on its own."""
    output = proc.stdout + proc.stderr
    suspects = re.findall(r"No matching distribution found for ([A-Za-z0-9._-]+(?:==[^\s;,]+)?)", output)
    suspects += [f"{n}=={v}" for n, v in re.findall(r"requested \(constraint\) ([A-Za-z0-9._-]+)==(\S+)", output)]
    wheel_platform = PLATFORMS[platform][0]
    for suspect in dict.fromkeys(suspects):
        name, _, version = suspect.partition("==")
        requirement = f"{name}=={version or pins.get(normalize(name), '')}".rstrip("=")
        probe = _pip(["download", "--no-deps", "--dest", str(probe_dir), "--only-binary=:all:", "--platform",
                      wheel_platform, "--implementation", "cp", "--python-version", python, "--progress-bar", "off",
                      requirement, *index_args])
        if probe.returncode != 0:
            return PackageError(
                f"no wheel of {requirement} for {platform} (CPython {python}, {wheel_platform})",
                "the package index has no binary distribution of that version for this platform and Python; "
                "choose another --platform or --python, or pin a version that has one")
    return PackageError(f"pip could not resolve the provider's dependencies for {platform} (CPython {python})",
                        _pip_tail(proc))


def install_wheels(wheels: Sequence[Wheel], dest: Path, platform: str, python: str) -> None:
    """Unpack wheels into `dest` as pip would (pip --target), from local files only."""
    if not wheels:
        return
    folders = sorted({str(w.path.parent) for w in wheels})
    # By name from --find-links rather than by file path: a path install writes direct_url.json with
    # the temporary path in it, and the zip would differ on every build.
    args = ["install", "--no-deps", "--no-index", "--no-compile", "--no-warn-script-location",
            "--target", str(dest), "--only-binary=:all:", "--platform", PLATFORMS[platform][0],
            "--implementation", "cp", "--python-version", python,
            *(f"--find-links={folder}" for folder in folders), *(f"{w.name}=={w.version}" for w in wheels)]
    proc = _pip(args, isolated=True)
    if proc.returncode != 0:
        raise PackageError(f"pip could not unpack the wheels for {platform} (CPython {python})", _pip_tail(proc))
    shutil.rmtree(dest / "bin", ignore_errors=True)  # console scripts with this machine's shebang


# -- the bundle tree --------------------------------------------------------------------------------


def abi_dir(python: str) -> str:
    return "cp" + python.replace(".", "")


def add_provider_source(dest: Path, version: str, source: Path | None = None) -> None:
    """This package's modules (no bytecode, no stray files) and a minimal dist-info, so that
    importlib.metadata reports the version inside the bundle too."""
    source = source or Path(__file__).resolve().parent
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.suffix in PROVIDER_FILES and "__pycache__" not in path.parts:
            target = dest / "tokendrop_provider" / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    info = dest / f"tokendrop-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tokendrop\nVersion: {version}\n"
                                   "Summary: tokendrop Terraform provider (bundled by `tokendrop provider package`)\n")
    (info / "top_level.txt").write_text("tokendrop_provider\n")


def find_interpreter(python: str) -> str | None:
    """A CPython `python` (X.Y) on this machine, to compile bytecode with; None when there is none."""
    if sys.implementation.name == "cpython" and f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return sys.executable
    candidate = shutil.which(f"python{python}")
    if not candidate:
        return None
    probe = subprocess.run([candidate, "-I", "-S", "-c", "import sys; print(sys.implementation.name, "
                            "'%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=False)
    return candidate if probe.returncode == 0 and probe.stdout.split() == ["cpython", python] else None


def compile_bytecode(interpreter: str, directory: Path, label: str) -> str | None:
    """Precompile `directory` so start-up does not compile in memory at every launch (the launcher
    runs with -B: nothing may be written into the checksummed provider directory). Hash-based pycs
    (no mtimes) and a fixed hash seed (frozenset constants) keep the output reproducible; `-d` replaces
    the build directory in co_filename (Python fixes it up to the real path at import). Returns
    compileall's complaints, if any."""
    if not directory.is_dir():
        return None
    with tempfile.TemporaryDirectory() as empty:  # cwd: nothing there can shadow compileall
        proc = subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                               "unchecked-hash", "-d", label, str(directory)], cwd=empty, capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False)
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()[-2000:]


BOOTSTRAP = '''\
# Bootstrap of the tokendrop provider bundle, run by the launcher as `python -I -S -B lib/boot.py`.
# -I drops the current directory, PYTHON* variables and the user site from sys.path, -S drops
# site-packages: the bundled libraries put first here are the only ones importable.
import os
import sys

VERSION = @VERSION@
PLATFORM = @PLATFORM@
MACHINES = @MACHINES@
PYTHONS = @PYTHONS@
LIB = os.path.dirname(os.path.realpath(__file__))
# What --self-test imports and checks: the provider and every library it loads at run time.
MODULES = ("tokendrop_provider.main", "grpc", "google.protobuf", "msgpack", "cryptography.hazmat.bindings._rust",
           "requests", "certifi", "boto3", "botocore", "msal", "jwt")


def fail(message):
    sys.stderr.write("terraform-provider-tokendrop: " + message + "\\n")
    raise SystemExit(1)


def self_test():
    import importlib
    import json

    modules, ok = {}, True
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as err:  # report every module, not just the first failure
            modules[name], ok = {"error": repr(err)}, False
            continue
        path = os.path.realpath(module.__file__)
        bundled = path.startswith(LIB + os.sep)
        modules[name], ok = {"file": path, "bundled": bundled}, ok and bundled
    print(json.dumps({"ok": ok, "version": VERSION, "platform": PLATFORM, "python": sys.executable,
                      "python_version": "%d.%d.%d" % sys.version_info[:3], "flags": {
                          "isolated": sys.flags.isolated, "no_site": sys.flags.no_site,
                          "dont_write_bytecode": sys.flags.dont_write_bytecode},
                      "sys_path": sys.path, "modules": modules}, indent=2))
    raise SystemExit(0 if ok else 1)


def main():
    running = "%d.%d" % sys.version_info[:2]
    if sys.implementation.name != "cpython" or running not in PYTHONS:
        fail("this bundle needs CPython %s, not %s %s at %s (set TOKENDROP_PYTHON)"
             % (" or ".join(PYTHONS), sys.implementation.name, running, sys.executable))
    if os.uname().machine not in MACHINES:
        fail("this bundle is built for %s, not for %s" % (PLATFORM, os.uname().machine))
    sys.path[:0] = [os.path.join(LIB, "cp" + running.replace(".", "")), os.path.join(LIB, "common")]
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    try:
        import grpc  # noqa: F401 - the first compiled extension the provider loads
    except ImportError as err:
        fail("the bundled libraries do not load on this system (%s); they need glibc 2.17 or newer "
             "(manylinux2014) on %s" % (err, PLATFORM))
    from tokendrop_provider.main import main as provider_main

    raise SystemExit(provider_main())


main()
'''

LAUNCHER = '''\
#!/bin/sh
# terraform-provider-tokendrop @VERSION@ for @PLATFORM@, built by `tokendrop provider package`.
#
# Runs the bundled provider with CPython @VERSIONS_TEXT@: $TOKENDROP_PYTHON if set, else the first of
# @CANDIDATES@ on PATH whose version matches the bundled libraries. Python runs with
# -I (ignore PYTHON* variables, the user site and the current directory), -S (no site-packages: nothing
# installed on this machine can shadow the bundle) and -B (never write bytecode here: Terraform checks
# this directory against the lock file). `<this file> --self-test` shows what would be used.
here=$(CDPATH= cd -P -- "$(dirname -- "$0")" && pwd -P) || exit 1
wanted="@VERSIONS@"
probe='import sys; print("%s-%d.%d" % ((sys.implementation.name,) + sys.version_info[:2]))'

fail() {
    echo "terraform-provider-tokendrop: $*" >&2
    exit 1
}

fits() {
    found=$("$1" -I -S -c "$probe" 2>/dev/null) || return 1
    for version in $wanted; do
        [ "$found" = "cpython-$version" ] && return 0
    done
    return 1
}

if [ -n "${TOKENDROP_PYTHON:-}" ]; then
    fits "$TOKENDROP_PYTHON" || fail "TOKENDROP_PYTHON=$TOKENDROP_PYTHON is not CPython @VERSIONS_TEXT@," \
        "which the bundled libraries are built for (@PLATFORM@)"
    python=$TOKENDROP_PYTHON
else
    python=
    for candidate in @CANDIDATES@; do
        if command -v "$candidate" >/dev/null 2>&1 && fits "$candidate"; then
            python=$candidate
            break
        fi
    done
    [ -n "$python" ] || fail "needs CPython @VERSIONS_TEXT@ (the bundled libraries are built for it, @PLATFORM@);" \
        "none of @CANDIDATES@ on PATH is one: install it or set TOKENDROP_PYTHON to its path"
fi
exec "$python" -I -S -B "$here/lib/boot.py" "$@"
'''


def _fill(template: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def python_candidates(pythons: Sequence[str]) -> list[str]:
    return [f"python{p}" for p in pythons] + ["python3", "python"]


def launcher_script(version: str, platform: str, pythons: Sequence[str]) -> str:
    return _fill(LAUNCHER, {"VERSION": version, "PLATFORM": platform, "VERSIONS": " ".join(pythons),
                            "VERSIONS_TEXT": " or ".join(pythons), "CANDIDATES": " ".join(python_candidates(pythons))})


def bootstrap_script(version: str, platform: str, pythons: Sequence[str]) -> str:
    return _fill(BOOTSTRAP, {"VERSION": repr(version), "PLATFORM": repr(platform),
                             "MACHINES": repr(PLATFORMS[platform][1]), "PYTHONS": repr(tuple(pythons))})


def launcher_name(version: str) -> str:
    return f"terraform-provider-{PROVIDER_TYPE}_v{version}"


def archive_name(version: str, platform: str) -> str:
    return f"terraform-provider-{PROVIDER_TYPE}_{version}_{platform}.zip"


# -- zips and hashes --------------------------------------------------------------------------------


def write_zip(tree: Path, destination: Path, executables: Iterable[str] = ()) -> None:
    """A reproducible zip of every file under `tree`: sorted names, fixed timestamps, fixed modes
    (0755 for `executables`, 0644 otherwise), no directory entries."""
    executable = set(executables)
    names = []
    for path in tree.rglob("*"):
        if path.is_symlink():
            raise PackageError(f"the bundle may not contain symlinks: {path.relative_to(tree)}")
        if path.is_file():
            names.append(path.relative_to(tree).as_posix())
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(names):
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.create_system = 3  # Unix, so that unzip tools (and Terraform) honour the modes
            info.external_attr = (stat.S_IFREG | (0o755 if name in executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (tree / name).read_bytes(), compresslevel=6)
    os.replace(partial, destination)


def _h1(digests: Iterable[tuple[str, str]]) -> str:
    # Terraform's h1 is Go's dirhash.Hash1: sha256 over "<sha256 hex>  <name>\n" lines in name order.
    summary = "".join(f"{digest}  {name}\n" for name, digest in sorted(digests))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def h1_zip(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return _h1((name, hashlib.sha256(archive.read(name)).hexdigest()) for name in archive.namelist())


def h1_dir(path: Path) -> str:
    return _h1((p.relative_to(path).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
               for p in path.rglob("*") if p.is_file())


def zh_zip(path: Path) -> str:
    return "zh:" + hashlib.sha256(path.read_bytes()).hexdigest()


def lock_file_text(source: str, version: str, hashes: Iterable[str]) -> str:
    """A dependency lock file in the shape `terraform init` writes (it leaves such a file unchanged)."""
    lines = "".join(f'    "{h}",\n' for h in sorted(set(hashes)))
    return ('# This file is maintained automatically by "terraform init".\n'
            "# Manual edits may be lost in future updates.\n\n"
            f'provider "{source}" {{\n  version = "{version}"\n  hashes = [\n{lines}  ]\n}}\n')


def lock_file_hashes(text: str) -> set[str]:
    return set(re.findall(r'"((?:h1|zh):[^"]+)"', text))


def terraform_lock_hashes(mirror: Path, source: str, version: str, platforms: Sequence[str],
                          terraform: str | None = None) -> set[str] | None:
    """The hashes `terraform providers lock -fs-mirror` records for the built zips, or None without
    terraform. An independent check of the h1 computed here."""
    terraform = terraform or shutil.which("terraform")
    if not terraform:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "main.tf").write_text('terraform {\n  required_providers {\n    tokendrop = {\n'
                                      f'      source  = "{source}"\n      version = "{version}"\n    }}\n  }}\n}}\n')
        (work / "empty.tfrc").write_text("")  # the user's CLI configuration plays no part
        env = {**os.environ, "TF_CLI_CONFIG_FILE": str(work / "empty.tfrc"), "CHECKPOINT_DISABLE": "1",
               "TF_IN_AUTOMATION": "1"}
        env.pop("TF_PLUGIN_CACHE_DIR", None)
        proc = subprocess.run([terraform, "providers", "lock", f"-fs-mirror={mirror}",
                               *(f"-platform={p}" for p in platforms)], cwd=work, env=env, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise PackageError("terraform providers lock rejected the built mirror",
                               re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).strip()[-3000:])
        return lock_file_hashes((work / ".terraform.lock.hcl").read_text())


# -- mirror layouts and CLI configuration -----------------------------------------------------------


def provider_dir(out: Path, source: str = PROVIDER_SOURCE) -> Path:
    return out.joinpath(*source.split("/"))


def write_network_index(out: Path, version: str, archives: Sequence[Archive], source: str = PROVIDER_SOURCE
                        ) -> tuple[Path, Path]:
    """index.json (every version in the directory, existing ones kept) and <version>.json, per the
    provider network mirror protocol. URLs are relative to the JSON file."""
    directory = provider_dir(out, source)
    index_path = directory / "index.json"
    versions: dict[str, dict] = {}
    if index_path.exists():
        try:
            versions = dict(json.loads(index_path.read_text()).get("versions", {}))
        except (ValueError, AttributeError) as err:
            raise PackageError(f"{index_path} is not a network mirror index", str(err)) from err
    versions[version] = {}
    index_path.write_text(json.dumps({"versions": dict(sorted(versions.items()))}, indent=2) + "\n")
    version_path = directory / f"{version}.json"
    version_path.write_text(json.dumps({"archives": {
        a.platform: {"url": a.path.name, "hashes": [a.h1, a.zh]} for a in sorted(archives, key=lambda a: a.platform)
    }}, indent=2) + "\n")
    return index_path, version_path


def cli_configuration(layout: str, location: str, source: str = PROVIDER_SOURCE) -> str:
    host_ns = "/".join(source.split("/")[:2])
    block = (f'  filesystem_mirror {{\n    path    = "{location}"\n' if layout == "filesystem"
             else f'  network_mirror {{\n    url     = "{location}"\n')
    return (f"provider_installation {{\n{block}"
            f'    include = ["{host_ns}/*"]\n  }}\n'
            f'  direct {{\n    exclude = ["{host_ns}/*"]\n  }}\n}}\n')


# -- the build --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    platform: str
    path: Path
    h1: str
    zh: str
    size: int
    wheels: tuple[str, ...]


@dataclass
class Package:
    out: Path
    layout: str
    source: str
    version: str
    pythons: tuple[str, ...]
    archives: list[Archive]
    lock_file: Path
    sums_file: Path
    pins_from: str
    verified_by_terraform: bool
    uncompiled: list[str] = field(default_factory=list)  # Python versions without precompiled bytecode
    network_files: tuple[Path, ...] = ()
    seconds: float = 0.0
    frozen: tuple[str, ...] = ()  # platforms whose zip holds the self-contained (frozen) provider
    frozen_build: freeze.FrozenBuild | None = None

    def cli_config(self, location: str | None = None) -> str:
        if self.layout == "network":
            return cli_configuration("network", location or "https://<host>/<path where OUT is served>/", self.source)
        return cli_configuration("filesystem", location or str(self.out), self.source)


def _check_options(platforms: Sequence[str], pythons: Sequence[str], layout: str) -> None:
    if not platforms or not pythons:
        raise PackageError("at least one --platform and one --python are needed")
    for platform in platforms:
        if platform not in PLATFORMS:
            raise PackageError(f"unsupported platform {platform!r}",
                               f"the bundle is built from manylinux wheels: one of {', '.join(PLATFORMS)}")
    for python in pythons:
        match = re.fullmatch(r"3\.(\d+)", python)
        if not match or (3, int(match.group(1))) < MIN_PYTHON:
            raise PackageError(f"unsupported --python {python!r}", "give a CPython version as X.Y, 3.11 or newer")
    if layout not in LAYOUTS:
        raise PackageError(f"unknown layout {layout!r}", f"one of {', '.join(LAYOUTS)}")


def write_tree(tree: Path, version: str, platform: str, pythons: Sequence[str], wheels: Mapping[str, list[Wheel]],
               interpreters: Mapping[str, str | None], provider_source: Path | None, log: Log) -> None:
    """The unpacked bundle of one platform: launcher, lib/boot.py, lib/manifest.json, lib/common (the
    provider and the wheels picked for every bundled Python: pure or abi3) and lib/cpXY (the rest)."""
    shared = set.intersection(*({w.path.name for w in wheels[p]} for p in pythons))
    lib = tree / "lib"
    install_wheels([w for w in wheels[pythons[0]] if w.path.name in shared], lib / "common", platform, pythons[0])
    for python in pythons:
        install_wheels([w for w in wheels[python] if w.path.name not in shared], lib / abi_dir(python), platform,
                       python)
    add_provider_source(lib / "common", version, provider_source)
    (lib / "boot.py").write_text(bootstrap_script(version, platform, pythons))
    (lib / "manifest.json").write_text(json.dumps({
        "provider": PROVIDER_SOURCE, "version": version, "platform": platform, "python": list(pythons),
        "wheels": {"common": sorted(shared),
                   **{abi_dir(p): sorted(w.path.name for w in wheels[p] if w.path.name not in shared)
                      for p in pythons}},
    }, indent=2, sort_keys=True) + "\n")
    (tree / launcher_name(version)).write_text(launcher_script(version, platform, pythons))
    for python in pythons:
        interpreter = interpreters[python]
        if interpreter is None:
            continue
        for part in ("common", abi_dir(python)):
            complaint = compile_bytecode(interpreter, lib / part, f"lib/{part}")
            if complaint:
                log(f"warning: some modules did not compile for CPython {python}:\n{complaint}")


def self_contained_platforms(platforms: Sequence[str], requested: bool | None) -> tuple[str, ...]:
    """The platforms to build frozen. `requested` None (the command's default): the build machine's own
    platform when it is among `platforms` and PyInstaller is installed. True: the same, but an error
    when that is impossible. False: none."""
    host = terraform_platform()
    possible = host in platforms and freeze.can_freeze_for(host)
    if requested is None:
        return (host,) if possible and freeze.pyinstaller_version() is not None else ()
    if not requested:
        return ()
    if not possible:
        raise PackageError(f"--self-contained builds for the platform of this machine ({host}) only",
                           f"it needs {host} among --platform and is supported for "
                           f"{', '.join(freeze.FROZEN_PLATFORMS)}; other platforms get the bundle that needs "
                           "CPython on the runner")
    if freeze.pyinstaller_version() is None:
        raise PackageError("--self-contained needs PyInstaller, which is not installed here",
                           f"pip install -r {freeze.CHECKOUT / 'requirements' / 'build.txt'}")
    return (host,)


def frozen_archive(frozen: freeze.FrozenBuild, platform: str) -> tuple[Path, str, str]:
    """(zip, h1, zh) of a frozen build, written once next to it in the cache (the build never changes),
    with its hashes beside it: hashing 100 MB at every synthesis of every stack would add seconds."""
    path = frozen.directory.with_name(f"{frozen.directory.name}-{archive_name(frozen.version, platform)}")
    hashes = path.with_name(path.name + ".hashes.json")
    # One writer at a time: parallel test workers (or two syntheses) share the cache and its .partial names.
    with freeze.exclusive(path.with_name(path.name + ".lock")):
        if not path.is_file() or not hashes.is_file():
            write_zip(frozen.directory, path, executables=freeze.executable_bits(frozen.directory))
            partial = hashes.with_name(hashes.name + ".partial")
            partial.write_text(json.dumps({"h1": h1_zip(path), "zh": zh_zip(path)}))
            os.replace(partial, hashes)
    recorded = json.loads(hashes.read_text())
    return path, recorded["h1"], recorded["zh"]


def build(out: Path, platforms: Sequence[str] = DEFAULT_PLATFORMS, pythons: Sequence[str] = DEFAULT_PYTHONS,
          layout: str = "filesystem", *, constraints: Path | None = None, wheelhouse: Path | None = None,
          requirements: Sequence[str] | None = None, verify: bool = True, version: str | None = None,
          provider_source: Path | None = None, self_contained: Sequence[str] = (),
          cache_dir: Path | None = None, log: Log = lambda message: None) -> Package:
    """Build the artifact for every platform into `out`, in `layout`, with a lock file. `wheelhouse`
    builds from local wheels only (air-gapped); `requirements` replaces the provider's dependencies and
    `provider_source` the tokendrop_provider directory (tests); `verify` cross-checks the lock file with
    `terraform providers lock` when terraform exists. The platforms in `self_contained` (see
    `self_contained_platforms`) get the frozen provider, built or taken from `cache_dir`."""
    started = time.monotonic()
    platforms = list(dict.fromkeys(platforms))
    pythons = tuple(dict.fromkeys(pythons))
    _check_options(platforms, pythons, layout)
    frozen_platforms = tuple(p for p in platforms if p in self_contained)
    frozen = None
    if frozen_platforms:
        if provider_source is not None or version is not None:
            raise PackageError("a self-contained build is made from the installed provider only",
                               "provider_source and version apply to the interpreter-needing bundle")
        log("freezing the provider (or taking it from the cache)")
        frozen = freeze.build_frozen(cache_dir, log=log)
    version = version or provider_version()
    pins, pins_from = (read_pins(constraints), str(constraints)) if constraints else default_pins()
    requirements = list(requirements) if requirements is not None else provider_requirements()
    index_args = ["--no-index", f"--find-links={wheelhouse}"] if wheelhouse else []
    out = out.expanduser().resolve()
    directory = provider_dir(out)
    archives: list[Archive] = []
    interpreters = {p: find_interpreter(p) for p in pythons}
    with tempfile.TemporaryDirectory(prefix="tokendrop-package-") as tmp:
        work = Path(tmp)
        # Every wheel of every platform first: a missing one fails the build before anything is written.
        wheels: dict[tuple[str, str], list[Wheel]] = {}
        for platform in platforms:
            if platform in frozen_platforms:
                continue
            for python in pythons:
                log(f"fetching wheels for {platform}, CPython {python}")
                wheels[platform, python] = fetch_wheels(platform, python, requirements, pins,
                                                        work / "wheels" / platform / python, index_args)
        (out / ".terraform.lock.hcl").unlink(missing_ok=True)  # never leave an old one next to new zips
        for platform in platforms:
            zip_path = directory / archive_name(version, platform)
            if frozen is not None and platform in frozen_platforms:
                log(f"writing {zip_path.name} (self-contained)")
                zip_path.parent.mkdir(parents=True, exist_ok=True)
                cached, h1, zh = frozen_archive(frozen, platform)
                shutil.copyfile(cached, zip_path)
                archives.append(Archive(platform, zip_path, h1, zh, zip_path.stat().st_size, ()))
                continue
            tree = work / "tree" / platform
            write_tree(tree, version, platform, pythons, {p: wheels[platform, p] for p in pythons}, interpreters,
                       provider_source, log)
            log(f"writing {zip_path.name}")
            write_zip(tree, zip_path, executables=[launcher_name(version)])
            archives.append(Archive(platform, zip_path, h1_zip(zip_path), zh_zip(zip_path), zip_path.stat().st_size,
                                    tuple(sorted({w.path.name for p in pythons for w in wheels[platform, p]}))))
            shutil.rmtree(tree)
    uncompiled = [p for p in pythons if interpreters[p] is None and len(frozen_platforms) < len(platforms)]

    network_files: tuple[Path, ...] = ()
    # A filesystem build into a directory that already serves as a network mirror keeps its JSON true.
    if layout == "network" or (directory / f"{version}.json").exists():
        network_files = write_network_index(out, version, archives)
    sums_file = out / f"terraform-provider-{PROVIDER_TYPE}_{version}_SHA256SUMS"
    sums_file.write_text("".join(f"{a.zh[3:]}  {a.path.name}\n" for a in sorted(archives, key=lambda a: a.path.name)))
    hashes = [h for a in archives for h in (a.h1, a.zh)]
    verified = False
    if verify:
        log("checking the lock file with terraform providers lock")
        recorded = terraform_lock_hashes(out, PROVIDER_SOURCE, version, platforms)
        if recorded is not None:
            mine = {a.h1 for a in archives}
            if not recorded or not recorded <= set(hashes):
                raise PackageError("terraform computes other hashes for the built zips than tokendrop",
                                   f"terraform: {sorted(recorded)}; tokendrop: {sorted(mine)}")
            verified = True
    lock_file = out / ".terraform.lock.hcl"
    lock_file.write_text(lock_file_text(PROVIDER_SOURCE, version, hashes))
    return Package(out=out, layout=layout, source=PROVIDER_SOURCE, version=version, pythons=pythons,
                   archives=archives, lock_file=lock_file, sums_file=sums_file, pins_from=pins_from,
                   verified_by_terraform=verified, uncompiled=uncompiled, network_files=network_files,
                   seconds=time.monotonic() - started, frozen=frozen_platforms, frozen_build=frozen)


# -- the command ------------------------------------------------------------------------------------


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def report(package: Package) -> str:
    lines = [f"Built {package.source} {package.version} for CPython {' / '.join(package.pythons)} "
             f"({package.layout} mirror) in {package.seconds:.1f} s, pins from {package.pins_from}:", ""]
    for archive in package.archives:
        kind = "self-contained, no Python needed" if archive.platform in package.frozen else \
            f"needs CPython {' or '.join(package.pythons)}"
        lines += [f"  {archive.platform}  {_megabytes(archive.size):>8}  {archive.path}  ({kind})",
                  f"  {'':11}  {'':>8}  {archive.h1}  {archive.zh}"]
    lines += ["", f"Mirror:     {package.out}"]
    for path in package.network_files:
        lines.append(f"            {path}")
    lines.append(f"Checksums:  {package.sums_file}")
    checked = "checked with `terraform providers lock`" if package.verified_by_terraform else \
        "not cross-checked with terraform: --no-verify, or no terraform on PATH"
    lines += [f"Lock file:  {package.lock_file} ({checked})",
              "            copy it next to your configuration; `terraform init -lockfile=readonly` accepts it "
              "on every platform above.", ""]
    if package.layout == "network":
        lines.append("Serve the mirror directory over HTTPS and point Terraform at it in the CLI configuration "
                     "(TF_CLI_CONFIG_FILE or ~/.terraformrc):")
    else:
        lines.append("CLI configuration (TF_CLI_CONFIG_FILE or ~/.terraformrc); on a runner image, `path` is "
                     "where the mirror directory is copied to:")
    if package.frozen_build is not None:
        floor, _files = freeze.glibc_floor(package.frozen_build.directory)
        lines += ["", package.cli_config(), f"The self-contained build ({', '.join(package.frozen)}) needs {floor} "
                  "or newer and the system's libstdc++.so.6; nothing else."]
    else:
        lines += ["", package.cli_config()]
    if len(package.frozen) == len(package.archives):
        return "\n".join(lines)
    lines += [f"Runners of the other platforms need CPython {' or '.join(package.pythons)} on PATH "
              f"({', '.join(python_candidates(package.pythons))}) or in TOKENDROP_PYTHON. On a runner, "
              f"`.terraform/providers/{package.source}/{package.version}/<platform>/{launcher_name(package.version)}"
              " --self-test` shows the interpreter and files it uses."]
    if package.uncompiled:
        names = ", ".join(f"python{p}" for p in package.uncompiled)
        lines.append(f"Note: no {names} on PATH here, so that version's bytecode is not precompiled: the provider "
                     "compiles its modules in memory at every start (slower start-up).")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(f"tokendrop: {message}", file=sys.stderr, flush=True)

    platforms = args.platform or DEFAULT_PLATFORMS
    package = build(Path(args.out), platforms, args.python or DEFAULT_PYTHONS, args.layout,
                    self_contained=self_contained_platforms(platforms, args.self_contained),
                    constraints=Path(args.constraints) if args.constraints else None,
                    wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None, verify=not args.no_verify, log=log)
    print(report(package))
    return 0


def add_command(provider_commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = provider_commands.add_parser(
        "package", help="build a self-contained provider artifact (filesystem or network mirror) for CI runners",
        description="Build the provider with its pinned dependencies for each platform, as a filesystem or "
                    "network mirror with a lock file covering every platform.")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: %(default)s)")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="target platform, repeatable (default: linux_amd64 and linux_arm64)")
    parser.add_argument("--python", action="append", metavar="X.Y",
                        help="CPython version the runners have, repeatable: one set of compiled wheels each "
                             f"(default: {' '.join(DEFAULT_PYTHONS)})")
    parser.add_argument("--layout", choices=LAYOUTS, default="filesystem",
                        help="filesystem mirror (packed zips) or network mirror (plus index.json and "
                             "<version>.json) (default: %(default)s)")
    parser.add_argument("--constraints", metavar="FILE",
                        help="exact pins to build with (default: the checkout's requirements/runtime.txt, "
                             "else the versions installed here)")
    parser.add_argument("--wheelhouse", metavar="DIR",
                        help="take wheels from this directory only, not from the package index")
    parser.add_argument("--self-contained", action=argparse.BooleanOptionalAction, default=None,
                        help="freeze the provider with its interpreter for this machine's platform, so runners "
                             "need no Python (default: yes, when PyInstaller is installed and this machine's "
                             "platform is among --platform)")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not cross-check the lock file with `terraform providers lock`")
    parser.set_defaults(handler=run)
