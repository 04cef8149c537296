"""Plan semantics of the Buildkite resources, through the tfplugin6 service with msgpack values as
Terraform sends them: the organization fallback, what changes in place and what replaces the token
(and why), expiry checks that need "now", and the plan-time checks of settings and the cluster."""

from __future__ import annotations

import datetime

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.errors import ConfigError
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.plugin.service import ProviderService
from tokendrop_provider.resources.buildkite_cluster_token import BuildkiteClusterToken, mint_expiry
from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator
from tokendrop_provider.types import UNKNOWN, Unknown

TOKEN = schema.BUILDKITE_CLUSTER_TOKEN
CLUSTER = schema.BUILDKITE_CLUSTER
NOW = datetime.datetime.now(datetime.UTC)


def dv(value, resource_schema=TOKEN) -> pb.DynamicValue:
    return dynamic(value, resource_schema)


def ssm(name="/buildkite/token"):
    return {"ssm": {"name": name, "kms_key_id": None, "tier": None, "description": None, "tags": None},
            "vault_kv": None}


def stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_service(em: BuildkiteEmulator, **settings) -> ProviderService:
    return configured_service(**{"buildkite_rest_url": em.url, "buildkite_api_token": em.sandbox_token,
                                 "buildkite_organization": "acme", **settings})


@pytest.fixture
def em(fresh_buildkite_emulator: BuildkiteEmulator, monkeypatch) -> BuildkiteEmulator:
    for name in ("BUILDKITE_API_TOKEN", "BUILDKITE_ORGANIZATION_SLUG", "BUILDKITE_ORGANIZATION"):
        monkeypatch.delenv(name, raising=False)
    return fresh_buildkite_emulator


@pytest.fixture
def service(em) -> ProviderService:
    return make_service(em)


@pytest.fixture
def cluster_id(em) -> str:
    return em.create_cluster("acme", "linux")


def plan(svc, prior, config, proposed=None, resource_schema=TOKEN):
    """PlanResourceChange. `proposed` defaults to what Terraform proposes: the configuration, with
    optional+computed attributes the configuration leaves null carried over from the prior state."""
    if proposed is None and config is not None:
        proposed = dict(config)
        for attr in resource_schema.attributes:
            carried = attr.computed and (not attr.optional or config.get(attr.name) is None)
            if carried and prior is not None:
                proposed[attr.name] = prior.get(attr.name)
    response = svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=resource_schema.type_name, prior_state=dv(prior, resource_schema),
        proposed_new_state=dv(proposed, resource_schema), config=dv(config, resource_schema)), None)
    planned = codec.decode(response.planned_state.msgpack) if response.planned_state.msgpack else None
    return planned, response


def paths(response):
    return [[s.attribute_name for s in p.steps] for p in response.requires_replace]


def errors(response):
    return [d for d in response.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]


def token_config(cluster_id, **values):
    return full(TOKEN, **{"cluster_id": cluster_id, "description": "elastic stack", "deliver_to": ssm(), **values})


def prior_token(cluster_id, **overrides):
    state = full(TOKEN, id="11111111-1111-1111-1111-111111111111", organization="acme", cluster_id=cluster_id,
                 description="elastic stack", deliver_to=ssm(), adopt_existing=False,
                 sink_address="ssm:/buildkite/token", sink_version=1, sink_status="delivered",
                 created_at=stamp(NOW - datetime.timedelta(days=1)))
    state.update(overrides)
    return state


# -- create ------------------------------------------------------------------------------------------

def test_create_plan_takes_the_provider_organization(service, cluster_id):
    planned, response = plan(service, None, token_config(cluster_id, expires_in="90d"))
    assert not response.diagnostics
    assert planned["organization"] == "acme"
    assert isinstance(planned["id"], Unknown) and isinstance(planned["expires_at"], Unknown)  # set at mint
    assert planned["sink_address"] == "ssm:/buildkite/token"


def test_create_plan_without_expiry_knows_there_is_none(service, cluster_id):
    planned, response = plan(service, None, token_config(cluster_id))
    assert not response.diagnostics and planned["expires_at"] is None


def test_create_plan_with_a_fixed_expiry_keeps_it(service, cluster_id):
    expiry = stamp(NOW + datetime.timedelta(days=30))
    planned, response = plan(service, None, token_config(cluster_id, expires_at=expiry))
    assert not response.diagnostics and planned["expires_at"] == expiry


