"""tokendrop_entra_agent_blueprint: an agent identity blueprint and its blueprint principal, as one
resource (Graph creates them in two calls; the principal is what agent identities hang from).

Create makes the blueprint, then its principal; if the principal cannot be made (a missing permission,
Graph refusing), the blueprint is deleted again before the error is reported, so nothing is left
behind. The plan checks the application permissions both calls need from the provider's access token
(its `roles` claim), before anything is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError, IssuerError, TokendropError
from ..registry.entra import ISSUER as ENTRA
from .base import Context, Resource, State

if TYPE_CHECKING:
    from ..issuers.entra import EntraClient


def update_sponsors(client: EntraClient, object_id: str, prior: object, planned: object,
                    agent_identity: bool = False) -> None:
    """Add the new sponsors, then remove the old ones: Graph keeps at least one at all times."""
    before, after = set(prior or ()), set(planned or ())  # type: ignore[call-overload]
    for sponsor in sorted(after - before):
        client.add_sponsor(object_id, sponsor, agent_identity)
    for sponsor in sorted(before - after):
        client.remove_sponsor(object_id, sponsor, agent_identity)


def check_sponsor_change(ctx: Context, prior: State | None, planned: State) -> None:
    """A sponsor change needs Application.ReadWrite.All (Graph's sponsors collection): checked at plan."""
    from ..issuers.entra import ROLE_SPONSORS

    if prior is not None and set(prior.get("sponsors") or ()) != set(planned.get("sponsors") or ()):  # type: ignore[call-overload]
        check_roles(ctx, ROLE_SPONSORS, attribute="sponsors")


def check_roles(ctx: Context, *needed: tuple[str, ...], attribute: str) -> None:
    """Fail the plan when the provider's access token holds none of the permissions of a call."""
    ctx.clients.check(ENTRA)
    client: EntraClient = ctx.clients.of(ENTRA)
    missing = ctx.clients.memo(("entra-roles", needed), lambda: client.missing_roles(*needed))
    if missing:
        raise ConfigError("The provider's Entra app lacks a Microsoft Graph permission",
                          f"Its access token holds no {', '.join(missing)} application permission (or the "
                          "ReadWrite.All permission above it). Grant it to the app registration the provider signs "
                          "in as, with admin consent. Nothing was created.", (attribute,))


class EntraAgentBlueprint(Resource):
    schema = schema.ENTRA_AGENT_BLUEPRINT

    def client(self, ctx: Context) -> EntraClient:
        return ctx.clients.of(ENTRA)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        from ..issuers.entra import ROLE_CREATE_BLUEPRINT, ROLE_CREATE_PRINCIPAL

        ctx.clients.check(ENTRA)
        if prior is None:
            check_roles(ctx, ROLE_CREATE_BLUEPRINT, ROLE_CREATE_PRINCIPAL, attribute="display_name")
        check_sponsor_change(ctx, prior, planned)

    def create(self, ctx: Context, planned: State) -> State:
        client = self.client(ctx)
        blueprint = client.create_blueprint(str(planned["display_name"]), sorted(planned["sponsors"]),  # type: ignore[arg-type]
                                            sorted(planned.get("owners") or ()))  # type: ignore[arg-type]
        try:
            principal = client.create_blueprint_principal(blueprint.app_id)
        except TokendropError as err:
            try:
                client.delete_blueprint(blueprint.id)
            except IssuerError as cleanup:
                raise IssuerError(err.summary, f"{err.detail} The blueprint {blueprint.id} could not be deleted "
                                  f"again ({cleanup.summary}): delete it by hand.") from None
            raise type(err)(err.summary, f"{err.detail} The blueprint {blueprint.id} was deleted again: nothing "
                            "was left behind.", err.attribute) from None
        return {**planned, "id": blueprint.id, "app_id": blueprint.app_id, "principal_id": principal.id}

    def read(self, ctx: Context, state: State) -> State | None:
        client = self.client(ctx)
        blueprint = client.get_blueprint(str(state["id"]))
        if blueprint is None:
            return None
        return {**state, "display_name": blueprint.display_name, "app_id": blueprint.app_id}

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        client = self.client(ctx)
        if planned.get("display_name") != prior.get("display_name"):
            client.rename_blueprint(str(prior["id"]), str(planned["display_name"]))
        update_sponsors(client, str(prior["id"]), prior.get("sponsors"), planned.get("sponsors"))
        return dict(planned)

    def delete(self, ctx: Context, prior: State) -> None:
        client = self.client(ctx)
        if prior.get("principal_id"):
            client.delete_service_principal(str(prior["principal_id"]))
        client.delete_blueprint(str(prior["id"]))

    def import_state(self, ctx: Context, import_id: str) -> State:
        if not is_guid(import_id):
            raise ConfigError("Invalid import id", f"Expected the blueprint's object id (a GUID), got {import_id!r}.")
        client = self.client(ctx)
        blueprint = client.get_blueprint(import_id)
        if blueprint is None:
            raise ConfigError("Cannot import", f"No agent identity blueprint {import_id} is visible to the provider.")
        return {"id": blueprint.id, "display_name": blueprint.display_name, "app_id": blueprint.app_id,
                "sponsors": client.sponsors(blueprint.id), "owners": None, "principal_id": None}


def is_guid(value: str) -> bool:
    import re

    return re.fullmatch(schema.ENTRA_GUID, value) is not None
