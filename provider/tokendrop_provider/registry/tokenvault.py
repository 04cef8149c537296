"""Token Vault: agents (each one agent key) and their grants."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import Setting, SettingsGroup, TokenVaultSettings
from .base import Issuer, missing_setting, text

if TYPE_CHECKING:
    from ..issuers.tokenvault import TokenVaultClient
    from ..resources.base import Resource

API_KEY = Setting("tokenvault_api_key", "Token Vault scoped API key (`tvkey_…`) with the scopes the configuration "
                  "needs (docs/wire.md, \"Token Vault\").", ("TOKENVAULT_API_KEY",), sensitive=True)
SETTINGS = SettingsGroup("tokenvault", (
    Setting("tokenvault_api_url", "Token Vault API URL.", ("TOKENVAULT_API_URL",), default="https://api.tokenvault.uk"),
    API_KEY,
), lambda v: TokenVaultSettings(api_url=v["tokenvault_api_url"], api_key=v["tokenvault_api_key"]))


def _client(settings: TokenVaultSettings, cancel: threading.Event) -> TokenVaultClient:
    with IMPORT_LOCK:
        from ..issuers.tokenvault import TokenVaultClient

    return TokenVaultClient(settings, cancel=cancel)


def _check(settings: TokenVaultSettings) -> ConfigError | None:
    return missing_setting("Missing Token Vault API key", API_KEY) if settings.api_key is None else None


def _resources() -> tuple[Resource, ...]:
    from ..resources.tokenvault_agent import TokenVaultAgent
    from ..resources.tokenvault_agent_grant import TokenVaultAgentGrant
    from ..resources.tokenvault_key import TokenVaultKey
    from ..resources.tokenvault_key_grant import TokenVaultKeyGrant

    return (TokenVaultAgent(), TokenVaultAgentGrant(), TokenVaultKey(), TokenVaultKeyGrant())


# Listed per account by the audit (one agent list, then a read per agent: the list has no descriptions).
ISSUER: Issuer[TokenVaultClient] = Issuer(
    name="tokenvault", label="Token Vault", scope_label="agent", settings=SETTINGS, client=_client,
    check=_check, resources=_resources,
    # A key's scope is its name too; the audit lists agents only (docs/tokenvault.md, "Limits").
    token_scopes={"tokendrop_tokenvault_agent": lambda attrs, _: text(attrs.get("name")),
                  "tokendrop_tokenvault_key": lambda attrs, _: text(attrs.get("name"))},
    # Grants hold no token and name no scope the audit lists: known to the registry, skipped by the audit.
    scope_resources={"tokendrop_tokenvault_agent_grant": lambda _attrs: None,
                     "tokendrop_tokenvault_key_grant": lambda _attrs: None},
)