@pytest.mark.parametrize("minutes", [-60, 0, 5, 9])
def test_expires_at_under_10_minutes_fails_the_plan(service, cluster_id, em, minutes):
    em.clear_requests()
    config = token_config(cluster_id, expires_at=stamp(NOW + datetime.timedelta(minutes=minutes)))
    _, response = plan(service, None, config)
    [error] = errors(response)
    assert error.summary == "Invalid expires_at"
    assert [s.attribute_name for s in error.attribute.steps] == ["expires_at"]
    assert ("in the past" if minutes <= 0 else "at least 10 minutes ahead") in error.detail
    assert all(r["method"] == "GET" for r in em.requests())


def test_an_unknown_expires_at_is_checked_once_known(service, cluster_id):
    planned, response = plan(service, None, token_config(cluster_id, expires_at=UNKNOWN))
    assert not response.diagnostics and isinstance(planned["expires_at"], Unknown)


def test_unknown_cluster_makes_no_call(service, em):
    em.clear_requests()
    planned, response = plan(service, None, token_config(UNKNOWN))
    assert not response.diagnostics and isinstance(planned["cluster_id"], Unknown)
    assert em.requests() == []


def test_cluster_that_does_not_exist_fails_the_plan(service):
    _, response = plan(service, None, token_config("00000000-0000-0000-0000-000000000000"))
    [error] = errors(response)
    assert error.summary == "Cluster not found"
    assert [s.attribute_name for s in error.attribute.steps] == ["cluster_id"]


def test_cluster_check_is_one_read_per_plan(service, cluster_id, em):
    em.clear_requests()
    for name in ("/a", "/b", "/c"):
        plan(service, None, full(TOKEN, cluster_id=cluster_id, description="x", deliver_to=ssm(name)))
    # Plus, once per token and process, the lookup of whose rate budget the token spends.
    assert len([r for r in em.requests() if r["path"] != "/v2/access-token"]) == 1
    assert len(em.requests(path="/v2/access-token")) <= 1


def test_missing_api_token_names_it_and_calls_nothing(em, cluster_id):
    svc = make_service(em, buildkite_api_token=None)
    em.clear_requests()
    _, response = plan(svc, None, token_config(cluster_id))
    [error] = errors(response)
    assert error.summary == "Missing Buildkite API token" and "BUILDKITE_API_TOKEN" in error.detail
    assert [s.attribute_name for s in error.attribute.steps] == ["buildkite_api_token"]
    assert em.requests() == []


def test_missing_organization_names_it(em, cluster_id):
    svc = make_service(em, buildkite_organization=None)
    _, response = plan(svc, None, token_config(cluster_id))
    [error] = errors(response)
    assert error.summary == "Missing Buildkite organization"
    assert [s.attribute_name for s in error.attribute.steps] == ["organization"]
    planned, response = plan(svc, None, token_config(cluster_id, organization="acme"))
    assert not response.diagnostics and planned["organization"] == "acme"


# -- update ---------------------------------------------------------------------------------------------

def test_description_and_addresses_change_in_place(service, cluster_id):
    prior = prior_token(cluster_id)
    config = token_config(cluster_id, description="renamed", allowed_ip_addresses=["10.0.0.0/8"])
    planned, response = plan(service, prior, config)
    assert not response.diagnostics and not response.requires_replace
    assert planned["id"] == prior["id"] and planned["sink_version"] == 1  # no rotation, no new version
    assert planned["description"] == "renamed" and planned["allowed_ip_addresses"] == ["10.0.0.0/8"]


@pytest.mark.parametrize(("before", "after", "text"), [
    ({"expires_in": "90d"}, {"expires_in": "30d"}, "expires_in 90d -> 30d"),
    ({"expires_in": "90d"}, {}, "expires_in 90d -> none"),
    ({}, {"expires_in": "90d"}, "expires_in none -> 90d"),
    ({"expires_at": "2099-01-01T00:00:00Z"}, {"expires_at": "2098-01-01T00:00:00Z"},
     "expires_at 2099-01-01T00:00:00Z -> 2098-01-01T00:00:00Z"),
    ({"expires_at": "2099-01-01T00:00:00Z"}, {}, "expires_at 2099-01-01T00:00:00Z -> none"),
])
def test_expiry_changes_replace_the_token_and_say_why(service, cluster_id, before, after, text):
    prior = prior_token(cluster_id, **before)
    if "expires_in" in before:
        prior["expires_at"] = stamp(NOW + datetime.timedelta(days=89))
    _, response = plan(service, prior, token_config(cluster_id, **after))
    assert {p[0] for p in paths(response)} & {"expires_in", "expires_at"}
    [warning] = response.diagnostics
    assert warning.severity == pb.Diagnostic.Severity.WARNING
    assert warning.summary == f"tokendrop_buildkite_cluster_token {prior['id']} must be replaced: its expiry changes"
    assert text in warning.detail and "Buildkite cannot change the expiry" in warning.detail


