"""SsmSink against a real moto server (behind the sandbox fault injector for throttling and counting)."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback

import boto3
import pytest

from tokendrop_provider.errors import (
    ConfigError,
    SinkAccessDenied,
    SinkConflict,
    SinkError,
    TokendropError,
)
from tokendrop_provider.sandbox.servers import MotoServer
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import AwsSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.ssm import SsmRetryPolicy, SsmSink, describe_many, ssm_client

# No botocore retries and tiny sleeps: the test decides exactly how many sends happen.
FAST = SsmRetryPolicy(botocore_mode="standard", botocore_max_attempts=1, attempts=4,
                      base_delay=0.01, max_delay=0.02)
OWN = Ownership(token_id="at-111", issuer="tfe", owner="1a2b3c4d5e6f")
NEXT = Ownership(token_id="at-222", issuer="tfe", owner="1a2b3c4d5e6f")
VALUE = "tok-3f1d8a0b9c7e4d21-value"
VALUE2 = "tok-9e8d7c6b5a4f3e21-rotated"


@pytest.fixture
def raw(ssm_settings: AwsSettings):
    """A plain boto3 client, to look at what the sink did (and to play "someone else")."""
    return boto3.client("ssm", endpoint_url=ssm_settings.endpoint_url_ssm, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def sink(settings: AwsSettings, name: str = "/ci/agent/token", **kwargs) -> SsmSink:
    kwargs.setdefault("retry", FAST)
    return SsmSink(name, settings=settings, **kwargs)


def describe(raw, name: str) -> dict:
    params = raw.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
    assert len(params) == 1
    return params[0]


def tags_of(raw, name: str) -> dict[str, str]:
    listed = raw.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    return {t["Key"]: t["Value"] for t in listed}


def full_text(exc: BaseException) -> str:
    """Everything a log or diagnostic could show about an exception, chained causes included."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


# --- import cost ------------------------------------------------------------------------------


