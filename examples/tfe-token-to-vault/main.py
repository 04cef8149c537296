"""A TFE agent token delivered to Vault (or OpenBao) KV v2, with what a reader needs: the Vault policy
and a Vault Agent template that renders `TFC_AGENT_TOKEN=...` into an env file for tfc-agent."""

from __future__ import annotations

import os
from datetime import timedelta

from cdktf import App, TerraformOutput, TerraformStack

from constructs import Construct
from tokendrop import TfeAgentPool, TokendropProvider, VaultSecret


class TfeTokenToVault(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, organization: str, mount: str) -> None:
        super().__init__(scope, id)
        TokendropProvider(self, "tokendrop")  # VAULT_ADDR/VAULT_TOKEN (or AppRole) from the environment

        pool = TfeAgentPool(self, "pool", organization=organization, name="vault-agents")
        secret = VaultSecret(mount=mount, path="ci/tfc-agent/vault-agents", field="token")
        token = pool.add_token("agents", deliver_to=secret, rotate_every=timedelta(days=30))

        TerraformOutput(self, "token_id", value=token.token_id)
        TerraformOutput(self, "secret", value=token.sink_address)
        TerraformOutput(self, "secret_version", value=token.sink_version)
        TerraformOutput(self, "read_policy", value=secret.read_policy(),
                        description="vault policy write tfc-agent - <<< \"$(terraform output -raw read_policy)\"")
        TerraformOutput(self, "agent_template", value=secret.agent_template("TFC_AGENT_TOKEN"),
                        description="A Vault Agent `template` contents rendering an env file for tfc-agent.")


def main() -> None:
    app = App()
    TfeTokenToVault(app, "tfe-token-to-vault", organization=os.environ.get("TFE_ORGANIZATION", "acme"),
                    mount=os.environ.get("VAULT_KV_MOUNT", "secret"))
    app.synth()


if __name__ == "__main__":
    main()
