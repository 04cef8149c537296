"""The self-contained ("frozen") provider: the provider and its CPython interpreter in one directory, for
machines that have no Python at all (HCP Terraform workers, CI runners, agent images).

Built with PyInstaller in *onedir* mode: one executable plus `_internal/` (libpython, the standard library,
the provider's dependencies). Not onefile: that kind unpacks itself into a temporary directory at every
launch, and Terraform launches the provider three to five times per command.

    terraform-provider-tokendrop_v<version>   the executable (PyInstaller's bootloader)
    _internal/                                libpython, extension modules, shared libraries, base_library.zip

Builds are cached by a digest of their inputs (provider sources, pinned requirements, the installed
versions of the bundled packages, PyInstaller's version, the interpreter), so a test session or a
`cdktf synth` builds once and any source change builds anew. The build tool comes from
requirements/build.txt; it is a build-time dependency only, never installed for users.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import TokendropError
from .install import PROVIDER_TYPE, provider_version, schema_answer, terraform_platform
from .plugin import schema_cache

SOURCE_DIR = Path(__file__).resolve().parent
CHECKOUT = SOURCE_DIR.parents[1]
# The platform the frozen build is made for and runs on: the build machine's own (no cross-freezing).
FROZEN_PLATFORMS = ("linux_amd64",)
# Never bundled: the sandbox (emulators, moto, Flask) and what only the build machine's tools pull in.
EXCLUDED_MODULES = ("tokendrop_provider.sandbox", "tkinter", "grpc_tools", "setuptools", "pkg_resources",
                    "readline", "curses", "sqlite3", "lib2to3", "pydoc_data", "IPython", "pytest")
# Distributions whose installed version goes into the cache digest (what PyInstaller copies in).
BUNDLED_DISTRIBUTIONS = ("grpcio", "protobuf", "msgpack", "cryptography", "cffi", "requests", "urllib3", "idna",
                         "charset-normalizer", "certifi", "boto3", "botocore", "s3transfer", "jmespath",
                         "python-dateutil", "six", "pyinstaller", "pyinstaller-hooks-contrib", "altgraph",
                         "msal", "PyJWT")
# Left to the runner's system, like the manylinux wheels they come from do: the machine's own libstdc++
# needs GLIBC_2.36 here, while grpcio's extension needs only GLIBCXX_3.4.19 (GCC 4.8), which every glibc
# distribution ships. Bundling it would raise the glibc floor above libpython's.
SYSTEM_LIBRARIES = ("libstdc++.so.6",)
# botocore's service models the provider can load: SSM (the sink) and what the credential chain calls
# (STS for assume-role and web identity, as HCP Terraform's dynamic credentials use; SSO and sign-in for
# profiles). The other ~440 models are 27 MB of the 28 MB botocore ships, half of every upload.
BOTOCORE_SERVICES = frozenset({"ssm", "sts", "sso", "sso-oidc", "signin"})
ENTRY_SCRIPT = "from tokendrop_provider.main import main\n\nraise SystemExit(main())\n"

Log = Callable[[str], None]


class FreezeError(TokendropError):
    """The self-contained provider cannot be built here."""


@dataclass(frozen=True)
class FrozenBuild:
    directory: Path  # the onedir: executable + _internal/
    version: str
    digest: str
    seconds: float  # time spent building, or finding it in the cache
    cached: bool

    @property
    def executable(self) -> Path:
        return self.directory / executable_name(self.version)


def executable_name(version: str) -> str:
    return f"terraform-provider-{PROVIDER_TYPE}_v{version}"


def can_freeze_for(platform: str) -> bool:
    """True when this machine can build the frozen provider for `platform` (its own, and supported)."""
    return platform in FROZEN_PLATFORMS and terraform_platform() == platform


def pyinstaller_version() -> str | None:
    try:
        return metadata.version("pyinstaller")
    except metadata.PackageNotFoundError:
        return None


def default_cache_dir() -> Path:
    """$TOKENDROP_CACHE_DIR; else, running from a checkout, its git-ignored `.tokendrop/cache` (each
    checkout keeps the build of its own sources); else $XDG_CACHE_HOME/tokendrop or ~/.cache/tokendrop."""
    explicit = os.environ.get("TOKENDROP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "provider" / "tokendrop_provider").is_dir():
        return CHECKOUT / ".tokendrop" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokendrop"


def _source_files(source: Path) -> Iterator[Path]:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and "__pycache__" not in relative.parts and relative.parts[0] != "sandbox" \
                and path.suffix in (".py", ".proto", ".typed"):
            yield path


def inputs_digest(source: Path = SOURCE_DIR, requirement_files: tuple[Path, ...] | None = None) -> str:
    """SHA-256 over everything that makes the build: the provider's source files, the pinned
    requirements, the installed versions of the bundled distributions and of the build tool, and the
    interpreter. Any change to one of them gives another digest, so another build."""
    if requirement_files is None:
        requirement_files = tuple(CHECKOUT / "requirements" / name for name in ("runtime.txt", "build.txt"))
    digest = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    for path in _source_files(source):
        feed(f"source:{path.relative_to(source).as_posix()}", path.read_bytes())
    for path in requirement_files:
        if path.is_file():
            feed(f"requirements:{path.name}", path.read_bytes())
    for name in BUNDLED_DISTRIBUTIONS:
        try:
            feed(f"installed:{name}", metadata.version(name).encode())
        except metadata.PackageNotFoundError:
            feed(f"installed:{name}", b"-")
    feed("python", f"{sys.implementation.name} {sys.version} {sysconfig.get_platform()}".encode())
    feed("version", provider_version().encode())
    return digest.hexdigest()


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One builder per digest at a time, across processes (pytest-xdist workers, parallel synths)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hidden_imports(source: Path = SOURCE_DIR) -> list[str]:
    """Every provider module except the sandbox: some are imported lazily, by name, on first use."""
    modules = []
    for path in _source_files(source):
        if path.suffix != ".py":
            continue
        parts = ("tokendrop_provider", *path.relative_to(source).with_suffix("").parts)
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def build_frozen(cache_dir: Path | None = None, *, log: Log = lambda message: None) -> FrozenBuild:
    """The frozen provider for this machine's platform, from the cache or built into it."""
    platform = terraform_platform()
    if not can_freeze_for(platform):
        raise FreezeError(f"the self-contained provider cannot be built on {platform}",
                          f"it is built on the platform it runs on, one of {', '.join(FROZEN_PLATFORMS)}; "
                          "use the interpreter-needing bundle (--no-self-contained) for other platforms")
    tool = pyinstaller_version()
    if tool is None:
        raise FreezeError("PyInstaller is not installed in this Python environment",
                          f"install the build tools: pip install -r {CHECKOUT / 'requirements' / 'build.txt'}")
    started = time.monotonic()
    version = provider_version()
    digest = inputs_digest()
    root = (cache_dir or default_cache_dir()) / "frozen"
    final = root / digest[:24]
    with exclusive(root / f"{digest[:24]}.lock"):
        if (final / executable_name(version)).is_file():
            return FrozenBuild(final, version, digest, time.monotonic() - started, cached=True)
        log(f"freezing the provider with PyInstaller {tool} (cache miss: {digest[:12]})")
        with tempfile.TemporaryDirectory(prefix="tokendrop-freeze-", dir=root) as tmp:
            work = Path(tmp)
            built = _run_pyinstaller(work, version)
            _dereference_symlinks(built)
            for library in SYSTEM_LIBRARIES:
                (built / "_internal" / library).unlink(missing_ok=True)
            trim_botocore_models(built / "_internal" / "botocore" / "data")
            # The schema answer of the sources just frozen, for the launches that only ask for the schema.
            (built / "_internal" / schema_cache.FROZEN_NAME).write_bytes(schema_answer())
            check_handshake(built / executable_name(version))
            os.replace(built, final)
        # Older builds of other inputs (and their zips) are dead weight: keep only this one.
        for other in root.iterdir():
            if other.name.startswith((final.name, "tokendrop-freeze-")) or other.suffix == ".lock":
                continue
            if other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
            else:
                other.unlink(missing_ok=True)
    return FrozenBuild(final, version, digest, time.monotonic() - started, cached=False)


