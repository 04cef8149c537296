"""tokendrop_tfe_agent_token: an agent token of an HCP Terraform / TFE agent pool, delivered to a sink.

TFE cannot edit a token: a new description means a new token (a rotation). Tokens never expire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError
from ..registry.tfe import ISSUER as TFE
from .base import Context, State
from .token import TokenResource

if TYPE_CHECKING:
    from ..issuers.tfe import TfeClient


class TfeAgentToken(TokenResource):
    schema = schema.TFE_AGENT_TOKEN
    scope_attribute = "agent_pool_id"
    expiring = False

    def issuer(self, ctx: Context) -> TfeClient:
        return ctx.clients.of(TFE)

    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        ctx.clients.check(TFE)
        pool_id = planned.get("agent_pool_id")
        if not isinstance(pool_id, str) or (prior is not None and prior.get("agent_pool_id") == pool_id):
            return
        client = self.issuer(ctx)
        if not ctx.clients.memo(("tfe-pool", pool_id), lambda: client.get_agent_pool(pool_id) is not None):
            raise ConfigError("Agent pool not found",
                              f"{pool_id} does not exist, or this TFE token cannot see it.", ("agent_pool_id",))