def test_unchanged_expires_in_keeps_the_minted_expiry(service, cluster_id):
    prior = prior_token(cluster_id, expires_in="90d", expires_at=stamp(NOW + datetime.timedelta(days=89)))
    planned, response = plan(service, prior, token_config(cluster_id, expires_in="90d"))
    assert not response.diagnostics and not response.requires_replace
    assert planned["expires_at"] == prior["expires_at"]


def test_rotation_before_expiry_mints_with_a_fresh_expiry(service, cluster_id):
    prior = prior_token(cluster_id, expires_in="30d", rotate_before_expiry="7d",
                        expires_at=stamp(NOW + datetime.timedelta(days=5)))
    planned, response = plan(service, prior, token_config(cluster_id, expires_in="30d", rotate_before_expiry="7d"))
    assert not response.requires_replace
    assert isinstance(planned["id"], Unknown) and isinstance(planned["expires_at"], Unknown)
    assert "expiry near: expires in 4d, rotate_before_expiry 7d" in response.diagnostics[0].detail


def test_rotation_with_a_fixed_expiry_keeps_it_known_and_checks_it(service, cluster_id):
    expiry = stamp(NOW + datetime.timedelta(days=30))
    prior = prior_token(cluster_id, expires_at=expiry, rotate_on={"epoch": "1"})
    planned, _ = plan(service, prior, token_config(cluster_id, expires_at=expiry, rotate_on={"epoch": "2"}))
    assert isinstance(planned["id"], Unknown) and planned["expires_at"] == expiry
    soon = stamp(NOW + datetime.timedelta(minutes=3))
    prior = prior_token(cluster_id, expires_at=soon, rotate_on={"epoch": "1"})
    _, response = plan(service, prior, token_config(cluster_id, expires_at=soon, rotate_on={"epoch": "2"}))
    assert [e.summary for e in errors(response)] == ["Invalid expires_at"]
    # Without a mint, a fixed expiry that is near (or past) is no reason to fail the plan.
    _, response = plan(service, prior, token_config(cluster_id, expires_at=soon, rotate_on={"epoch": "1"}))
    assert not errors(response)


@pytest.mark.parametrize("minutes", [3, -5])
def test_a_live_token_whose_fixed_expiry_is_near_plans_with_a_warning(service, cluster_id, em, minutes):
    """Refresh and plan of an existing token never fail because "now" moved past the 10-minute minimum:
    the token is kept, nothing is minted, and a warning names expires_at."""
    expiry = stamp(NOW + datetime.timedelta(minutes=minutes))
    prior = prior_token(cluster_id, expires_at=expiry)
    em.clear_requests()
    planned, response = plan(service, prior, token_config(cluster_id, expires_at=expiry))
    assert not errors(response) and not response.requires_replace
    assert planned["id"] == prior["id"] and planned["expires_at"] == expiry
    [warning] = response.diagnostics
    assert warning.severity == pb.Diagnostic.Severity.WARNING
    assert [s.attribute_name for s in warning.attribute.steps] == ["expires_at"]
    assert "cannot be renewed" in warning.summary and "Set a later expires_at" in warning.detail
    assert all(r["method"] == "GET" for r in em.requests())
    # Far from expiry, nothing to say.
    far = stamp(NOW + datetime.timedelta(days=3))
    _, response = plan(service, prior_token(cluster_id, expires_at=far), token_config(cluster_id, expires_at=far))
    assert not response.diagnostics


def test_organization_change_replaces(service, cluster_id, em):
    em.add_organization("globex")
    em.users["sandbox"].organizations.add("globex")
    other = em.create_cluster("globex", "linux")
    prior = prior_token(cluster_id)
    _, response = plan(service, prior, token_config(other, organization="globex"))
    assert ["organization"] in paths(response) and ["cluster_id"] in paths(response)


