"""tokendrop_tfe_agent_token: an agent token of an HCP Terraform / TFE agent pool, delivered to a sink.

TFE cannot edit a token: a new description means a new token (a rotation). Tokens never expire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from .base import Context
from .token import TokenResource

if TYPE_CHECKING:
    from ..issuers.tfe import TfeClient


class TfeAgentToken(TokenResource):
    schema = schema.TFE_AGENT_TOKEN
    scope_attribute = "agent_pool_id"
    expiring = False

    def issuer(self, ctx: Context) -> TfeClient:
        return ctx.provider.tfe()
