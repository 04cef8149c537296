"""A Buildkite cluster whose agent token is delivered to the SSM parameter the Elastic CI Stack for AWS
reads (`BuildkiteAgentTokenParameterStorePath`).

Only tokendrop constructs and cdktf core classes: no AWS or Buildkite provider bindings. The app
outputs what the CloudFormation stack needs — the parameter path (and KMS key), the stack parameters
as `aws cloudformation` takes them, and the IAM policy its instance role needs to read the token —
none of which holds the token: the agents fetch it from SSM when they boot.

Settings come from the environment at synth time (all optional; the defaults match the sandbox):

| environment                    | default                        |
|--------------------------------|--------------------------------|
| BUILDKITE_ORGANIZATION_SLUG    | acme                           |
| TOKENDROP_BUILDKITE_CLUSTER    | linux                          |
| TOKENDROP_BUILDKITE_QUEUE      | linux                          |
| TOKENDROP_AGENT_TOKEN_PARAMETER| /buildkite/linux/agent-token   |
| TOKENDROP_SSM_KMS_KEY_ID       | (the account's default key)    |
| AWS_REGION / AWS_ACCOUNT_ID    | * / * (policy ARNs with wildcards) |
| TOKENDROP_STATE_BUCKET         | (none: local state)            |

`TOKENDROP_STATE_BUCKET` switches the stack to an S3 backend (key `tokendrop/<stack>.tfstate`, S3
native locking): a pipeline whose plan and apply run on different agents needs state they share.
The agents' networks are a Terraform variable, `agent_cidrs` (`TF_VAR_agent_cidrs` or `--var`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cdktf import App, Fn, S3Backend, TerraformOutput, TerraformStack, TerraformVariable

from constructs import Construct
from tokendrop import BuildkiteCluster, SsmParameter, TokendropProvider

STACK = "elastic-ci-stack"


@dataclass(frozen=True)
class Settings:
    organization: str = "acme"
    cluster: str = "linux"
    queue: str = "linux"
    parameter: str = "/buildkite/linux/agent-token"
    kms_key_id: str | None = None
    region: str = "*"
    account: str = "*"
    state_bucket: str | None = None

    @classmethod
    def from_environment(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> Settings:
        d = cls()
        return cls(
            organization=env.get("BUILDKITE_ORGANIZATION_SLUG") or d.organization,
            cluster=env.get("TOKENDROP_BUILDKITE_CLUSTER") or d.cluster,
            queue=env.get("TOKENDROP_BUILDKITE_QUEUE") or d.queue,
            parameter=env.get("TOKENDROP_AGENT_TOKEN_PARAMETER") or d.parameter,
            kms_key_id=env.get("TOKENDROP_SSM_KMS_KEY_ID") or None,
            region=env.get("AWS_REGION") or d.region,
            account=env.get("AWS_ACCOUNT_ID") or d.account,
            state_bucket=env.get("TOKENDROP_STATE_BUCKET") or None,
        )


def stack_parameters(settings: Settings) -> dict[str, str]:
    """The Elastic CI Stack parameters that wire in the delivered token (see parameters.yml)."""
    parameters = {"BuildkiteAgentTokenParameterStorePath": settings.parameter, "BuildkiteQueue": settings.queue}
    if settings.kms_key_id:
        # The stack's role must be able to decrypt with it, and the stack needs to know which key it is.
        parameters["BuildkiteAgentTokenParameterStoreKMSKey"] = settings.kms_key_id
    return parameters


class ElasticCiStackToken(TerraformStack):
    def __init__(self, scope: Construct, id: str, settings: Settings) -> None:
        super().__init__(scope, id)
        if settings.state_bucket:
            S3Backend(self, bucket=settings.state_bucket, key=f"tokendrop/{id}.tfstate",
                      region=None if settings.region == "*" else settings.region, encrypt=True)
            # S3-native state locking (Terraform >= 1.11); cdktf 0.21's S3Backend has no property for it.
            self.add_override("terraform.backend.s3.use_lockfile", True)
        # BUILDKITE_API_TOKEN and AWS credentials come from the environment (the pipeline's step).
        TokendropProvider(self, "tokendrop")

        agent_cidrs = TerraformVariable(
            self, "agent_cidrs", type="list(string)", default=["10.0.0.0/8"],
            description="Networks the Elastic CI Stack's instances connect from; the token works from nowhere else.")

        cluster = BuildkiteCluster(self, "cluster", organization=settings.organization, name=settings.cluster,
                                   description="Elastic CI Stack for AWS", emoji=":aws:")
        parameter = SsmParameter(settings.parameter, kms_key_id=settings.kms_key_id,
                                 description="Buildkite agent token (managed by tokendrop)",
                                 tags={"consumer": "elastic-ci-stack"})
        # Agents read the token only when an instance boots (the agent then holds its own session), so a
        # rotation affects new instances only; the previous token stays valid for scale-outs in flight.
        token = cluster.add_agent_token(
            "agents", description=f"Elastic CI Stack ({settings.queue} queue)", deliver_to=parameter,
            allowed_ip_addresses=agent_cidrs.list_value, expires_in="90d", rotate_before_expiry="14d",
            keep_previous_for="1h")

        # Named as the CloudFormation parameter, so `cdktf output` reads like the stack's parameter file.
        TerraformOutput(self, "BuildkiteAgentTokenParameterStorePath", value=settings.parameter,
                        description="The SSM parameter holding the agent token.")
        if settings.kms_key_id:
            TerraformOutput(self, "BuildkiteAgentTokenParameterStoreKMSKey", value=settings.kms_key_id)
        TerraformOutput(self, "cloudformation_parameters", description="For `aws cloudformation ... --parameters`.",
                        value=Fn.jsonencode([{"ParameterKey": k, "ParameterValue": v}
                                             for k, v in stack_parameters(settings).items()]))
        TerraformOutput(self, "instance_role_policy", value=Fn.jsonencode(
            parameter.read_policy(region=settings.region, account=settings.account)),
            description="What the stack's instance role needs to read the token (ssm:GetParameter, kms:Decrypt).")
        TerraformOutput(self, "cluster_id", value=cluster.cluster_id)
        TerraformOutput(self, "agent_token_id", value=token.token_id)
        TerraformOutput(self, "agent_token_expires_at", value=token.expires_at)
        TerraformOutput(self, "agent_token_parameter_version", value=token.sink_version,
                        description="Changes at every rotation.")


def main() -> None:
    app = App()
    ElasticCiStackToken(app, STACK, Settings.from_environment())
    app.synth()


if __name__ == "__main__":
    main()
