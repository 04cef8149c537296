"""tokendrop for CDK for Terraform (cdktf 0.21) and CDK Terrain (cdktn 0.24).

    from tokendrop import TokendropProvider, TfeAgentPool, SsmParameter, VaultSecret

    TokendropProvider(self, "tokendrop")
    pool = TfeAgentPool(self, "pool", organization="acme", name="ci-agents")
    runners = pool.add_token("runners", deliver_to=SsmParameter("/ci/tfc-agent/token"),
                             rotate_every=timedelta(days=30))

The constructs emit resources of tokendrop's own provider, whose schema (`tokendrop_provider.schema`)
also drives their arguments and validation: bad input raises TokendropValidationError when the
construct is created, naming its path and the attribute. Importing this package loads neither cdktf
nor cdktn: each construct uses the core of the app it is created in.

`cdktf deploy` needs no network and no set-up for the provider: synthesizing a stack with a
TokendropProvider writes the provider's launcher into the stack directory's implied local mirror
(`cdktf.out/stacks/<stack>/terraform.d/plugins`) and its entry into the stack's `.terraform.lock.hcl`,
so `terraform init` installs it and cdktf skips `terraform providers lock` (see `_offline`). Two
cases need a step from you, and synthesis warns about the first:

- a Terraform CLI configuration with an explicit `provider_installation` block disables implied
  mirrors: add a `filesystem_mirror` for `registry.terraform.io/tokendrop/*` (the warning prints it);
- a stack that also uses registry providers (hashicorp/aws, ...): cdktf locks those with
  `terraform providers lock`, which cannot lock a local provider; run its first deploy with
  `--skip-provider-lock` (init records every provider; later runs find the lock complete).
"""

from __future__ import annotations

from ._base import TokendropResource, TokenResource
from .buildkite import BuildkiteCluster, BuildkiteClusterToken
from .core import core_of
from .entra import (
    EntraAgentBlueprint,
    EntraAgentIdentity,
    EntraBlueprintCertificate,
    EntraBlueprintFederatedCredential,
    EntraBlueprintPassword,
    Federated,
)
from .errors import CoreMismatchError, Problem, TokendropValidationError
from .provider import TokendropProvider
from .sinks import SecretsManagerSecret, Sink, SsmParameter, TokenVaultWebhook, VaultSecret
from .tfe import TfeAgentPool, TfeAgentToken
from .vault_grants import (
    TokenVaultAgent,
    TokenVaultAgentGrant,
    TokenVaultKey,
    TokenVaultKeyGrant,
    VaultAppRoleSecretId,
)

__all__ = [
    "BuildkiteCluster",
    "BuildkiteClusterToken",
    "CoreMismatchError",
    "EntraAgentBlueprint",
    "EntraAgentIdentity",
    "EntraBlueprintCertificate",
    "EntraBlueprintFederatedCredential",
    "EntraBlueprintPassword",
    "Federated",
    "Problem",
    "SecretsManagerSecret",
    "Sink",
    "SsmParameter",
    "TfeAgentPool",
    "TfeAgentToken",
    "TokenResource",
    "TokenVaultAgent",
    "TokenVaultAgentGrant",
    "TokenVaultKey",
    "TokenVaultKeyGrant",
    "TokenVaultWebhook",
    "TokendropProvider",
    "TokendropResource",
    "TokendropValidationError",
    "VaultAppRoleSecretId",
    "VaultSecret",
    "core_of",
]