def test_importing_the_sink_module_does_not_import_boto3():
    code = ("import sys, tokendrop_provider.sinks.ssm, tokendrop_provider.sinks.ssm_rules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- create / status --------------------------------------------------------------------------


def test_create_writes_secure_string_with_record_and_tags(ssm_settings, raw):
    s = sink(ssm_settings, description="CI agent token", tags={"team": "platform"})
    assert s.status().exists is False

    assert s.create(Secret(VALUE), OWN) == 1

    meta = describe(raw, "/ci/agent/token")
    assert meta["Type"] == "SecureString"
    assert meta["Description"] == ("CI agent token [tokendrop issuer=tfe token=at-111 "
                                   "owner=1a2b3c4d5e6f version=1]")
    assert tags_of(raw, "/ci/agent/token") == {"managed-by": "tokendrop", "tokendrop:issuer": "tfe",
                                               "team": "platform"}
    got = raw.get_parameter(Name="/ci/agent/token", WithDecryption=True)["Parameter"]
    assert got["Value"] == VALUE

    status = s.status()
    assert status.exists
    assert status.version == 1
    assert status.ownership_current
    assert status.ownership == Ownership("at-111", "tfe", "1a2b3c4d5e6f", version=1)
    assert s.address == "ssm:/ci/agent/token"


def test_status_reads_metadata_only(ssm_settings, clean_moto: MotoServer):
    s = sink(ssm_settings)
    s.create(Secret(VALUE), OWN)
    clean_moto.reset_counters()
    s.status()
    calls = clean_moto.calls()
    assert calls == {"DescribeParameters": 1}


def test_create_with_kms_key_and_mapping_payload(ssm_settings, raw):
    s = sink(ssm_settings, name="/ci/approle", kms_key_id="alias/ci-tokens")
    s.create({"role_id": "r-123", "secret_id": Secret(VALUE)}, OWN)
    meta = describe(raw, "/ci/approle")
    assert meta["KeyId"] == "alias/ci-tokens"
    value = raw.get_parameter(Name="/ci/approle", WithDecryption=True)["Parameter"]["Value"]
    assert json.loads(value) == {"role_id": "r-123", "secret_id": VALUE}


def test_create_conflicts_with_a_parameter_written_by_someone_else(ssm_settings, raw):
    raw.put_parameter(Name="/ci/agent/token", Value="theirs", Type="SecureString", Description="manual")
    with pytest.raises(SinkConflict) as caught:
        sink(ssm_settings).create(Secret(VALUE), OWN)
    message = str(caught.value)
    assert "ssm:/ci/agent/token already exists" in message
    assert "no tokendrop ownership record" in message
    assert caught.value.attribute == ("name",)
    assert raw.get_parameter(Name="/ci/agent/token", WithDecryption=True)["Parameter"]["Value"] == "theirs"


def test_create_conflict_names_the_current_owner(ssm_settings):
    sink(ssm_settings).create(Secret(VALUE), Ownership("at-999", "buildkite", "ffff0000ffff"))
    with pytest.raises(SinkConflict) as caught:
        sink(ssm_settings).create(Secret(VALUE2), OWN)
    assert "buildkite token at-999" in str(caught.value)
    assert "ffff0000ffff" in str(caught.value)


def test_create_is_idempotent_when_our_own_write_already_landed(ssm_settings):
    s = sink(ssm_settings)
    assert s.create(Secret(VALUE), OWN) == 1
    assert s.create(Secret(VALUE), OWN) == 1  # e.g. a retried call whose first send succeeded
    with pytest.raises(SinkConflict):
        s.create(Secret(VALUE), Ownership("at-other", "tfe", OWN.owner))


# --- replace ----------------------------------------------------------------------------------


def test_replace_with_the_expected_version(ssm_settings, raw):
    sink(ssm_settings, tags={"team": "a", "old": "x"}).create(Secret(VALUE), OWN)
    s = sink(ssm_settings, tags={"team": "b", "new": "y"}, description="rotated")

    assert s.replace(Secret(VALUE2), NEXT, expected_version=1) == 2

    assert raw.get_parameter(Name="/ci/agent/token", WithDecryption=True)["Parameter"]["Value"] == VALUE2
    status = s.status()
    assert (status.version, status.ownership_current, status.ownership.token_id) == (2, True, "at-222")
    assert describe(raw, "/ci/agent/token")["Description"].startswith("rotated [tokendrop ")
    # Overwrite=True cannot carry Tags: they are reconciled afterwards.
    assert tags_of(raw, "/ci/agent/token") == {"managed-by": "tokendrop", "tokendrop:issuer": "tfe",
                                               "team": "b", "new": "y"}
    assert s.warnings == []


def test_replace_refuses_when_the_version_moved(ssm_settings, raw):
    s = sink(ssm_settings)
    s.create(Secret(VALUE), OWN)
    raw.put_parameter(Name="/ci/agent/token", Value="someone-else", Type="SecureString", Overwrite=True)
    with pytest.raises(SinkConflict) as caught:
        s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert "expected version 1, found 2" in str(caught.value)
    value = raw.get_parameter(Name="/ci/agent/token", WithDecryption=True)["Parameter"]["Value"]
    assert value == "someone-else"


def test_replace_of_a_missing_parameter_is_a_conflict(ssm_settings):
    with pytest.raises(SinkConflict, match="does not exist"):
        sink(ssm_settings).replace(Secret(VALUE2), NEXT, expected_version=3)


def test_overwrite_without_description_keeps_the_record_but_marks_it_stale(ssm_settings, raw):
    """moto (like AWS) keeps the old Description when PutParameter overwrites without one: the version
    in our record is what tells the value apart."""
    s = sink(ssm_settings)
    s.create(Secret(VALUE), OWN)
    raw.put_parameter(Name="/ci/agent/token", Value="someone-else", Type="SecureString", Overwrite=True)
    assert "token=at-111" in describe(raw, "/ci/agent/token")["Description"]
    status = s.status()
    assert status.exists
    assert status.version == 2
    assert status.ownership.token_id == "at-111"
    assert status.ownership.version == 1
    assert status.ownership_current is False
    assert s.delete("at-111") is False  # the value is not ours any more
    assert s.status().exists


# --- delete -----------------------------------------------------------------------------------


def test_delete_only_what_names_our_token(ssm_settings):
    s = sink(ssm_settings)
    assert s.delete("at-111") is False  # nothing there
    s.create(Secret(VALUE), OWN)
    assert s.delete("at-someone-else") is False
    assert s.status().exists
    assert s.delete("at-111") is True
    assert s.status().exists is False
    assert s.delete("at-111") is False


def test_delete_never_removes_a_history_holding_versions_tokendrop_did_not_write(ssm_settings, raw):
    raw.put_parameter(Name="/ci/agent/token", Value="theirs", Type="SecureString")
    s = sink(ssm_settings)
    assert s.delete(None) is False
    assert "version 1 was not written by tokendrop" in s.warnings[0]
    s.replace(Secret(VALUE), OWN, expected_version=1)  # adopted: our version 2 on top of theirs
    assert s.delete("at-111") is False and s.status().exists
    assert raw.get_parameter_history(Name="/ci/agent/token")["Parameters"][0]["Version"] == 1


def test_delete_removes_a_parameter_whose_whole_history_is_ours(ssm_settings, raw):
    s = sink(ssm_settings)
    s.create(Secret(VALUE), OWN)
    s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert s.delete("at-222") is True and s.warnings == []
    assert s.status().exists is False


def test_delete_keeps_a_parameter_someone_overwrote_in_between(ssm_settings, raw):
    s = sink(ssm_settings)
    s.create(Secret(VALUE), OWN)
    raw.put_parameter(Name="/ci/agent/token", Value="theirs", Type="SecureString", Overwrite=True)
    s.replace(Secret(VALUE2), NEXT, expected_version=2)  # a rotation over their version 2
    assert s.delete("at-222") is False
    assert "version 2 was not written" in s.warnings[0]


# --- tier, policies, settings reconciliation ------------------------------------------------


def test_expiration_policy_on_advanced_tier(ssm_settings, raw):
    s = sink(ssm_settings, tier="Advanced", expires_at="2031-02-03T04:05:06+01:00")
    s.create(Secret(VALUE), OWN)
    meta = describe(raw, "/ci/agent/token")
    assert meta["Tier"] == "Advanced"
    assert meta.get("Policies")  # moto stores the policy text in its own format; AWS enforces it
    assert "2031-02-03T03:05:06.000Z" in str(meta["Policies"])
    assert s.expiration_ignored_reason is None
    assert s.warnings == []


def test_expiration_ignored_on_standard_tier_with_a_reason(ssm_settings, raw):
    s = sink(ssm_settings, tier="Standard", expires_at="2031-02-03T04:05:06Z")
    s.create(Secret(VALUE), OWN)
    assert not describe(raw, "/ci/agent/token").get("Policies")
    assert "Advanced" in s.expiration_ignored_reason
    assert s.warnings == [s.expiration_ignored_reason]


def test_replace_clears_an_old_expiration_it_no_longer_wants(ssm_settings, raw):
    sink(ssm_settings, tier="Advanced", expires_at="2031-01-01T00:00:00Z").create(Secret(VALUE), OWN)
    sink(ssm_settings, tier="Advanced").replace(Secret(VALUE2), NEXT, expected_version=1)
    assert "2031" not in str(describe(raw, "/ci/agent/token").get("Policies"))


def test_tier_is_never_downgraded(ssm_settings):
    sink(ssm_settings, tier="Advanced").create(Secret(VALUE), OWN)
    standard = sink(ssm_settings, tier="Standard")
    with pytest.raises(ConfigError) as caught:
        standard.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert caught.value.attribute == ("tier",)
    assert "Standard" in str(caught.value)
    with pytest.raises(ConfigError):
        standard.reconcile_settings()
    assert standard.status().version == 1


def test_reconcile_settings_updates_tags_without_a_new_version(ssm_settings, raw):
    sink(ssm_settings, tags={"team": "a", "drop": "me"}).create(Secret(VALUE), OWN)
    raw.add_tags_to_resource(ResourceType="Parameter", ResourceId="/ci/agent/token",
                             Tags=[{"Key": "added-by-hand", "Value": "1"}])
    s = sink(ssm_settings, tags={"team": "b"}, description="new text", tier="Advanced")
    assert sorted(s.pending_changes()) == sorted(["description of ssm:/ci/agent/token differs",
                                                  "ssm:/ci/agent/token is Standard and configured as "
                                                  "Advanced"])
    s.reconcile_settings()
    assert tags_of(raw, "/ci/agent/token") == {"managed-by": "tokendrop", "tokendrop:issuer": "tfe",
                                               "team": "b"}
    assert s.status().version == 1
    assert len(s.warnings) == 2
    # The next rotation applies what reconcile could not.
    s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert s.pending_changes() == []
    assert describe(raw, "/ci/agent/token")["Tier"] == "Advanced"


# --- batched status ---------------------------------------------------------------------------


def test_describe_many_reads_120_parameters_in_3_calls(ssm_settings, raw, clean_moto: MotoServer):
    names = [f"/fleet/agent-{i:03d}/token" for i in range(120)]
    for i, name in enumerate(names):
        owner = Ownership(f"at-{i}", "tfe", "abcdef012345")
        raw.put_parameter(Name=name, Value=f"v{i}", Type="SecureString",
                          Description=f"[tokendrop issuer=tfe token={owner.token_id} owner=abcdef012345 "
                                      "version=1]")
    clean_moto.reset_counters()

    result = describe_many([*names, "/fleet/missing"], ssm_settings, FAST)

    assert clean_moto.calls() == {"DescribeParameters": 3}  # 50 + 50 + 21 names, never GetParameter
    assert len(result) == 121
    assert result["/fleet/missing"].exists is False
    assert result["/fleet/agent-077/token"].ownership.token_id == "at-77"
    assert all(result[n].exists and result[n].ownership_current for n in names)


def test_describe_many_validates_names(ssm_settings):
    with pytest.raises(ConfigError, match="reserved"):
        describe_many(["/ok", "/aws/nope"], ssm_settings)
    assert describe_many([], ssm_settings) == {}


# --- throttling -------------------------------------------------------------------------------


def test_throttled_put_is_retried_then_succeeds(ssm_settings, clean_moto: MotoServer):
    clean_moto.throttle(3)
    assert sink(ssm_settings).create(Secret(VALUE), OWN) == 1
    assert clean_moto.injected()["PutParameter"] == 3
    assert clean_moto.calls()["PutParameter"] == 4


def test_too_many_updates_is_retried(ssm_settings, clean_moto: MotoServer):
    sink(ssm_settings).create(Secret(VALUE), OWN)
    clean_moto.inject("PutParameter", 2, "TooManyUpdates", "There are concurrent updates")
    assert sink(ssm_settings).replace(Secret(VALUE2), NEXT, expected_version=1) == 2


def test_botocore_retries_are_configured(ssm_settings, clean_moto: MotoServer):
    policy = SsmRetryPolicy(botocore_mode="standard", botocore_max_attempts=3, attempts=1)
    clean_moto.throttle(2, operation="DescribeParameters")
    assert sink(ssm_settings, retry=policy).status().exists is False
    assert clean_moto.calls()["DescribeParameters"] == 3


def test_botocore_never_resends_a_write(ssm_settings, clean_moto: MotoServer):
    # A resent PutParameter whose first answer was lost would store a second version: writes are sent
    # once by botocore, and only our own loop retries them, on throttling alone (tests/unit/sinks/
    # test_ambiguous_writes.py has the lost answers).
    policy = SsmRetryPolicy(botocore_mode="standard", botocore_max_attempts=3, attempts=1)
    clean_moto.throttle(2)
    with pytest.raises(SinkError, match="after 1 attempts"):
        sink(ssm_settings, retry=policy).create(Secret(VALUE), OWN)
    assert clean_moto.calls()["PutParameter"] == 1


def test_throttled_past_the_bound_fails_clearly(ssm_settings, clean_moto: MotoServer):
    clean_moto.throttle(50)
    with pytest.raises(SinkError) as caught:
        sink(ssm_settings).create(Secret(VALUE), OWN)
    assert type(caught.value) is SinkError
    assert "SSM throttled PutParameter on ssm:/ci/agent/token" in str(caught.value)
    assert "after 4 attempts" in str(caught.value)
    assert "not carried out" in str(caught.value)
    assert clean_moto.calls()["PutParameter"] == FAST.attempts
    clean_moto.reset_counters()
    assert sink(ssm_settings).status().exists is False


# --- error mapping and secrecy ------------------------------------------------------------------


def test_access_denied_maps_to_sink_access_denied(ssm_settings, clean_moto: MotoServer):
    clean_moto.inject("PutParameter", 1, "AccessDeniedException",
                      "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
                      "ssm:PutParameter")
    with pytest.raises(SinkAccessDenied) as caught:
        sink(ssm_settings).create(Secret(VALUE), OWN)
    assert "ssm:PutParameter on ssm:/ci/agent/token" in str(caught.value)
    assert VALUE not in full_text(caught.value)


def test_validation_errors_carry_the_aws_message_without_the_value(ssm_settings, clean_moto: MotoServer):
    # Pretend AWS quoted the value back: the sink must still never show it.
    clean_moto.inject("PutParameter", 1, "ValidationException",
                      f"Value '{VALUE}' at 'value' failed to satisfy constraint")
    with pytest.raises(SinkError) as caught:
        sink(ssm_settings).create(Secret(VALUE), OWN)
    text = full_text(caught.value)
    assert "ValidationException" in str(caught.value)
    assert "failed to satisfy constraint" in str(caught.value)
    assert VALUE not in text


@pytest.mark.parametrize("scenario", ["conflict", "cas", "throttled", "denied", "invalid-key"])
def test_payload_never_appears_in_errors(ssm_settings, clean_moto: MotoServer, raw, scenario):
    s = sink(ssm_settings, name="/secrecy/p")
    mapping = {"role_id": "r-1", "secret_id": Secret(VALUE2)}
    if scenario == "conflict":
        s.create(Secret(VALUE), OWN)
        call = lambda: s.create(mapping, NEXT)  # noqa: E731
    elif scenario == "cas":
        s.create(Secret(VALUE), OWN)
        call = lambda: s.replace(Secret(VALUE2), NEXT, expected_version=7)  # noqa: E731
    elif scenario == "throttled":
        clean_moto.throttle(50)
        call = lambda: s.create(mapping, OWN)  # noqa: E731
    elif scenario == "denied":
        s.create(Secret(VALUE), OWN)
        clean_moto.inject("PutParameter", 1, "AccessDeniedException", "not authorized")
        call = lambda: s.replace(Secret(VALUE2), NEXT, expected_version=1)  # noqa: E731
    else:
        clean_moto.inject("PutParameter", 1, "InvalidKeyId", "Invalid keyId alias/nope")
        call = lambda: sink(ssm_settings, name="/secrecy/p", kms_key_id="alias/nope").create(  # noqa: E731
            Secret(VALUE2), OWN)
    with pytest.raises(TokendropError) as caught:
        call()
    text = full_text(caught.value)
    assert VALUE not in text
    assert VALUE2 not in text
    assert "ssm:/secrecy/p" in str(caught.value)


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "attribute"), [
    ({"name": "ci/token"}, "name"),
    ({"name": "/aws/reserved"}, "name"),
    ({"kms_key_id": "not a key"}, "kms_key_id"),
    ({"tier": "Premium"}, "tier"),
    ({"tags": {"aws:owner": "x"}}, "tags"),
    ({"description": "x [tokendrop issuer=a]"}, "description"),
    ({"expires_at": "tomorrow"}, "expires_at"),
])
def test_bad_settings_are_rejected_before_any_call(kwargs, attribute):
    name = kwargs.pop("name", "/ok")
    with pytest.raises(ConfigError) as caught:
        SsmSink(name, settings=AwsSettings(region="us-east-1"), **kwargs)
    assert caught.value.attribute == (attribute,)


