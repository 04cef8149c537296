"""The launcher `tokendrop provider install` writes: it starts the provider's own interpreter with -I -S and
the directories it imports from, so a launch skips `site` (every .pth file of the environment) and
ignores PYTHON* variables; and install compiles the provider's bytecode, so no launch compiles it."""

from __future__ import annotations

import base64
import importlib.util
import os
import subprocess
from pathlib import Path

import grpc
import pytest

import tokendrop_provider
from tokendrop_provider import install as install_module
from tokendrop_provider.install import install, launcher_script, provider_executable
from tokendrop_provider.plugin.gen import go_plugin_pb2, go_plugin_pb2_grpc, tfplugin6_pb2, tfplugin6_pb2_grpc
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE


def _serve_schema_and_shut_down(launcher: Path, **env_overrides: str) -> None:
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "6", **env_overrides}
    proc = subprocess.Popen([str(launcher)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        _, _, _, address, _, cert = proc.stdout.readline().decode().strip().split("|")
        der = base64.b64decode(cert + "=" * (-len(cert) % 4))
        pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
        with grpc.secure_channel(f"unix:{address}", grpc.ssl_channel_credentials(root_certificates=pem),
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            schema = tfplugin6_pb2_grpc.ProviderStub(channel).GetProviderSchema(
                tfplugin6_pb2.GetProviderSchema.Request(), timeout=30)
            assert "tokendrop_tfe_agent_token" in schema.resource_schemas
            go_plugin_pb2_grpc.GRPCControllerStub(channel).Shutdown(go_plugin_pb2.Empty(), timeout=30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_launcher_runs_the_interpreter_isolated_and_serves(tmp_path):
    launcher = install(tmp_path / "mirror").path
    text = launcher.read_text()
    assert " -I -S -c " in text and str(provider_executable()) in text
    # Variables that would change what the provider imports or how it starts are ignored.
    _serve_schema_and_shut_down(launcher, PYTHONPATH=str(tmp_path / "elsewhere"),
                                PYTHONSTARTUP=str(tmp_path / "missing.py"))


def test_launcher_falls_back_to_the_console_script_when_imports_fail(tmp_path, monkeypatch):
    """A library only a .pth file could find would not import under -S: the launcher then runs the
    console script, with the full site, instead of failing."""
    monkeypatch.setattr(install_module, "import_roots", lambda: [str(tmp_path / "nothing-here")])
    launcher = tmp_path / "launcher"
    launcher.write_text(install_module.launcher_script(provider_executable()))
    launcher.chmod(0o755)
    assert str(tmp_path / "nothing-here") in launcher.read_text()
    _serve_schema_and_shut_down(launcher)


def test_a_launcher_for_another_program_just_execs_it(tmp_path):
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text("#!/bin/sh\nexec true\n")
    assert launcher_script(wrapper).endswith(f'exec {wrapper} "$@"\n')


def test_install_compiles_the_provider_bytecode(tmp_path):
    package = Path(tokendrop_provider.__file__).parent
    if not os.access(package, os.W_OK):
        pytest.skip("a read-only install was compiled by pip")
    modules = [package / "main.py", package / "plugin" / "service.py", package / "schema.py"]
    for module in modules:
        Path(importlib.util.cache_from_source(str(module))).unlink(missing_ok=True)
    install(tmp_path / "mirror")
    for module in modules:
        compiled = Path(importlib.util.cache_from_source(str(module)))
        assert compiled.exists() and compiled.stat().st_mtime >= module.stat().st_mtime


def test_synthesis_stores_the_schema_answer_from_a_child_interpreter(monkeypatch):
    """Synthesis must not load protobuf or the provider core (tests/constructs/test_construct_imports.py),
    so a schema answer that is not current is built and stored by a child interpreter; a current one
    costs no child at all."""
    from tokendrop_provider.plugin import schema_cache

    children: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(command, *args, **kwargs):  # type: ignore[no-untyped-def]
        children.append(command)
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(install_module.subprocess, "run", counting_run)
    monkeypatch.setattr(schema_cache, "load", lambda: None)  # as if the sources changed since install
    assert install_module.store_schema_answer_in_child()
    assert len(children) == 1
    monkeypatch.undo()
    assert schema_cache.load() is not None  # what the child stored matches these sources
    monkeypatch.setattr(install_module.subprocess, "run", counting_run)
    assert install_module.store_schema_answer_in_child()
    assert len(children) == 1  # current: no second child
