"""`tokendrop provider package` for real: wheels from the package index for linux_amd64 and
linux_arm64, the artifact "installed" into a fresh directory, and terraform run from it with an
explicit filesystem-mirror CLI configuration and the generated lock file (`-lockfile=readonly`),
under a PATH whose python3 is the base interpreter, not this virtualenv. Plus the network-mirror
layout: its JSON files, their hashes, and terraform installing from it over HTTPS."""

from __future__ import annotations

import datetime
import functools
import http.server
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fixtures.terraform import TERRAFORM, Workspace, scan
from tokendrop_provider import package

pytestmark = pytest.mark.e2e

PLATFORMS = ("linux_amd64", "linux_arm64")
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
SOURCE = "registry.terraform.io/tokendrop/tokendrop"
ELF_MACHINE = {"linux_amd64": 62, "linux_arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64
LOCAL_PLATFORM = next((p for p, (_, machines) in package.PLATFORMS.items() if os.uname().machine in machines), None)

CONFIG = """
terraform {
  required_providers {
    tokendrop = { source = "tokendrop/tokendrop" }
  }
}

provider "tokendrop" {}

resource "tokendrop_tfe_agent_pool" "runners" {
  organization = "acme"
  name         = "packaged"
}

resource "tokendrop_tfe_agent_token" "ssm" {
  agent_pool_id = tokendrop_tfe_agent_pool.runners.id
  deliver_to    = { ssm = { name = "/ci/packaged/token", tags = { via = "package" } } }
}

resource "tokendrop_tfe_agent_token" "vault" {
  agent_pool_id = tokendrop_tfe_agent_pool.runners.id
  deliver_to    = { vault_kv = { mount = "secret", path = "ci/packaged" } }
}
"""


@pytest.fixture(scope="module")
def provider_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of tokendrop_provider, so that both builds bundle the same code even while the
    checkout is being edited."""
    snapshot = tmp_path_factory.mktemp("source") / "tokendrop_provider"
    shutil.copytree(Path(package.__file__).parent, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    return snapshot


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, provider_source: Path) -> package.Package:
    """The filesystem-mirror artifact for both platforms, lock file cross-checked with terraform."""
    return package.build(tmp_path_factory.mktemp("package-fs"), PLATFORMS, [PYTHON], "filesystem", verify=True,
                         provider_source=provider_source)


@pytest.fixture(scope="module")
def built_network(tmp_path_factory: pytest.TempPathFactory, provider_source: Path) -> package.Package:
    """The network-mirror layout, built a second time from the same inputs."""
    return package.build(tmp_path_factory.mktemp("package-net"), PLATFORMS, [PYTHON], "network", verify=False,
                         provider_source=provider_source)


def base_interpreter() -> Path:
    """This machine's Python of the running version, outside any virtualenv (sys.base_prefix never
    points into one)."""
    for candidate in (Path(sys.base_prefix) / "bin" / f"python{PYTHON}", Path(f"/usr/bin/python{PYTHON}")):
        if candidate.exists():
            return candidate
    pytest.skip(f"no base python{PYTHON} outside the virtualenv")


def runner_env(root: Path, cli_config: Path) -> dict[str, str]:
    """What a CI runner has: a python3 (the base interpreter), no virtualenv, and some traps: a
    PYTHONPATH and modules named like the bundled ones that must not be picked up."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name in ("python3", f"python{PYTHON}"):  # also shadows /usr/bin/python3.X for the launcher
        (bin_dir / name).symlink_to(base_interpreter())
    poison = root / "site"
    for module in ("grpc", "boto3", "tokendrop_provider"):
        (poison / module).mkdir(parents=True)
        (poison / module / "__init__.py").write_text("raise ImportError('a module outside the bundle was used')\n")
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(root), "PYTHONPATH": str(poison),
            "LANG": os.environ.get("LANG", "C.UTF-8"), "TF_CLI_CONFIG_FILE": str(cli_config),
            "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


def mirror_copy(built: package.Package, destination: Path) -> Path:
    """The mirror as a runner image would carry it: the registry.terraform.io tree only."""
    shutil.copytree(built.out / "registry.terraform.io", destination / "registry.terraform.io")
    return destination


# -- the artifact ----------------------------------------------------------------------------------