def test_one_cached_client_per_settings(ssm_settings):
    assert ssm_client(ssm_settings) is ssm_client(ssm_settings)
    other = AwsSettings(region="eu-west-1", endpoint_url_ssm=ssm_settings.endpoint_url_ssm,
                        access_key_id="test", secret_access_key=Secret("test"))
    assert ssm_client(other) is not ssm_client(ssm_settings)


def test_missing_region_is_a_config_error(monkeypatch, tmp_path):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = AwsSettings(endpoint_url_ssm="http://127.0.0.1:9", access_key_id="k",
                           secret_access_key=Secret("s"))
    with pytest.raises(ConfigError) as caught:
        ssm_client(settings, SsmRetryPolicy(botocore_max_attempts=2))
    assert caught.value.attribute == ("aws_region",)


def test_half_given_keys_are_a_config_error():
    with pytest.raises(ConfigError) as caught:
        ssm_client(AwsSettings(region="us-east-1", access_key_id="AKIA-only"))
    assert caught.value.attribute == ("aws_secret_access_key",)


def test_unreachable_endpoint_is_a_sink_error():
    settings = AwsSettings(region="us-east-1", endpoint_url_ssm="http://127.0.0.1:9",
                           access_key_id="k", secret_access_key=Secret("s"))
    with pytest.raises(SinkError, match="Cannot reach SSM"):
        sink(settings).status()


# --- the sandbox launcher ---------------------------------------------------------------------


def test_plain_moto_server_launcher(tmp_path):
    from tokendrop_provider.sandbox.servers import start_moto

    with start_moto(tmp_path, faults=False) as server:
        assert server.env()["AWS_ENDPOINT_URL_SSM"] == server.url
        assert server.url.startswith("http://127.0.0.1:")
        settings = AwsSettings(region="us-east-1", endpoint_url_ssm=server.url, access_key_id="test",
                               secret_access_key=Secret("test"))
        assert sink(settings, name="/launcher/p").create(Secret(VALUE), OWN) == 1
        server.reset()
        assert sink(settings, name="/launcher/p").status().exists is False
        with pytest.raises(RuntimeError, match="without the fault injector"):
            server.throttle(1)
    assert not server.running
    server.stop()  # idempotent
    assert server.log_path.exists()
    assert VALUE not in server.log_path.read_text()  # access log lines carry no bodies
