"""The benchmark's peer: a minimal provider with tokendrop's TFE pool and token schemas, written with the
PyPI `tf` framework (requirements/bench.txt, in its own environment: it needs protobuf < 6). It calls
no API: create makes ids, read returns the state as it is. Its plan times are the cost of another
Python implementation of the plugin protocol, the floor our per-call cost is compared with.

`tf` 1.2.0 has no single nested attribute, so the token's `deliver_to = { ssm = { name = ... } }`
becomes a flat `ssm_name`; every other attribute has tokendrop's name and type.

Usage: python bench/peer_provider.py   (as Terraform launches it; see bench/peer.py)
"""

from __future__ import annotations

import secrets

from tf import schema, types
from tf.iface import Config, CreateContext, DeleteContext, ReadContext, State, UpdateContext
from tf.provider import DataSource, Diagnostics, Provider, Resource
from tf.runner import run_provider


class PeerProvider(Provider):
    def full_name(self) -> str:
        return "registry.terraform.io/bench/tokendrop"

    def get_model_prefix(self) -> str:
        return "tokendrop_"

    def get_provider_schema(self, diags: Diagnostics) -> schema.Schema:
        return schema.Schema(attributes=[])

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        pass

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        pass

    def get_data_sources(self) -> list[type[DataSource]]:
        return []

    def get_resources(self) -> list[type[Resource]]:
        return [AgentPool, AgentToken]


class _Stored(Resource):
    """Create fills the computed attributes; read, update and delete change nothing."""

    computed: dict[str, object] = {}

    def __init__(self, provider: PeerProvider) -> None:
        self.provider = provider

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return {**planned, **self.computed, "id": f"{self.get_name()}-{secrets.token_hex(8)}",
                "created_at": "2026-12-01T00:00:00Z"}

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return current

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return planned

    def delete(self, ctx: DeleteContext, current: State) -> None:
        return None


class AgentPool(_Stored):
    computed = {"organization_scoped": True}

    @classmethod
    def get_name(cls) -> str:
        return "tfe_agent_pool"

    @classmethod
    def get_schema(cls) -> schema.Schema:
        strings = types.Set(types.String())
        return schema.Schema(attributes=[
            schema.Attribute("id", types.String(), computed=True),
            schema.Attribute("organization", types.String(), required=True, requires_replace=True),
            schema.Attribute("name", types.String(), required=True),
            schema.Attribute("organization_scoped", types.Bool(), optional=True, computed=True),
            schema.Attribute("allowed_workspace_ids", strings, optional=True),
            schema.Attribute("allowed_project_ids", strings, optional=True),
            schema.Attribute("excluded_workspace_ids", strings, optional=True),
            schema.Attribute("created_at", types.String(), computed=True),
        ])


class AgentToken(_Stored):
    computed = {"adopt_existing": False, "sink_version": 1, "sink_status": "delivered", "expires_at": None,
                "previous_token_id": None, "previous_revoke_after": None}

    @classmethod
    def get_name(cls) -> str:
        return "tfe_agent_token"

    @classmethod
    def get_schema(cls) -> schema.Schema:
        return schema.Schema(attributes=[
            schema.Attribute("agent_pool_id", types.String(), required=True, requires_replace=True),
            schema.Attribute("description", types.String(), optional=True),
            schema.Attribute("ssm_name", types.String(), required=True, requires_replace=True),
            schema.Attribute("rotate_every", types.String(), optional=True),
            schema.Attribute("rotate_on", types.Map(types.String()), optional=True),
            schema.Attribute("keep_previous_for", types.String(), optional=True),
            schema.Attribute("adopt_existing", types.Bool(), optional=True, computed=True),
            schema.Attribute("id", types.String(), computed=True),
            schema.Attribute("sink_address", types.String(), computed=True),
            schema.Attribute("sink_version", types.Number(), computed=True),
            schema.Attribute("sink_status", types.String(), computed=True),
            schema.Attribute("created_at", types.String(), computed=True),
            schema.Attribute("expires_at", types.String(), computed=True),
            schema.Attribute("previous_token_id", types.String(), computed=True),
            schema.Attribute("previous_revoke_after", types.String(), computed=True),
        ])

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return {**super().create(ctx, planned), "sink_address": f"ssm:{planned['ssm_name']}"}


if __name__ == "__main__":
    run_provider(PeerProvider())
