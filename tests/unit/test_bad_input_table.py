"""Bad input, everywhere: one table over every resource's arguments (names, paths, CIDRs, durations,
conflicting options), unknown organizations and scopes, missing credentials and malformed API answers.
Each case must fail validation or the plan with an error naming the attribute, and no API write may
happen at any issuer. The same argument table also runs through the constructs (synth time).

Driven through the provider's gRPC service exactly as Terraform calls it (ValidateResourceConfig, then
PlanResourceChange), against the real emulators, moto and OpenBao.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokendrop_provider import schema
from tokendrop_provider.issuers.entra import EntraClient
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.plugin.service import ProviderService
from tokendrop_provider.provider import ProviderCore
from tokendrop_provider.registry import provider_schema
from tokendrop_provider.sandbox.approle import setup_sample_approle
from tokendrop_provider.settings import Settings

SSM = {"ssm": {"name": "/ci/t", "kms_key_id": None, "tier": None, "description": None, "tags": None},
       "vault_kv": None}
VAULT = {"ssm": None, "vault_kv": {"mount": "secret", "path": "ci/t", "field": "token"}}
CLUSTER_UUID = "{cluster}"  # filled in from the emulator
# Buildkite refuses an expiry less than 10 minutes ahead; only the plan knows "now" (synth may run long
# before, or for a destroy), so this case is plan-time only.
SOON = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
POOL_ID = "{pool}"
AGENT_ID = "{agent}"
KEY_ID = "{key}"
BLUEPRINT_ID = "{blueprint}"
BLUEPRINT_APP_ID = "{blueprint app}"
SPONSOR = "users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"
NO_BLUEPRINT = "00000000-0000-4000-8000-000000000000"


def ssm(**changes):
    return {"ssm": {**SSM["ssm"], **changes}, "vault_kv": None}


SECRETS_MANAGER = {"name": "ci/t", "kms_key_id": None, "tags": None, "replica_regions": None, "field": None,
                   "recovery_window_in_days": None, "region": None, "assume_role_arn": None}


def secrets_manager(**changes):
    return {"ssm": None, "vault_kv": None, "secrets_manager": {**SECRETS_MANAGER, **changes}}


def webhook(**changes):
    return {"ssm": None, "vault_kv": None, "tokenvault_webhook": {"service": "buildkite-ci", "webhook_url": None,
                                                                   **changes}}


def vault(**changes):
    return {"ssm": None, "vault_kv": {**VAULT["vault_kv"], **changes}}


GRANT = {"service": "github", "expires_in": None, "auto_refresh": False, "expires_at": None}

BASE = {
    "tokendrop_tfe_agent_pool": {"organization": "acme", "name": "ci"},
    "tokendrop_tfe_agent_token": {"agent_pool_id": POOL_ID, "deliver_to": SSM},
    "tokendrop_buildkite_cluster": {"organization": "acme", "name": "linux"},
    "tokendrop_buildkite_cluster_token": {"organization": "acme", "cluster_id": CLUSTER_UUID, "description": "x",
                                          "deliver_to": SSM},
    "tokendrop_tokenvault_agent": {"name": "bot", "deliver_to": SSM, "grants": [GRANT]},
    "tokendrop_tokenvault_agent_grant": {"agent_id": AGENT_ID, "service": "github"},
    "tokendrop_tokenvault_key": {"name": "reader", "scopes": ["agents:read"], "deliver_to": SSM},
    "tokendrop_tokenvault_key_grant": {"key_id": KEY_ID, "service": "github", "expires_in": "7d"},
    "tokendrop_vault_approle_secret_id": {"role_name": "ci", "mount": "approle", "deliver_to": SSM},
    "tokendrop_entra_agent_blueprint": {"display_name": "support", "sponsors": [SPONSOR]},
    "tokendrop_entra_agent_identity": {"blueprint_app_id": BLUEPRINT_APP_ID, "display_name": "triage",
                                       "sponsors": [SPONSOR]},
    "tokendrop_entra_blueprint_federated_credential": {"blueprint_id": BLUEPRINT_ID, "name": "gh",
                                                       "issuer": "https://token.actions.githubusercontent.com",
                                                       "subject": "repo:acme/a:ref:refs/heads/main"},
    "tokendrop_entra_blueprint_password": {"blueprint_id": BLUEPRINT_ID, "deliver_to": SSM},
    "tokendrop_entra_blueprint_certificate": {"blueprint_id": BLUEPRINT_ID, "deliver_to": VAULT},
}

# (resource, changes, the attribute the error must name)
CASES: list[tuple[str, dict, str]] = [
    ("tokendrop_tfe_agent_pool", {"name": ""}, "name"),
    ("tokendrop_tfe_agent_pool", {"name": "ci/agents"}, "name"),
    ("tokendrop_tfe_agent_pool", {"organization": ""}, "organization"),
    ("tokendrop_tfe_agent_pool", {"organization_scoped": False, "allowed_workspace_ids": ["nope"]},
     "allowed_workspace_ids"),
    ("tokendrop_tfe_agent_pool", {"organization_scoped": True, "allowed_workspace_ids": ["ws-abc"]},
     "allowed_workspace_ids"),
    ("tokendrop_tfe_agent_pool", {"organization": "nope"}, "organization"),
    ("tokendrop_tfe_agent_token", {"agent_pool_id": "pool-1"}, "agent_pool_id"),
    ("tokendrop_tfe_agent_token", {"agent_pool_id": "apool-doesnotexist"}, "agent_pool_id"),
    ("tokendrop_tfe_agent_token", {"description": "x" * 201}, "description"),
    ("tokendrop_tfe_agent_token", {"deliver_to": {"ssm": None, "vault_kv": None}}, "deliver_to"),
    ("tokendrop_tfe_agent_token", {"deliver_to": {**SSM, "vault_kv": VAULT["vault_kv"]}}, "deliver_to.vault_kv"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(name="/aws/token")}, "deliver_to.ssm.name"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(name="/ci/has space")}, "deliver_to.ssm.name"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(name="no/leading/slash")}, "deliver_to.ssm.name"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(kms_key_id="bad key!")}, "deliver_to.ssm.kms_key_id"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(tier="Premium")}, "deliver_to.ssm.tier"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(tags={f"k{i}": "v" for i in range(60)})},
     "deliver_to.ssm.tags"),
    ("tokendrop_tfe_agent_token", {"deliver_to": vault(path="ci/../sys")}, "deliver_to.vault_kv.path"),
    ("tokendrop_tfe_agent_token", {"deliver_to": vault(mount="/secret/")}, "deliver_to.vault_kv.mount"),
    ("tokendrop_tfe_agent_token", {"deliver_to": vault(field="")}, "deliver_to.vault_kv.field"),
    ("tokendrop_tfe_agent_token", {"deliver_to": {**SSM, "secrets_manager": SECRETS_MANAGER}},
     "deliver_to.secrets_manager"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(name="ci/has space")},
     "deliver_to.secrets_manager.name"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(name="x" * 513)}, "deliver_to.secrets_manager.name"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(kms_key_id="bad key!")},
     "deliver_to.secrets_manager.kms_key_id"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(tags={"managed-by": "me"})},
     "deliver_to.secrets_manager.tags"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(replica_regions=["mars-north"])},
     "deliver_to.secrets_manager.replica_regions"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(replica_regions=["eu-west-1", "eu-west-1"])},
     "deliver_to.secrets_manager.replica_regions"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(field="")}, "deliver_to.secrets_manager.field"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(field="f" * 257)}, "deliver_to.secrets_manager.field"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(recovery_window_in_days=3)},
     "deliver_to.secrets_manager.recovery_window_in_days"),
    ("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(recovery_window_in_days=31)},
     "deliver_to.secrets_manager.recovery_window_in_days"),
    ("tokendrop_tfe_agent_token", {"deliver_to": webhook(service="ci/agent")}, "deliver_to.tokenvault_webhook.service"),
    ("tokendrop_tfe_agent_token", {"deliver_to": webhook(webhook_url="http://hook.example.com")},
     "deliver_to.tokenvault_webhook.webhook_url"),
    # one token, many sinks: a list of sink objects
    ("tokendrop_tfe_agent_token", {"deliver_to": []}, "deliver_to"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, VAULT, SSM]}, "deliver_to[2]"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, ssm(region="us-east-1"), ssm(region="us-east-1")]},
     "deliver_to[2]"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [ssm(region="Europe")]}, "deliver_to[0].ssm.region"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, ssm(name="/ci/u", assume_role_arn="arn:aws:iam::123:role/x")]},
     "deliver_to[1].ssm.assume_role_arn"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, secrets_manager(assume_role_arn="role/ci")]},
     "deliver_to[1].secrets_manager.assume_role_arn"),
    ("tokendrop_tfe_agent_token", {"deliver_to": ssm(assume_role_arn="arn:aws:iam::123456789012:user/ci")},
     "deliver_to.ssm.assume_role_arn"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, vault(path="ci/../x")]}, "deliver_to[1].vault_kv.path"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, {"ssm": None, "vault_kv": None}]}, "deliver_to[1]"),
    ("tokendrop_tfe_agent_token", {"deliver_to": [SSM, secrets_manager(region="eu-west-1",
                                                                        replica_regions=["eu-west-1"])]},
     "deliver_to[1].secrets_manager.replica_regions"),
    ("tokendrop_tfe_agent_token", {"rotate_every": "monthly"}, "rotate_every"),
    ("tokendrop_tfe_agent_token", {"rotate_every": "10m"}, "rotate_every"),
    ("tokendrop_tfe_agent_token", {"keep_previous_for": "soon"}, "keep_previous_for"),
    ("tokendrop_tfe_agent_token", {"revoke_previous_when": "idle", "keep_previous_for": "1h"}, "revoke_previous_when"),
    ("tokendrop_tfe_agent_token", {"revoke_previous_when": "unused"}, "revoke_previous_when"),
    ("tokendrop_tfe_agent_token", {"revoke_previous_when": "unused", "keep_previous_for": "1h",
                                   "previous_unused_for": "2h"}, "previous_unused_for"),
    ("tokendrop_tfe_agent_token", {"keep_previous_for": "1h", "previous_unused_for": "5m"}, "previous_unused_for"),
    # The issuer cannot tell when a token was last used: refused, naming the attribute.
    ("tokendrop_buildkite_cluster_token", {"revoke_previous_when": "unused", "keep_previous_for": "1h"},
     "revoke_previous_when"),
    ("tokendrop_vault_approle_secret_id", {"revoke_previous_when": "unused", "keep_previous_for": "1h"},
     "revoke_previous_when"),
    ("tokendrop_buildkite_cluster", {"name": ""}, "name"),
    ("tokendrop_buildkite_cluster", {"color": "orange"}, "color"),
    ("tokendrop_buildkite_cluster_token", {"allowed_ip_addresses": ["10.0.0.1/8"]}, "allowed_ip_addresses"),
    ("tokendrop_buildkite_cluster_token", {"allowed_ip_addresses": ["999.1.1.1/32"]}, "allowed_ip_addresses"),
    ("tokendrop_buildkite_cluster_token", {"allowed_ip_addresses": ["2001:db8::/32"]}, "allowed_ip_addresses"),
    ("tokendrop_buildkite_cluster_token", {"allowed_ip_addresses": ["10.0.0.0/8", "::1"]}, "allowed_ip_addresses"),
    ("tokendrop_buildkite_cluster_token", {"expires_in": "5m"}, "expires_in"),
    ("tokendrop_buildkite_cluster_token", {"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ("tokendrop_buildkite_cluster_token", {"expires_at": SOON}, "expires_at"),
    ("tokendrop_buildkite_cluster_token", {"expires_in": "1d", "expires_at": "2031-01-01T00:00:00Z"}, "expires"),
    ("tokendrop_buildkite_cluster_token", {"description": ""}, "description"),
    ("tokendrop_buildkite_cluster_token", {"cluster_id": "not-a-uuid"}, "cluster_id"),
    ("tokendrop_buildkite_cluster_token", {"cluster_id": "0f5f8b3e-3c6a-4f2b-9d53-3f1c1a2b4c5d"}, "cluster_id"),
    ("tokendrop_buildkite_cluster_token", {"rotate_before_expiry": "1d"}, "rotate_before_expiry"),
    ("tokendrop_tokenvault_agent", {"name": ""}, "name"),
    ("tokendrop_tokenvault_agent", {"grants": [GRANT, GRANT]}, "grants"),
    ("tokendrop_tokenvault_agent", {"grants": [{**GRANT, "expires_in": "30m"}]}, "grants[0].expires_in"),
    ("tokendrop_tokenvault_agent", {"grants": [{**GRANT, "expires_in": "31d"}]}, "grants[0].expires_in"),
    ("tokendrop_tokenvault_agent", {"keep_previous_for": "1h"}, "keep_previous_for"),
    ("tokendrop_tokenvault_agent", {"keep_previous_for": "1h", "rotation": "rotate_key"}, "keep_previous_for"),
    ("tokendrop_tokenvault_agent", {"rotation": "sideways"}, "rotation"),
    ("tokendrop_tokenvault_agent", {"rotation": "successor", "keep_previous_for": "soon"}, "keep_previous_for"),
    ("tokendrop_tokenvault_agent_grant", {"service": ""}, "service"),
    ("tokendrop_tokenvault_agent_grant", {"service": "a/b"}, "service"),
    ("tokendrop_tokenvault_agent_grant", {"agent_id": "agt/x"}, "agent_id"),
    ("tokendrop_tokenvault_agent_grant", {"agent_id": "agt_doesnotexist"}, "agent_id"),
    ("tokendrop_tokenvault_key", {"name": ""}, "name"),
    ("tokendrop_tokenvault_key", {"scopes": []}, "scopes"),
    ("tokendrop_tokenvault_key", {"scopes": ["agents:read", "agents:everything"]}, "scopes"),
    ("tokendrop_tokenvault_key", {"scopes": ["keys:manage"]}, "scopes"),  # only a human may delegate it
    ("tokendrop_tokenvault_key", {"expires_at": "next week"}, "expires_at"),
    ("tokendrop_tokenvault_key", {"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ("tokendrop_tokenvault_key_grant", {"expires_in": "30m"}, "expires_in"),
    ("tokendrop_tokenvault_key_grant", {"expires_in": "31d"}, "expires_in"),
    ("tokendrop_tokenvault_key_grant", {"expires_in": "90m"}, "expires_in"),
    ("tokendrop_tokenvault_key_grant", {"service": "a/b"}, "service"),
    ("tokendrop_tokenvault_key_grant", {"key_id": "key/x"}, "key_id"),
    ("tokendrop_tokenvault_key_grant", {"key_id": "key_doesnotexist"}, "key_id"),
    ("tokendrop_vault_approle_secret_id", {"ttl": "-1h"}, "ttl"),
    ("tokendrop_vault_approle_secret_id", {"num_uses": -1}, "num_uses"),
    ("tokendrop_vault_approle_secret_id", {"cidr_list": ["x"]}, "cidr_list"),
    ("tokendrop_vault_approle_secret_id", {"token_bound_cidrs": ["10.0.0.300/8"]}, "token_bound_cidrs"),
    ("tokendrop_vault_approle_secret_id", {"role_name": ""}, "role_name"),
    ("tokendrop_vault_approle_secret_id", {"role_name": "no-such-role"}, "role_name"),
    ("tokendrop_entra_agent_blueprint", {"sponsors": []}, "sponsors"),  # Graph requires a sponsor
    ("tokendrop_entra_agent_blueprint", {"sponsors": None}, "sponsors"),
    ("tokendrop_entra_agent_blueprint", {"sponsors": ["servicePrincipals/" + NO_BLUEPRINT]}, "sponsors"),
    ("tokendrop_entra_agent_blueprint", {"display_name": ""}, "display_name"),
    ("tokendrop_entra_agent_identity", {"sponsors": []}, "sponsors"),
    ("tokendrop_entra_agent_identity", {"blueprint_app_id": "support"}, "blueprint_app_id"),
    ("tokendrop_entra_blueprint_federated_credential", {"name": "n" * 121}, "name"),  # Graph: at most 120
    ("tokendrop_entra_blueprint_federated_credential", {"name": "has space"}, "name"),
    ("tokendrop_entra_blueprint_federated_credential", {"issuer": "http://issuer.example.com"}, "issuer"),
    ("tokendrop_entra_blueprint_federated_credential", {"audiences": ["a", "b"]}, "audiences"),
    ("tokendrop_entra_blueprint_federated_credential", {"blueprint_id": NO_BLUEPRINT}, "blueprint_id"),
    ("tokendrop_entra_blueprint_password", {"valid_for": "10m"}, "valid_for"),
    ("tokendrop_entra_blueprint_password", {"blueprint_id": NO_BLUEPRINT}, "blueprint_id"),
    ("tokendrop_entra_blueprint_certificate", {"rsa_bits": 1024}, "rsa_bits"),
    ("tokendrop_entra_blueprint_certificate", {"valid_for": "forever"}, "valid_for"),
    ("tokendrop_entra_blueprint_certificate", {"blueprint_id": NO_BLUEPRINT}, "blueprint_id"),
]


def full(type_name: str, values: dict) -> dict:
    out = {a.name: None for a in schema.RESOURCES[type_name].attributes}
    out.update(values)
    return out


def dynamic(type_name: str, value: dict | None) -> pb.DynamicValue:
    return pb.DynamicValue(msgpack=codec.encode(value, schema.RESOURCES[type_name].cty_type))


class World:
    def __init__(self, tfe, buildkite, tokenvault, moto, bao, entra) -> None:
        self.emulators = (tfe, buildkite, tokenvault, entra)
        self.pool = tfe.create_agent_pool("acme", "existing")
        self.cluster = buildkite.create_cluster("acme", "existing")
        self.agent = tokenvault.create_agent("existing")[0]
        secret = tokenvault.mint_key(["agents:read"], name="existing")
        self.key = next(k["id"] for k in tokenvault.world()["keys"] if k["name"] == "existing")
        assert secret.startswith("tvkey_")
        self.env = {**moto.env(), **bao.env(), "TFE_ADDRESS": tfe.url, "TFE_TOKEN": tfe.sandbox_token,
                    "BUILDKITE_REST_URL": buildkite.url, "BUILDKITE_API_TOKEN": buildkite.sandbox_token,
                    "BUILDKITE_ORGANIZATION_SLUG": "acme", "TOKENVAULT_API_URL": tokenvault.url,
                    "TOKENVAULT_API_KEY": tokenvault.admin_key, **entra.ready_info()["env"]}
        graph = EntraClient(Settings.resolve({}, env=self.env).group("entra"))
        self.blueprint = graph.create_blueprint("existing", [SPONSOR])
        graph.create_blueprint_principal(self.blueprint.app_id)
        for emulator in self.emulators:
            emulator.clear_requests()

    def config(self, type_name: str, changes: dict) -> dict:
        values = {**BASE[type_name], **changes}
        for key, value in values.items():
            if value == POOL_ID:
                values[key] = self.pool
            elif value == CLUSTER_UUID:
                values[key] = self.cluster
            elif value == AGENT_ID:
                values[key] = self.agent
            elif value == KEY_ID:
                values[key] = self.key
            elif value == BLUEPRINT_ID:
                values[key] = self.blueprint.id
            elif value == BLUEPRINT_APP_ID:
                values[key] = self.blueprint.app_id
        return full(type_name, values)

    def writes(self) -> list[str]:
        # A token request (Entra's OAuth endpoint) signs in; it changes nothing.
        return [f"{r['method']} {r['path']}" for e in self.emulators for r in e.requests()
                if r["method"] in ("POST", "PUT", "PATCH", "DELETE") and not r["path"].endswith("/oauth2/v2.0/token")]


@pytest.fixture
def world(fresh_tfe_emulator, fresh_buildkite_emulator, fresh_tokenvault_emulator, clean_moto, openbao_server,
          fresh_entra_emulator, monkeypatch):
    setup_sample_approle(openbao_server)
    w = World(fresh_tfe_emulator, fresh_buildkite_emulator, fresh_tokenvault_emulator, clean_moto, openbao_server,
              fresh_entra_emulator)
    for key, value in w.env.items():
        monkeypatch.setenv(key, value)
    return w


def service() -> ProviderService:
    svc = ProviderService(ProviderCore())
    config = {a.name: None for a in provider_schema().attributes}
    response = svc.ConfigureProvider(pb.ConfigureProvider.Request(
        config=pb.DynamicValue(msgpack=codec.encode(config, provider_schema().cty_type))), None)
    assert not response.diagnostics
    return svc


def errors_for(svc: ProviderService, type_name: str, config: dict) -> list[pb.Diagnostic]:
    """What Terraform would report: validation first, then the create plan."""
    validate = svc.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=type_name, config=dynamic(type_name, config)), None)
    found = [d for d in validate.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]
    if found:
        return found
    plan = svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=type_name, prior_state=dynamic(type_name, None), proposed_new_state=dynamic(type_name, config),
        config=dynamic(type_name, config)), None)
    return [d for d in plan.diagnostics if d.severity == pb.Diagnostic.Severity.ERROR]


def names_attribute(diagnostic: pb.Diagnostic, attribute: str) -> bool:
    path = "".join(f"[{s.element_key_int}]" if s.WhichOneof("selector") == "element_key_int" else
                   f".{s.attribute_name or s.element_key_string}" for s in diagnostic.attribute.steps).lstrip(".")
    text = f"{diagnostic.summary} {diagnostic.detail}"
    if attribute.startswith("deliver_to["):  # a sink of a list: the path names its index
        return path.startswith(attribute)
    return path.startswith(attribute.split("[")[0]) or attribute in text


@pytest.mark.parametrize(("type_name", "changes", "attribute"), CASES,
                         ids=[f"{t.removeprefix('tokendrop_')}-{a}-{i}" for i, (t, _, a) in enumerate(CASES)])
def test_bad_input_names_the_attribute_and_writes_nothing(world, type_name, changes, attribute):
    errors = errors_for(service(), type_name, world.config(type_name, changes))
    assert errors, f"{type_name} {changes} was accepted"
    assert any(names_attribute(d, attribute) for d in errors), [f"{d.summary}: {d.detail}" for d in errors]
    assert "Traceback" not in " ".join(d.detail for d in errors)
    assert world.writes() == []


@pytest.mark.parametrize("type_name", sorted(BASE))
def test_the_base_configurations_are_valid(world, type_name):
    """The table's starting points plan cleanly, so each case fails for its own reason."""
    assert errors_for(service(), type_name, world.config(type_name, {})) == []
    assert world.writes() == []


