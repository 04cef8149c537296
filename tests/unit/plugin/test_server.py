"""The plugin process as Terraform sees it: refusal without the magic cookie, the handshake line, TLS
with a fresh in-memory certificate on a private unix socket, SIGINT ignored, Shutdown."""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tokendrop_provider.plugin.gen import go_plugin_pb2, go_plugin_pb2_grpc, tfplugin6_pb2, tfplugin6_pb2_grpc
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE

PROVIDER = [sys.executable, "-m", "tokendrop_provider"]


def launch(**env: str) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "5,6", **env}
    return subprocess.Popen(PROVIDER, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def handshake(proc: subprocess.Popen[bytes]) -> tuple[str, x509.Certificate]:
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    core, app, network, address, protocol, cert_b64 = line.split("|")
    assert (core, app, network, protocol) == ("1", "6", "unix", "grpc")
    der = base64.b64decode(cert_b64 + "=" * (-len(cert_b64) % 4))
    assert not cert_b64.endswith("=")
    return address, x509.load_der_x509_certificate(der)


def channel(address: str, cert: x509.Certificate) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.public_bytes(Encoding.PEM))
    return grpc.secure_channel(f"unix:{address}", credentials,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def test_refuses_to_run_by_hand():
    env = {k: v for k, v in os.environ.items() if k != MAGIC_COOKIE_KEY}
    proc = subprocess.run(PROVIDER, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "is a Terraform plugin, not a command to run by hand" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_refuses_a_terraform_without_protocol_6():
    proc = launch(PLUGIN_PROTOCOL_VERSIONS="4,5")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == b""
    assert b"plugin protocol 6" in err


def test_handshake_tls_socket_sigint_and_shutdown():
    proc = launch()
    try:
        address, cert = handshake(proc)
        socket_dir = Path(address).parent
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        assert "CN=localhost" in cert.subject.rfc4514_string()

        with channel(address, cert) as ch:
            provider = tfplugin6_pb2_grpc.ProviderStub(ch)
            schema = provider.GetProviderSchema(tfplugin6_pb2.GetProviderSchema.Request(), timeout=30)
            assert "tokendrop_tfe_agent_token" in schema.resource_schemas

            # Ctrl-C in a terminal reaches the whole process group: the provider must survive it.
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
            assert proc.poll() is None
            assert provider.GetProviderSchema(tfplugin6_pb2.GetProviderSchema.Request(), timeout=30)

            # StopProvider is a cancel request, not a shutdown.
            assert provider.StopProvider(tfplugin6_pb2.StopProvider.Request(), timeout=30).Error == ""
            assert proc.poll() is None

            go_plugin_pb2_grpc.GRPCControllerStub(ch).Shutdown(go_plugin_pb2.Empty(), timeout=30)
        assert proc.wait(timeout=30) == 0
        assert not socket_dir.exists(), "the socket directory is removed on exit"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_launch_has_a_fresh_certificate():
    first, second = launch(), launch()
    try:
        (_, cert_a), (_, cert_b) = handshake(first), handshake(second)
        assert cert_a.public_key().public_numbers() != cert_b.public_key().public_numbers()
    finally:
        for proc in (first, second):
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.parametrize("level", ["", "debug"])
def test_no_traceback_reaches_the_user_for_expected_errors(level, tmp_path):
    """An expected error is a diagnostic; the provider's stderr (shown by Terraform only with TF_LOG)
    stays free of tracebacks unless logging asks for one."""
    env = {"TF_LOG": level} if level else {}
    proc = launch(**env)
    try:
        address, cert = handshake(proc)
        with channel(address, cert) as ch:
            provider = tfplugin6_pb2_grpc.ProviderStub(ch)
            response = provider.ImportResourceState(tfplugin6_pb2.ImportResourceState.Request(
                type_name="tokendrop_tfe_agent_pool", id="not-an-id"), timeout=30)
            assert response.diagnostics and "Invalid import id" in response.diagnostics[0].summary
            go_plugin_pb2_grpc.GRPCControllerStub(ch).Shutdown(go_plugin_pb2.Empty(), timeout=30)
        _, err = proc.communicate(timeout=30)
        assert b"Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
