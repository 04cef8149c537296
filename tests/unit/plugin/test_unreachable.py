"""A client library that cannot reach its service (connection refused, TLS failure, no credentials)
gives a "Could not reach …" diagnostic naming the host, with credentials scrubbed; a real bug still
says "Unexpected error". The exceptions are the real ones boto3 and requests raise."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import boto3
import pytest
import requests
from botocore.config import Config

from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.plugin.service import ProviderService
from tokendrop_provider.provider import ProviderCore
from tokendrop_provider.secret import Secret


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def plain_listener() -> Iterator[int]:
    """A TCP server that answers a TLS handshake with plain text."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        with server.accept()[0] as conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    server.close()


def failure_of(call) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


def diagnostic(exc: BaseException) -> pb.Diagnostic:
    service = ProviderService(ProviderCore())

    def body(diags: list) -> pb.ConfigureProvider.Response:
        raise exc

    response = service._guard("ConfigureProvider", lambda d: pb.ConfigureProvider.Response(diagnostics=d), body)
    [only] = response.diagnostics
    return only


def test_connection_refused_by_an_issuer(closed_port: int):
    token = Secret("refused-token-" + "x" * 20)
    exc = failure_of(lambda: requests.get(f"http://127.0.0.1:{closed_port}/api?t={token.reveal()}", timeout=5))
    found = diagnostic(exc)
    assert found.summary == f"Could not reach 127.0.0.1:{closed_port}"
    assert "ConnectionError" in found.detail and token.reveal() not in found.detail and "***" in found.detail


def test_tls_failure_at_vault(plain_listener: int):
    exc = failure_of(lambda: requests.get(f"https://127.0.0.1:{plain_listener}/v1/sys/health", timeout=5))
    found = diagnostic(exc)
    assert found.summary == f"Could not reach 127.0.0.1:{plain_listener}"
    assert "SSLError" in found.detail


def test_ssm_endpoint_unreachable_and_missing_credentials(closed_port: int):
    client = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client(
        "ssm", endpoint_url=f"http://127.0.0.1:{closed_port}", config=Config(retries={"max_attempts": 1}))
    found = diagnostic(failure_of(lambda: client.get_parameter(Name="/x")))
    assert found.summary == f"Could not reach 127.0.0.1:{closed_port}"
    assert "EndpointConnectionError" in found.detail

    anonymous = boto3.session.Session(region_name="us-east-1", profile_name=None)
    anonymous._session.get_component("credential_provider").providers = []  # nowhere to find credentials
    client = anonymous.client("ssm", endpoint_url=f"http://127.0.0.1:{closed_port}")
    found = diagnostic(failure_of(lambda: client.get_parameter(Name="/x")))
    assert found.summary.startswith("Could not reach") and "NoCredentialsError" in found.detail


def test_a_bug_is_still_a_bug():
    found = diagnostic(ZeroDivisionError("division by zero"))
    assert found.summary == "Unexpected error in the tokendrop provider"
