"""Version labels a consumer can fall back on during keep_previous_for: SSM's `current` / `previous`
labels (LabelParameterVersion, against moto), and Vault KV's `tokendrop_previous_version` in the
ownership custom_metadata (against OpenBao). Secrets Manager's AWSCURRENT / AWSPREVIOUS moves are tested
in test_secrets_manager_sink.py and end to end in tests/e2e/test_revoke_previous_when.py."""

from __future__ import annotations

import boto3
import pytest

from tokendrop_provider.sandbox.servers import MotoServer, OpenBaoServer
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import AwsSettings, VaultSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.ssm import SsmRetryPolicy, SsmSink
from tokendrop_provider.sinks.vault_kv import PREVIOUS_VERSION_KEY, VaultKvSink

FAST = SsmRetryPolicy(botocore_mode="standard", botocore_max_attempts=1, attempts=2, base_delay=0.01, max_delay=0.02)
OWNER = "1a2b3c4d5e6f"
VALUES = ["tok-1111aaaa2222bbbb-first", "tok-3333cccc4444dddd-second", "tok-5555eeee6666ffff-third"]
NAME = "/ci/agent/token"


def own(n: int) -> Ownership:
    return Ownership(token_id=f"at-{n}", issuer="tfe", owner=OWNER)


@pytest.fixture
def raw(ssm_settings: AwsSettings):
    return boto3.client("ssm", endpoint_url=ssm_settings.endpoint_url_ssm, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def value(raw, selector: str) -> tuple[str, int]:
    p = raw.get_parameter(Name=selector, WithDecryption=True)["Parameter"]
    return p["Value"], p["Version"]


def labels(raw) -> dict[int, list[str]]:
    history = raw.get_parameter_history(Name=NAME, WithDecryption=False)["Parameters"]
    return {p["Version"]: sorted(p.get("Labels") or []) for p in history}


def test_ssm_labels_follow_the_live_token_and_the_one_before(ssm_settings, raw, clean_moto: MotoServer):
    sink = SsmSink(NAME, settings=ssm_settings, retry=FAST)
    assert sink.create(Secret(VALUES[0]), own(1)) == 1
    assert value(raw, f"{NAME}:current") == (VALUES[0], 1)
    assert labels(raw) == {1: ["current"]}

    clean_moto.reset_counters()
    assert sink.replace(Secret(VALUES[1]), own(2), expected_version=1) == 2
    assert clean_moto.calls()["LabelParameterVersion"] == 2, "a rotation costs two label calls"
    assert value(raw, f"{NAME}:current") == (VALUES[1], 2)
    assert value(raw, f"{NAME}:previous") == (VALUES[0], 1)

    assert sink.replace(Secret(VALUES[2]), own(3), expected_version=2) == 3
    assert value(raw, f"{NAME}:previous") == (VALUES[1], 2)
    assert labels(raw) == {1: [], 2: ["previous"], 3: ["current"]}, "each label is on one version only"
    assert sink.warnings == []


def test_a_label_that_cannot_be_moved_is_a_warning_and_the_value_stays(ssm_settings, raw, clean_moto: MotoServer):
    sink = SsmSink(NAME, settings=ssm_settings, retry=FAST)
    sink.create(Secret(VALUES[0]), own(1))
    clean_moto.inject("LabelParameterVersion", count=1, code="AccessDeniedException",
                      message="not authorized to perform: ssm:LabelParameterVersion", status=400)
    assert sink.replace(Secret(VALUES[1]), own(2), expected_version=1) == 2
    assert value(raw, NAME) == (VALUES[1], 2)
    assert value(raw, f"{NAME}:current") == (VALUES[1], 2), "the other label still moved"
    [warning] = sink.warnings
    assert "'previous'" in warning and "version 1" in warning and "ssm:LabelParameterVersion" in warning
    assert all(v not in warning for v in VALUES)


def vault_meta(bao: OpenBaoServer, mount: str, path: str) -> dict:
    return bao.api("GET", f"{mount}/metadata/{path}")["data"]


def vault_version(bao: OpenBaoServer, mount: str, path: str, version: int) -> dict:
    return bao.api("GET", f"{mount}/data/{path}?version={version}")["data"]["data"]


def test_vault_records_the_previous_version_tokendrop_wrote(vault_settings: VaultSettings, vault_kv_mount: str,
                                                            openbao_server: OpenBaoServer):
    path = "ci/agents/labels"
    sink = VaultKvSink(vault_kv_mount, path, settings=vault_settings)
    sink.create(Secret(VALUES[0]), own(1))
    assert PREVIOUS_VERSION_KEY not in vault_meta(openbao_server, vault_kv_mount, path)["custom_metadata"]
    sink.replace(Secret(VALUES[1]), own(2), expected_version=1)
    custom = vault_meta(openbao_server, vault_kv_mount, path)["custom_metadata"]
    assert custom[PREVIOUS_VERSION_KEY] == "1"
    assert vault_version(openbao_server, vault_kv_mount, path, int(custom[PREVIOUS_VERSION_KEY])) == \
        {"token": VALUES[0]}

    sink.replace(Secret(VALUES[2]), own(3), expected_version=2)
    assert vault_meta(openbao_server, vault_kv_mount, path)["custom_metadata"][PREVIOUS_VERSION_KEY] == "2"

    # Someone else writes version 4: the rotation that follows (the sink is ours per state) names no
    # previous version, rather than point a consumer at a value tokendrop did not write.
    openbao_server.api("POST", f"{vault_kv_mount}/data/{path}", {"data": {"token": "someone else's"}})
    sink.replace(Secret(VALUES[0]), own(4), expected_version=4)
    custom = vault_meta(openbao_server, vault_kv_mount, path)["custom_metadata"]
    assert custom["tokendrop_version"] == "5" and PREVIOUS_VERSION_KEY not in custom


def test_a_rotation_whose_answer_was_lost_still_moves_the_labels(ssm_settings, raw, clean_moto: MotoServer,
                                                               fresh_tfe_emulator):
    """The PutParameter answer is dropped after moto stored the value: the delivery reads the parameter
    back, finds its record, and then moves the labels the lost answer would have led to."""
    import dataclasses
    import datetime

    from tokendrop_provider.delivery import Delivery, Listings, Target
    from tokendrop_provider.issuers.tfe import TfeClient
    from tokendrop_provider.sandbox.servers import FaultProxy
    from tokendrop_provider.settings import TfeSettings

    em = fresh_tfe_emulator
    pool = em.create_agent_pool("acme", "labels")
    with FaultProxy(clean_moto.url) as proxy, \
            TfeClient(TfeSettings(address=em.url, token=Secret(em.sandbox_token))) as issuer:
        settings = dataclasses.replace(ssm_settings, endpoint_url_ssm=proxy.url)
        target = Target(resource_type="tokendrop_tfe_agent_token", issuer=issuer, scope=pool, description="ci",
                        sink=SsmSink(NAME, settings=settings, retry=FAST))
        delivery = Delivery(Listings())
        first = delivery.deliver(target)
        proxy.arm("drop_response", target="AmazonSSM.PutParameter", count=1)
        second = delivery.rotate(target, first.token.id, datetime.timedelta(hours=1),
                                 datetime.datetime.now(datetime.UTC))
    assert second.sink_version == 2 and any("was lost" in note for note in second.notes)
    assert labels(raw) == {1: ["previous"], 2: ["current"]}
    assert value(raw, f"{NAME}:previous")[1] == 1 and value(raw, f"{NAME}:current")[1] == 2
