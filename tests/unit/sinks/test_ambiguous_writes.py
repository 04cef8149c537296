"""Sink writes whose answer is lost, against real moto and OpenBao behind the sandbox's FaultProxy.

The proxy forwards the write, lets the server store it, then closes the connection without an answer.
The sinks must say "outcome unknown" (SinkWriteUnknown), send the write once (no blind resend that
stores a second version), and keep the ownership record that names the value they may have stored.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from tokendrop_provider.errors import SinkConflict, SinkError, SinkWriteUnknown
from tokendrop_provider.sandbox.servers import FaultProxy, MotoServer, OpenBaoServer
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import AwsSettings, VaultSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.ssm import SsmRetryPolicy, SsmSink
from tokendrop_provider.sinks.vault_kv import VaultKvSink

OWN = Ownership(token_id="at-111", issuer="tfe", owner="1a2b3c4d5e6f")
NEXT = Ownership(token_id="at-222", issuer="tfe", owner="1a2b3c4d5e6f")
VALUE = "tok-5a4e3d2c1b0a9f88-value"
VALUE2 = "tok-7c6b5a4e3d2c1b0a-rotated"
NAME = "/ci/lost/token"
PATH = "ci/lost/token"
PUT = "AmazonSSM.PutParameter"
# botocore's own retries left at their default (3 sends): the sink must still send a write once.
DEFAULT_BOTOCORE = SsmRetryPolicy(botocore_mode="standard", attempts=1, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def moto_proxy(clean_moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(clean_moto.url) as proxy:
        yield proxy


@pytest.fixture
def bao_proxy(openbao_server: OpenBaoServer) -> Iterator[FaultProxy]:
    with FaultProxy(openbao_server.url) as proxy:
        yield proxy


def ssm_sink(proxy: FaultProxy, ssm_settings: AwsSettings) -> SsmSink:
    settings = AwsSettings(region=ssm_settings.region, endpoint_url_ssm=proxy.url,
                           access_key_id=ssm_settings.access_key_id,
                           secret_access_key=ssm_settings.secret_access_key)
    return SsmSink(NAME, settings=settings, retry=DEFAULT_BOTOCORE)


def stored(clean_moto: MotoServer) -> tuple[str, int] | None:
    raw = boto3.client("ssm", endpoint_url=clean_moto.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    try:
        found = raw.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]
    except raw.exceptions.ParameterNotFound:
        return None
    return found["Value"], found["Version"]


def puts(proxy: FaultProxy) -> int:
    return sum(1 for _, _, target, _ in proxy.seen if target == PUT)


def test_ssm_create_whose_answer_is_lost_is_unknown_and_sent_once(moto_proxy, ssm_settings, clean_moto):
    sink = ssm_sink(moto_proxy, ssm_settings)
    moto_proxy.arm("drop_response", target=PUT, count=3)
    with pytest.raises(SinkWriteUnknown) as caught:
        sink.create(Secret(VALUE), OWN)
    assert "may or may not have been stored" in caught.value.detail
    assert VALUE not in str(caught.value)
    assert puts(moto_proxy) == 1, "a lost answer is not resent blindly"
    assert stored(clean_moto) == (VALUE, 1), "moto did store it"
    status = sink.status()
    assert status.ownership_current and status.ownership == Ownership("at-111", "tfe", "1a2b3c4d5e6f", 1)


def test_ssm_overwrite_whose_answer_is_lost_stores_one_version(moto_proxy, ssm_settings, clean_moto):
    sink = ssm_sink(moto_proxy, ssm_settings)
    assert sink.create(Secret(VALUE), OWN) == 1
    moto_proxy.arm("drop_response", target=PUT, count=3)
    with pytest.raises(SinkWriteUnknown):
        sink.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert stored(clean_moto) == (VALUE2, 2), "one new version, not one per resend"
    status = sink.status()
    assert status.version == 2 and status.ownership_current and status.ownership.token_id == "at-222"


def test_ssm_write_that_never_arrived_is_still_unknown_to_the_client(moto_proxy, ssm_settings, clean_moto):
    sink = ssm_sink(moto_proxy, ssm_settings)
    moto_proxy.arm("drop_request", target=PUT)
    with pytest.raises(SinkWriteUnknown):
        sink.create(Secret(VALUE), OWN)
    assert stored(clean_moto) is None


def test_ssm_definite_refusals_stay_what_they_are(moto_proxy, ssm_settings, clean_moto):
    sink = ssm_sink(moto_proxy, ssm_settings)
    sink.create(Secret(VALUE), OWN)
    with pytest.raises(SinkConflict) as caught:
        ssm_sink(moto_proxy, ssm_settings).create(Secret(VALUE2), NEXT)
    assert not isinstance(caught.value, SinkWriteUnknown)
    clean_moto.inject("PutParameter", 1, "AccessDeniedException", "not authorized")
    with pytest.raises(SinkError) as denied:
        sink.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert not isinstance(denied.value, SinkWriteUnknown)


def test_ssm_server_error_on_a_write_is_unknown_and_on_a_read_is_not(moto_proxy, ssm_settings, clean_moto):
    sink = ssm_sink(moto_proxy, ssm_settings)
    clean_moto.inject("PutParameter", 1, "InternalServerError", "try again", status=500)
    with pytest.raises(SinkWriteUnknown):
        sink.create(Secret(VALUE), OWN)
    clean_moto.inject("DescribeParameters", 3, "InternalServerError", "try again", status=500)
    with pytest.raises(SinkError) as caught:
        SsmSink("solo", settings=sink.settings, retry=DEFAULT_BOTOCORE).status()
    assert not isinstance(caught.value, SinkWriteUnknown)


def vault_sink(proxy: FaultProxy, openbao_server: OpenBaoServer, mount: str) -> VaultKvSink:
    return VaultKvSink(mount, PATH, settings=VaultSettings(address=proxy.url,
                                                           token=Secret(openbao_server.root_token)))


def test_vault_create_whose_answer_is_lost_keeps_its_record(bao_proxy, openbao_server, vault_kv_mount):
    sink = vault_sink(bao_proxy, openbao_server, vault_kv_mount)
    bao_proxy.arm("drop_response", method="POST", path=f"/v1/{vault_kv_mount}/data/{PATH}")
    with pytest.raises(SinkWriteUnknown) as caught:
        sink.create(Secret(VALUE), OWN)
    assert VALUE not in str(caught.value)
    stored_data = openbao_server.api("GET", f"{vault_kv_mount}/data/{PATH}")["data"]
    assert stored_data["data"] == {"token": VALUE} and stored_data["metadata"]["version"] == 1
    status = sink.status()
    assert status.exists and status.ownership_current, "the record naming the stored token is kept"
    assert status.ownership.token_id == "at-111"


def test_vault_replace_whose_answer_is_lost_keeps_its_record(bao_proxy, openbao_server, vault_kv_mount):
    sink = vault_sink(bao_proxy, openbao_server, vault_kv_mount)
    sink.create(Secret(VALUE), OWN)
    bao_proxy.arm("drop_response", method="POST", path=f"/v1/{vault_kv_mount}/data/{PATH}")
    with pytest.raises(SinkWriteUnknown):
        sink.replace(Secret(VALUE2), NEXT, expected_version=1)
    status = sink.status()
    assert status.version == 2 and status.ownership_current and status.ownership.token_id == "at-222"


def test_vault_write_that_never_arrived_leaves_a_record_that_is_not_current(bao_proxy, openbao_server,
                                                                            vault_kv_mount):
    sink = vault_sink(bao_proxy, openbao_server, vault_kv_mount)
    sink.create(Secret(VALUE), OWN)
    bao_proxy.arm("drop_request", method="POST", path=f"/v1/{vault_kv_mount}/data/{PATH}")
    with pytest.raises(SinkWriteUnknown):
        sink.replace(Secret(VALUE2), NEXT, expected_version=1)
    status = sink.status()
    assert status.version == 1 and not status.ownership_current, "nobody mistakes version 1 for at-222"


def test_vault_unreachable_before_sending_is_a_plain_error(openbao_server, vault_kv_mount):
    proxy = FaultProxy(openbao_server.url)
    sink = vault_sink(proxy, openbao_server, vault_kv_mount)
    sink.status()  # the mount check passes while the proxy is up
    proxy.stop()  # now nothing listens: the connection is refused, so nothing was sent
    with pytest.raises(SinkError) as caught:
        sink.create(Secret(VALUE), OWN)
    assert not isinstance(caught.value, SinkWriteUnknown)


def test_which_client_errors_mean_the_request_was_sent():
    """Read timeouts and connections dropped after sending may have stored the value; a connection that
    was never made cannot have (the exceptions requests raises for each, built as urllib3 builds them)."""
    import requests
    import urllib3.exceptions

    from tokendrop_provider.vault import _sent

    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    assert not _sent(requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/v1/x", refused)))
    assert not _sent(requests.ConnectTimeout())
    assert _sent(requests.ReadTimeout())
    assert _sent(requests.ConnectionError(dropped))
