"""A consumer of the delivered token: tfc-agent on ECS reads TFC_AGENT_TOKEN from AWS Secrets Manager
at task start.

Synthesizes, with tokendrop constructs and plain cdktf values only (no AWS provider bindings), the ECS
container definitions JSON and the task execution role's policy. Wire them into your own
`aws_ecs_task_definition` / IAM role (or feed them to another stack). The token never appears in them:
ECS resolves `valueFrom` (the secret's ARN) when it starts a task.

The secret's version is part of the container environment, so a rotation changes the task definition
and the next deployment starts agents with the new token.
"""

from __future__ import annotations

import os
from datetime import timedelta

from cdktf import App, Fn, TerraformLocal, TerraformOutput, TerraformStack

from constructs import Construct
from tokendrop import SecretsManagerSecret, TfeAgentPool, TokendropProvider


class TfcAgentOnEcs(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, organization: str, region: str, account: str,
                 tfe_address: str) -> None:
        super().__init__(scope, id)
        TokendropProvider(self, "tokendrop")

        pool = TfeAgentPool(self, "pool", organization=organization, name="ecs-agents")
        # A plain string secret (no `field`): the agent reads the whole value as its token.
        secret = SecretsManagerSecret("ci/tfc-agent/ecs", tags={"consumer": "ecs"})
        token = pool.add_token("ecs", description="tfc-agent on ECS", deliver_to=secret,
                               rotate_every=timedelta(days=30), keep_previous_for=timedelta(hours=2))

        container = {
            "name": "tfc-agent",
            "image": "hashicorp/tfc-agent:latest",
            "essential": True,
            "environment": [
                {"name": "TFC_ADDRESS", "value": tfe_address},
                {"name": "TFC_AGENT_NAME", "value": "ecs"},
                # Changes on every rotation, so the task definition (and the running agents) follow.
                {"name": "TFC_AGENT_TOKEN_VERSION", "value": Fn.tostring(token.sink_version)},
            ],
            "secrets": [{"name": "TFC_AGENT_TOKEN", "valueFrom": value_from(secret, region, account)}],
        }
        definitions = TerraformLocal(self, "tfc_agent_containers", Fn.jsonencode([container]))

        TerraformOutput(self, "container_definitions", value=definitions.as_string,
                        description="container_definitions of the tfc-agent task definition.")
        TerraformOutput(self, "execution_role_policy",
                        value=Fn.jsonencode(secret.read_policy(region=region, account=account)),
                        description="Policy for the task execution role, which fetches the secret.")
        TerraformOutput(self, "agent_pool_id", value=pool.pool_id)


def value_from(secret: SecretsManagerSecret, region: str, account: str) -> str:
    """The secret's ARN without the six random characters Secrets Manager appends (unknown before the
    secret exists): a partial ARN, which ECS passes to GetSecretValue as the secret id. It finds the
    secret as long as its name does not itself end in a hyphen and six characters (docs/wire.md)."""
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret.name}"


def main() -> None:
    app = App()
    TfcAgentOnEcs(app, "tfc-agent-on-ecs", organization=os.environ.get("TFE_ORGANIZATION", "acme"),
                  region=os.environ.get("AWS_REGION", "us-east-1"),
                  account=os.environ.get("AWS_ACCOUNT_ID", "123456789012"),
                  tfe_address=os.environ.get("TFE_ADDRESS", "https://app.terraform.io"))
    app.synth()


if __name__ == "__main__":
    main()