def _run_pyinstaller(work: Path, version: str) -> Path:
    entry = work / "entry.py"
    entry.write_text(ENTRY_SCRIPT)
    name = executable_name(version)
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--onedir", "--log-level", "WARN",
               "--name", name, "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
               "--specpath", str(work), "--paths", str(SOURCE_DIR.parent), "--copy-metadata", "tokendrop",
               *(arg for module in hidden_imports() for arg in ("--hidden-import", module)),
               *(arg for module in EXCLUDED_MODULES for arg in ("--exclude-module", module)),
               str(entry)]
    # A fixed hash seed keeps the bytecode PyInstaller compiles the same from build to build.
    env = {**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "315532800"}
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    built = work / "dist" / name
    if proc.returncode != 0 or not (built / name).is_file():
        raise FreezeError("PyInstaller could not freeze the provider", (proc.stdout + proc.stderr)[-3000:])
    return built


def _dereference_symlinks(directory: Path) -> None:
    """Replace symlinks by copies: Terraform's package hash and zip archives hold regular files only."""
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_symlink():
            target = path.resolve()
            path.unlink()
            if target.is_dir():
                shutil.copytree(target, path)
            else:
                shutil.copy2(target, path)


def trim_botocore_models(data: Path, keep: frozenset[str] = BOTOCORE_SERVICES) -> None:
    """Remove the service models the provider never loads; the shared files (endpoints, partitions,
    retry and default configuration) stay."""
    if not data.is_dir():
        raise FreezeError("botocore's data directory is missing from the frozen build", str(data))
    missing = sorted(name for name in keep if not (data / name).is_dir())
    if missing:
        raise FreezeError(f"botocore has no model of {', '.join(missing)}", "the provider's AWS calls need it")
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in keep:
            shutil.rmtree(entry)


