"""tokendrop_buildkite_cluster: a Buildkite cluster (name, description, emoji, color)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError
from ..registry.buildkite import ISSUER as BUILDKITE
from ..registry.buildkite import organization_slug
from .base import Context, Resource, State

if TYPE_CHECKING:  # the client (and requests) load on first use, not at start-up
    from ..issuers.buildkite import BuildkiteClient, Cluster

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EDITABLE = ("description", "emoji", "color")


def resolve_organization(ctx: Context, planned: State) -> str | None:
    """Plan time, for both Buildkite resources: the API token is set and the organization is known
    (the resource's own, else the provider's, which the plan then records). None while unknown."""
    ctx.clients.check(BUILDKITE)
    organization = organization_slug(ctx.clients.settings.buildkite, planned.get("organization"))
    if organization is not None:
        planned["organization"] = organization
    return organization


class BuildkiteCluster(Resource):
    schema = schema.BUILDKITE_CLUSTER

    def client(self, ctx: Context) -> BuildkiteClient:
        return ctx.clients.of(BUILDKITE)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        organization = resolve_organization(ctx, planned)
        if organization is None or (prior is not None and prior.get("organization") == organization):
            return
        client = self.client(ctx)
        # One read per organization and plan: does it exist, and may this token see its clusters?
        if not ctx.clients.memo(("buildkite-org", organization), lambda: client.organization_visible(organization)):
            raise ConfigError("Organization not found",
                              f"Buildkite organization {organization!r} does not exist, or this API token cannot "
                              "see it.", ("organization",))

    def create(self, ctx: Context, planned: State) -> State:
        cluster = self.client(ctx).create_cluster(
            str(planned["organization"]), str(planned["name"]), description=planned.get("description"),  # type: ignore[arg-type]
            emoji=planned.get("emoji"), color=planned.get("color"))  # type: ignore[arg-type]
        return _state(cluster)

    def read(self, ctx: Context, state: State) -> State | None:
        # One listing per organization answers every cluster: Buildkite's 50 requests a minute make one
        # call per cluster costly.
        client, organization, cluster_id = self.client(ctx), str(state["organization"]), str(state["id"])
        cluster = ctx.from_listing(("buildkite-clusters", organization), lambda: client.list_clusters(organization),
                                   cluster_id)
        if cluster is None:
            cluster = client.get_cluster(organization, cluster_id)
        return None if cluster is None else _state(cluster)

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        cluster = self.client(ctx).update_cluster(
            str(prior["organization"]), str(prior["id"]), name=str(planned["name"]),
            **{name: planned.get(name) for name in _EDITABLE})  # type: ignore[arg-type]
        return _state(cluster)

    def delete(self, ctx: Context, prior: State) -> None:
        # Buildkite deletes the cluster's queues and tokens with it; the token resources that depend
        # on this cluster are destroyed first (they revoke their tokens and clean their sinks).
        self.client(ctx).delete_cluster(str(prior["organization"]), str(prior["id"]))

    def import_state(self, ctx: Context, import_id: str) -> State:
        organization, _, cluster_id = import_id.rpartition("/")
        if not _UUID.fullmatch(cluster_id) or "/" in organization:
            raise ConfigError("Invalid import id",
                              f"Expected a cluster UUID or <organization>/<cluster uuid>, got {import_id!r}.")
        organization = resolve_organization(ctx, {"organization": organization or None}) or ""
        cluster = self.client(ctx).get_cluster(organization, cluster_id)
        if cluster is None:
            raise ConfigError("Cannot import",
                              f"No cluster {cluster_id} in organization {organization!r} is visible to this API token.")
        return _state(cluster)


def _state(cluster: Cluster) -> State:
    state: State = {
        "id": cluster.id,
        "organization": cluster.organization,
        "name": cluster.name,
        "graphql_id": cluster.graphql_id,
        "default_queue_id": cluster.default_queue_id,
        "created_at": cluster.created_at,
    }
    # The client reads "" as None, so an unset field stays null in state (no diff).
    state.update({name: getattr(cluster, name) for name in _EDITABLE})
    return state
