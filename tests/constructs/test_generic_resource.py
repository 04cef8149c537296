"""The generic base needs only a ResourceSchema and a typed __init__: a new resource construct (as the
Buildkite, Token Vault and AppRole ones will be) gets validation, JSON and HCL synthesis, sinks,
durations and references from the schema alone, including lists of nested objects."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokendrop import SsmParameter, TokendropProvider, TokendropValidationError, TokenResource
from tokendrop_provider.attributes import Attr, ResourceSchema
from tokendrop_provider.schema import DELIVER_TO, DELIVER_TO_CHECK, DELIVERY_STATE, LIFECYCLE_ARGUMENTS
from tokendrop_provider.types import NUMBER, STRING, SetOf
from tokendrop_provider.validation import at_least, cidr, duration, each, length

GADGET = ResourceSchema(
    type_name="tokendrop_gadget_token",
    description="A made-up token resource, shaped like the ones being added.",
    attributes=(
        Attr("name", STRING, "Name.", required=True, rules=(length(1, 20),)),
        Attr("allowed_ip_addresses", SetOf(STRING), "CIDRs.", optional=True, rules=(each(cidr()),)),
        Attr("uses", NUMBER, "Uses.", optional=True, rules=(at_least(1),)),
        Attr("grants", description="Grants.", optional=True, nesting="list", nested=(
            Attr("service", STRING, "Service.", required=True, rules=(length(1),)),
            Attr("expires_in", STRING, "Expiry.", optional=True, rules=(duration(maximum=timedelta(days=30)),)),
        )),
        DELIVER_TO,
        *LIFECYCLE_ARGUMENTS,
        *DELIVERY_STATE,
    ),
    checks=(DELIVER_TO_CHECK,),
)


class GadgetToken(TokenResource):
    schema = GADGET

    def __init__(self, scope, id, *, name, deliver_to, allowed_ip_addresses=None, uses=None, grants=None,
                 **lifecycle):
        super().__init__(scope, id, name=name, deliver_to=deliver_to, allowed_ip_addresses=allowed_ip_addresses,
                         uses=uses, grants=grants, **lifecycle)


@pytest.fixture
def provider(stack):
    return TokendropProvider(stack, "tokendrop")


def test_a_new_resource_in_a_few_lines(core, stack, synth, provider):
    token = GadgetToken(stack, "g", name="gadget", deliver_to=SsmParameter("/g"), uses=3,
                        allowed_ip_addresses=["10.0.0.0/8"], rotate_every=timedelta(days=7),
                        grants=[{"service": "github", "expires_in": timedelta(hours=12)}, {"service": "slack"}])
    assert synth.one(stack, "tokendrop_gadget_token") == {
        "name": "gadget", "deliver_to": {"ssm": {"name": "/g"}}, "uses": 3, "allowed_ip_addresses": ["10.0.0.0/8"],
        "rotate_every": "1w", "grants": [{"service": "github", "expires_in": "12h"}, {"service": "slack"}]}
    core.TerraformOutput(stack, "v", value=token.sink_version)
    core.TerraformOutput(stack, "grants", value=token.attribute("grants"))
    assert synth(stack)["output"]["grants"]["value"] == "${tokendrop_gadget_token.g.grants}"


def test_list_nesting_in_hcl(core, stack, provider):
    GadgetToken(stack, "g", name="gadget", deliver_to=SsmParameter("/g"),
                grants=[{"service": "github", "expires_in": "12h"}, {"service": "slack"}])
    hcl = core.Testing.synth_hcl(stack)
    assert 'grants = [\n{\nservice = "github"\nexpires_in = "12h"\n},\n{\nservice = "slack"\n}\n]' in hcl
    assert "grants {" not in hcl


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"grants": [{"service": "github"}, {"service": ""}]}, "ci-agents/g: grants[1].service: must not be empty"),
    ({"grants": [{"service": "x", "expires_in": "31d"}]}, "ci-agents/g: grants[0].expires_in: must be at most 30d"),
    ({"grants": [{"servce": "x"}]}, "ci-agents/g: grants[0].servce: unknown attribute"),
    ({"grants": {"service": "x"}}, "ci-agents/g: grants: expected a list"),
    ({"uses": 0}, "ci-agents/g: uses: must be 1 or more"),
    ({"uses": "3"}, "ci-agents/g: uses: must be a number (got str '3')"),
    ({"allowed_ip_addresses": ["10.0.0.1/8"]}, "ci-agents/g: allowed_ip_addresses: '10.0.0.1/8' is not a valid CIDR"),
    ({"allowed_ip_addresses": "10.0.0.0/8"}, "ci-agents/g: allowed_ip_addresses: must be a list (got str"),
])
def test_generic_validation(stack, provider, kwargs, expected):
    with pytest.raises(TokendropValidationError) as info:
        GadgetToken(stack, "g", name="gadget", deliver_to=SsmParameter("/g"), **kwargs)
    assert str(info.value).startswith(expected), str(info.value)
