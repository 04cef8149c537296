"""No exception leaves the provider unscrubbed: errors carrying a canary credential, raised inside
handlers of the real provider process and its real gRPC server (plain, chained, BaseException, outside
the RPC guard, in a thread, in the main thread, in a log call), never show the canary – in any form – on
stderr (what Terraform copies into its log), in the provider log or in a diagnostic. Also: the provider
log file is private and TF_LOG=off means off."""

from __future__ import annotations

import io
import logging
import os
import secrets
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tokendrop_provider import leaks, logs
from tokendrop_provider.plugin.gen import go_plugin_pb2, go_plugin_pb2_grpc, tfplugin6_pb2, tfplugin6_pb2_grpc
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from tokendrop_provider.secret import Secret
from unit.plugin.test_server import channel, handshake

# The provider's real entry point, with core methods replaced by ones that fail in every way we know.
FAILING_PROVIDER = textwrap.dedent('''
    import base64, logging, os, threading
    from tokendrop_provider import main
    from tokendrop_provider.plugin.service import ProviderService
    from tokendrop_provider.provider import ProviderCore

    CANARY = os.environ["TFE_TOKEN"]  # a credential from the environment, never wrapped by the provider

    class Escape(BaseException):  # not an Exception: passes `except Exception`
        pass

    def configure(self, config, terraform_version=None):
        try:
            raise ValueError(f"inner {CANARY!r} " + base64.b64encode(CANARY.encode()).decode())
        except ValueError as inner:
            raise RuntimeError(f"outer, cut: {CANARY[:20]}") from inner

    def validate_config(self, config):
        def in_thread():
            raise RuntimeError("thread " + CANARY)
        worker = threading.Thread(target=in_thread, name="worker")
        worker.start()
        worker.join()
        logging.getLogger("tokendrop.test").error("bad format %d", CANARY)  # logging's handleError
        raise Escape("escape " + CANARY)

    def get_functions(self, request, context):  # outside any guard: grpc logs it itself
        raise KeyError("functions " + CANARY)

    def exit_after_serving(code):  # instead of main's os._exit: an error for sys.excepthook
        raise RuntimeError("after serving " + CANARY)

    ProviderCore.configure = configure
    ProviderCore.validate_config = validate_config
    ProviderService.GetFunctions = get_functions
    main.exit_without_teardown = exit_after_serving
    main.main()
''')


@pytest.mark.parametrize("level", ["trace", ""])
def test_no_exception_leaves_the_provider_unscrubbed(tmp_path: Path, level: str):
    canary = "tfe-" + secrets.token_urlsafe(30) + "\n"  # with the newline HCL's file() leaves
    script = tmp_path / "failing_provider.py"
    script.write_text(FAILING_PROVIDER)
    provider_log = tmp_path / "provider.log"
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "6",
           "TFE_TOKEN": canary, "TF_LOG": level, "TOKENDROP_LOG_PATH": str(provider_log)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        address, cert = handshake(proc)
        with channel(address, cert) as ch:
            provider = tfplugin6_pb2_grpc.ProviderStub(ch)
            configured = provider.ConfigureProvider(tfplugin6_pb2.ConfigureProvider.Request(), timeout=30)
            validated = provider.ValidateProviderConfig(tfplugin6_pb2.ValidateProviderConfig.Request(), timeout=30)
            with pytest.raises(Exception, match="Exception calling application"):
                provider.GetFunctions(tfplugin6_pb2.GetFunctions.Request(), timeout=30)
            go_plugin_pb2_grpc.GRPCControllerStub(ch).Shutdown(go_plugin_pb2.Empty(), timeout=30)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    diagnostics = [str(d) for d in [*configured.diagnostics, *validated.diagnostics]]
    assert [d.summary for d in configured.diagnostics] == ["Unexpected error in the tokendrop provider"]
    assert [d.summary for d in validated.diagnostics] == ["Unexpected error in the tokendrop provider"]
    log_text = provider_log.read_text()
    # Each failure did happen and was reported (the scan below is not vacuous)...
    for seen in (b"thread worker", b"could not be written", b"RuntimeError: after serving ***"):
        assert seen in stderr, (seen, stderr.decode(errors="replace"))
    if level:  # grpc's logger has a NullHandler of its own until logging is configured
        assert b"KeyError: 'functions ***'" in stderr
        assert b"RuntimeError: outer, cut: ***" in stderr and b"ValueError: inner" in stderr
        assert "Escape: escape ***" in log_text
    # ...and the canary is nowhere, in no form.
    hits = leaks.scan_items({"canary": canary}, [("stderr", stderr), ("provider log", log_text),
                                                  *(("diagnostic", d) for d in diagnostics)]).hits
    assert hits == []


def test_the_provider_log_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    existing = tmp_path / "existing.log"
    existing.write_text("")
    existing.chmod(0o644)
    for path in (tmp_path / "new.log", existing):
        monkeypatch.setenv("TOKENDROP_LOG_PATH", str(path))
        monkeypatch.delenv("TF_LOG", raising=False)
        touched = [logging.getLogger(name) for name in ("tokendrop", "botocore", "urllib3", "grpc")]
        before = {logger.name: (list(logger.handlers), logger.level, logger.propagate) for logger in touched}
        try:
            logs.configure()
            logging.getLogger("tokendrop.test").warning("written")
        finally:  # leave logging as other tests expect it
            for logger in touched:
                handlers, level, propagate = before[logger.name]
                for handler in set(logger.handlers) - set(handlers):
                    handler.close()
                logger.handlers[:] = handlers
                logger.setLevel(level)
                logger.propagate = propagate
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "written" in path.read_text()


@pytest.mark.parametrize(("env", "level"), [
    ({"TF_LOG": "off"}, None),
    ({"TF_LOG": "OFF", "TOKENDROP_LOG": "debug"}, None),
    ({"TF_LOG": "trace", "TF_LOG_PROVIDER": "off"}, None),
    ({"TF_LOG": "verbose-please"}, logging.WARNING),
    ({"TF_LOG": "trace"}, logging.DEBUG),
    ({"TF_LOG": "info"}, logging.INFO),
    ({}, None),
])
def test_log_levels_off_and_unknown_never_mean_debug(env: dict[str, str], level: int | None):
    assert logs.level_from_env(env) == level


def test_the_stderr_wrapper_scrubs_a_value_split_across_writes():
    value = "split-" + secrets.token_urlsafe(24)
    Secret(value)
    raw = io.StringIO()
    stream = logs.ScrubbingStream(raw)
    stream.write("a " + value[:9])
    stream.write(value[9:] + " b\n")
    stream.writelines(["c " + value + "\n"])
    stream.write("d " + value)  # no newline: written on flush
    stream.flush()
    assert raw.getvalue() == "a *** b\nc ***\nd ***"
