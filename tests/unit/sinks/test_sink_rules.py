"""The pure validators of ssm_rules and vault_rules, and the SSM ownership-record format."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.ssm_rules import (
    MAX_USER_DESCRIPTION_LENGTH,
    expiration_timestamp,
    format_description,
    parse_description,
    validate_description,
    validate_expires_at,
    validate_kms_key_id,
    validate_parameter_name,
    validate_tags,
    validate_tier,
)
from tokendrop_provider.sinks.vault_rules import validate_field, validate_mount, validate_path

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
segment = st.text(alphabet=NAME_CHARS, min_size=1, max_size=20)


def not_reserved(name: str) -> bool:
    return not name.lstrip("/").lower().startswith(("aws", "ssm"))


def test_rule_modules_import_no_api_client():
    code = ("import sys, tokendrop_provider.sinks.ssm_rules, tokendrop_provider.sinks.vault_rules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'requests')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- SSM parameter names ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["token", "/ci/tfc-agent/token", "/a.b/c_d/e-f", "x" * 900,
                                  "/" + "/".join(["l"] * 15), "/Prod/awsome", "my-aws-thing"])
def test_valid_parameter_names(name):
    assert validate_parameter_name(name) is None


@pytest.mark.parametrize(("name", "fragment"), [
    ("", "non-empty"),
    ("ci/token", "must be fully qualified"),
    ("/ci/token/", "must not end with '/'"),
    ("/ci//token", "empty hierarchy level"),
    ("/ci/to ken", "characters SSM does not allow"),
    ("/ci/tök", "characters SSM does not allow"),
    ("/" + "/".join(["l"] * 16), "16 hierarchy levels"),
    ("aws-token", "reserved"),
    ("/aws/service/x", "reserved"),
    ("/SSM/x", "reserved"),
    ("ssmToken", "reserved"),
    ("/" + "x" * 1010, "SSM allows"),
])
def test_invalid_parameter_names(name, fragment):
    error = validate_parameter_name(name)
    assert error is not None
    assert fragment in error


def test_name_length_counts_the_arn_prefix_of_the_region():
    prefix = len("arn:aws:ssm:us-east-1:123456789012:parameter")
    longest = "/" + "a" * (1011 - prefix - 1)
    assert validate_parameter_name(longest, region="us-east-1") is None
    assert validate_parameter_name(longest + "a", region="us-east-1") is not None
    # Without a region the check assumes the longest ARN prefix, so it is stricter.
    assert validate_parameter_name(longest) is not None


@given(st.lists(segment, min_size=1, max_size=15))
def test_generated_hierarchical_names_are_valid(segments):
    name = "/" + "/".join(segments)
    assume(not_reserved(name))
    assert validate_parameter_name(name) is None


@given(segment, st.sampled_from(["aws", "ssm"]), st.booleans(), st.data())
def test_reserved_prefixes_in_any_case_are_rejected(rest, prefix, slash, data):
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in prefix)
    name = ("/" if slash else "") + cased + rest
    assert "reserved" in validate_parameter_name(name)


@given(st.text(min_size=1, max_size=40).filter(lambda t: any(c not in NAME_CHARS + "/" for c in t)))
def test_names_with_other_characters_are_rejected(text):
    assert validate_parameter_name("/ok/" + text) is not None


@given(st.lists(segment, min_size=2, max_size=6))
def test_relative_hierarchies_are_rejected(segments):
    name = "/".join(segments)
    assume(not_reserved(name))
    assert "fully qualified" in validate_parameter_name(name)


# --- KMS key, tier, tags, description, expiry -------------------------------------------------


@pytest.mark.parametrize("key", ["1234abcd-12ab-34cd-56ef-1234567890ab", "alias/ci-tokens",
                                 "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                                 "arn:aws:kms:eu-west-1:111122223333:alias/ci"])
def test_valid_kms_key_ids(key):
    assert validate_kms_key_id(key) is None


@pytest.mark.parametrize("key", ["", "alias/", "has space", "k" * 257, "arn:aws:s3:::bucket",
                                 "arn:aws:kms:us-east-1:111122223333:thing/x", "alias/ü"])
def test_invalid_kms_key_ids(key):
    assert validate_kms_key_id(key) is not None


def test_tiers():
    for tier in ("Standard", "Advanced", "Intelligent-Tiering"):
        assert validate_tier(tier) is None
    assert "Standard" in validate_tier("standard")


@pytest.mark.parametrize("tags", [{}, {"team": "ci", "cost center": "1234"}, {"k": ""},
                                  {"ünïcode": "wert", "a.b:c/d=e+f-g@h_i": "ok"},
                                  {f"k{i}": "v" for i in range(48)}])
def test_valid_tags(tags):
    assert validate_tags(tags) is None


@pytest.mark.parametrize(("tags", "fragment"), [
    ({f"k{i}": "v" for i in range(49)}, "at most 48"),
    ({"": "v"}, "1 to 128"),
    ({"k" * 129: "v"}, "1 to 128"),
    ({"k": "v" * 257}, "longer than 256"),
    ({"bad*key": "v"}, "may contain only"),
    ({"k": "bad#value"}, "may contain only"),
    ({"aws:createdBy": "x"}, "belong to AWS"),
    ({"AWS:x": "x"}, "belong to AWS"),
    ({"managed-by": "me"}, "reserved"),
    ({"tokendrop:issuer": "me"}, "reserved"),
])
def test_invalid_tags(tags, fragment):
    error = validate_tags(tags)
    assert error is not None
    assert fragment in error


@given(st.dictionaries(
    st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=128),
    st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Zs")), max_size=256),
    max_size=48))
def test_generated_letter_and_digit_tags_are_valid(tags):
    assert validate_tags(tags) is None


def test_descriptions():
    assert validate_description("Agent token for the linux pool [see runbook]") is None
    assert validate_description("x" * MAX_USER_DESCRIPTION_LENGTH) is None
    assert "at most" in validate_description("x" * (MAX_USER_DESCRIPTION_LENGTH + 1))
    assert "[tokendrop " in validate_description("copied [tokendrop issuer=x token=y]")


def test_expiry_timestamps():
    assert validate_expires_at("2030-01-02T03:04:05Z") is None
    assert validate_expires_at("2030-01-02T03:04:05.123456+02:00") is None
    assert "time zone" in validate_expires_at("2030-01-02T03:04:05")
    assert "ISO 8601" in validate_expires_at("next tuesday")
    assert expiration_timestamp("2030-01-02T03:04:05.123456+02:00") == "2030-01-02T01:04:05.123Z"


# --- ownership record in the Description ------------------------------------------------------


def test_record_format_is_compact_and_readable():
    text = format_description("CI token", Ownership("at-123", "tfe", "1a2b3c4d5e6f"), 4)
    assert text == "CI token [tokendrop issuer=tfe token=at-123 owner=1a2b3c4d5e6f version=4]"
    assert parse_description(text) == ("CI token", Ownership("at-123", "tfe", "1a2b3c4d5e6f", version=4))
    assert format_description("", Ownership("a", "b", "c"), 1) == \
        "[tokendrop issuer=b token=a owner=c version=1]"


@pytest.mark.parametrize("description", [None, "", "plain text", "text [tokendrop issuer=tfe] tail",
                                         "[tokendrop token=a owner=b version=1]",
                                         "[tokendrop issuer=a token=b owner=c version=x]"])
def test_descriptions_without_a_valid_record(description):
    user, ownership = parse_description(description)
    assert ownership is None
    assert user == (description or "")


@given(user=st.text(max_size=300).filter(lambda t: "[tokendrop " not in t),
       token=st.text(min_size=1, max_size=60), issuer=st.text(min_size=1, max_size=20),
       owner=st.text(max_size=40), version=st.integers(min_value=1, max_value=10**6))
def test_record_round_trips_for_any_text(user, token, issuer, owner, version):
    text = format_description(user, Ownership(token, issuer, owner), version)
    assert parse_description(text) == (user, Ownership(token, issuer, owner, version=version))


# --- Vault mount, path, field -----------------------------------------------------------------


@pytest.mark.parametrize("mount", ["secret", "team/kv", "kv-v2_prod.1"])
def test_valid_mounts(mount):
    assert validate_mount(mount) is None


@pytest.mark.parametrize(("mount", "fragment"), [
    ("", "non-empty"), ("/secret", "start or end"), ("secret/", "start or end"), ("a//b", "empty segment"),
    ("a/../b", "'..'"), ("sec*", "globs"), ("sys", "reserved"), ("auth/x", "reserved"),
    ("cubbyhole", "reserved"), ("has space", "may contain only"), ("m" * 129, "at most 128"),
])
def test_invalid_mounts(mount, fragment):
    error = validate_mount(mount)
    assert error is not None
    assert fragment in error


@pytest.mark.parametrize("path", ["ci/agents/linux", "a", "team@x/env=prod/key:1,2~3", "p" * 512])
def test_valid_paths(path):
    assert validate_path(path) is None


@pytest.mark.parametrize(("path", "fragment"), [
    ("", "non-empty"), ("/a", "start or end"), ("a/", "start or end"), ("a//b", "empty segment"),
    ("a/../b", "'..'"), ("./a", "'.'"), ("a/*", "globs"), ("a+b", "globs"), ("a b", "may contain only"),
    ("a?b", "may contain only"), ("a#b", "may contain only"), ("a%2fb", "may contain only"),
    ("data/ci/x", "without the KV v2 API prefix"), ("metadata/x", "without the KV v2 API prefix"),
    ("p" * 513, "at most 512"),
])
def test_invalid_paths(path, fragment):
    error = validate_path(path)
    assert error is not None
    assert fragment in error


path_segment = st.text(alphabet=NAME_CHARS + "@=:,~", min_size=1, max_size=12).filter(
    lambda s: s not in (".", ".."))


@given(st.lists(path_segment, min_size=1, max_size=8))
def test_generated_paths_are_valid(segments):
    assume(segments[0] not in ("data", "metadata"))
    assert validate_path("/".join(segments)) is None


@given(st.lists(path_segment, max_size=4), st.lists(path_segment, max_size=4),
       st.sampled_from(["..", "."]))
def test_dot_segments_anywhere_are_rejected(before, after, dots):
    assert validate_path("/".join([*before, dots, *after])) is not None


@given(st.lists(path_segment, min_size=1, max_size=4), st.sampled_from("*+"), st.integers(0, 3))
def test_globs_anywhere_are_rejected(segments, glob, where):
    segments[where % len(segments)] += glob
    assert validate_path("/".join(segments)) is not None


def test_fields():
    for field in ("token", "AGENT_TOKEN", "role-id", "v1.key"):
        assert validate_field(field) is None
    for field in ("", "has space", "a/b", "f" * 129, "ünï"):
        assert validate_field(field) is not None


@pytest.mark.parametrize("name", ["/ok/\n", "/ok\n", "ok\n"])
def test_a_trailing_newline_is_not_a_valid_name(name):
    """`$` in a regex also matches before a final newline; the rules must not (found by hypothesis)."""
    assert validate_parameter_name(name) is not None


@pytest.mark.parametrize(("rule", "value"), [
    ("validate_path", "ci/token\n"), ("validate_mount", "secret\n"), ("validate_field", "token\n"),
])
def test_vault_rules_refuse_a_trailing_newline(rule, value):
    from tokendrop_provider.sinks import vault_rules

    assert getattr(vault_rules, rule)(value) is not None
