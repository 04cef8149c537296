"""tokendrop_tokenvault_key_grant: one service granted to a scoped key, for 1h-30d or until revoked.

Create: POST /api/keys/{id}/grants {serviceName, expiresInHours?} (the route where a grant expiry
exists, docs/wire.md "Token Vault"); state is Token Vault's answer (`grantExpiresAt`, `refreshPolicy`).
Read: GET /api/keys/{id} (`grants`); a grant that expired or was revoked is gone, and the plan grants
it again for `expires_in` from then. A 409 (the key already holds a live grant for the service: an
earlier apply that crashed after the POST) is adopted only when its expiry fits `expires_in`; a grant
with another expiry is revoked and granted as configured. Destroy: DELETE .../grants/{service}.

Scopes of the provider's key, checked at plan: keys:manage (reading the key) and grants:write.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError, IssuerValidationError
from ..registry.tokenvault import KEYS
from ..timestamps import parse_rfc3339
from ..validation import parse_duration
from .base import Context, Resource, State

if TYPE_CHECKING:
    from ..issuers.tokenvault import Grant, TokenVaultClient

READ_SCOPES = ["keys:manage"]
WRITE_SCOPES = ["keys:manage", "grants:write"]
_ADOPT_SLACK = timedelta(minutes=10)  # an adopted grant's expiry may lie this much before now + expires_in


class TokenVaultKeyGrant(Resource):
    schema = schema.TOKENVAULT_KEY_GRANT

    def client(self, ctx: Context) -> TokenVaultClient:
        return ctx.clients.of(KEYS).client

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        ctx.clients.check(KEYS)
        client = self.client(ctx)
        key_id = planned.get("key_id")
        changed = prior is None or any(prior.get(n) != planned.get(n) for n in ("key_id", "service", "expires_in"))
        client.require_scopes(WRITE_SCOPES if changed else READ_SCOPES, "tokendrop_tokenvault_key_grant")
        # A known key id (not a key minted in the same apply) must name a key.
        if changed and isinstance(key_id, str) and ctx.clients.memo(
                ("tokenvault-key", key_id), lambda: client.get_key(key_id)) is None:
            raise ConfigError("Key not found", f"Token Vault has no key {key_id!r} visible to this API key.",
                              ("key_id",))

    def create(self, ctx: Context, planned: State) -> State:
        client = self.client(ctx)
        key_id, service = str(planned["key_id"]), str(planned["service"])
        hours = _hours(planned.get("expires_in"))
        try:
            grant = client.grant_key(key_id, service, expires_in_hours=hours)
        except IssuerValidationError as err:
            if err.status != 409:
                raise
            held = _held(client, key_id, service, ctx)
            if held is not None and _fits(held, hours, ctx):
                ctx.warn(f"Key {key_id} already held a grant for {service!r}",
                         "It was adopted (granted by an earlier apply that did not finish); its expiry fits "
                         "expires_in.")
                return _state(planned, held)
            client.ungrant_key(key_id, service)  # another expiry than configured: grant it anew
            grant = client.grant_key(key_id, service, expires_in_hours=hours)
        return _state(planned, grant)

    def read(self, ctx: Context, state: State) -> State | None:
        key_id, service = str(state["key_id"]), str(state["service"])
        held = _held(self.client(ctx), key_id, service, ctx)
        if held is None:
            ctx.warn(f"Grant {service!r} of Token Vault key {key_id} ended",
                     "Expired or revoked (or the key is gone): the next apply grants it again for expires_in from "
                     "then. Remove the resource to let it lapse.")
            return None
        return _state(state, held)

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        return dict(prior)  # every argument replaces; the computed ones follow refresh

    def delete(self, ctx: Context, prior: State) -> None:
        self.client(ctx).ungrant_key(str(prior["key_id"]), str(prior["service"]))  # gone already: done

    def import_state(self, ctx: Context, import_id: str) -> State:
        key_id, _, service = import_id.partition("/")
        if not key_id or not service or "/" in service:
            raise ConfigError("Invalid import id", f"Expected <key id>/<service>, got {import_id!r}.")
        held = _held(self.client(ctx), key_id, service, ctx)
        if held is None:
            raise ConfigError("Cannot import", f"Token Vault key {key_id} holds no live grant for {service!r}.")
        return _state({"key_id": key_id, "service": service, "expires_in": None}, held)


def _hours(expires_in: object) -> int | None:
    return int(parse_duration(expires_in).total_seconds() // 3600) if isinstance(expires_in, str) else None


def _held(client: TokenVaultClient, key_id: str, service: str, ctx: Context) -> Grant | None:
    key = client.get_key(key_id)
    found = next((g for g in key.grants if g.service == service), None) if key is not None else None
    return None if found is None or found.expired(ctx.now()) else found


def _fits(grant: Grant, hours: int | None, ctx: Context) -> bool:
    if hours is None:
        return grant.expires_at is None
    ends = parse_rfc3339(grant.expires_at)
    return ends is not None and ctx.now() + timedelta(hours=hours) - _ADOPT_SLACK <= ends <= ctx.now() + timedelta(
        hours=hours)


def _state(base: State, grant: Grant) -> State:
    return {"id": f"{base['key_id']}/{grant.service}", "key_id": base["key_id"], "service": grant.service,
            "expires_in": base.get("expires_in"), "expires_at": grant.expires_at, "auto_refresh": grant.auto_refresh}
