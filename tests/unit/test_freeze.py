"""The frozen-build helpers: the cache key follows every input, the glibc floor reader agrees with
binutils' readelf, and the cached build starts and answers the plugin handshake with no Python on PATH."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import grpc
import pytest

from tokendrop_provider import freeze
from tokendrop_provider.install import schema_answer
from tokendrop_provider.plugin.gen import go_plugin_pb2, go_plugin_pb2_grpc, tfplugin6_pb2, tfplugin6_pb2_grpc
from tokendrop_provider.plugin.schema_cache import FROZEN_NAME
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE

LIBPYTHON = Path(sysconfig.get_config_var("LIBDIR") or "/") / str(sysconfig.get_config_var("INSTSONAME") or "-")
SYSTEM_ELVES = [p for p in (Path(sys.executable).resolve(), LIBPYTHON, Path("/bin/ls")) if p.is_file()]
needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is not installed")


def readelf_glibc_versions(path: Path) -> set[str]:
    out = subprocess.run(["readelf", "-V", "--wide", str(path)], capture_output=True, text=True, check=True).stdout
    needs = out.split("Version needs section", 1)[-1] if "Version needs section" in out else ""
    return set(re.findall(r"Name: (GLIBC_\d+(?:\.\d+)+)", needs))


@needs_readelf
@pytest.mark.parametrize("path", SYSTEM_ELVES, ids=lambda p: p.name)
def test_glibc_versions_are_readelfs(path: Path) -> None:
    expected = readelf_glibc_versions(path)
    assert expected, f"{path} needs no glibc version: a useless sample"
    assert freeze.elf_glibc_versions(path) == expected


@needs_readelf
def test_glibc_floor_is_the_highest_need_and_names_its_files(tmp_path: Path) -> None:
    for number, path in enumerate(SYSTEM_ELVES):
        shutil.copyfile(path, tmp_path / f"{number}-{path.name}")
    (tmp_path / "notes.txt").write_text("not an ELF file")
    (tmp_path / "short").write_bytes(b"\x7fE")
    floor, files = freeze.glibc_floor(tmp_path)
    everything = set().union(*(readelf_glibc_versions(p) for p in SYSTEM_ELVES))
    assert floor == max(everything, key=lambda v: tuple(int(x) for x in v[6:].split(".")))
    assert files and all(floor in readelf_glibc_versions(tmp_path / f) for f in files)


def copy_sources(tmp_path: Path) -> Path:
    source = tmp_path / "tokendrop_provider"
    shutil.copytree(freeze.SOURCE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def test_digest_follows_sources_and_requirements(tmp_path: Path) -> None:
    source = copy_sources(tmp_path)
    pins = tmp_path / "runtime.txt"
    pins.write_text("grpcio==1.0\n")
    before = freeze.inputs_digest(source, (pins,))
    assert freeze.inputs_digest(source, (pins,)) == before  # stable

    delivery = source / "delivery.py"
    delivery.write_text(delivery.read_text() + "\n# a change\n")
    after_source = freeze.inputs_digest(source, (pins,))
    assert after_source != before

    (source / "issuers" / "new_issuer.py").write_text("X = 1\n")  # a new module counts too
    after_new = freeze.inputs_digest(source, (pins,))
    assert after_new != after_source

    pins.write_text("grpcio==1.1\n")
    assert freeze.inputs_digest(source, (pins,)) != after_new


def test_sandbox_is_neither_bundled_nor_hashed(tmp_path: Path) -> None:
    source = copy_sources(tmp_path)
    before = freeze.inputs_digest(source, ())
    (source / "sandbox" / "tfe.py").write_text("# the emulators never reach a runner\n")
    assert freeze.inputs_digest(source, ()) == before
    modules = freeze.hidden_imports(source)
    assert "tokendrop_provider.sinks.ssm" in modules and "tokendrop_provider.plugin.server" in modules
    assert not [m for m in modules if m.startswith("tokendrop_provider.sandbox")]


def test_cached_build_is_reused_and_answers_without_python(frozen_provider: freeze.FrozenBuild) -> None:
    again = freeze.build_frozen(frozen_provider.directory.parent.parent)
    assert again.cached and again.directory == frozen_provider.directory
    # check_handshake runs it in a bare environment: no virtualenv, no PYTHON* variables
    assert freeze.check_handshake(again.executable).startswith("1|6|unix|")
    assert not (again.directory / "_internal" / "libstdc++.so.6").exists()
    floor, _files = freeze.glibc_floor(again.directory)
    assert floor.startswith("GLIBC_2.")


def test_frozen_build_keeps_only_the_botocore_models_it_loads(frozen_provider: freeze.FrozenBuild) -> None:
    data = frozen_provider.directory / "_internal" / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == freeze.BOTOCORE_SERVICES
    assert (data / "endpoints.json").is_file() and (data / "partitions.json").is_file()


def test_trimming_refuses_a_botocore_without_a_needed_model(tmp_path: Path) -> None:
    for name in ("ssm", "sts", "ec2"):
        (tmp_path / name).mkdir()
    with pytest.raises(freeze.FreezeError, match="botocore has no model of signin, sso, sso-oidc"):
        freeze.trim_botocore_models(tmp_path)
    assert (tmp_path / "ec2").is_dir()  # nothing removed before the check


@needs_readelf
def test_glibc_floor_script_prints_the_floor_and_its_files(tmp_path: Path) -> None:
    shutil.copyfile(SYSTEM_ELVES[0], tmp_path / "a.so")
    script = Path(__file__).resolve().parents[2] / "scripts" / "glibc_floor.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    expected = max(readelf_glibc_versions(tmp_path / "a.so"), key=lambda v: tuple(int(x) for x in v[6:].split(".")))
    assert done.stdout.splitlines() == [f"{expected}  {tmp_path}", "  needed by a.so"]


def test_the_frozen_build_answers_the_schema_it_was_built_with(frozen_provider: freeze.FrozenBuild) -> None:
    """The bundle carries the schema answer of its sources (plugin/schema_cache.py serves it to the
    launch that only asks for the schema), and a launch of it answers exactly that."""
    assert (frozen_provider.directory / "_internal" / FROZEN_NAME).read_bytes() == schema_answer()
    env = {"PATH": "/usr/bin:/bin", MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "6"}
    proc = subprocess.Popen([str(frozen_provider.executable)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        _, _, _, address, _, cert = proc.stdout.readline().decode().strip().split("|")
        der = base64.b64decode(cert + "=" * (-len(cert) % 4))
        pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
        with grpc.secure_channel(f"unix:{address}", grpc.ssl_channel_credentials(root_certificates=pem),
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            answer = tfplugin6_pb2_grpc.ProviderStub(channel).GetProviderSchema(
                tfplugin6_pb2.GetProviderSchema.Request(), timeout=60)
            go_plugin_pb2_grpc.GRPCControllerStub(channel).Shutdown(go_plugin_pb2.Empty(), timeout=60)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert answer == tfplugin6_pb2.GetProviderSchema.Response.FromString(schema_answer())
