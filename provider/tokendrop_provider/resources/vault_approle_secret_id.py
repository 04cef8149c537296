"""tokendrop_vault_approle_secret_id: an AppRole secret id, delivered with its role id to a sink.

The issuer is the provider's own Vault. State keeps the secret id's accessor (`id`); the secret id
itself goes straight into the sink, beside the role id (`{role_id, secret_id}`). A secret id cannot
be edited, so any change of ttl, CIDRs, use count or metadata mints a new one (a rotation), and
`keep_previous_for` keeps the old one alive for a while as with every token. Refresh looks the
accessor up: destroyed, expired or used up -> the resource leaves state and a new one is planned.
The orphan-sweep marker lives in the secret id's metadata (`tokendrop_marker`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import schema
from ..delivery import Target
from ..errors import ConfigError
from ..issuers.base import IssuedToken, MintedToken
from ..registry.sinks import split_before_address
from ..registry.vault_approle import ISSUER as APPROLE
from ..sinks.base import Payload
from .base import Context, State
from .token import TokenResource

if TYPE_CHECKING:
    from ..issuers.vault_approle import VaultAppRoleIssuer

_ACCESSOR = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OPTIONS = ("ttl", "cidr_list", "token_bound_cidrs", "num_uses", "metadata")


def _payload(minted: MintedToken) -> Payload:
    return {"role_id": str(minted.token.extra["role_id"]), "secret_id": minted.value}


class VaultAppRoleSecretId(TokenResource):
    schema = schema.VAULT_APPROLE_SECRET_ID
    scope_attribute = "role_name"
    expiring = True  # a ttl gives an expiry; rotate_before_expiry plans the rotation in time

    def issuer(self, ctx: Context) -> VaultAppRoleIssuer:
        return ctx.clients.of(APPROLE)

    def scope_of(self, state: Mapping[str, object]) -> str:
        return f"{state.get('mount') or 'approle'}/{state['role_name']}"

    def scope_state(self, scope: str) -> State:
        mount, _, role = scope.rpartition("/")
        return {"mount": mount, "role_name": role}

    def mint_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        return {name: state[name] for name in _OPTIONS if state.get(name) is not None}

    def target(self, ctx: Context, state: Mapping[str, object]) -> Target:
        target = super().target(ctx, state)
        target.payload = _payload
        return target

    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        """The provider's Vault token may mint, look up, list and destroy secret ids of the role, and
        read its role id; the ttl and num_uses are within the role's limits (where the token may read
        the role): checked before anything is created, once per role and process."""
        ctx.clients.check(APPROLE)
        role, mount = planned.get("role_name"), planned.get("mount")
        if not isinstance(role, str) or not isinstance(mount, str):
            return
        scope = f"{mount}/{role}"
        issuer = self.issuer(ctx)
        missing = ctx.clients.memo(("approle-capabilities", scope), lambda: issuer.missing_capabilities(scope))
        if missing:
            lines = "\n".join(f'  path "{path}": needs "{cap}"' for path, cap in missing)
            raise ConfigError("The Vault token may not manage this role's secret ids",
                              f"The provider's Vault token lacks these capabilities:\n{lines}\nGrant them in a policy "
                              "of the token, or use another token. Nothing was created.", ("role_name",))
        ctx.clients.memo(("approle-role-id", scope), lambda: issuer.role_id(scope))  # the role exists
        limits = ctx.clients.memo(("approle-limits", scope), lambda: issuer.role_limits(scope))
        problem = limits.problem(planned.get("ttl"), planned.get("num_uses")) if limits else None
        if problem:
            attribute, why = problem
            raise ConfigError(f"The role {role!r} does not allow this {attribute}", why + ". Nothing was created.",
                              (attribute,))

    # --- import ---------------------------------------------------------------------------------

    def parse_import_id(self, import_id: str) -> tuple[str, str | None, str]:
        """`<mount>/<role>/<sink address>` or `<mount>/<role>/<accessor>/<sink address>` (a mount may
        hold slashes; the accessor is a UUID)."""
        head, address = split_before_address(import_id) or ("", "")
        accessor = None
        if head and _ACCESSOR.fullmatch(head.rpartition("/")[2]):
            head, _, accessor = head.rpartition("/")
        mount, _, role = head.rpartition("/")
        if not address or not mount or not role:
            raise ConfigError("Invalid import id",
                              f"Expected <mount>/<role name>/<sink address> or <mount>/<role name>/<accessor>/"
                              f"<sink address>, got {import_id!r} (e.g. approle/ci/ssm:/ci/vault/secret-id).")
        return head, accessor, address

    def imported_attributes(self, token: IssuedToken) -> State:
        # Vault reports metadata but not the ttl or use count a secret id was made with: with those
        # set, the first plan after an import rotates the secret id.
        metadata = token.extra.get("metadata")
        return {"metadata": dict(metadata) if isinstance(metadata, Mapping) and metadata else None}
