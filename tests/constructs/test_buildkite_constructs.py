"""The Buildkite constructs: the issue's API verbatim, the synthesized attributes (allowed IPs as a list,
durations as text, the cluster reference), the buildkite stack, and synth-time validation that names
the construct path and the attribute. Runs on cdktf and cdktn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokendrop import (
    BuildkiteCluster,
    BuildkiteClusterToken,
    SsmParameter,
    TokendropProvider,
    TokendropValidationError,
    VaultSecret,
)
from tokendrop_provider import schema

CLUSTER = schema.BUILDKITE_CLUSTER.type_name
TOKEN = schema.BUILDKITE_CLUSTER_TOKEN.type_name


def issue_example(stack):
    TokendropProvider(stack, "tokendrop")
    cluster = BuildkiteCluster(stack, "linux", organization="acme", name="linux",
                               description="Linux agents", emoji=":penguin:", color="#FF9900")
    cluster.add_agent_token("default", description="elastic stack",
                            deliver_to=SsmParameter("/buildkite/linux/agent-token"),
                            allowed_ip_addresses=["10.0.0.0/8", "192.0.2.7/32"],
                            expires_in=timedelta(days=90))
    BuildkiteClusterToken(stack, "t", organization="acme", cluster_id="0f5f8b3e-3c6a-4f2b-9d53-3f1c1a2b4c5d",
                          description="x", deliver_to=VaultSecret(mount="secret", path="ci/bk/x"))
    return cluster


def test_the_issue_example_synthesizes(core, stack, synth):
    issue_example(stack)
    assert synth.one(stack, CLUSTER) == {"organization": "acme", "name": "linux", "description": "Linux agents",
                                         "emoji": ":penguin:", "color": "#FF9900"}
    tokens = synth.resources(stack, TOKEN)
    default = next(v for k, v in tokens.items() if k.startswith("linux_default"))
    assert default == {
        "organization": "acme", "cluster_id": "${tokendrop_buildkite_cluster.linux.id}",
        "description": "elastic stack", "allowed_ip_addresses": ["10.0.0.0/8", "192.0.2.7/32"],
        "expires_in": "90d", "deliver_to": {"ssm": {"name": "/buildkite/linux/agent-token"}},
    }
    assert tokens["t"]["deliver_to"] == {"vault_kv": {"mount": "secret", "path": "ci/bk/x", "field": "token"}}


def test_expires_at_takes_an_aware_datetime(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    when = datetime(2031, 1, 31, 12, 0, tzinfo=UTC)
    BuildkiteClusterToken(stack, "t", cluster_id="0f5f8b3e-3c6a-4f2b-9d53-3f1c1a2b4c5d", description="x",
                          deliver_to=SsmParameter("/bk/t"), expires_at=when)
    assert synth.one(stack, TOKEN)["expires_at"] == "2031-01-31T12:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        BuildkiteClusterToken(stack, "naive", cluster_id="0f5f8b3e-3c6a-4f2b-9d53-3f1c1a2b4c5d", description="x",
                              deliver_to=SsmParameter("/bk/n"), expires_at=datetime(2031, 1, 31))


@pytest.mark.parametrize(("arguments", "attribute"), [
    ({"allowed_ip_addresses": ["10.0.0.1/8"]}, "allowed_ip_addresses"),
    ({"allowed_ip_addresses": ["not-an-ip"]}, "allowed_ip_addresses"),
    ({"allowed_ip_addresses": ["2001:db8::/32"]}, "allowed_ip_addresses"),
    ({"expires_in": timedelta(minutes=5)}, "expires_in"),
    ({"description": ""}, "description"),
    ({"expires_in": "1d", "expires_at": "2031-01-01T00:00:00Z"}, "expires"),
])
def test_bad_input_fails_at_synth_naming_path_and_attribute(core, stack, arguments, attribute):
    TokendropProvider(stack, "tokendrop")
    cluster = BuildkiteCluster(stack, "linux", organization="acme", name="linux")
    kwargs = {"description": "elastic", "deliver_to": SsmParameter("/bk/t"), **arguments}
    with pytest.raises(TokendropValidationError) as raised:
        cluster.add_agent_token("bad", **kwargs)
    message = str(raised.value)
    assert "linux/bad" in message and attribute in message


def test_the_buildkite_stack(core, stack, synth):
    from stacks import buildkite

    tokens = buildkite.define(stack)
    assert set(tokens) == {"elastic", "vault"}
    synthesized = synth.resources(stack, TOKEN)
    elastic = next(v for k, v in synthesized.items() if k.startswith("cluster_elastic"))
    assert elastic["deliver_to"] == [{"ssm": {"name": "/buildkite/linux/agent-token", "region": "us-east-1"}},
                                     {"ssm": {"name": "/buildkite/linux/agent-token", "region": "eu-west-1"}}]
    outputs = synth(stack)["output"]
    assert outputs["agent_token_parameter_arns"]["value"] == [
        "arn:aws:ssm:us-east-1:*:parameter/buildkite/linux/agent-token",
        "arn:aws:ssm:eu-west-1:*:parameter/buildkite/linux/agent-token"]
    assert elastic["rotate_before_expiry"] == "14d" and elastic["keep_previous_for"] == "1h"


def test_the_buildkite_stack_in_the_providers_region_alone(core, stack, synth, monkeypatch):
    """No regions set: the Elastic CI Stack's one parameter, in the provider's region."""
    from stacks import buildkite

    monkeypatch.setenv("TOKENDROP_BUILDKITE_SSM_REGIONS", " ")
    buildkite.define(stack)
    elastic = next(v for k, v in synth.resources(stack, TOKEN).items() if k.startswith("cluster_elastic"))
    assert elastic["deliver_to"] == {"ssm": {"name": "/buildkite/linux/agent-token"}}