MISSING = [
    ("tokendrop_tfe_agent_pool", "TFE_TOKEN", "tfe_token"),
    ("tokendrop_tfe_agent_token", "TFE_TOKEN", "tfe_token"),
    ("tokendrop_buildkite_cluster", "BUILDKITE_API_TOKEN", "buildkite_api_token"),
    ("tokendrop_buildkite_cluster_token", "BUILDKITE_API_TOKEN", "buildkite_api_token"),
    ("tokendrop_tokenvault_agent", "TOKENVAULT_API_KEY", "tokenvault_api_key"),
    ("tokendrop_tokenvault_agent_grant", "TOKENVAULT_API_KEY", "tokenvault_api_key"),
    ("tokendrop_tokenvault_key", "TOKENVAULT_API_KEY", "tokenvault_api_key"),
    ("tokendrop_tokenvault_key_grant", "TOKENVAULT_API_KEY", "tokenvault_api_key"),
    ("tokendrop_vault_approle_secret_id", "VAULT_TOKEN", "vault_token"),
    ("tokendrop_tfe_agent_token", "AWS_REGION", "aws_region"),
    ("tokendrop_entra_agent_blueprint", "ARM_TENANT_ID", "entra_tenant_id"),
    ("tokendrop_entra_blueprint_password", "ARM_CLIENT_SECRET", "entra_client_secret"),
]


