"""tokendrop_tokenvault_key: a scoped Token Vault key (`tvkey_…`) delivered to a sink.

The shared token lifecycle (token.py / delivery.py) with `TokenVaultKeys` as the issuer: create is
POST /api/keys {name + marker, scopes, expiresAt} (the secret exists only in that answer) -> sink write
-> sweep of keys carrying this sink's marker (orphans of an interrupted create). A rotation (scopes
changed, rotate_every, rotate_on, a drifted sink) mints a successor with the configured scopes and
expiry, writes it as the next sink version, then revokes the old key or keeps it for
`keep_previous_for`. Token Vault's own rotate route is not used: a key other than the caller's can
only be rotated there by a signed-in human (HUMAN_ONLY, docs/wire.md "Token Vault").

Scopes the provider's key needs (checked at plan with whoami): keys:manage (create, list, read,
revoke). The key's own scopes must be delegable by a key: the schema refuses the human-only ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError
from ..issuers.base import IssuedToken
from ..registry.tokenvault import KEYS
from ..timestamps import parse_rfc3339
from ..types import Unknown
from .base import Context, Plan, State
from .token import TokenResource, same_instant

if TYPE_CHECKING:
    from ..issuers.tokenvault import TokenVaultKeys

REQUIRED_SCOPES = ["keys:manage"]


class TokenVaultKey(TokenResource):
    schema = schema.TOKENVAULT_KEY
    scope_attribute = "name"
    expiring = True

    def issuer(self, ctx: Context) -> TokenVaultKeys:
        return ctx.clients.of(KEYS)

    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        ctx.clients.check(KEYS)
        ctx.clients.of(KEYS).client.require_scopes(REQUIRED_SCOPES, "tokendrop_tokenvault_key")

    def mint_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        return self.token_spec(state)

    def token_spec(self, state: Mapping[str, object]) -> dict[str, object]:
        # Fixed at mint: a live key of this resource with other scopes or expiry is never adopted.
        scopes = state.get("scopes")
        return {"scopes": sorted(str(s) for s in scopes) if isinstance(scopes, list | set | tuple) else [],
                "expires_at": state.get("expires_at") if isinstance(state.get("expires_at"), str) else None}

    def plan(self, ctx: Context, prior: State | None, proposed: State | None, config: State | None) -> Plan:
        if proposed is None or config is None:
            return super().plan(ctx, prior, proposed, config)
        fixed = config.get("expires_at")
        if fixed is None:  # else Terraform would carry the prior (computed) expiry over
            proposed = {**proposed, "expires_at": None}
        elif prior is not None and same_instant(fixed, prior.get("expires_at")) == fixed:  # type: ignore[arg-type]
            # The same moment spelled otherwise (an import holds Token Vault's spelling): not a new expiry.
            prior = {**prior, "expires_at": fixed}
        result = super().plan(ctx, prior, proposed, config)
        planned = result.planned
        assert planned is not None
        planned["expires_at"] = fixed  # a rotation mints with the configured expiry: it stays known
        if isinstance(fixed, str) and (prior is None or isinstance(planned.get("id"), Unknown)):
            moment = parse_rfc3339(fixed)
            if moment is not None and moment <= ctx.now():
                # Checked here, not by a schema rule: "now" moves, and only a mint needs it.
                raise ConfigError("Invalid expires_at", f"expires_at {fixed} is not in the future, and a new key "
                                  "is minted with it (Token Vault answers INVALID_EXPIRY). Set a later expiry.",
                                  ("expires_at",))
        return result

    def refreshed_attributes(self, token: IssuedToken, state: State) -> State:
        scopes = token.extra.get("scopes")
        return {"scopes": sorted(scopes) if isinstance(scopes, tuple) else state.get("scopes")}  # drift shows

    def imported_attributes(self, token: IssuedToken) -> State:
        scopes = token.extra.get("scopes")
        return {"scopes": sorted(scopes) if isinstance(scopes, tuple) else None}
