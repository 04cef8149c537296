"""Buildkite: clusters and their agent tokens."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import BuildkiteSettings, Setting, Settings, SettingsGroup
from ..types import Unknown
from .base import AuditWalk, Issuer, StateAttributes, missing_setting, text

if TYPE_CHECKING:
    from ..issuers.buildkite import BuildkiteClient
    from ..resources.base import Resource

API_TOKEN = Setting("buildkite_api_token", "Buildkite API access token.", ("BUILDKITE_API_TOKEN",), sensitive=True)
ORGANIZATION = Setting("buildkite_organization", "Buildkite organization slug, for resources that set none.",
                       ("BUILDKITE_ORGANIZATION_SLUG", "BUILDKITE_ORGANIZATION"))
SETTINGS = SettingsGroup("buildkite", (
    Setting("buildkite_rest_url", "Buildkite REST API URL.", ("BUILDKITE_REST_URL",),
            default="https://api.buildkite.com"),
    API_TOKEN,
    ORGANIZATION,
), lambda v: BuildkiteSettings(rest_url=v["buildkite_rest_url"], api_token=v["buildkite_api_token"],
                               organization=v["buildkite_organization"]))


def _client(settings: BuildkiteSettings, cancel: threading.Event) -> BuildkiteClient:
    with IMPORT_LOCK:
        from ..issuers.buildkite import BuildkiteClient

    return BuildkiteClient(settings, cancel=cancel)


def _check(settings: BuildkiteSettings) -> ConfigError | None:
    return missing_setting("Missing Buildkite API token", API_TOKEN) if settings.api_token is None else None


def organization_slug(settings: BuildkiteSettings, organization: object) -> str | None:
    """The organization slug a resource uses: its own, else the provider's. None while the resource's
    value is unknown; an error when there is none or it is not a slug."""
    if isinstance(organization, Unknown):
        return None
    slug = organization if isinstance(organization, str) and organization else settings.organization
    if not slug:
        raise ConfigError("Missing Buildkite organization",
                          "Set organization on the resource, or buildkite_organization in the provider block "
                          "(or the BUILDKITE_ORGANIZATION_SLUG environment variable).", ("organization",))
    problem = schema.BUILDKITE_ORGANIZATION_RULE(slug)
    if problem:
        raise ConfigError("Invalid Buildkite organization", f"organization {slug!r} {problem}.", ("organization",))
    return slug


def _token_scope(attrs: StateAttributes, settings: Settings) -> str | None:
    # The plan records the provider's organization when the resource has none; old states may not.
    organization = text(attrs.get("organization")) or settings.buildkite.organization
    cluster = text(attrs.get("cluster_id"))
    return f"{organization}/{cluster}" if organization and cluster else None


def _cluster_scope(attrs: StateAttributes) -> tuple[str, str | None] | None:
    organization = text(attrs.get("organization"))
    return None if organization is None else (f"{organization}/{attrs['id']}", text(attrs.get("name")))


def _clusters(client: BuildkiteClient, organization: str) -> list[tuple[str, str | None]]:
    from ..issuers.buildkite import scope_of

    return [(scope_of(organization, cluster.id), cluster.name) for cluster in client.list_clusters(organization)]


def _resources() -> tuple[Resource, ...]:
    from ..resources.buildkite_cluster import BuildkiteCluster
    from ..resources.buildkite_cluster_token import BuildkiteClusterToken

    return BuildkiteCluster(), BuildkiteClusterToken()


ISSUER: Issuer[BuildkiteClient] = Issuer(
    name="buildkite", label="Buildkite", scope_label="cluster", settings=SETTINGS, client=_client,
    check=_check, resources=_resources,
    token_scopes={"tokendrop_buildkite_cluster_token": _token_scope},
    scope_resources={"tokendrop_buildkite_cluster": _cluster_scope},
    # expired ones too, so that a state token past its expiry reads "expired", not "revoked"
    list_tokens=lambda client, scope: client.list_tokens(scope, include_expired=True),
    audit_walk=AuditWalk(
        flag="--buildkite-organization", metavar="SLUG", source="buildkite_organization",
        what="Buildkite organization", help="also list every cluster of this Buildkite organization. Repeatable",
        scopes=_clusters,
        not_found="It does not exist, or this API token may not read its clusters (read_clusters scope)."),
)