def test_artifact_per_platform(built: package.Package) -> None:
    assert [a.platform for a in built.archives] == list(PLATFORMS)
    assert built.verified_by_terraform, "terraform providers lock computed the same h1 for both zips"
    pins = package.read_pins(Path(__file__).resolve().parents[2] / "requirements" / "runtime.txt")
    lock_hashes = package.lock_file_hashes(built.lock_file.read_text())
    assert lock_hashes == {h for a in built.archives for h in (a.h1, a.zh)}

    for archive in built.archives:
        assert archive.path.name == f"terraform-provider-tokendrop_{built.version}_{archive.platform}.zip"
        assert archive.path.parent == built.out / "registry.terraform.io" / "tokendrop" / "tokendrop"
        with zipfile.ZipFile(archive.path) as zipped:
            names = zipped.namelist()
            manifest = json.loads(zipped.read("lib/manifest.json"))
            elf = {n: zipped.read(n)[:20] for n in names if n.endswith(".so")}
            assert zipped.read(f"terraform-provider-tokendrop_v{built.version}").startswith(b"#!/bin/sh\n")
        top = {n.split("/")[2] for n in names if n.startswith("lib/common/")}
        # The provider and its runtime dependencies; never the CDK libraries.
        assert {"tokendrop_provider", "grpc", "google", "msgpack", "cryptography", "requests", "boto3", "botocore",
                "urllib3", "certifi"} <= top
        assert not top & {"cdktf", "cdktn", "jsii", "constructs", "tokendrop", "moto", "flask", "hvac"}
        bundled = {package.Wheel.parse(Path(w)) for w in manifest["wheels"]["common"]}
        assert {(w.name, w.version) for w in bundled} <= set(pins.items())
        assert {w.name for w in bundled} >= {"grpcio", "protobuf", "msgpack", "cryptography", "cffi", "boto3"}
        # Compiled extensions for this platform only: ELF files for the right machine.
        assert elf and all(header[:4] == b"\x7fELF" for header in elf.values())
        machines = {int.from_bytes(header[18:20], "little") for header in elf.values()}
        assert machines == {ELF_MACHINE[archive.platform]}, archive.platform
        assert any("grpc/_cython/cygrpc" in n for n in elf)
        # Bytecode precompiled for the bundled Python, no other caches.
        tag = sys.implementation.cache_tag
        assert f"lib/common/tokendrop_provider/__pycache__/main.{tag}.pyc" in names
        assert not [n for n in names if n.endswith(".pyc") and f".{tag}." not in n]
        assert archive.h1 == package.h1_zip(archive.path) and archive.zh == package.zh_zip(archive.path)
    sums = built.sums_file.read_text().splitlines()
    assert sums == [f"{a.zh[3:]}  {a.path.name}" for a in built.archives]


def test_network_layout_and_reproducibility(built: package.Package, built_network: package.Package) -> None:
    directory = built_network.out / "registry.terraform.io" / "tokendrop" / "tokendrop"
    index = json.loads((directory / "index.json").read_text())
    assert index == {"versions": {built_network.version: {}}}
    doc = json.loads((directory / f"{built_network.version}.json").read_text())
    assert set(doc) == {"archives"} and set(doc["archives"]) == set(PLATFORMS)
    for platform, entry in doc["archives"].items():
        archive = directory / entry["url"]
        assert entry["url"] == package.archive_name(built_network.version, platform) and archive.is_file()
        h1, zh = entry["hashes"]
        assert h1 == package.h1_zip(archive) and zh == package.zh_zip(archive)
    # Built twice from the same pins: the same bytes, so the same lock file serves both layouts.
    for first, second in zip(built.archives, built_network.archives, strict=True):
        assert first.path.read_bytes() == second.path.read_bytes(), first.platform
    assert built.lock_file.read_text() == built_network.lock_file.read_text()


# -- installed on a "runner" -------------------------------------------------------------------------