# -- validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "path"), [
    ({"allowed_ip_addresses": ["10.0.0.1/33"]}, "allowed_ip_addresses"),
    ({"allowed_ip_addresses": []}, "allowed_ip_addresses"),
    ({"allowed_ip_addresses": ["10.0.0.0/8", "10.0.0.0/8"]}, "allowed_ip_addresses"),
    ({"description": ""}, "description"),
    ({"description": "  "}, "description"),
    ({"cluster_id": "linux"}, "cluster_id"),
    ({"organization": "acme inc"}, "organization"),
    ({"expires_in": "9m"}, "expires_in"),
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"expires_in": "1d", "expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
    ({"rotate_before_expiry": "7d"}, "rotate_before_expiry"),
    ({"rotate_before_expiry": "7d", "expires_at": "2099-01-01T00:00:00Z"}, "rotate_before_expiry"),
    ({"rotate_before_expiry": "30d", "expires_in": "30d"}, "rotate_before_expiry"),
])
def test_validation_names_the_attribute(service, values, path):
    values = dict(values)
    config = token_config(values.pop("cluster_id", "0189a0e8-0000-4000-8000-000000000000"), **values)
    response = service.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=TOKEN.type_name, config=dv(config)), None)
    assert [s.attribute_name for s in response.diagnostics[0].attribute.steps] == [path], response.diagnostics


def test_good_configuration_validates(service):
    config = token_config("0189a0e8-0000-4000-8000-000000000000", allowed_ip_addresses=["10.0.0.0/8", "192.0.2.7"],
                          expires_in="90d", rotate_before_expiry="7d")
    response = service.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=TOKEN.type_name, config=dv(config)), None)
    assert not response.diagnostics


# -- the cluster --------------------------------------------------------------------------------------------

def test_cluster_plan_takes_the_provider_organization_and_checks_it(em):
    svc = make_service(em)
    planned, response = plan(svc, None, full(CLUSTER, name="linux"), resource_schema=CLUSTER)
    assert not response.diagnostics and planned["organization"] == "acme"
    _, response = plan(svc, None, full(CLUSTER, name="linux", organization="nope"), resource_schema=CLUSTER)
    [error] = errors(response)
    assert error.summary == "Organization not found"
    assert [s.attribute_name for s in error.attribute.steps] == ["organization"]


@pytest.mark.parametrize(("values", "path"), [
    ({"name": ""}, "name"), ({"color": "#FFF"}, "color"), ({"color": "orange"}, "color"),
    ({"emoji": "penguin"}, "emoji"),
])
def test_cluster_validation_names_the_attribute(service, values, path):
    config = full(CLUSTER, **{"name": "linux", **values})
    response = service.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=CLUSTER.type_name, config=dv(config, CLUSTER)), None)
    assert [s.attribute_name for s in response.diagnostics[0].attribute.steps] == [path]


# -- helpers ---------------------------------------------------------------------------------------------------

def test_mint_expiry_rounds_up_and_leaves_slack_at_the_minimum():
    now = datetime.datetime(2030, 1, 1, 12, 0, 0, 500_000, tzinfo=datetime.UTC)
    assert mint_expiry(now, datetime.timedelta(days=90)) == "2030-04-01T12:00:01Z"
    assert mint_expiry(now, datetime.timedelta(minutes=10)) == "2030-01-01T12:11:01Z"


@pytest.mark.parametrize(("import_id", "expected"), [
    ("acme/0189a0e8-0000-4000-8000-000000000000/ssm:/buildkite/t",
     ("acme/0189a0e8-0000-4000-8000-000000000000", None, "ssm:/buildkite/t")),
    ("acme/0189a0e8-0000-4000-8000-000000000000/11111111-1111-1111-1111-111111111111/vault_kv:secret/ci/bk#token",
     ("acme/0189a0e8-0000-4000-8000-000000000000", "11111111-1111-1111-1111-111111111111",
      "vault_kv:secret/ci/bk#token")),
])
def test_import_ids(import_id, expected):
    assert BuildkiteClusterToken().parse_import_id(import_id) == expected


@pytest.mark.parametrize("import_id", ["acme/not-a-uuid/ssm:/x", "acme/0189a0e8-0000-4000-8000-000000000000",
                                       "ssm:/x", "a/b/c/0189a0e8-0000-4000-8000-000000000000/ssm:/x"])
def test_bad_import_ids(import_id):
    with pytest.raises(ConfigError, match="Invalid import id"):
        BuildkiteClusterToken().parse_import_id(import_id)