@pytest.mark.parametrize(("type_name", "variable", "attribute"), MISSING)
def test_missing_credentials_fail_the_plan(world, monkeypatch, type_name, variable, attribute):
    monkeypatch.delenv(variable)
    if variable == "AWS_REGION":
        monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    errors = errors_for(service(), type_name, world.config(type_name, {}))
    assert errors and any(names_attribute(d, attribute) for d in errors), [d.summary for d in errors]
    assert any(variable in d.detail for d in errors)
    assert world.writes() == []


def test_missing_buildkite_organization_fails_the_plan(world, monkeypatch):
    monkeypatch.delenv("BUILDKITE_ORGANIZATION_SLUG")
    config = world.config("tokendrop_buildkite_cluster", {"organization": None})
    errors = errors_for(service(), "tokendrop_buildkite_cluster", config)
    assert errors and any(names_attribute(d, "organization") for d in errors)


@pytest.mark.parametrize(("type_name", "which", "path"), [
    ("tokendrop_tfe_agent_pool", 0, ".*/agent-pools"),
    ("tokendrop_tfe_agent_token", 0, ".*/agent-pools/.*"),
    ("tokendrop_buildkite_cluster_token", 1, ".*/clusters/.*"),
])
def test_malformed_json_from_an_api_is_a_clear_error(world, type_name, which, path):
    emulator = world.emulators[which]
    emulator.add_fault(path, method="GET", status=200, body="<html>not json</html>", count=10)
    errors = errors_for(service(), type_name, world.config(type_name, {}))
    assert errors, "a malformed answer must not pass for a valid one"
    text = " ".join(f"{d.summary} {d.detail}" for d in errors)
    assert "JSON" in text or "malformed" in text.lower() or "unexpected" in text.lower(), text
    assert "Traceback" not in text
    assert world.writes() == []


