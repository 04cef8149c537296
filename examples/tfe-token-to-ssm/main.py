"""A TFE agent pool and one agent token delivered to SSM Parameter Store, rotated every 30 days.

Terraform state keeps the token's id and the parameter version; the token itself only ever exists in
the parameter (a SecureString). Run `cdktf deploy` in this directory with tokendrop installed.
"""

from __future__ import annotations

import os
from datetime import timedelta

from cdktf import App, Fn, TerraformOutput, TerraformStack

from constructs import Construct
from tokendrop import SsmParameter, TfeAgentPool, TokendropProvider


class TfeTokenToSsm(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, organization: str) -> None:
        super().__init__(scope, id)
        TokendropProvider(self, "tokendrop")  # TFE_ADDRESS/TFE_TOKEN and AWS credentials from the environment

        pool = TfeAgentPool(self, "pool", organization=organization, name="ssm-agents")
        parameter = SsmParameter("/ci/tfc-agent/token", tags={"team": "platform"})
        token = pool.add_token("agents", description="tfc-agent reading SSM", deliver_to=parameter,
                               rotate_every=timedelta(days=30), keep_previous_for=timedelta(hours=1))

        TerraformOutput(self, "pool_id", value=pool.pool_id)
        TerraformOutput(self, "token_id", value=token.token_id)
        TerraformOutput(self, "parameter", value=token.sink_address)
        TerraformOutput(self, "parameter_version", value=token.sink_version)
        # Attach this to whatever reads the token (an instance role, a task execution role, ...).
        TerraformOutput(self, "read_policy", value=Fn.jsonencode(parameter.read_policy()))


def main() -> None:
    app = App()
    TfeTokenToSsm(app, "tfe-token-to-ssm", organization=os.environ.get("TFE_ORGANIZATION", "acme"))
    app.synth()


if __name__ == "__main__":
    main()
