"""The "buildkite" stack: a Buildkite cluster for Linux agents with an agent token for the Elastic CI
Stack for AWS (delivered to the SSM parameter the stack reads, `BuildkiteAgentTokenParameterStorePath`,
in every region an Elastic CI Stack runs: one token, a parameter per region, so a rotation updates
them all) and one for agents that read Vault. Tokens are limited to the agents' networks, expire after 90 days
and are rotated two weeks before that; the previous token stays valid for an hour so running agents
can pick up the new one.

Settings (environment, else cdktf context key, else the sandbox default):

| environment                      | context                 | default                  |
|----------------------------------|-------------------------|--------------------------|
| TOKENDROP_BUILDKITE_ORGANIZATION | buildkite_organization  | acme                     |
| TOKENDROP_BUILDKITE_CLUSTER      | buildkite_cluster       | linux                    |
| TOKENDROP_BUILDKITE_SSM_PATH     | buildkite_ssm_path      | /buildkite/linux/agent-token |
| TOKENDROP_BUILDKITE_SSM_REGIONS  | buildkite_ssm_regions   | us-east-1,eu-west-1      |
| TOKENDROP_BUILDKITE_ALLOWED_IPS  | buildkite_allowed_ips   | 10.0.0.0/8               |
| TOKENDROP_VAULT_MOUNT            | vault_mount             | secret                   |
| TOKENDROP_BUILDKITE_EXPIRES_IN   | buildkite_expires_in    | 90d                      |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokendrop import BuildkiteCluster, BuildkiteClusterToken, SsmParameter, TokendropProvider, VaultSecret, core_of

from . import settings

NAME = "buildkite"


@dataclass(frozen=True)
class BuildkiteSettings:
    organization: str = "acme"
    cluster: str = "linux"
    ssm_path: str = "/buildkite/linux/agent-token"
    # The regions of the Elastic CI Stacks; empty: one parameter in the provider's region.
    ssm_regions: list[str] = field(default_factory=lambda: ["us-east-1", "eu-west-1"])
    allowed_ips: list[str] = field(default_factory=lambda: ["10.0.0.0/8"])
    vault_mount: str = "secret"
    expires_in: str = "90d"

    @classmethod
    def from_scope(cls, scope: Any) -> BuildkiteSettings:
        d = cls()
        return cls(
            organization=settings.text(scope, "buildkite_organization", "TOKENDROP_BUILDKITE_ORGANIZATION",
                                       d.organization),
            cluster=settings.text(scope, "buildkite_cluster", "TOKENDROP_BUILDKITE_CLUSTER", d.cluster),
            ssm_path=settings.text(scope, "buildkite_ssm_path", "TOKENDROP_BUILDKITE_SSM_PATH", d.ssm_path),
            ssm_regions=settings.text_list(scope, "buildkite_ssm_regions", "TOKENDROP_BUILDKITE_SSM_REGIONS",
                                           d.ssm_regions),
            allowed_ips=settings.text_list(scope, "buildkite_allowed_ips", "TOKENDROP_BUILDKITE_ALLOWED_IPS",
                                           d.allowed_ips),
            vault_mount=settings.text(scope, "vault_mount", "TOKENDROP_VAULT_MOUNT", d.vault_mount).strip("/"),
            expires_in=settings.text(scope, "buildkite_expires_in", "TOKENDROP_BUILDKITE_EXPIRES_IN", d.expires_in),
        )


def define(stack: Any, config: BuildkiteSettings | None = None) -> dict[str, BuildkiteClusterToken]:
    """Add the Buildkite cluster, its agent tokens and their outputs to `stack`."""
    config = config or BuildkiteSettings.from_scope(stack)
    cdk = core_of(stack)
    TokendropProvider(stack, "tokendrop")

    cluster = BuildkiteCluster(stack, "cluster", organization=config.organization, name=config.cluster,
                               description="Linux agents", emoji=":penguin:", color="#FF9900")
    # The Elastic CI Stack reads its agent token from this parameter, in its own region.
    elastic_sinks = [SsmParameter(config.ssm_path, region=region) for region in config.ssm_regions]
    tokens = {
        "elastic": cluster.add_agent_token(
            "elastic", description="Elastic CI Stack for AWS",
            deliver_to=elastic_sinks or SsmParameter(config.ssm_path),
            allowed_ip_addresses=config.allowed_ips, expires_in=config.expires_in, rotate_before_expiry="14d",
            keep_previous_for="1h"),
        "vault": cluster.add_agent_token(
            "vault", description="agents reading Vault",
            deliver_to=VaultSecret(mount=config.vault_mount, path=f"ci/buildkite/{config.cluster}"),
            allowed_ip_addresses=config.allowed_ips, expires_in=config.expires_in, rotate_before_expiry="14d"),
    }

    cdk.TerraformOutput(stack, "cluster_id", value=cluster.cluster_id, description="The cluster's UUID.")
    cdk.TerraformOutput(stack, "agent_token_parameter_store_path", value=config.ssm_path,
                        description="BuildkiteAgentTokenParameterStorePath for the Elastic CI Stack for AWS.")
    cdk.TerraformOutput(stack, "agent_token_parameter_arns", value=[s.arn() for s in elastic_sinks],
                        description="The parameter in each region, for the Elastic CI Stacks' read policies.")
    for name, token in tokens.items():
        cdk.TerraformOutput(stack, f"{name}_token_id", value=token.token_id)
        cdk.TerraformOutput(stack, f"{name}_sink_address", value=token.sink_address)
        cdk.TerraformOutput(stack, f"{name}_sink_version", value=token.sink_version)
        cdk.TerraformOutput(stack, f"{name}_expires_at", value=token.expires_at)
    return tokens
