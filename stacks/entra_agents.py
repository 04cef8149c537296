"""The "entra-agents" stack: a Microsoft Entra agent identity blueprint for a support agent and two agent
identities created from it (triage, billing).

- The blueprint trusts GitHub Actions runs of the agent's repository on `main` (a federated credential:
  the production path, nothing secret exists).
- A certificate of the blueprint (RSA, made by tokendrop) goes to Vault with `client_id`, `tenant_id`
  and `token_endpoint`, rotated 14 days before it expires, the previous one kept for a day.
- A password of the blueprint (for local development) goes to SSM, rotated a week before it expires.

`examples/entra-agent/agent.py` reads either credential and runs the blueprint → agent identity token
exchange. Settings (environment, else cdktf context key, else the sandbox default):

| environment                  | context            | default    |
|------------------------------|--------------------|------------|
| TOKENDROP_ENTRA_SPONSOR      | entra_sponsor      | the sandbox tenant's sponsor user |
| TOKENDROP_ENTRA_REPOSITORY   | entra_repository   | acme/support-agent |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tokendrop import EntraAgentBlueprint, Federated, SsmParameter, TokendropProvider, VaultSecret, core_of

from . import settings

NAME = "entra-agents"
SANDBOX_SPONSOR = "users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"


@dataclass(frozen=True)
class EntraAgentsSettings:
    sponsor: str = SANDBOX_SPONSOR
    repository: str = "acme/support-agent"

    @classmethod
    def from_scope(cls, scope: Any) -> EntraAgentsSettings:
        d = cls()
        return cls(sponsor=settings.text(scope, "entra_sponsor", "TOKENDROP_ENTRA_SPONSOR", d.sponsor),
                   repository=settings.text(scope, "entra_repository", "TOKENDROP_ENTRA_REPOSITORY", d.repository))


def define(stack: Any, config: EntraAgentsSettings | None = None) -> dict[str, Any]:
    """Add the blueprint, its credentials, two agent identities and their outputs to `stack`."""
    config = config or EntraAgentsSettings.from_scope(stack)
    cdk = core_of(stack)
    TokendropProvider(stack, "tokendrop")
    blueprint = EntraAgentBlueprint(stack, "support", display_name="support-agents", sponsors=[config.sponsor])
    blueprint.trust(federated=Federated.github_actions(config.repository, branch="main"))
    certificate = blueprint.add_certificate("certificate", deliver_to=VaultSecret(path="agents/support/certificate"),
                                            description="support agents", valid_for=timedelta(days=90),
                                            rotate_before_expiry=timedelta(days=14),
                                            keep_previous_for=timedelta(days=1))
    password = blueprint.add_password("password", deliver_to=SsmParameter("/agents/support/blueprint-password"),
                                      description="support agents (dev)", valid_for=timedelta(days=30),
                                      rotate_before_expiry=timedelta(days=7))
    agents = {name: blueprint.add_identity(name, display_name=f"support-{name}") for name in ("triage", "billing")}

    cdk.TerraformOutput(stack, "blueprint_client_id", value=blueprint.client_id)
    for name, agent in agents.items():
        cdk.TerraformOutput(stack, f"{name}_client_id", value=agent.client_id)
    cdk.TerraformOutput(stack, "certificate_sink_address", value=certificate.sink_address)
    cdk.TerraformOutput(stack, "password_sink_address", value=password.sink_address)
    return {"blueprint": blueprint, "certificate": certificate, "password": password, **agents}