@pytest.mark.skipif(LOCAL_PLATFORM is None, reason="this machine is neither amd64 nor arm64")
def test_installed_artifact_runs_terraform(built: package.Package, sandbox, tmp_path: Path) -> None:
    runner = tmp_path / "runner"
    mirror = mirror_copy(built, runner / "opt" / "terraform-mirror")
    config = runner / "terraform.tfrc"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(package.cli_configuration("filesystem", str(mirror)))
    env = runner_env(runner, config)
    ws = Workspace(runner / "work", {**env, **sandbox.env})
    ws.directory.mkdir()
    ws.write(CONFIG)
    shutil.copyfile(built.lock_file, ws.directory / ".terraform.lock.hcl")
    lock = built.lock_file.read_bytes()
    # A module named like the provider's package in the working directory must not shadow it either.
    (ws.directory / "tokendrop_provider").mkdir()
    (ws.directory / "tokendrop_provider" / "__init__.py").write_text("raise ImportError('cwd was used')\n")

    init = ws.run("init", "-no-color", "-input=false", "-lockfile=readonly")
    assert f"Installed tokendrop/tokendrop v{built.version}" in init.stdout
    assert (ws.directory / ".terraform.lock.hcl").read_bytes() == lock
    installed = ws.directory / ".terraform" / "providers" / SOURCE / built.version / LOCAL_PLATFORM
    launcher = installed / f"terraform-provider-tokendrop_v{built.version}"
    assert os.access(launcher, os.X_OK)

    # The launcher's own account of what it runs: the runner's python, only bundled files.
    proc = subprocess.run([str(launcher), "--self-test"], cwd=ws.directory, env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["python"] == str(runner / "bin" / f"python{PYTHON}")
    assert Path(report["python"]).resolve() == base_interpreter().resolve()
    assert report["flags"] == {"isolated": 1, "no_site": 1, "dont_write_bytecode": 1}
    for name, module in report["modules"].items():
        assert module.get("bundled"), (name, module)
        assert module["file"].startswith(str(installed.resolve() / "lib") + "/"), (name, module["file"])
    assert not [p for p in report["sys_path"] if "site-packages" in p or ".venv" in p or p in ("", str(ws.directory))]

    plan = ws.plan("-out=tfplan")
    assert "3 to add, 0 to change, 0 to destroy" in plan.stdout
    ws.apply("tfplan")
    resources = ws.resources()
    ssm_token, vault_token = resources["tokendrop_tfe_agent_token.ssm"], resources["tokendrop_tfe_agent_token.vault"]
    assert sandbox.ssm_value("/ci/packaged/token") == (sandbox.token_value(ssm_token["id"]), 1)
    assert sandbox.vault_value("ci/packaged") == ({"token": sandbox.token_value(vault_token["id"])}, 1)
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.destroy()
    assert sandbox.ssm_value("/ci/packaged/token") is None

    # Nothing was written into the provider directory (terraform re-checks it against the lock file
    # at every command), a plain init leaves the lock file alone, and no token leaked anywhere.
    assert package.h1_dir(installed) == next(a.h1 for a in built.archives if a.platform == LOCAL_PLATFORM)
    ws.run("init", "-no-color", "-input=false")
    assert (ws.directory / ".terraform.lock.hcl").read_bytes() == lock
    values = sandbox.minted_values()
    assert len(values) == 2 and scan(values, ws.artifacts()) == []


@pytest.mark.skipif(LOCAL_PLATFORM is None, reason="this machine is neither amd64 nor arm64")
def test_lock_file_is_enforced(built: package.Package, tmp_path: Path) -> None:
    """The same init with one file added to this platform's zip fails: the readonly lock file is
    really checked."""
    mirror = mirror_copy(built, tmp_path / "mirror")
    zip_path = mirror.joinpath(*SOURCE.split("/"), package.archive_name(built.version, str(LOCAL_PLATFORM)))
    with zipfile.ZipFile(zip_path, "a") as zipped:
        zipped.writestr("lib/extra.txt", "not in the lock file")
    config = tmp_path / "terraform.tfrc"
    config.write_text(package.cli_configuration("filesystem", str(mirror)))
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.tf").write_text(CONFIG)
    shutil.copyfile(built.lock_file, work / ".terraform.lock.hcl")
    proc = subprocess.run([TERRAFORM, "init", "-no-color", "-input=false", "-lockfile=readonly"], cwd=work,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(config),
                               "CHECKPOINT_DISABLE": "1"}, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "doesn't match any of the checksums previously recorded in the dependency lock file" in " ".join(
        proc.stdout.split() + proc.stderr.split())


def test_implied_mirror_on_a_runner_image(built: package.Package, tmp_path: Path) -> None:
    """No CLI configuration at all: the zips copied into <data dir>/terraform/plugins (on an image,
    /usr/local/share/terraform/plugins, a default XDG data dir) are found by `terraform init`."""
    share = tmp_path / "usr-local-share"
    mirror_copy(built, share / "terraform" / "plugins")
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.tf").write_text(CONFIG)
    shutil.copyfile(built.lock_file, work / ".terraform.lock.hcl")
    proc = subprocess.run([TERRAFORM, "init", "-no-color", "-input=false", "-lockfile=readonly"], cwd=work,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "XDG_DATA_DIRS": str(share),
                               "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Installed tokendrop/tokendrop v{built.version}" in proc.stdout
    assert (work / ".terraform.lock.hcl").read_bytes() == built.lock_file.read_bytes()


# -- the network mirror, served over HTTPS ----------------------------------------------------------


@pytest.fixture
def https_mirror(built_network: package.Package, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """built_network.out served on 127.0.0.1 over TLS (terraform requires https), with a throwaway
    self-signed certificate that terraform trusts through SSL_CERT_FILE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "mirror.pem", tmp_path / "mirror.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=built_network.out))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert_file
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_network_mirror_install(built_network: package.Package, https_mirror: tuple[str, Path],
                                tmp_path: Path) -> None:
    url, cert_file = https_mirror
    config = tmp_path / "terraform.tfrc"
    config.write_text(built_network.cli_config(url))
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.tf").write_text(CONFIG)
    shutil.copyfile(built_network.lock_file, work / ".terraform.lock.hcl")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(config),
           "CHECKPOINT_DISABLE": "1", "SSL_CERT_FILE": str(cert_file)}
    proc = subprocess.run([TERRAFORM, "init", "-no-color", "-input=false", "-lockfile=readonly"], cwd=work, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # "verified checksum": terraform checked the zip against the hashes in <version>.json.
    assert f"Installed tokendrop/tokendrop v{built_network.version} (verified checksum)" in proc.stdout
    assert (work / ".terraform.lock.hcl").read_bytes() == built_network.lock_file.read_bytes()
    # Every platform of the mirror is reachable through it, with the hashes of the lock file.
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "main.tf").write_text(CONFIG)
    proc = subprocess.run([TERRAFORM, "providers", "lock", f"-net-mirror={url}",
                           *(f"-platform={p}" for p in PLATFORMS)], cwd=locked, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert package.lock_file_hashes((locked / ".terraform.lock.hcl").read_text()) == {
        a.h1 for a in built_network.archives}
