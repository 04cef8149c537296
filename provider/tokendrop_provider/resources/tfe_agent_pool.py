"""tokendrop_tfe_agent_pool: an HCP Terraform / TFE agent pool and its workspace and project scope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError, IssuerNotFound
from ..registry.tfe import ISSUER as TFE
from .base import Context, Resource, State

if TYPE_CHECKING:  # the client (and requests) load on first use, not at start-up
    from ..issuers.tfe import AgentPool, TfeClient


class TfeAgentPool(Resource):
    schema = schema.TFE_AGENT_POOL

    def client(self, ctx: Context) -> TfeClient:
        return ctx.clients.of(TFE)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        ctx.clients.check(TFE)
        organization, name = planned.get("organization"), planned.get("name")
        if not isinstance(organization, str) or not isinstance(name, str):
            return
        if prior is not None and prior.get("name") == name:
            return
        client = self.client(ctx)
        try:
            pools = ctx.clients.memo(("tfe-pools", organization), lambda: client.list_agent_pools(organization))
        except IssuerNotFound:
            raise ConfigError("Organization not found",
                              f"Organization {organization!r} does not exist, has no agents entitlement, or this "
                              "TFE token cannot see it.", ("organization",)) from None
        taken = next((p for p in pools if p.name == name and p.id != (prior or {}).get("id")), None)
        if taken is not None:
            raise ConfigError("Agent pool name already taken",
                              f"Organization {organization!r} already has an agent pool named {name!r} ({taken.id}). "
                              f"Choose another name, or import it: terraform import <address> {taken.id}",
                              ("name",))

    def create(self, ctx: Context, planned: State) -> State:
        pool = self.client(ctx).create_agent_pool(
            str(planned["organization"]), str(planned["name"]), bool(planned["organization_scoped"]),
            **_scope_ids(planned))
        return _state(pool, planned)

    def read(self, ctx: Context, state: State) -> State | None:
        # One listing per organization answers every pool (the listing the plan's name check uses too).
        client, organization = self.client(ctx), state.get("organization")
        pool = None
        if isinstance(organization, str):
            pool = ctx.from_listing(("tfe-pools", organization), lambda: client.list_agent_pools(organization),
                                    state["id"])
        if pool is None:
            pool = client.get_agent_pool(str(state["id"]))
        return None if pool is None else _state(pool, state)

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        pool = self.client(ctx).update_agent_pool(
            str(prior["id"]), name=str(planned["name"]), organization_scoped=bool(planned["organization_scoped"]),
            **_scope_ids(planned))
        return _state(pool, planned)

    def delete(self, ctx: Context, prior: State) -> None:
        # TFE revokes the pool's tokens with it; the token resources that depend on this pool are
        # destroyed first (they revoke their tokens and clean their sinks).
        self.client(ctx).delete_agent_pool(str(prior["id"]))

    def import_state(self, ctx: Context, import_id: str) -> State:
        organization, _, name = import_id.partition("/")
        if not import_id.startswith("apool-") and not (organization and name):
            raise ConfigError("Invalid import id",
                              f"Expected an agent pool id (apool-…) or <organization>/<pool name>, got {import_id!r}.")
        client = self.client(ctx)
        if import_id.startswith("apool-"):
            pool = client.get_agent_pool(import_id)
        else:
            pool = client.get_agent_pool_by_name(organization, name)
        if pool is None:
            raise ConfigError("Cannot import", f"No agent pool {import_id!r} is visible to this TFE token.")
        empty: State = {"allowed_workspace_ids": None, "allowed_project_ids": None, "excluded_workspace_ids": None}
        return _state(pool, empty)


_SCOPE_ATTRS = ("allowed_workspace_ids", "allowed_project_ids", "excluded_workspace_ids")


def _scope_ids(state: State) -> dict[str, Sequence[str]]:
    return {name: sorted(state.get(name) or ()) for name in _SCOPE_ATTRS}  # type: ignore[arg-type]


def _state(pool: AgentPool, previous: State) -> State:
    state: State = {
        "id": pool.id,
        "organization": pool.organization or previous.get("organization"),
        "name": pool.name,
        "organization_scoped": pool.organization_scoped,
        "created_at": pool.created_at,
    }
    for name in _SCOPE_ATTRS:
        ids = sorted(getattr(pool, name))
        # An unset list and an empty one mean the same to TFE; keep the user's spelling (no diff).
        state[name] = ids if ids or previous.get(name) is not None else None
    return state
