"""SecretsManagerSink against a real moto server (behind the sandbox fault injector, which counts calls
and injects errors; FaultProxy drops answers)."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tokendrop_provider.errors import ConfigError, SinkAccessDenied, SinkConflict, SinkWriteUnknown
from tokendrop_provider.sandbox.servers import FaultProxy, MotoServer
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import AwsSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.secrets_manager import PENDING, SecretsManagerSink
from tokendrop_provider.sinks.secrets_manager_rules import SecretsManagerSettings, parse_record, version_number
from tokendrop_provider.sinks.ssm import SsmRetryPolicy

FAST = SsmRetryPolicy(botocore_mode="standard", botocore_max_attempts=1, attempts=3, base_delay=0.01, max_delay=0.02)
OWN = Ownership(token_id="at-111", issuer="tfe", owner="1a2b3c4d5e6f")
NEXT = Ownership(token_id="at-222", issuer="tfe", owner="1a2b3c4d5e6f")
VALUE = "tok-6d5c4b3a2f1e0d99-value"
VALUE2 = "tok-0a1b2c3d4e5f6a77-rotated"
NAME = "ci/agent/token"


@pytest.fixture
def endpoint(clean_moto: MotoServer) -> SecretsManagerSettings:
    return SecretsManagerSettings(endpoint_url=clean_moto.url)


@pytest.fixture
def raw(clean_moto: MotoServer):
    """A plain boto3 client, to look at what the sink did (and to play "someone else")."""
    return raw_client(clean_moto.url)


def raw_client(url: str, region: str = "us-east-1"):
    return boto3.client("secretsmanager", endpoint_url=url, region_name=region,
                        aws_access_key_id="test", aws_secret_access_key="test")


def sink(settings: AwsSettings, endpoint: SecretsManagerSettings, name: str = NAME,
         **kwargs: Any) -> SecretsManagerSink:
    kwargs.setdefault("retry", FAST)
    return SecretsManagerSink(name, settings=settings, endpoint=endpoint, **kwargs)


def stages(raw, name: str = NAME) -> dict[str, list[str]]:
    return raw.describe_secret(SecretId=name)["VersionIdsToStages"]


def current_value(raw, name: str = NAME) -> str:
    # The stage named explicitly: moto 5.2.5's GetSecretValue without one does not follow an
    # UpdateSecretVersionStage move of AWSCURRENT (AWS does; docs/wire.md).
    return raw.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def test_importing_the_sink_modules_does_not_import_boto3():
    code = ("import sys, tokendrop_provider.sinks.secrets_manager, tokendrop_provider.registry.secrets_manager; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_create_stores_the_plain_token_with_record_and_tags(ssm_settings, endpoint, raw, clean_moto):
    s = sink(ssm_settings, endpoint, tags={"team": "platform"})
    assert s.status().exists is False
    assert s.create(Secret(VALUE), OWN) == 1
    assert current_value(raw) == VALUE
    meta = raw.describe_secret(SecretId=NAME)
    record = parse_record(meta["Description"])
    assert record is not None and record.ownership == Ownership("at-111", "tfe", "1a2b3c4d5e6f", 1)
    assert stages(raw) == {record.version_id: ["AWSCURRENT"]}
    assert {t["Key"]: t["Value"] for t in meta["Tags"]} == {
        "managed-by": "tokendrop", "tokendrop:issuer": "tfe", "team": "platform"}
    status = s.status()
    assert (status.exists, status.version, status.ownership_current) == (True, 1, True)
    assert status.ownership == record.ownership
    assert VALUE not in meta["Description"]


def test_field_stores_a_json_object(ssm_settings, endpoint, raw):
    s = sink(ssm_settings, endpoint, field="BUILDKITE AGENT]TOKEN")
    s.create(Secret(VALUE), OWN)
    assert json.loads(current_value(raw)) == {"BUILDKITE AGENT]TOKEN": VALUE}
    assert s.current_settings()["field"] == "BUILDKITE AGENT]TOKEN"  # from the record, for import
    assert s.status().ownership_current


def test_create_is_create_only(ssm_settings, endpoint, raw):
    raw.create_secret(Name=NAME, SecretString="someone-elses-value")
    with pytest.raises(SinkConflict) as caught:
        sink(ssm_settings, endpoint).create(Secret(VALUE), OWN)
    assert caught.value.attribute == ("name",)
    assert "no tokendrop ownership record" in caught.value.detail
    assert current_value(raw) == "someone-elses-value"
    status = sink(ssm_settings, endpoint).status()
    assert status.exists and status.ownership is None and not status.ownership_current


def test_rotation_moves_current_and_previous_and_status_never_reads_the_value(ssm_settings, endpoint, raw,
                                                                              clean_moto):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    first = next(iter(stages(raw)))
    clean_moto.reset_counters()
    assert s.replace(Secret(VALUE2), NEXT, expected_version=1) == 2
    assert s.status().version == 2
    calls = clean_moto.calls()
    assert calls["GetSecretValue"] == 0  # nothing tokendrop does reads a value back
    labels = stages(raw)
    second = next(v for v, st in labels.items() if "AWSCURRENT" in st)
    assert version_number(second) == 2
    assert labels[first] == ["AWSPREVIOUS"]
    assert not any(PENDING in st for st in labels.values())
    assert current_value(raw) == VALUE2
    assert raw.get_secret_value(SecretId=NAME, VersionStage="AWSPREVIOUS")["SecretString"] == VALUE
    status = s.status()
    assert (status.version, status.ownership_current, status.ownership.token_id) == (2, True, "at-222")


def test_replace_refuses_a_version_it_does_not_hold(ssm_settings, endpoint, raw):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    raw.put_secret_value(SecretId=NAME, SecretString="written-by-hand")  # AWSCURRENT moves to a foreign id
    status = s.status()
    assert (status.exists, status.version, status.ownership_current) == (True, 2, False)
    with pytest.raises(SinkConflict):
        s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert current_value(raw) == "written-by-hand"
    assert len(stages(raw)) == 2  # nothing new was written
    assert s.delete(OWN.token_id) is False  # no longer ours: left alone
    assert current_value(raw) == "written-by-hand"


class _Racing(SecretsManagerSink):
    """A sink whose stage move meets a writer that got in between (a real second write, made at the
    one moment a test cannot otherwise reach)."""

    raw: Any = None

    def _write(self, operation: str, secrets: Any = (), **params: Any) -> dict[str, Any]:
        if operation == "UpdateSecretVersionStage":
            self.raw.put_secret_value(SecretId=self.name, SecretString="slipped-in")
        return super()._write(operation, secrets, **params)


def test_the_stage_move_is_a_compare_and_set(ssm_settings, endpoint, raw):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    before = raw.describe_secret(SecretId=NAME)["Description"]
    racing = _Racing(NAME, settings=ssm_settings, endpoint=endpoint, retry=FAST)
    racing.raw = raw
    with pytest.raises(SinkConflict) as caught:
        racing.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert "AWSCURRENT moved" in caught.value.detail
    assert current_value(raw) == "slipped-in"  # the other writer's value stays current
    assert raw.describe_secret(SecretId=NAME)["Description"] == before  # our record was put back


def test_destroy_schedules_deletion_with_the_recovery_window(ssm_settings, endpoint, raw):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    assert s.delete("at-999") is False  # another token's value is never deleted
    assert s.delete(OWN.token_id) is True
    meta = raw.describe_secret(SecretId=NAME)
    assert meta.get("DeletedDate") is not None
    status = s.status()
    assert not status.exists and "scheduled for deletion" in (status.occupant or "")
    with pytest.raises(SinkConflict):  # the name stays taken until the window ends, for anyone else
        s.create(Secret(VALUE), Ownership(token_id="at-333", issuer="tfe", owner="ffffffffffff"))
    assert s.create(Secret(VALUE2), NEXT) == 2  # the same resource created again gets its secret back


def test_our_secret_scheduled_for_deletion_out_of_band_is_restored_by_the_next_write(ssm_settings, endpoint, raw):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    raw.delete_secret(SecretId=NAME, RecoveryWindowInDays=30)  # what the console's Delete does
    status = s.status()
    assert not status.exists and status.version is None  # refresh reports it missing
    assert s.create(Secret(VALUE2), NEXT) == 2
    assert "restored" in s.warnings[0]
    assert current_value(raw) == VALUE2 and raw.describe_secret(SecretId=NAME).get("DeletedDate") is None
    other = Ownership(token_id="at-333", issuer="tfe", owner="ffffffffffff")  # another resource's
    raw.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    with pytest.raises(SinkConflict):
        s.create(Secret(VALUE), other)
    assert raw.describe_secret(SecretId=NAME).get("DeletedDate") is not None, "not restored for someone else"


def test_destroy_with_window_zero_deletes_at_once_with_its_replicas(ssm_settings, endpoint, raw, clean_moto):
    s = sink(ssm_settings, endpoint, replica_regions=["eu-west-1"], recovery_window_in_days=0)
    s.create(Secret(VALUE), OWN)
    replicated = raw.describe_secret(SecretId=NAME)["ReplicationStatus"]
    assert [r["Region"] for r in replicated] == ["eu-west-1"]
    replica = raw_client(clean_moto.url, "eu-west-1")
    assert replica.get_secret_value(SecretId=NAME)["SecretString"] == VALUE
    assert s.delete(OWN.token_id) is True
    with pytest.raises(raw.exceptions.ResourceNotFoundException):
        raw.describe_secret(SecretId=NAME)
    with pytest.raises(replica.exceptions.ResourceNotFoundException):
        replica.describe_secret(SecretId=NAME)


def test_destroy_keeps_a_secret_holding_versions_tokendrop_did_not_write(ssm_settings, endpoint, raw):
    raw.create_secret(Name=NAME, SecretString="pre-existing")
    s = sink(ssm_settings, endpoint, recovery_window_in_days=0)
    status = s.status()
    assert s.replace(Secret(VALUE), OWN, expected_version=status.version) == status.version + 1  # adopted
    assert s.delete(OWN.token_id) is False
    assert "not written by tokendrop" in s.warnings[0]
    assert current_value(raw) == VALUE


def test_tags_and_replicas_are_reconciled_in_place(ssm_settings, endpoint, raw, clean_moto):
    sink(ssm_settings, endpoint, tags={"team": "a"}).create(Secret(VALUE), OWN)
    versions = stages(raw)
    s = sink(ssm_settings, endpoint, tags={"team": "b"}, replica_regions=["eu-central-1"])
    s.reconcile_settings()
    meta = raw.describe_secret(SecretId=NAME)
    assert {t["Key"]: t["Value"] for t in meta["Tags"]}["team"] == "b"
    assert [r["Region"] for r in meta["ReplicationStatus"]] == ["eu-central-1"]
    assert stages(raw) == versions  # no new version
    assert s.current_settings() == {"kms_key_id": None, "tags": {"team": "b"}, "replica_regions": ["eu-central-1"],
                                    "field": None}


def test_a_5xx_on_a_write_is_unknown_and_abandon_restores_the_record(ssm_settings, endpoint, raw, clean_moto):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    before = raw.describe_secret(SecretId=NAME)["Description"]
    clean_moto.inject("PutSecretValue", 1, "InternalServiceError", "try again", status=500)
    with pytest.raises(SinkWriteUnknown) as caught:
        s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert VALUE2 not in full_text(caught.value)
    status = s.status()  # the record was written ahead: it names version 2, which is not current
    assert (status.version, status.ownership_current) == (1, False)
    s.abandon(NEXT)
    assert raw.describe_secret(SecretId=NAME)["Description"] == before
    assert s.status().ownership_current


@pytest.fixture
def moto_proxy(clean_moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(clean_moto.url) as proxy:
        yield proxy


def test_a_create_whose_answer_is_lost_is_unknown_sent_once_and_found_ours(ssm_settings, moto_proxy, raw):
    s = SecretsManagerSink(NAME, settings=ssm_settings, endpoint=SecretsManagerSettings(endpoint_url=moto_proxy.url),
                           retry=SsmRetryPolicy(botocore_mode="standard", attempts=1))
    moto_proxy.arm("drop_response", target="secretsmanager.CreateSecret", count=1)
    with pytest.raises(SinkWriteUnknown) as caught:
        s.create(Secret(VALUE), OWN)
    assert VALUE not in full_text(caught.value)
    assert sum(1 for _, _, target, _ in moto_proxy.seen if target == "secretsmanager.CreateSecret") == 1
    status = s.status()  # what the delivery reads back: the write landed, with our record
    assert (status.exists, status.version, status.ownership_current, status.ownership.token_id) == (
        True, 1, True, "at-111")
    assert s.create(Secret(VALUE), OWN) == 1  # a retry of the same write finds its own value


def test_plain_http_endpoint_is_refused_before_any_call(ssm_settings):
    s = SecretsManagerSink(NAME, settings=ssm_settings,
                           endpoint=SecretsManagerSettings(endpoint_url="http://secrets.example.com"))
    with pytest.raises(ConfigError) as caught:
        s.status()
    assert caught.value.attribute == ("aws_endpoint_url_secretsmanager",)
    assert "unencrypted" in caught.value.detail


def test_an_insecure_endpoint_from_the_aws_config_file_is_refused(tmp_path, monkeypatch):
    """botocore also reads endpoints from the shared config file, which the settings never see: the
    client checks the endpoint botocore resolved."""
    config = tmp_path / "config"
    config.write_text("[profile smtest]\nregion = us-east-1\nservices = smtest-services\n\n"
                      "[services smtest-services]\nsecrets_manager =\n  endpoint_url = http://sm.internal.example:4566\n")
    for name in ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SECRETSMANAGER", "AWS_ENDPOINT_URL",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    s = SecretsManagerSink(NAME, settings=AwsSettings(profile="smtest"), endpoint=SecretsManagerSettings())
    with pytest.raises(ConfigError, match="Insecure Secrets Manager endpoint") as caught:
        s.status()
    assert "sm.internal.example" in caught.value.detail


@pytest.mark.parametrize(("kwargs", "attribute"), [
    ({"name": "bad name!"}, "name"),
    ({"name": "x" * 513}, "name"),
    ({"replica_regions": ["not a region"]}, "replica_regions"),
    ({"replica_regions": ["us-east-1"]}, "replica_regions"),  # the secret's own region
    ({"recovery_window_in_days": 3}, "recovery_window_in_days"),
    ({"tags": {"tokendrop:issuer": "x"}}, "tags"),
    ({"field": " "}, "field"),
    ({"kms_key_id": "arn:aws:s3:::bucket"}, "kms_key_id"),
])
def test_bad_settings_name_the_attribute(ssm_settings, kwargs, attribute):
    kwargs = {"name": NAME, **kwargs}
    with pytest.raises(ConfigError) as caught:
        SecretsManagerSink(kwargs.pop("name"), settings=ssm_settings, **kwargs)
    assert caught.value.attribute == (attribute,)


def test_api_calls_of_each_operation(ssm_settings, endpoint, clean_moto):
    """What each operation costs (counted by the fault injector in front of moto)."""
    s = sink(ssm_settings, endpoint, replica_regions=["eu-west-1"], recovery_window_in_days=0)
    clean_moto.reset_counters()
    s.create(Secret(VALUE), OWN)
    assert clean_moto.calls() == {"CreateSecret": 1, "DescribeSecret": 1}  # the read checks replication
    clean_moto.reset_counters()
    s.status()
    assert clean_moto.calls() == {"DescribeSecret": 1}
    clean_moto.reset_counters()
    s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert clean_moto.calls() == {"DescribeSecret": 1, "UpdateSecret": 1, "PutSecretValue": 1,
                                  "UpdateSecretVersionStage": 2}
    clean_moto.reset_counters()
    assert s.delete(NEXT.token_id)
    assert clean_moto.calls() == {"DescribeSecret": 1, "ListSecretVersionIds": 1,
                                  "RemoveRegionsFromReplication": 1, "DeleteSecret": 1}


def test_a_customer_kms_key_is_used_and_a_new_one_applies_at_rotation(ssm_settings, endpoint, raw, clean_moto):
    kms = boto3.client("kms", endpoint_url=clean_moto.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    first, second = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    sink(ssm_settings, endpoint, kms_key_id=first).create(Secret(VALUE), OWN)
    assert raw.describe_secret(SecretId=NAME)["KmsKeyId"] == first
    rotated = sink(ssm_settings, endpoint, kms_key_id=second)
    rotated.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert raw.describe_secret(SecretId=NAME)["KmsKeyId"] == second
    assert current_value(raw) == VALUE2
    assert rotated.current_settings()["kms_key_id"] == second


def test_a_refused_rotation_reports_its_own_error_and_keeps_the_old_token_current(ssm_settings, endpoint, raw,
                                                                                   clean_moto):
    s = sink(ssm_settings, endpoint)
    s.create(Secret(VALUE), OWN)
    # the record write is refused, and so is the undo that follows: the first error is the one reported
    clean_moto.inject("UpdateSecret", 2, "AccessDeniedException", "not authorized")
    with pytest.raises(SinkAccessDenied) as caught:
        s.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert "secretsmanager:UpdateSecret" in caught.value.summary
    assert clean_moto.injected()["UpdateSecret"] == 2 and clean_moto.calls()["PutSecretValue"] == 0  # undo tried
    assert current_value(raw) == VALUE
    status = s.status()
    assert status.version == 1 and status.ownership_current and status.ownership.token_id == "at-111"