# Cases that need the issuer to be asked (unknown organization, pool, cluster or role) are plan-time only.
PLAN_TIME_ONLY = {"apool-doesnotexist", "nope", "agt_doesnotexist", "key_doesnotexist", "no-such-role", NO_BLUEPRINT,
                  "0f5f8b3e-3c6a-4f2b-9d53-3f1c1a2b4c5d", "2020-01-01T00:00:00Z", SOON}
SYNTH_CASES = [c for c in CASES if not (set(map(str, c[1].values())) & PLAN_TIME_ONLY)]


@pytest.mark.parametrize(("type_name", "changes", "attribute"), SYNTH_CASES,
                         ids=[f"{t.removeprefix('tokendrop_')}-{a}-{i}" for i, (t, _, a) in enumerate(SYNTH_CASES)])
def test_the_constructs_refuse_the_same_input_at_synth(type_name, changes, attribute):
    from tokendrop._base import configure
    from tokendrop.errors import TokendropValidationError

    resource = schema.RESOURCES[type_name]
    arguments = {k: v for k, v in {**BASE[type_name], **changes}.items() if v is not None}
    arguments = {k: ("apool-abc" if v == POOL_ID else "0f5f8b3e-0000-4f2b-9d53-3f1c1a2b4c5d" if v == CLUSTER_UUID
                     else "agt_abc" if v == AGENT_ID else "key_abc" if v == KEY_ID
                     else NO_BLUEPRINT if v in (BLUEPRINT_ID, BLUEPRINT_APP_ID) else v)
                 for k, v in arguments.items()}
    with pytest.raises(TokendropValidationError) as raised:
        configure("stack/thing", resource.attributes, resource.checks, arguments, type_name)
    message = str(raised.value)
    assert message.startswith("stack/thing: ")
    assert attribute.split("[")[0] in message, message


