"""Buildkite: clusters and cluster agent tokens (allowed IPs, expiry), delivered to SSM or Vault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tokendrop_provider import schema

from ._base import TokendropResource, TokenResource
from .tfe import Duration, SinkArgument


def _timestamp(value: datetime | str | None) -> str | None:
    """An expiry as the provider takes it (RFC 3339); naive datetimes are refused, not guessed."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("expires_at needs a time zone (e.g. datetime(..., tzinfo=timezone.utc))")
    return value.isoformat().replace("+00:00", "Z")


class BuildkiteClusterToken(TokenResource):
    """A cluster agent token, minted and written straight into `deliver_to` (for the Elastic CI Stack,
    an SSM parameter named by `BuildkiteAgentTokenParameterStorePath`). Description and allowed IPs
    change in place; the expiry is fixed at mint time, so changing it replaces the token. Prefer
    `BuildkiteCluster.add_agent_token`."""

    schema = schema.BUILDKITE_CLUSTER_TOKEN

    def __init__(self, scope: Any, id: str, *, cluster_id: str, description: str, deliver_to: SinkArgument,
                 organization: str | None = None, allowed_ip_addresses: Sequence[str] | None = None,
                 expires_in: Duration | None = None, expires_at: datetime | str | None = None,
                 rotate_before_expiry: Duration | None = None, rotate_every: Duration | None = None,
                 rotate_on: Mapping[str, str] | None = None, keep_previous_for: Duration | None = None,
                 adopt_existing: bool | None = None, **meta: Any) -> None:
        super().__init__(scope, id, organization=organization, cluster_id=cluster_id, description=description,
                         allowed_ip_addresses=allowed_ip_addresses, expires_in=expires_in,
                         expires_at=_timestamp(expires_at), rotate_before_expiry=rotate_before_expiry,
                         deliver_to=deliver_to, rotate_every=rotate_every, rotate_on=rotate_on,
                         keep_previous_for=keep_previous_for, adopt_existing=adopt_existing, **meta)


class BuildkiteCluster(TokendropResource):
    """A Buildkite cluster (its queues and agents are managed elsewhere)."""

    schema = schema.BUILDKITE_CLUSTER

    def __init__(self, scope: Any, id: str, *, name: str, organization: str | None = None,
                 description: str | None = None, emoji: str | None = None, color: str | None = None,
                 **meta: Any) -> None:
        self._tokendrop_organization = organization
        super().__init__(scope, id, organization=organization, name=name, description=description, emoji=emoji,
                         color=color, **meta)

    @property
    def cluster_id(self) -> str:
        """The cluster's UUID, a reference for outputs and other resources."""
        try:
            return self._tokendrop_cluster_id
        except AttributeError:  # one jsii call, not one per token of the cluster
            self._tokendrop_cluster_id: str = self.get_string_attribute("id")
            return self._tokendrop_cluster_id

    @property
    def graphql_id(self) -> str:
        return self.get_string_attribute("graphql_id")

    def add_agent_token(self, id: str, *, description: str, deliver_to: SinkArgument,
                        allowed_ip_addresses: Sequence[str] | None = None, expires_in: Duration | None = None,
                        expires_at: datetime | str | None = None, rotate_before_expiry: Duration | None = None,
                        rotate_every: Duration | None = None, rotate_on: Mapping[str, str] | None = None,
                        keep_previous_for: Duration | None = None, adopt_existing: bool | None = None,
                        **meta: Any) -> BuildkiteClusterToken:
        """An agent token of this cluster, as a child construct (`<cluster path>/<id>`)."""
        return BuildkiteClusterToken(
            self, id, organization=self._tokendrop_organization, cluster_id=self.cluster_id,
            description=description, deliver_to=deliver_to, allowed_ip_addresses=allowed_ip_addresses,
            expires_in=expires_in, expires_at=expires_at, rotate_before_expiry=rotate_before_expiry,
            rotate_every=rotate_every, rotate_on=rotate_on, keep_previous_for=keep_previous_for,
            adopt_existing=adopt_existing, **meta)