def check_handshake(executable: Path, timeout: float = 60) -> str:
    """Start the executable as Terraform does and return its go-plugin handshake line: a frozen build
    that cannot import a module it needs fails here, at build time, not on a worker."""
    from .plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE  # build time only: keeps the module light to import

    env = {"PATH": "/usr/bin:/bin", MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "6"}
    proc = subprocess.Popen([str(executable)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode("utf-8", "replace").strip()
    finally:
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    if not line.startswith("1|6|unix|"):
        raise FreezeError(f"the frozen provider {executable.name} did not complete the plugin handshake",
                          stderr.decode("utf-8", "replace")[-2000:])
    return line


# -- the glibc floor ----------------------------------------------------------------------------------

SHT_GNU_VERNEED = 0x6FFFFFFE
ELF_MAGIC = b"\x7fELF"


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.removeprefix("GLIBC_").split(".") if part.isdigit())


def elf_glibc_versions(path: Path) -> set[str]:
    """The `GLIBC_x.y` symbol versions an ELF file needs (its SHT_GNU_verneed entries naming a
    glibc library), read from the file itself: what `objdump -T` / `readelf -V` show. Empty for a
    file that is not a 64-bit little-endian ELF."""
    data = path.read_bytes()
    if data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:  # ELFCLASS64, ELFDATA2LSB
        return set()
    section_offset = struct.unpack_from("<Q", data, 0x28)[0]
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    found: set[str] = set()
    for _name, kind, _flags, _addr, offset, _size, link, info, _align, _entsize in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strings = sections[link][4]

        def text(at: int, strings: int = strings) -> str:
            start = strings + at
            return data[start:data.index(b"\0", start)].decode("ascii", "replace")

        need = offset
        for _ in range(info):  # sh_info: number of Verneed entries
            _version, aux_count, _file, aux, following = struct.unpack_from("<HHIII", data, need)
            entry = need + aux
            for _ in range(aux_count):
                _hash, _flags2, _other, name, next_aux = struct.unpack_from("<IHHII", data, entry)
                if text(name).startswith("GLIBC_"):
                    found.add(text(name))
                entry += next_aux
            if not following:
                break
            need += following
    return {v for v in found if _version_key(v)}


def glibc_floor(directory: Path) -> tuple[str, list[str]]:
    """(highest GLIBC_x.y any ELF file under `directory` needs, the files that need it)."""
    needs: dict[Path, str] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                if handle.read(4) != ELF_MAGIC:
                    continue
            versions = elf_glibc_versions(path)
            if versions:
                needs[path] = max(versions, key=_version_key)
    if not needs:
        return "none", []
    floor = max(needs.values(), key=_version_key)
    return floor, [p.relative_to(directory).as_posix() for p, v in needs.items() if v == floor]


def executable_bits(directory: Path) -> list[str]:
    """Relative paths of the files the build marked executable (the zip keeps their mode)."""
    return [p.relative_to(directory).as_posix() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.stat().st_mode & stat.S_IXUSR]
