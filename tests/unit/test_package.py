"""`tokendrop provider package` without the network: zips and hashes, the launcher, and whole builds
from a local wheelhouse of tiny wheels made here (real pip, real compileall, the current platform)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tokendrop_provider import package
from tokendrop_provider.install import terraform_platform
from tokendrop_provider.package import PackageError

PLATFORM = terraform_platform()
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
ABI = "cp" + PYTHON.replace(".", "")
needs_supported_platform = pytest.mark.skipif(PLATFORM not in package.PLATFORMS,
                                              reason=f"no bundle for {PLATFORM}")


# -- a wheelhouse of tiny wheels ----------------------------------------------------------------------


def record_hash(text: str) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")


def make_wheel(directory: Path, name: str, version: str, tag: str, requires: tuple[str, ...] = (),
               body: str = "") -> Path:
    """A minimal valid wheel holding one module `<name>.py`."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": body or f"NAME = {name!r}\nVERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
                            f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {str(tag.endswith('any')).lower()}\n"
                         f"Tag: {tag}\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},{record_hash(text)},{len(text.encode())}\n"
                                      for path, text in files.items()) + f"{dist}/RECORD,,\n"
    path = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tdapp (pure) needs tdnative, which has platform wheels for CPython 3.11 and 3.12 on this
    machine's platform only (so that a build for the other platform finds nothing)."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(directory, "tdapp", "1.0", "py3-none-any", requires=("tdnative>=2", 'tdextra; extra == "more"'))
    wheel_platform = package.PLATFORMS.get(PLATFORM, ("manylinux2014_x86_64",))[0]
    for version in ("3.11", "3.12"):
        abi = "cp" + version.replace(".", "")
        make_wheel(directory, "tdnative", "2.0", f"{abi}-{abi}-{wheel_platform}",
                   body=f"BUILT_FOR = {abi!r}\n")
    make_wheel(directory, "tdextra", "9.0", "py3-none-any")
    return directory


@pytest.fixture(scope="module")
def pins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pins") / "runtime.txt"
    path.write_text("# exact pins\ntdapp==1.0\ntdnative==2.0  # the platform one\ntdextra==9.0\n")
    return path


