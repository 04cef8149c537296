"""tokendrop_entra_agent_identity: an agent identity created from a blueprint. It holds no credential:
the blueprint obtains its tokens (docs/wire.md, "Tokens")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError
from ..registry.entra import ISSUER as ENTRA
from .base import Context, Resource, State
from .entra_agent_blueprint import check_roles, check_sponsor_change, is_guid, update_sponsors

if TYPE_CHECKING:
    from ..issuers.entra import EntraClient


class EntraAgentIdentity(Resource):
    schema = schema.ENTRA_AGENT_IDENTITY

    def client(self, ctx: Context) -> EntraClient:
        return ctx.clients.of(ENTRA)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        from ..issuers.entra import ROLE_CREATE_AGENT

        ctx.clients.check(ENTRA)
        if prior is None:
            check_roles(ctx, ROLE_CREATE_AGENT, attribute="blueprint_app_id")
        check_sponsor_change(ctx, prior, planned)

    def create(self, ctx: Context, planned: State) -> State:
        agent = self.client(ctx).create_agent_identity(str(planned["display_name"]), str(planned["blueprint_app_id"]),
                                                       sorted(planned["sponsors"]))  # type: ignore[arg-type]
        return {**planned, "id": agent.id, "app_id": agent.app_id}

    def read(self, ctx: Context, state: State) -> State | None:
        agent = self.client(ctx).get_service_principal(str(state["id"]))
        if agent is None:
            return None
        return {**state, "display_name": agent.display_name, "app_id": agent.app_id,
                "blueprint_app_id": agent.blueprint_app_id or state.get("blueprint_app_id")}

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        client = self.client(ctx)
        if planned.get("display_name") != prior.get("display_name"):
            client.rename_service_principal(str(prior["id"]), str(planned["display_name"]))
        update_sponsors(client, str(prior["id"]), prior.get("sponsors"), planned.get("sponsors"), agent_identity=True)
        return dict(planned)

    def delete(self, ctx: Context, prior: State) -> None:
        self.client(ctx).delete_service_principal(str(prior["id"]))

    def import_state(self, ctx: Context, import_id: str) -> State:
        if not is_guid(import_id):
            raise ConfigError("Invalid import id", f"Expected the agent identity's object id, got {import_id!r}.")
        client = self.client(ctx)
        agent = client.get_service_principal(import_id)
        if agent is None or agent.blueprint_app_id is None:
            raise ConfigError("Cannot import", f"No agent identity {import_id} is visible to the provider.")
        return {"id": agent.id, "app_id": agent.app_id, "display_name": agent.display_name,
                "blueprint_app_id": agent.blueprint_app_id, "sponsors": client.sponsors(agent.id, agent_identity=True)}
