"""tokendrop_tokenvault_agent_grant: one service granted to a Token Vault agent.

Create: POST /api/agents/{id}/grants with exactly the CLI's body ({agentId, serviceName}; the route
takes no expiry and no refresh policy, docs/wire.md "Token Vault"), then state is what the agent's
record reports (`TokenVaultClient.add_grant` reads it back). A 409 means the agent already holds the
grant (an earlier apply that crashed after the POST, or the dashboard): it is adopted, with a warning,
since a grant carries nothing that tells two granters apart.

Read: GET /api/agents/{id}. A missing agent or grant (revoked, expired) is gone: the plan grants it
again. Destroy: DELETE /api/agents/{id}/grants/{service}; already gone counts as done.

Inline `grants` on tokendrop_tokenvault_agent stay supported (docs/tokenvault.md says why): an agent
whose `grants` is unset never touches grants, so the two forms work side by side on different agents;
on one agent, inline `grants` are authoritative and would revoke these (the constructs refuse that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError, IssuerValidationError
from ..registry.tokenvault import ISSUER as TOKENVAULT
from .base import Context, Resource, State

if TYPE_CHECKING:
    from ..issuers.tokenvault import Grant, TokenVaultClient

READ_SCOPES = ["agents:read"]
WRITE_SCOPES = ["agents:read", "grants:write"]


class TokenVaultAgentGrant(Resource):
    schema = schema.TOKENVAULT_AGENT_GRANT

    def client(self, ctx: Context) -> TokenVaultClient:
        return ctx.clients.of(TOKENVAULT)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        ctx.clients.check(TOKENVAULT)
        client = self.client(ctx)
        agent_id = planned.get("agent_id")
        changed = prior is None or prior.get("service") != planned.get("service") or prior.get("agent_id") != agent_id
        # A new grant needs grants:write (so does the revoke of a replaced one); reading needs agents:read.
        client.require_scopes(WRITE_SCOPES if changed else READ_SCOPES, "tokendrop_tokenvault_agent_grant")
        # A known agent id (not an agent created in the same apply) must name an agent.
        if changed and isinstance(agent_id, str) and ctx.clients.memo(
                ("tokenvault-agent", agent_id), lambda: client.get_agent(agent_id)) is None:
            raise ConfigError("Agent not found", f"Token Vault has no agent {agent_id!r} visible to this API key.",
                              ("agent_id",))

    def create(self, ctx: Context, planned: State) -> State:
        client = self.client(ctx)
        agent_id, service = str(planned["agent_id"]), str(planned["service"])
        try:
            grant = client.add_grant(agent_id, service)
        except IssuerValidationError as err:
            if err.status != 409:
                raise
            grant = self._held(client, agent_id, service)
            if grant is None:
                raise
            ctx.warn(f"Agent {agent_id} already held a grant for {service!r}",
                     "It was adopted as it is (granted by an earlier apply that did not finish, or in the dashboard); "
                     "state shows the refresh policy and expiry Token Vault reports for it.")
        return _state(agent_id, grant)

    def read(self, ctx: Context, state: State) -> State | None:
        agent_id, service = str(state["agent_id"]), str(state["service"])
        grant = self._held(self.client(ctx), agent_id, service)
        if grant is None:
            ctx.warn(f"Grant {service!r} of Token Vault agent {agent_id} ended",
                     "Expired or revoked outside Terraform (or the agent is gone): the next apply grants it again.")
            return None
        return _state(agent_id, grant)

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        return dict(prior)  # every argument replaces; the computed ones follow refresh

    def delete(self, ctx: Context, prior: State) -> None:
        # False (404) when the grant or the whole agent is already gone: nothing left to revoke.
        self.client(ctx).remove_grant(str(prior["agent_id"]), str(prior["service"]))

    def import_state(self, ctx: Context, import_id: str) -> State:
        agent_id, _, service = import_id.partition("/")
        if not agent_id or not service or "/" in service:
            raise ConfigError("Invalid import id", f"Expected <agent id>/<service>, got {import_id!r}.")
        grant = self._held(self.client(ctx), agent_id, service)
        if grant is None:
            raise ConfigError("Cannot import", f"Token Vault agent {agent_id} holds no live grant for {service!r}.")
        return _state(agent_id, grant)

    @staticmethod
    def _held(client: TokenVaultClient, agent_id: str, service: str) -> Grant | None:
        agent = client.get_agent(agent_id)
        return next((g for g in agent.grants if g.service == service), None) if agent is not None else None


def _state(agent_id: str, grant: Grant) -> State:
    return {"id": f"{agent_id}/{grant.service}", "agent_id": agent_id, "service": grant.service,
            "auto_refresh": grant.auto_refresh, "expires_at": grant.expires_at}
