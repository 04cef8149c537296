"""Refreshing many SSM sinks: siblings under one path are read with one paginated DescribeParameters
listing (metadata only), not a call each; our own writes are never answered from a stale listing."""

from __future__ import annotations

import boto3
import pytest

from tokendrop_provider.secret import Secret
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.ssm import SsmSink, clear_client_cache

OWN = Ownership(token_id="at-1", issuer="tfe", owner="0123456789abcdef")


@pytest.fixture
def siblings(ssm_settings, clean_moto):
    raw = boto3.client("ssm", endpoint_url=ssm_settings.endpoint_url_ssm, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    for i in range(120):
        raw.put_parameter(Name=f"/fleet/t{i:03d}", Value=f"value-{i}", Type="SecureString")
    raw.put_parameter(Name="/elsewhere/x", Value="x", Type="SecureString")
    clear_client_cache()
    clean_moto.reset_counters()
    return [SsmSink(f"/fleet/t{i:03d}", settings=ssm_settings) for i in range(120)]


def test_120_siblings_are_read_in_3_calls(siblings, clean_moto):
    statuses = [s.status() for s in siblings]
    assert all(st.exists and st.version == 1 for st in statuses)
    assert clean_moto.calls()["DescribeParameters"] == 3
    assert clean_moto.calls()["GetParameter"] == 0, "status never reads a value"
    missing = SsmSink("/fleet/absent", settings=siblings[0].settings).status()
    assert not missing.exists and clean_moto.calls()["DescribeParameters"] == 3


def test_without_batching_every_sink_costs_a_call(siblings, clean_moto, monkeypatch):
    monkeypatch.setenv("TOKENDROP_BATCH_READS", "0")
    for s in siblings[:20]:
        assert s.status().exists
    assert clean_moto.calls()["DescribeParameters"] == 20


def test_our_own_write_is_read_afresh(siblings, clean_moto):
    first = siblings[0]
    assert first.status().version == 1
    version = first.replace(Secret("rotated-value-0001"), OWN, expected_version=1)
    assert version == 2
    after = first.status()
    assert after.version == 2 and after.ownership is not None and after.ownership.token_id == "at-1"
