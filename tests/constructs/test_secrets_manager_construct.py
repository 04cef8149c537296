"""SecretsManagerSecret: the `deliver_to.secrets_manager` shape, the provider's address, synth-time
validation, and the IAM policy a consumer needs to read the delivered token."""

from __future__ import annotations

import pytest

from tokendrop import SecretsManagerSecret, TfeAgentPool, TokendropProvider, TokendropValidationError
from tokendrop_provider.registry.sinks import deliver_to_from_address
from tokendrop_provider.settings import AwsSettings
from tokendrop_provider.sinks.secrets_manager import SecretsManagerSink


def test_config_leaves_unset_fields_out():
    assert SecretsManagerSecret("ci/t").to_config() == {"secrets_manager": {"name": "ci/t"}}
    full = SecretsManagerSecret("ci/t", kms_key_id="alias/ci", tags={"a": "b"}, replica_regions=["eu-west-1"],
                                field="token", recovery_window_in_days=0)
    assert full.to_config() == {"secrets_manager": {
        "name": "ci/t", "kms_key_id": "alias/ci", "tags": {"a": "b"}, "replica_regions": ["eu-west-1"],
        "field": "token", "recovery_window_in_days": 0}}


def test_address_matches_the_provider_and_parses_back():
    secret = SecretsManagerSecret("ci/tfc-agent/token")
    assert secret.address == SecretsManagerSink("ci/tfc-agent/token", settings=AwsSettings(region="us-east-1")).address
    assert secret.address == "secrets_manager:ci/tfc-agent/token"
    assert deliver_to_from_address(secret.address)["secrets_manager"]["name"] == "ci/tfc-agent/token"


def test_read_policy_default_key_names_the_secret_in_every_region():
    assert SecretsManagerSecret("ci/t").read_policy() == {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadTokendropSecret", "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": "arn:aws:secretsmanager:*:*:secret:ci/t-??????"}]}


def test_read_policy_customer_key_is_limited_to_this_secret_through_secrets_manager():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policy = SecretsManagerSecret("ci/t", kms_key_id=key).read_policy(region="eu-west-1", account="123456789012")
    read, decrypt = policy["Statement"]
    assert read["Resource"] == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ci/t-??????"
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == key
    assert decrypt["Condition"]["StringLike"] == {
        "kms:EncryptionContext:SecretARN": read["Resource"],
        "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    alias = SecretsManagerSecret("ci/t", kms_key_id="alias/ci").read_policy()["Statement"][1]
    assert alias["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/ci"}


def test_synth_renders_the_nested_object(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    pool.add_token("runners", deliver_to=SecretsManagerSecret("ci/tfc-agent/token", field="TFC_AGENT_TOKEN",
                                                              replica_regions=["eu-west-1"]))
    token = synth.one(stack, "tokendrop_tfe_agent_token")
    assert token["deliver_to"] == {"secrets_manager": {"name": "ci/tfc-agent/token", "field": "TFC_AGENT_TOKEN",
                                                       "replica_regions": ["eu-west-1"]}}


@pytest.mark.parametrize(("sink", "attribute"), [
    (SecretsManagerSecret("ci/has space"), "deliver_to.secrets_manager.name"),
    (SecretsManagerSecret("ci/t", replica_regions=["moon-1"]), "deliver_to.secrets_manager.replica_regions"),
    (SecretsManagerSecret("ci/t", recovery_window_in_days=45), "deliver_to.secrets_manager.recovery_window_in_days"),
    (SecretsManagerSecret("ci/t", tags={"aws:x": "y"}), "deliver_to.secrets_manager.tags"),
])
def test_bad_input_fails_at_synth_naming_the_attribute(core, stack, sink, attribute):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    with pytest.raises(TokendropValidationError) as raised:
        pool.add_token("runners", deliver_to=sink)
    assert attribute in str(raised.value)
