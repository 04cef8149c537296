"""HCP Terraform / Terraform Enterprise: agent pools and agent tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from tokendrop_provider import schema

from ._base import TokendropResource, TokenResource
from .sinks import Sink

Duration = timedelta | str
SinkArgument = Sink | Sequence[Sink] | Mapping[str, Any] | None


class TfeAgentToken(TokenResource):
    """An agent token of a pool (`TFC_AGENT_TOKEN`), minted and written straight into `deliver_to`;
    Terraform state only holds its id and the sink version. Prefer `TfeAgentPool.add_token`."""

    schema = schema.TFE_AGENT_TOKEN

    def __init__(self, scope: Any, id: str, *, agent_pool_id: str, deliver_to: SinkArgument,
                 description: str | None = None, rotate_every: Duration | None = None,
                 rotate_on: Mapping[str, str] | None = None, keep_previous_for: Duration | None = None,
                 adopt_existing: bool | None = None, revoke_previous_when: str | None = None,
                 previous_unused_for: Duration | None = None, **meta: Any) -> None:
        super().__init__(scope, id, agent_pool_id=agent_pool_id, deliver_to=deliver_to, description=description,
                         rotate_every=rotate_every, rotate_on=rotate_on, keep_previous_for=keep_previous_for,
                         adopt_existing=adopt_existing, revoke_previous_when=revoke_previous_when,
                         previous_unused_for=previous_unused_for, **meta)


class TfeAgentPool(TokendropResource):
    """An agent pool and the workspaces and projects allowed to use it."""

    schema = schema.TFE_AGENT_POOL

    def __init__(self, scope: Any, id: str, *, organization: str, name: str,
                 organization_scoped: bool | None = None, allowed_workspace_ids: Sequence[str] | None = None,
                 allowed_project_ids: Sequence[str] | None = None,
                 excluded_workspace_ids: Sequence[str] | None = None, **meta: Any) -> None:
        super().__init__(scope, id, organization=organization, name=name, organization_scoped=organization_scoped,
                         allowed_workspace_ids=allowed_workspace_ids, allowed_project_ids=allowed_project_ids,
                         excluded_workspace_ids=excluded_workspace_ids, **meta)

    @property
    def pool_id(self) -> str:
        """The pool's id (`apool-…`), a reference for outputs and other resources."""
        try:
            return self._tokendrop_pool_id
        except AttributeError:  # one jsii call, not one per token of the pool
            self._tokendrop_pool_id: str = self.get_string_attribute("id")
            return self._tokendrop_pool_id

    @property
    def created_at(self) -> str:
        return self.get_string_attribute("created_at")

    def add_token(self, id: str, *, deliver_to: SinkArgument, description: str | None = None,
                  rotate_every: Duration | None = None, rotate_on: Mapping[str, str] | None = None,
                  keep_previous_for: Duration | None = None, adopt_existing: bool | None = None,
                  revoke_previous_when: str | None = None, previous_unused_for: Duration | None = None,
                  **meta: Any) -> TfeAgentToken:
        """A token of this pool, as a child construct (`<pool path>/<id>`). `revoke_previous_when="unused"`
        revokes the previous token once HCP Terraform reports it unused for `previous_unused_for`."""
        return TfeAgentToken(self, id, agent_pool_id=self.pool_id, deliver_to=deliver_to, description=description,
                             rotate_every=rotate_every, rotate_on=rotate_on, keep_previous_for=keep_previous_for,
                             adopt_existing=adopt_existing, revoke_previous_when=revoke_previous_when,
                             previous_unused_for=previous_unused_for, **meta)
