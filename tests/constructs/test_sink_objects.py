"""SsmParameter and VaultSecret: plain values with the provider's `deliver_to` shape and sink addresses,
and the policies a consumer needs to read what was delivered."""

from __future__ import annotations

import pytest

from tokendrop import SecretsManagerSecret, SsmParameter, TfeAgentPool, VaultSecret
from tokendrop_provider.registry.sinks import deliver_to_from_address
from tokendrop_provider.settings import AwsSettings, VaultSettings
from tokendrop_provider.sinks.ssm import SsmSink
from tokendrop_provider.sinks.vault_kv import VaultKvSink


def test_ssm_config_leaves_unset_fields_out():
    assert SsmParameter("/ci/t").to_config() == {"ssm": {"name": "/ci/t"}}
    full = SsmParameter("/ci/t", kms_key_id="alias/ci", tier="Advanced", description="d", tags={"a": "b"})
    assert full.to_config() == {"ssm": {"name": "/ci/t", "kms_key_id": "alias/ci", "tier": "Advanced",
                                        "description": "d", "tags": {"a": "b"}}}


def test_vault_config_is_explicit():
    assert VaultSecret("ci/t").to_config() == {"vault_kv": {"mount": "secret", "path": "ci/t", "field": "token"}}


@pytest.mark.parametrize("name", ["/ci/tfc-agent/token", "flat-name"])
def test_addresses_match_the_provider(name):
    ssm = SsmParameter(name)
    assert ssm.address == SsmSink(name, settings=AwsSettings(region="us-east-1")).address
    vault = VaultSecret("ci/x", mount="kv/team", field="value")
    assert vault.address == VaultKvSink("kv/team", "ci/x", settings=VaultSettings(), field="value").address


def test_ssm_read_policy_default_key():
    policy = SsmParameter("/ci/tfc-agent/token").read_policy()
    assert policy == {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadTokendropParameter", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"],
        "Resource": "arn:aws:ssm:*:*:parameter/ci/tfc-agent/token"}]}
    # the ARN names the parameter the provider writes (the one its sink address names)
    sink = SsmSink("/ci/tfc-agent/token", settings=AwsSettings(region="us-east-1"))
    written = deliver_to_from_address(sink.address)["ssm"]["name"]
    assert policy["Statement"][0]["Resource"] == f"arn:aws:ssm:*:*:parameter/{written.removeprefix('/')}"


def test_ssm_read_policy_flat_name_region_account_partition():
    policy = SsmParameter("flat", kms_key_id="1234abcd-12ab-34cd-56ef-1234567890ab").read_policy(
        region="cn-north-1", account="111122223333", partition="aws-cn")
    read, decrypt = policy["Statement"]
    assert read["Resource"] == "arn:aws-cn:ssm:cn-north-1:111122223333:parameter/flat"
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert decrypt["Condition"] == {"StringLike": {"kms:EncryptionContext:PARAMETER_ARN": read["Resource"]}}


def test_ssm_read_policy_alias_uses_resource_aliases():
    decrypt = SsmParameter("/t", kms_key_id="alias/ci").read_policy(account="111122223333")["Statement"][1]
    assert decrypt["Resource"] == "arn:aws:kms:*:111122223333:key/*"
    assert decrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/ci"}


def test_ssm_read_policy_key_and_alias_arns():
    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert SsmParameter("/t", kms_key_id=key_arn).read_policy()["Statement"][1]["Resource"] == key_arn
    alias_arn = "arn:aws:kms:eu-west-1:111122223333:alias/ci"
    decrypt = SsmParameter("/t", kms_key_id=alias_arn).read_policy()["Statement"][1]
    assert decrypt["Resource"] == "arn:aws:kms:eu-west-1:111122223333:key/*"
    assert decrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/ci"}


def test_ssm_arn():
    assert SsmParameter("/ci/t").arn("us-east-1", "111122223333") == "arn:aws:ssm:us-east-1:111122223333:parameter/ci/t"


def test_vault_read_policy_and_template():
    secret = VaultSecret(mount="secret", path="ci/tfc-agent/batch", field="token")
    assert secret.read_policy() == 'path "secret/data/ci/tfc-agent/batch" { capabilities = ["read"] }'
    # the path is the KV v2 data path of the secret the provider writes (the one its sink address names)
    written = deliver_to_from_address(VaultKvSink("secret", "ci/tfc-agent/batch", settings=VaultSettings()).address)
    assert secret.read_policy() == (f'path "{written["vault_kv"]["mount"]}/data/{written["vault_kv"]["path"]}" '
                                    '{ capabilities = ["read"] }')
    assert secret.agent_template() == ('{{ with secret "secret/data/ci/tfc-agent/batch" }}'
                                       'TFC_AGENT_TOKEN={{ index .Data.data "token" }}{{ end }}\n')


def test_sinks_are_values():
    assert SsmParameter("/a") == SsmParameter("/a")
    assert hash(SsmParameter("/a", tags={"x": "y"})) == hash(SsmParameter("/a", tags={"x": "z"}))
    assert VaultSecret("a") != VaultSecret("a", field="other")
    with pytest.raises(AttributeError):
        SsmParameter("/a").name = "/b"  # type: ignore[misc]


# --- one token, many sinks (issue 13, part 1) ---------------------------------------------------


def test_a_list_of_sinks_synthesizes_as_a_list_in_order(stack, synth):
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    sinks = [SsmParameter("/ci/token", region="eu-west-1"), SsmParameter("/ci/token", region="us-east-1"),
             SecretsManagerSecret("ci/token"), VaultSecret("ci/token")]
    token = pool.add_token("fanout", deliver_to=sinks)
    assert token.arguments["deliver_to"] == [
        {"ssm": {"name": "/ci/token", "region": "eu-west-1"}}, {"ssm": {"name": "/ci/token", "region": "us-east-1"}},
        {"secrets_manager": {"name": "ci/token"}},
        {"vault_kv": {"mount": "secret", "path": "ci/token", "field": "token"}}]
    assert [s.address for s in token.sinks] == ["ssm:eu-west-1:/ci/token", "ssm:us-east-1:/ci/token",
                                                "secrets_manager:ci/token", "vault_kv:secret/ci/token#token"]
    policies = token.read_policies()
    assert policies[0]["Statement"][0]["Resource"] == "arn:aws:ssm:eu-west-1:*:parameter/ci/token"
    assert policies[1]["Statement"][0]["Resource"] == "arn:aws:ssm:us-east-1:*:parameter/ci/token"
    assert 'path "secret/data/ci/token"' in policies[3]
    single = pool.add_token("single", deliver_to=SsmParameter("/ci/single"))
    assert single.arguments["deliver_to"] == {"ssm": {"name": "/ci/single"}}, "one sink keeps the object form"


def test_a_sink_in_another_account_has_the_account_in_its_address():
    sink = SsmParameter("/ci/token", region="eu-west-1", assume_role_arn="arn:aws:iam::111111111111:role/writer")
    assert sink.to_config() == {"ssm": {"name": "/ci/token", "region": "eu-west-1",
                                        "assume_role_arn": "arn:aws:iam::111111111111:role/writer"}}
    assert sink.address == "ssm:111111111111:eu-west-1:/ci/token"
    assert SecretsManagerSecret("ci/t", assume_role_arn="arn:aws:iam::222222222222:role/w").address == (
        "secrets_manager:222222222222:ci/t")
    # import ids end with the address: the region is read back, the role comes from the configuration
    assert deliver_to_from_address(sink.address)["ssm"]["region"] == "eu-west-1"
    assert deliver_to_from_address(sink.address)["ssm"]["name"] == "/ci/token"
