"""tokendrop_entra_blueprint_password: a client secret of an agent identity blueprint (Graph
`addPassword`), with the lifecycle every token resource shares (resources/token.py, delivery.py).

The scope is the blueprint's object id, the token id is the password's `keyId`, and the marker that
finds orphans of a crashed run is in the password's `displayName`. Graph returns `secretText` once;
it goes straight to the sink beside `client_id`, `tenant_id` and `token_endpoint`, so an agent can run
the token flow from one read. Refresh reads the blueprint's `passwordCredentials`: a key id that is gone
(removed by hand, expired) plans a new password. Destroy is `removePassword`. Every plan that creates
or rotates one warns that Microsoft recommends federated credentials or certificates for production.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import schema
from ..delivery import Delivered, Target
from ..errors import ConfigError
from ..issuers.base import IssuedToken, MintedToken
from ..registry.entra import ISSUER as ENTRA
from ..registry.sinks import split_before_address
from ..secret import Secret
from ..sinks.base import Payload
from ..timestamps import format_rfc3339
from ..types import UNKNOWN, Unknown
from ..validation import parse_duration
from .base import Context, Path, State
from .entra_agent_blueprint import check_roles, is_guid
from .token import TokenResource

if TYPE_CHECKING:
    from ..issuers.entra import EntraClient

RECOMMENDATION = ("Microsoft advises against client secrets on agent identity blueprints in production: prefer "
                  "tokendrop_entra_blueprint_federated_credential (nothing secret exists) or a certificate.")


class BlueprintCredential(TokenResource):
    """What a blueprint's password and certificate resources share: the scope is the blueprint's object id,
    the delivery carries `client_id`, `tenant_id` and `token_endpoint` beside the secret, and one computed
    attribute (`shown`) repeats what Graph shows of the live credential."""

    scope_attribute = "blueprint_id"
    expiring = True  # every blueprint credential has an endDateTime
    shown: str  # the computed attribute, and its key in IssuedToken.extra

    def client(self, ctx: Context) -> EntraClient:
        return ctx.clients.of(ENTRA)

    def secret_fields(self, minted: MintedToken) -> dict[str, Secret | str]:
        """The secret part of the payload."""
        raise NotImplementedError

    def target(self, ctx: Context, state: Mapping[str, object]) -> Target:
        target = super().target(ctx, state)
        client, scope = self.client(ctx), str(state["blueprint_id"])

        def app_id() -> str:
            blueprint = client.get_blueprint(scope)
            return blueprint.app_id if blueprint is not None else ""

        # Read before the mint (cached per run), so that nothing can fail between the mint and the write.
        fields = {"client_id": ctx.clients.memo(("entra-app-id", scope), app_id),
                  "tenant_id": str(client.settings.tenant_id), "token_endpoint": client.token_endpoint}

        def payload(minted: MintedToken) -> Payload:
            return {**fields, **self.secret_fields(minted)}

        target.payload = payload
        return target

    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        from ..issuers.entra import ROLE_CREDENTIALS

        ctx.clients.check(ENTRA)
        check_roles(ctx, ROLE_CREDENTIALS, attribute="blueprint_id")
        scope = planned.get("blueprint_id")
        if isinstance(scope, str) and (prior is None or prior.get("blueprint_id") != scope):
            client = self.client(ctx)
            if ctx.clients.memo(("entra-blueprint", scope), lambda: client.get_blueprint(scope)) is None:
                raise ConfigError("Blueprint not found", f"No agent identity blueprint {scope} is visible to the "
                                  "provider.", ("blueprint_id",))

    def _state_after(self, planned: State, address: str, delivered: Delivered) -> State:
        state = super()._state_after(planned, address, delivered)
        state[self.shown] = delivered.token.extra.get(self.shown)
        return state

    def plan_update(self, ctx: Context, prior: State, planned: State, replace: list[Path]) -> None:
        super().plan_update(ctx, prior, planned, replace)
        if isinstance(planned.get("id"), Unknown):
            planned[self.shown] = UNKNOWN  # a rotation: the new credential's

    def refreshed_attributes(self, token: IssuedToken, state: State) -> State:
        return {self.shown: token.extra.get(self.shown) or state.get(self.shown)}

    def imported_attributes(self, token: IssuedToken) -> State:
        return {**super().imported_attributes(token), self.shown: token.extra.get(self.shown)}

    def parse_import_id(self, import_id: str) -> tuple[str, str | None, str]:
        head, address = split_before_address(import_id) or ("", "")
        blueprint, _, key_id = head.partition("/")
        if not address or not is_guid(blueprint) or (key_id and not is_guid(key_id)):
            raise ConfigError("Invalid import id", "Expected <blueprint object id>/<sink address> or <blueprint "
                              f"object id>/<key id>/<sink address>, got {import_id!r}.")
        return blueprint, key_id or None, address


class EntraBlueprintPassword(BlueprintCredential):
    schema = schema.ENTRA_BLUEPRINT_PASSWORD
    shown = "hint"

    def issuer(self, ctx: Context) -> EntraClient:
        return self.client(ctx)

    def secret_fields(self, minted: MintedToken) -> dict[str, Secret | str]:
        return {"client_secret": minted.value}

    def mint_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        valid_for = state.get("valid_for")
        if not isinstance(valid_for, str):
            return {}
        end = datetime.datetime.now(datetime.UTC) + parse_duration(valid_for)
        return {"end_date_time": format_rfc3339(end)}

    def plan_create(self, ctx: Context, planned: State) -> None:
        super().plan_create(ctx, planned)
        ctx.warn("A client secret is planned for an agent identity blueprint", RECOMMENDATION)
