"""HCP Terraform / TFE: agent pools and their agent tokens."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import Setting, SettingsGroup, TfeSettings
from .base import AuditWalk, Issuer, missing_setting, text

if TYPE_CHECKING:
    from ..issuers.tfe import TfeClient
    from ..resources.base import Resource

TOKEN = Setting("tfe_token", "HCP Terraform / TFE API token.", ("TFE_TOKEN",), sensitive=True)
SETTINGS = SettingsGroup("tfe", (
    Setting("tfe_address", "HCP Terraform / TFE address.", ("TFE_ADDRESS", "TFE_HOSTNAME"),
            default="https://app.terraform.io"),
    TOKEN,
), lambda v: TfeSettings(address=v["tfe_address"], token=v["tfe_token"]))


def _client(settings: TfeSettings, cancel: threading.Event) -> TfeClient:
    with IMPORT_LOCK:
        from ..issuers.tfe import TfeClient

    return TfeClient(settings, cancel=cancel)


def _check(settings: TfeSettings) -> ConfigError | None:
    return missing_setting("Missing TFE token", TOKEN) if settings.token is None else None


def _resources() -> tuple[Resource, ...]:
    from ..resources.tfe_agent_pool import TfeAgentPool
    from ..resources.tfe_agent_token import TfeAgentToken

    return TfeAgentPool(), TfeAgentToken()


def _pools(client: TfeClient, organization: str) -> list[tuple[str, str | None]]:
    return [(pool.id, pool.name) for pool in client.list_agent_pools(organization)]


ISSUER: Issuer[TfeClient] = Issuer(
    name="tfe", label="HCP Terraform / TFE", scope_label="agent pool", settings=SETTINGS, client=_client,
    check=_check, resources=_resources,
    token_scopes={"tokendrop_tfe_agent_token": lambda attrs, _: text(attrs.get("agent_pool_id"))},
    scope_resources={"tokendrop_tfe_agent_pool": lambda attrs: (attrs["id"], text(attrs.get("name")))},
    list_tokens=lambda client, scope: client.list_tokens(scope),
    reports_last_use=True,
    audit_walk=AuditWalk(
        flag="--tfe-organization", metavar="ORG", source="tfe_organization", what="TFE organization",
        help="also list every agent pool of this TFE / HCP Terraform organization. Repeatable", scopes=_pools,
        not_found="It does not exist, this TFE token may not see it, or it has no agents entitlement "
                  "(TFE answers 404 for all three)."),
)
