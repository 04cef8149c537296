"""Every issuer and sink is registered whole: one entry names everything the provider, the audit, the
constructs and the docs generator ask of it, and what it names agrees with the code it points at."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from tokendrop import SsmParameter, VaultSecret
from tokendrop_provider import schema
from tokendrop_provider.attributes import ResourceSchema
from tokendrop_provider.registry import provider_schema, settings_groups
from tokendrop_provider.registry.issuers import ISSUERS, resources
from tokendrop_provider.registry.sinks import SINKS, address_of, deliver_to_from_address
from tokendrop_provider.resources.token import TokenResource
from tokendrop_provider.settings import Settings
from tokendrop_provider.types import UNKNOWN

REPO = Path(__file__).resolve().parents[2]
# Every credential set: clients can be built (nothing listens at these addresses; no call is made).
FULL_ENV = {"TFE_TOKEN": "t" * 30, "BUILDKITE_API_TOKEN": "b" * 30, "BUILDKITE_ORGANIZATION_SLUG": "acme",
            "TOKENVAULT_API_KEY": "tvkey_" + "k" * 30, "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "v" * 30,
            "AWS_REGION": "us-east-1", "ARM_TENANT_ID": "t", "ARM_CLIENT_ID": "c", "ARM_CLIENT_SECRET": "s" * 30}


@pytest.mark.parametrize("issuer", ISSUERS, ids=lambda i: i.name)
def test_an_issuer_entry_agrees_with_its_client_and_resources(issuer):
    settings = Settings.resolve({}, env=FULL_ENV)
    group = settings.group(issuer.settings.name)
    assert issuer.check(group) is None
    assert issuer.check(Settings.resolve({}, env={}).group(issuer.settings.name)) is not None  # a real check
    assert issuer.client(group, threading.Event()).kind == issuer.name  # the marker / audit name
    served = list(issuer.resources())
    assert served, f"{issuer.name} serves no resource"
    for resource in served:
        type_name = resource.schema.type_name
        if isinstance(resource, TokenResource):
            # the audit derives the scope from state as the resource itself does
            attributes = resource.scope_state("acme/ci")
            assert issuer.token_scopes[type_name](attributes, settings) == resource.scope_of(attributes) == "acme/ci"
        else:
            assert type_name in issuer.scope_resources, f"{type_name} is neither a token nor a scope resource"
        assert (REPO / "examples" / "resources" / type_name / "resource.tf").is_file()
        assert (REPO / "docs" / "resources" / f"{type_name.removeprefix('tokendrop_')}.md").is_file()
    assert set(issuer.token_scopes) | set(issuer.scope_resources) == {r.schema.type_name for r in served}


@pytest.mark.parametrize("issuer", ISSUERS, ids=lambda i: i.name)
def test_an_issuer_is_listable_by_the_audit_and_its_walk_option_is_complete(issuer):
    # every scope the audit may hold is listed one way or the other, never both
    assert (issuer.list_tokens is None) != (issuer.list_account is None)
    option = issuer.audit_walk
    if option is None:
        return
    assert option.flag.startswith("--") and option.help and option.source
    if option.metavar is None:  # a switch walks everything: only an account-wide listing can
        assert issuer.list_account is not None and option.switch_source is not None
        assert option.switch_source(Settings.resolve({}, env=FULL_ENV).group(issuer.settings.name))
    else:  # a value names scopes to list (a call) or one scope (none)
        assert (option.scopes is None) != (option.scope is None)
        assert option.scope is not None or (option.what and option.not_found)


def test_each_walk_option_is_on_the_audits_command_line_for_its_issuer():
    from tokendrop_provider import cli
    from tokendrop_provider.audit.collect import Walk

    walked = [i for i in ISSUERS if i.audit_walk is not None]
    assert len({i.audit_walk.flag for i in walked}) == len(walked)
    for issuer in walked:
        option = issuer.audit_walk
        argv = ["audit", option.flag, *(() if option.metavar is None else ("approle/ci",))]
        walk = Walk.from_args(cli.build_parser().parse_args(argv))
        assert walk.issuers == {issuer.name}
        assert walk.values(issuer.name) == ([""] if option.metavar is None else ["approle/ci"])


def test_every_schema_is_served_once_and_every_setting_is_in_the_provider_block():
    declared = {v.type_name for v in vars(schema).values() if isinstance(v, ResourceSchema)}
    served = [r.schema.type_name for i in ISSUERS for r in i.resources()]
    assert sorted(served) == sorted(declared) == sorted(resources())  # no schema left out, none served twice
    names = [s.name for g in settings_groups() for s in g.settings]
    assert len(names) == len(set(names))
    assert [a.name for a in provider_schema().attributes] == names
    assert {i.settings.name for i in ISSUERS} | {s.settings.name for s in SINKS} == {g.name for g in settings_groups()}


def test_every_deliver_to_block_is_a_registered_sink():
    assert [a.name for a in schema.DELIVER_TO.nested] == [s.name for s in SINKS]
    for sink in SINKS:
        assert sink.attribute is next(a for a in schema.DELIVER_TO.nested if a.name == sink.name)
        assert set(sink.address_fields) <= {a.name for a in sink.attribute.nested}


@pytest.mark.parametrize(("construct", "deliver_to"), [
    (SsmParameter("/ci/agent"), {"ssm": {"name": "/ci/agent"}}),
    (VaultSecret("ci/agent"), {"vault_kv": {"path": "ci/agent"}}),  # schema defaults: mount secret, field token
    (VaultSecret("ci/agent", mount="kv", field="key"), {"vault_kv": {"mount": "kv", "path": "ci/agent",
                                                                      "field": "key"}}),
])
def test_a_sink_address_is_formatted_and_parsed_in_one_place(construct, deliver_to):
    address = address_of(deliver_to)
    assert address == construct.address  # the constructs print what the provider records
    parsed = deliver_to_from_address(address)
    assert address_of(parsed) == address
    assert set(parsed) == {s.name for s in SINKS}


def test_a_sink_address_is_unknown_until_its_parts_are_known():
    assert address_of({"ssm": {"name": UNKNOWN}}) is UNKNOWN
    assert address_of({"ssm": None, "vault_kv": {"path": UNKNOWN}}) is UNKNOWN
    assert address_of({"ssm": {"name": "/a", "tags": UNKNOWN}}) == "ssm:/a"  # tags are not in the address


@pytest.mark.parametrize("resource", [r for r in resources().values() if isinstance(r, TokenResource)],
                         ids=lambda r: r.schema.type_name)
def test_every_documented_import_id_example_parses(resource):
    examples = resource.schema.import_examples
    assert examples, f"{resource.schema.type_name} documents no import id example"
    shown = re.findall(r"e\.g\. `([^`]+)`", " ".join(resource.schema.import_id.split()))
    assert set(shown) <= set(examples), "an example in the docs is not declared (and so not tested)"
    for example in examples:
        assert f"`{example}`" in resource.schema.import_id  # what the docs show is what is tested
        scope, _, address = resource.parse_import_id(example)
        assert scope and deliver_to_from_address(address)


def test_the_provider_docs_name_every_setting_and_environment_variable():
    page = (REPO / "docs" / "provider.md").read_text()
    for group in settings_groups():
        for setting in group.settings:
            assert f"`{setting.name}`" in page
            for variable in setting.env:  # TFE_HOSTNAME, BUILDKITE_ORGANIZATION, ... were once left out
                assert f"`{variable}`" in page, f"{variable} ({setting.name}) is not documented"
