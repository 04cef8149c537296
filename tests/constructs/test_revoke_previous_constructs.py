"""The constructs carry `revoke_previous_when` / `previous_unused_for` and refuse them at synth time
where the provider would refuse them at plan time (naming the attribute)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokendrop import BuildkiteCluster, SsmParameter, TfeAgentPool, TokendropProvider
from tokendrop.errors import TokendropValidationError
from tokendrop_provider import schema

TOKEN = schema.TFE_AGENT_TOKEN.type_name


def test_unused_revocation_is_synthesized(core, stack, synth):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    pool.add_token("runners", deliver_to=SsmParameter("/ci/token"), keep_previous_for=timedelta(hours=2),
                   revoke_previous_when="unused", previous_unused_for=timedelta(minutes=20))
    token = synth.one(stack, TOKEN)
    assert (token["revoke_previous_when"], token["previous_unused_for"], token["keep_previous_for"]) == \
        ("unused", "20m", "2h")


def test_unused_without_keep_previous_for_is_refused_at_synth(core, stack):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="ci")
    with pytest.raises(TokendropValidationError, match=r"revoke_previous_when.*needs keep_previous_for"):
        pool.add_token("runners", deliver_to=SsmParameter("/ci/token"), revoke_previous_when="unused")


def test_an_issuer_that_cannot_tell_is_refused_at_synth(core, stack):
    TokendropProvider(stack, "tokendrop")
    cluster = BuildkiteCluster(stack, "linux", organization="acme", name="linux")
    with pytest.raises(TokendropValidationError, match=r"revoke_previous_when.*Buildkite does not report"):
        cluster.add_agent_token("elastic", description="x", deliver_to=SsmParameter("/bk/token"),
                                keep_previous_for=timedelta(hours=1), revoke_previous_when="unused")
