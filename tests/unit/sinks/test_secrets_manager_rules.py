"""The pure Secrets Manager rules: the ownership record in the Description, tokendrop's version ids
and the validators the schema and constructs use."""

from __future__ import annotations

import pytest

from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.secrets_manager_rules import (
    format_record,
    new_version_id,
    parse_record,
    validate_kms_key_id,
    validate_recovery_window,
    validate_replica_regions,
    validate_secret_name,
    validate_tags,
    version_number,
)

OWN = Ownership(token_id="at-1 ]x", issuer="tfe", owner="1a2b3c4d5e6f", version=3)


def test_version_ids_carry_the_counter_and_fit_the_client_request_token():
    vid = new_version_id(3)
    assert 32 <= len(vid) <= 64 and version_number(vid) == 3
    assert new_version_id(3) != vid
    assert version_number("0f5f8b3e-3c6a-4f2b-9d53-3f1c1a2b4c5d") is None  # the CLI's UUIDs
    assert version_number("tokendrop-3-abc") is None and version_number(None) is None


def test_the_record_round_trips_with_awkward_characters():
    vid = new_version_id(3)
    text = format_record(OWN, 3, vid, field="A B]C")
    record = parse_record(f"written by hand {text}")
    assert record is not None and record.ownership == OWN and record.version_id == vid and record.field == "A B]C"
    assert parse_record(format_record(OWN, 3, vid)).field is None


@pytest.mark.parametrize("description", [
    None, "", "no record here", "[tokendrop issuer=tfe token=at-1 owner=x version=1]",  # no version id
    "[tokendrop issuer=tfe token=at-1 owner=x version=one version_id=tokendrop-00000001-" + "0" * 32 + "]",
    "[tokendrop issuer=tfe token=at-1 owner=x version=1 version_id=someone-elses]",
])
def test_anything_else_is_no_record(description):
    assert parse_record(description) is None


@pytest.mark.parametrize(("check", "value", "ok"), [
    (validate_secret_name, "ci/tfc-agent/token", True),
    (validate_secret_name, "a+b=c.d@e_f-g", True),
    (validate_secret_name, "", False),
    (validate_secret_name, "ci/has space", False),
    (validate_secret_name, "x" * 513, False),
    (validate_kms_key_id, "alias/ci", True),
    (validate_kms_key_id, "arn:aws:kms:eu-west-1:123456789012:key/abc", True),
    (validate_kms_key_id, "arn:aws:s3:::bucket", False),
    (validate_kms_key_id, "k" * 2049, False),
    (validate_recovery_window, 0, True),
    (validate_recovery_window, 7, True),
    (validate_recovery_window, 30.0, True),
    (validate_recovery_window, 6, False),
    (validate_recovery_window, 31, False),
    (validate_recovery_window, 7.5, False),
    (validate_recovery_window, True, False),
    (validate_tags, {"team": "ci"}, True),
    (validate_tags, {"managed-by": "me"}, False),
    (validate_tags, {"aws:x": "y"}, False),
    (validate_tags, {f"k{i}": "v" for i in range(49)}, False),
])
def test_validators(check, value, ok):
    assert (check(value) is None) is ok, check(value)


def test_replica_regions():
    assert validate_replica_regions(["eu-west-1", "us-gov-west-1"]) is None
    assert "twice" in validate_replica_regions(["eu-west-1", "eu-west-1"])
    assert "own region" in validate_replica_regions(["us-east-1"], primary="us-east-1")
    assert "not an AWS region" in validate_replica_regions(["Europe"])
