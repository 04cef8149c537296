"""The "CI agents" stack: an HCP Terraform / TFE agent pool for Terraform runs, restricted to chosen
workspaces, with one agent token delivered to SSM Parameter Store (for agents on AWS) and one to
Vault KV (for agents that read Vault), both rotated every 30 days.

Settings (environment, else cdktf context key, else the sandbox default):

| environment                   | context               | default                   |
|-------------------------------|-----------------------|---------------------------|
| TOKENDROP_ORGANIZATION        | organization          | acme                      |
| TOKENDROP_POOL_NAME           | pool_name             | ci-agents                 |
| TOKENDROP_ALLOWED_WORKSPACES  | allowed_workspace_ids | (none: no workspace yet)  |
| TOKENDROP_SSM_PREFIX          | ssm_prefix            | /ci/tfc-agent             |
| TOKENDROP_SSM_KMS_KEY_ID      | ssm_kms_key_id        | (the account's default)   |
| TOKENDROP_VAULT_MOUNT         | vault_mount           | secret                    |
| TOKENDROP_VAULT_PREFIX        | vault_prefix          | ci/tfc-agent              |
| TOKENDROP_ROTATE_EVERY        | rotate_every          | 30d                       |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokendrop import SsmParameter, TfeAgentPool, TfeAgentToken, TokendropProvider, VaultSecret, core_of

from . import settings

NAME = "ci-agents"


@dataclass(frozen=True)
class CiAgentsSettings:
    organization: str = "acme"
    pool_name: str = "ci-agents"
    allowed_workspace_ids: list[str] = field(default_factory=list)
    ssm_prefix: str = "/ci/tfc-agent"
    ssm_kms_key_id: str | None = None
    vault_mount: str = "secret"
    vault_prefix: str = "ci/tfc-agent"
    rotate_every: str = "30d"

    @classmethod
    def from_scope(cls, scope: Any) -> CiAgentsSettings:
        d = cls()
        return cls(
            organization=settings.text(scope, "organization", "TOKENDROP_ORGANIZATION", d.organization),
            pool_name=settings.text(scope, "pool_name", "TOKENDROP_POOL_NAME", d.pool_name),
            allowed_workspace_ids=settings.text_list(scope, "allowed_workspace_ids", "TOKENDROP_ALLOWED_WORKSPACES"),
            ssm_prefix=settings.text(scope, "ssm_prefix", "TOKENDROP_SSM_PREFIX", d.ssm_prefix).rstrip("/"),
            ssm_kms_key_id=settings.optional_text(scope, "ssm_kms_key_id", "TOKENDROP_SSM_KMS_KEY_ID"),
            vault_mount=settings.text(scope, "vault_mount", "TOKENDROP_VAULT_MOUNT", d.vault_mount).strip("/"),
            vault_prefix=settings.text(scope, "vault_prefix", "TOKENDROP_VAULT_PREFIX", d.vault_prefix).strip("/"),
            rotate_every=settings.text(scope, "rotate_every", "TOKENDROP_ROTATE_EVERY", d.rotate_every),
        )


def define(stack: Any, config: CiAgentsSettings | None = None) -> dict[str, TfeAgentToken]:
    """Add the CI agents resources and outputs to `stack` (a cdktf or cdktn TerraformStack)."""
    config = config or CiAgentsSettings.from_scope(stack)
    cdk = core_of(stack)
    TokendropProvider(stack, "tokendrop")

    pool = TfeAgentPool(stack, "pool", organization=config.organization, name=config.pool_name,
                        organization_scoped=False, allowed_workspace_ids=config.allowed_workspace_ids)
    tokens = {
        # tfc-agent containers on AWS read TFC_AGENT_TOKEN from this parameter (see examples/).
        "runners": pool.add_token(
            "runners", description="tfc-agent on the CI runners",
            deliver_to=SsmParameter(f"{config.ssm_prefix}/runners", kms_key_id=config.ssm_kms_key_id,
                                    tags={"team": "platform", "consumer": "tfc-agent"}),
            rotate_every=config.rotate_every, keep_previous_for="1h"),
        # Agents outside AWS render the token from Vault with a Vault Agent template.
        "batch": pool.add_token(
            "batch", description="tfc-agent for batch runs",
            deliver_to=VaultSecret(mount=config.vault_mount, path=f"{config.vault_prefix}/batch"),
            rotate_every=config.rotate_every),
    }

    cdk.TerraformOutput(stack, "pool_id", value=pool.pool_id, description="The agent pool (apool-…).")
    for name, token in tokens.items():
        cdk.TerraformOutput(stack, f"{name}_token_id", value=token.token_id)
        cdk.TerraformOutput(stack, f"{name}_sink_address", value=token.sink_address)
        cdk.TerraformOutput(stack, f"{name}_sink_version", value=token.sink_version)
        policy = token.read_policy()
        # IAM documents as JSON text (jsonencode keeps it a string in JSON and HCL synthesis alike).
        value = cdk.Fn.jsonencode(policy) if isinstance(policy, dict) else policy
        cdk.TerraformOutput(stack, f"{name}_read_policy", value=value,
                            description="What a consumer of the delivered token needs to read it.")
    return tokens