@pytest.fixture(scope="module")
def provider_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of tokendrop_provider: the checkout's may change while the tests run."""
    snapshot = tmp_path_factory.mktemp("source") / "tokendrop_provider"
    shutil.copytree(Path(package.__file__).parent, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    return snapshot


Builder = Callable[..., package.Package]


@pytest.fixture
def build(wheelhouse: Path, provider_source: Path) -> Builder:
    """build(out, pins, **options): a build from the wheelhouse for this machine's platform."""

    def run(out: Path, pins: Path, **kwargs: object) -> package.Package:
        options: dict = {"platforms": [PLATFORM], "pythons": [PYTHON], "constraints": pins, "wheelhouse": wheelhouse,
                         "requirements": ["tdapp==1.0"], "verify": False, "provider_source": provider_source, **kwargs}
        return package.build(out, **options)

    return run


# -- pure functions -----------------------------------------------------------------------------------


def test_read_pins(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.17.0\n")
    pins = tmp_path / "runtime.txt"
    pins.write_text("-r base.txt\n# comment\nCharset_Normalizer==3.5.3\nmoto[ssm,kms]==5.2.5\n"
                    "typing_extensions==4.16.0 ; python_version < '3.12'\n\n")
    assert package.read_pins(pins) == {"six": "1.17.0", "charset-normalizer": "3.5.3", "moto": "5.2.5",
                                       "typing-extensions": "4.16.0"}
    pins.write_text("grpcio>=1.70\n")
    with pytest.raises(PackageError, match=r"runtime.txt:1 is not an exact pin"):
        package.read_pins(pins)


def test_the_checkouts_pins_cover_the_provider_and_not_the_cdk() -> None:
    pins, source = package.default_pins()
    assert source.endswith("requirements/runtime.txt")
    names = {package.normalize(r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip())
             for r in package.provider_requirements()}
    assert names == {"grpcio", "protobuf", "msgpack", "cryptography", "requests", "boto3", "msal"}
    assert names <= set(pins)
    assert not names & package.NEVER_BUNDLED


def test_wheel_names() -> None:
    pure = package.Wheel.parse(Path("python_dateutil-2.9.0.post0-py2.py3-none-any.whl"))
    assert (pure.name, pure.version, pure.pure) == ("python-dateutil", "2.9.0.post0", True)
    native = package.Wheel.parse(Path("grpcio-1.85.3-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"))
    assert (native.name, native.tags[1], native.pure) == ("grpcio", "cp311", False)
    with pytest.raises(PackageError):
        package.Wheel.parse(Path("nonsense.whl"))


def test_zip_is_reproducible_flat_and_sorted(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "lib" / "b").mkdir(parents=True)
    (tree / "lib" / "b" / "z.py").write_text("z = 1\n")
    (tree / "lib" / "a.txt").write_text("a")
    (tree / "run").write_text("#!/bin/sh\n")
    package.write_zip(tree, tmp_path / "one.zip", executables=["run"])
    for path in tree.rglob("*"):  # other mtimes and modes on disk change nothing
        os.utime(path, (1_700_000_000, 1_700_000_000))
        path.chmod(0o700 if path.is_dir() else 0o600)
    package.write_zip(tree, tmp_path / "two.zip", executables=["run"])
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["lib/a.txt", "lib/b/z.py", "run"]  # sorted, no directory entries
    assert {i.date_time for i in infos} == {package.ZIP_EPOCH}
    modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in infos}
    assert modes == {"lib/a.txt": 0o644, "lib/b/z.py": 0o644, "run": 0o755}


def test_zip_refuses_symlinks(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "link").symlink_to("/etc/hostname")
    with pytest.raises(PackageError, match="symlinks"):
        package.write_zip(tmp_path / "tree", tmp_path / "x.zip")


def test_h1_matches_terraform(tmp_path: Path) -> None:
    """Known answer: `terraform providers lock -fs-mirror` (Terraform 1.11.4) recorded this h1 for a zip
    holding exactly these two files. The unpacked directory hashes the same."""
    tree = tmp_path / "tree"
    (tree / "lib").mkdir(parents=True)
    (tree / "terraform-provider-tokendrop_v0.1.0").write_text("#!/bin/sh\necho amd64\n")
    (tree / "lib" / "a.txt").write_text("x")
    package.write_zip(tree, tmp_path / "p.zip")
    expected = "h1:ArxGcI+ksAt1dAdeIOiGc6aO2HfQvf7toBaBkZ2296Q="
    assert package.h1_zip(tmp_path / "p.zip") == expected
    assert package.h1_dir(tree) == expected
    assert package.zh_zip(tmp_path / "p.zip") == "zh:" + hashlib.sha256((tmp_path / "p.zip").read_bytes()).hexdigest()


def test_lock_file_text() -> None:
    text = package.lock_file_text("registry.terraform.io/tokendrop/tokendrop", "0.1.0",
                                  ["zh:ff", "h1:b=", "h1:a=", "zh:ff"])
    assert text.endswith('provider "registry.terraform.io/tokendrop/tokendrop" {\n  version = "0.1.0"\n'
                         '  hashes = [\n    "h1:a=",\n    "h1:b=",\n    "zh:ff",\n  ]\n}\n')
    assert package.lock_file_hashes(text) == {"h1:a=", "h1:b=", "zh:ff"}


def test_cli_configuration() -> None:
    config = package.cli_configuration("filesystem", "/opt/terraform/mirror")
    assert 'filesystem_mirror {\n    path    = "/opt/terraform/mirror"' in config
    assert config.count('"registry.terraform.io/tokendrop/*"') == 2 and "direct {\n    exclude" in config
    assert 'network_mirror {\n    url     = "https://m.example/tf/"' in package.cli_configuration(
        "network", "https://m.example/tf/")


def test_launcher_script() -> None:
    script = package.launcher_script("0.1.0", "linux_arm64", ["3.11", "3.12"])
    assert script.startswith("#!/bin/sh\n")
    assert "@" not in script.replace("$@", "")  # every placeholder filled
    assert 'exec "$python" -I -S -B "$here/lib/boot.py" "$@"' in script
    assert 'wanted="3.11 3.12"' in script
    assert "for candidate in python3.11 python3.12 python3 python; do" in script
    assert "TOKENDROP_PYTHON" in script
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    boot = package.bootstrap_script("0.1.0", "linux_arm64", ["3.11", "3.12"])
    compile(boot, "boot.py", "exec")
    assert "MACHINES = ('aarch64', 'arm64')" in boot and "PYTHONS = ('3.11', '3.12')" in boot


@pytest.mark.parametrize(("platforms", "pythons", "layout", "message"), [
    (["darwin_arm64"], ["3.11"], "filesystem", "unsupported platform 'darwin_arm64'"),
    (["linux_amd64"], ["3.10"], "filesystem", "unsupported --python '3.10'"),
    (["linux_amd64"], ["3"], "filesystem", "unsupported --python '3'"),
    (["linux_amd64"], ["3.11"], "registry", "unknown layout 'registry'"),
])
def test_bad_options(tmp_path: Path, platforms: list[str], pythons: list[str], layout: str, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        package.build(tmp_path, platforms, pythons, layout, verify=False)
    assert not any(tmp_path.iterdir())


# -- whole builds from the wheelhouse -------------------------------------------------------------------


@needs_supported_platform
def test_build_is_reproducible_and_laid_out_as_a_filesystem_mirror(tmp_path: Path, build: Builder,
                                                                    pins: Path) -> None:
    first = build(tmp_path / "one", pins)
    second = build(tmp_path / "two", pins)
    [archive] = first.archives
    name = f"terraform-provider-tokendrop_{first.version}_{PLATFORM}.zip"
    assert archive.path == tmp_path / "one" / "registry.terraform.io" / "tokendrop" / "tokendrop" / name
    assert archive.path.read_bytes() == second.archives[0].path.read_bytes()
    assert archive.h1 == package.h1_zip(archive.path) and archive.zh == package.zh_zip(archive.path)

    with zipfile.ZipFile(archive.path) as zipped:
        names = zipped.namelist()
        launcher = f"terraform-provider-tokendrop_v{first.version}"
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in zipped.infolist()}
        manifest = json.loads(zipped.read("lib/manifest.json"))
        script = zipped.read(launcher).decode()
    assert names == sorted(names) and not [n for n in names if n.endswith("/")]
    assert modes[launcher] == 0o755 and {m for n, m in modes.items() if n != launcher} == {0o644}
    assert script == package.launcher_script(first.version, PLATFORM, [PYTHON])
    # One Python: every wheel is shared. The provider's own modules, not its bytecode caches, plus
    # fresh bytecode compiled for the bundled Python.
    assert "lib/common/tdapp.py" in names and "lib/common/tdnative.py" in names
    assert "lib/common/tdextra.py" not in names  # only wanted by an extra
    assert "lib/common/tokendrop_provider/main.py" in names
    assert "lib/common/tokendrop_provider/plugin/proto/tfplugin6.proto" in names
    assert f"lib/common/tokendrop_provider/__pycache__/main.{sys.implementation.cache_tag}.pyc" in names
    assert f"lib/common/__pycache__/tdapp.{sys.implementation.cache_tag}.pyc" in names
    assert "lib/common/tokendrop_provider/package.py" in names
    assert not [n for n in names if n.startswith("lib/common/bin/") or "direct_url.json" in n]
    assert not [n for n in names if n.startswith(("lib/common/tokendrop/", "lib/common/cdktf", "lib/common/jsii"))]
    assert manifest["platform"] == PLATFORM and manifest["python"] == [PYTHON]
    assert manifest["wheels"]["common"] == ["tdapp-1.0-py3-none-any.whl",
                                            f"tdnative-2.0-{ABI}-{ABI}-{package.PLATFORMS[PLATFORM][0]}.whl"]

    lock = first.lock_file.read_text()
    assert first.lock_file == tmp_path / "one" / ".terraform.lock.hcl"
    assert package.lock_file_hashes(lock) == {archive.h1, archive.zh}
    assert first.sums_file.read_text() == f"{archive.zh[3:]}  {name}\n"
    assert not first.network_files and not (archive.path.parent / "index.json").exists()
    report = package.report(first)
    assert str(archive.path) in report and archive.h1 in report and "filesystem_mirror" in report


@needs_supported_platform
def test_launcher_runs_only_the_bundle(tmp_path: Path, build: Builder, pins: Path) -> None:
    """The launcher picks a matching interpreter and gives it nothing but the bundle: not this
    virtualenv's site-packages (which has grpc), not PYTHONPATH, not the working directory."""
    built = build(tmp_path / "out", pins)
    unpacked = tmp_path / "provider"
    with zipfile.ZipFile(built.archives[0].path) as zipped:
        zipped.extractall(unpacked)
    launcher = unpacked / f"terraform-provider-tokendrop_v{built.version}"
    launcher.chmod(0o755)  # extractall drops modes; Terraform keeps them
    poison = tmp_path / "poison"
    for module in ("tokendrop_provider", "tdapp"):
        (poison / module).mkdir(parents=True)
        (poison / module / "__init__.py").write_text("raise ImportError('shadowed')\n")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(poison),
           "VIRTUAL_ENV": sys.prefix, "HOME": str(tmp_path)}

    proc = subprocess.run([str(launcher), "--self-test"], cwd=poison, env=env, capture_output=True, text=True,
                          check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1  # grpc and friends are not in this test bundle...
    assert "No module named 'grpc'" in report["modules"]["grpc"]["error"]  # ...and the venv's is not visible
    provider = report["modules"]["tokendrop_provider.main"]
    assert provider["bundled"] and provider["file"] == str((unpacked / "lib/common/tokendrop_provider/main.py")
                                                           .resolve())
    assert report["flags"] == {"isolated": 1, "no_site": 1, "dont_write_bytecode": 1}
    assert str(poison) not in report["sys_path"] and "" not in report["sys_path"]
    assert report["sys_path"][:2] == [str((unpacked / "lib" / ABI).resolve()), str((unpacked / "lib/common").resolve())]
    assert not [p for p in report["sys_path"] if "site-packages" in p]
    assert package.h1_dir(unpacked) == built.archives[0].h1  # nothing was written into the bundle

    # The bundled module itself is importable through the bootstrap (a one-off check of sys.path).
    check = subprocess.run([sys.executable, "-I", "-S", "-c",
                            "import sys; sys.path[:0] = sys.argv[1:]; import tdapp, tdnative; "
                            "print(tdapp.__file__, tdnative.BUILT_FOR)",
                            str(unpacked / "lib" / ABI), str(unpacked / "lib/common")],
                           capture_output=True, text=True, check=False)
    assert check.stdout.split()[1] == ABI, check.stderr

    # No matching interpreter: a clear message, whether from PATH or TOKENDROP_PYTHON.
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    none = subprocess.run([str(launcher)], env={"PATH": f"{empty}:/nonexistent"}, capture_output=True, text=True,
                          check=False)
    assert none.returncode == 1
    assert f"needs CPython {PYTHON}" in none.stderr and "TOKENDROP_PYTHON" in none.stderr
    wrong = subprocess.run([str(launcher)], env={**env, "TOKENDROP_PYTHON": "/bin/true"}, capture_output=True,
                           text=True, check=False)
    assert wrong.returncode == 1 and "TOKENDROP_PYTHON=/bin/true is not CPython" in wrong.stderr


@needs_supported_platform
def test_two_pythons_and_the_network_layout(tmp_path: Path, build: Builder, pins: Path) -> None:
    if PYTHON != "3.11":
        pytest.skip("the wheelhouse has wheels for 3.11 and 3.12")
    out = tmp_path / "mirror"
    # A version published earlier stays in the index.
    directory = out / "registry.terraform.io" / "tokendrop" / "tokendrop"
    directory.mkdir(parents=True)
    (directory / "index.json").write_text('{"versions": {"0.0.9": {}}}')
    built = build(out, pins, pythons=["3.11", "3.12"], layout="network")
    [archive] = built.archives
    with zipfile.ZipFile(archive.path) as zipped:
        names = set(zipped.namelist())
        manifest = json.loads(zipped.read("lib/manifest.json"))
    # tdnative differs per Python: one copy each; tdapp is the same wheel for both: shared.
    assert {"lib/cp311/tdnative.py", "lib/cp312/tdnative.py", "lib/common/tdapp.py"} <= names
    assert "lib/common/tdnative.py" not in names
    assert manifest["wheels"]["common"] == ["tdapp-1.0-py3-none-any.whl"]
    for python in ("3.11", "3.12"):
        tag = "cpython-" + python.replace(".", "")
        if python not in built.uncompiled:  # compiled by that interpreter when this machine has it
            assert f"lib/common/tokendrop_provider/__pycache__/main.{tag}.pyc" in names

    index = json.loads((directory / "index.json").read_text())
    assert index == {"versions": {"0.0.9": {}, built.version: {}}}
    version_doc = json.loads((directory / f"{built.version}.json").read_text())
    assert version_doc == {"archives": {PLATFORM: {"url": archive.path.name, "hashes": [archive.h1, archive.zh]}}}
    assert (directory / version_doc["archives"][PLATFORM]["url"]).is_file()
    assert set(built.network_files) == {directory / "index.json", directory / f"{built.version}.json"}
    assert "network_mirror" in package.report(built)

    # Rebuilt as a filesystem mirror into the same directory: the JSON files follow the new zip.
    rebuilt = build(out, pins, pythons=["3.11"])
    version_doc = json.loads((directory / f"{built.version}.json").read_text())
    assert version_doc["archives"][PLATFORM]["hashes"] == [rebuilt.archives[0].h1, rebuilt.archives[0].zh]
    assert rebuilt.archives[0].h1 != archive.h1


@needs_supported_platform
def test_unpinned_dependency_is_refused(tmp_path: Path, build: Builder) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text("tdapp==1.0\n")
    with pytest.raises(PackageError, match=r"tdnative 2.0 is needed by the provider but not pinned"):
        build(tmp_path / "out", pins)


def test_missing_platform_wheel_names_package_and_platform(tmp_path: Path, build: Builder, pins: Path) -> None:
    """tdnative has no wheel for the other platform. It is a dependency, so pip only says
    "ResolutionImpossible"; the error still names it. Nothing is written, not even this platform's zip."""
    other = next(p for p in package.PLATFORMS if p != PLATFORM)
    with pytest.raises(PackageError, match=rf"no wheel of tdnative==2.0 for {other} \(CPython 3.11"):
        build(tmp_path / "out", pins, platforms=[PLATFORM, other], pythons=["3.11"])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.zip"))
    with pytest.raises(PackageError, match=rf"no wheel of tdmissing==3.0 for {PLATFORM}"):
        build(tmp_path / "out", pins, requirements=["tdmissing==3.0"])


def test_provider_package_command_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    from tokendrop_provider.cli import build_parser

    args = build_parser().parse_args(["provider", "package", "--out", "x", "--platform", "linux_arm64",
                                      "--python", "3.12", "--layout", "network"])
    assert (args.handler, args.out, args.platform, args.python, args.layout) == (
        package.run, "x", ["linux_arm64"], ["3.12"], "network")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["provider", "package", "--platform", "windows_amd64"])
    assert "invalid choice" in capsys.readouterr().err
