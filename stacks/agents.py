"""The "agents" stack: credentials for AI and CI agents that are not build runners.

- A Token Vault agent for an issue-triage bot with two grants, GitHub and Linear (each a
  `tokendrop_tokenvault_agent_grant`; agent grants last until revoked); its `tvagent_` key is delivered
  to SSM, where the bot's runtime reads it, and rotated every 30 days.
- A Token Vault scoped key for the release job (`tvkey_`, may read credentials), delivered to SSM, with
  a 7-day grant on GitHub (`tokendrop_tokenvault_key_grant`; the next apply after it ends grants it
  again).
- A Vault AppRole secret id for the deploy pipeline's Vault login, delivered with its role id to SSM;
  it lives 24 hours, is bound to the runners' network and is rotated 2 hours before it expires.
- With a Token Vault webhook configured (`TOKENDROP_TOKENVAULT_WEBHOOK_URL`; for the sandbox, the
  `TOKENVAULT_WEBHOOK_URL` that `tokendrop sandbox up` prints): a
  Buildkite cluster whose agent token goes to that vault in Webhook Mode (Token Vault never sees it,
  docs/tokenvault.md "Webhook Mode delivery"), and a second agent, the deployer, granted that service; it
  reads the token through Token Vault's redirect to the webhook.

Settings (environment, else cdktf context key, else the sandbox default):

| environment                  | context            | default    |
|------------------------------|--------------------|------------|
| TOKENDROP_AGENT_NAME         | agent_name         | triage-bot |
| TOKENDROP_APPROLE_MOUNT      | approle_mount      | approle    |
| TOKENDROP_APPROLE_ROLE       | approle_role       | ci         |
| TOKENDROP_APPROLE_CIDRS      | approle_cidrs      | 10.0.0.0/8, 127.0.0.0/8 |
| TOKENDROP_TOKENVAULT_WEBHOOK_URL | tokenvault_webhook_url | unset: no Webhook Mode delivery |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tokendrop import (
    BuildkiteCluster,
    SsmParameter,
    TokendropProvider,
    TokenVaultAgent,
    TokenVaultAgentGrant,
    TokenVaultKey,
    TokenVaultWebhook,
    VaultAppRoleSecretId,
    core_of,
)

from . import settings

NAME = "agents"


@dataclass(frozen=True)
class AgentsSettings:
    agent_name: str = "triage-bot"
    approle_mount: str = "approle"
    approle_role: str = "ci"
    approle_cidrs: list[str] = field(default_factory=lambda: ["10.0.0.0/8", "127.0.0.0/8"])
    webhook_url: str | None = None  # a Token Vault vault in Webhook Mode: its webhook
    webhook_service: str = "buildkite-agents"

    @classmethod
    def from_scope(cls, scope: Any) -> AgentsSettings:
        d = cls()
        return cls(
            agent_name=settings.text(scope, "agent_name", "TOKENDROP_AGENT_NAME", d.agent_name),
            approle_mount=settings.text(scope, "approle_mount", "TOKENDROP_APPROLE_MOUNT", d.approle_mount),
            approle_role=settings.text(scope, "approle_role", "TOKENDROP_APPROLE_ROLE", d.approle_role),
            approle_cidrs=settings.text_list(scope, "approle_cidrs", "TOKENDROP_APPROLE_CIDRS", d.approle_cidrs),
            webhook_url=settings.optional_text(scope, "tokenvault_webhook_url",
                                               "TOKENDROP_TOKENVAULT_WEBHOOK_URL"),
        )


def define(stack: Any, config: AgentsSettings | None = None) -> dict[str, Any]:
    """Add the Token Vault agent and key, the AppRole secret id and their outputs to `stack`."""
    config = config or AgentsSettings.from_scope(stack)
    cdk = core_of(stack)
    TokendropProvider(stack, "tokendrop")

    bot = TokenVaultAgent(stack, "triage", name=config.agent_name, description="issue triage",
                          deliver_key_to=SsmParameter(f"/agents/{config.agent_name}/tvagent-key"),
                          rotate_every=timedelta(days=30))
    bot.grant("github")  # agent grants last until revoked (docs/wire.md)
    bot.grant("linear")

    release = TokenVaultKey(stack, "release-key", name=f"{config.agent_name}-release", scopes=["credentials:read"],
                            deliver_to=SsmParameter(f"/agents/{config.agent_name}/release-key"),
                            rotate_every=timedelta(days=30))
    release.grant("github", expires_in=timedelta(days=7))  # key grants may expire: 1h to 30d

    login = VaultAppRoleSecretId(stack, "ci-login", role_name=config.approle_role, mount=config.approle_mount,
                                 ttl=timedelta(hours=24), rotate_before_expiry=timedelta(hours=2),
                                 cidr_list=config.approle_cidrs, num_uses=0, metadata={"pipeline": "deploy"},
                                 deliver_to=SsmParameter("/ci/vault/secret-id"))

    cdk.TerraformOutput(stack, "agent_id", value=bot.agent_id)
    cdk.TerraformOutput(stack, "agent_key_sink_address", value=bot.sink_address)
    cdk.TerraformOutput(stack, "agent_key_sink_version", value=bot.sink_version)
    cdk.TerraformOutput(stack, "release_key_id", value=release.key_id)
    cdk.TerraformOutput(stack, "release_key_sink_address", value=release.sink_address)
    cdk.TerraformOutput(stack, "approle_secret_id_accessor", value=login.accessor)
    cdk.TerraformOutput(stack, "approle_sink_address", value=login.sink_address)
    cdk.TerraformOutput(stack, "approle_expires_at", value=login.expires_at)
    made: dict[str, Any] = {"triage": bot, "release-key": release, "ci-login": login}
    if config.webhook_url:
        made.update(_webhook_delivery(stack, config))
    return made


def _webhook_delivery(stack: Any, config: AgentsSettings) -> dict[str, Any]:
    """A Buildkite agent token stored in Token Vault's Webhook Mode, and the agent that reads it."""
    cdk = core_of(stack)
    cluster = BuildkiteCluster(stack, "deploy-cluster", name="deploy", description="deploy agents")
    token = cluster.add_agent_token("webhook", description="deploy agents (Token Vault webhook)",
                                    deliver_to=TokenVaultWebhook(config.webhook_service,
                                                                 webhook_url=config.webhook_url),
                                    rotate_every=timedelta(days=30))
    deployer = TokenVaultAgent(stack, "deployer", name=f"{config.agent_name}-deployer",
                               description="reads the deploy agents' Buildkite token",
                               deliver_key_to=SsmParameter(f"/agents/{config.agent_name}/deployer-key"))
    # Token Vault knows a webhook-held service once its first store ticket is issued: grant after the token.
    TokenVaultAgentGrant(stack, "deployer-grant", agent_id=deployer.agent_id, service=config.webhook_service,
                         depends_on=[token])
    cdk.TerraformOutput(stack, "webhook_token_sink_address", value=token.sink_address)
    cdk.TerraformOutput(stack, "deployer_agent_id", value=deployer.agent_id)
    return {"deploy-cluster": cluster, "deployer": deployer}