# Secrets Manager settings only the plan can judge: the provider's region and endpoint.
SECRETS_MANAGER_PLAN_CASES = [
    ({"replica_regions": ["us-east-1"]}, {}, "deliver_to.secrets_manager.replica_regions"),  # its own region
    ({}, {"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://secrets.example.com"}, "aws_endpoint_url_secretsmanager"),
    ({}, {"AWS_ENDPOINT_URL_SECRETS_MANAGER": None, "AWS_ENDPOINT_URL_SECRETSMANAGER": "http://sm.example.com"},
     "aws_endpoint_url_secretsmanager"),
    ({}, {"AWS_REGION": None, "AWS_DEFAULT_REGION": None, "AWS_CONFIG_FILE": "/dev/null"}, "aws_region"),
]


@pytest.mark.parametrize(("changes", "env", "attribute"), SECRETS_MANAGER_PLAN_CASES)
def test_secrets_manager_settings_fail_the_plan(world, monkeypatch, changes, env, attribute):
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    config = world.config("tokendrop_tfe_agent_token", {"deliver_to": secrets_manager(**changes)})
    errors = errors_for(service(), "tokendrop_tfe_agent_token", config)
    assert errors and any(names_attribute(d, attribute) for d in errors), [f"{d.summary}: {d.detail}" for d in errors]
    assert world.writes() == []
