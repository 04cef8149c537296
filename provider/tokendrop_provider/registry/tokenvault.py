"""Token Vault: agents (each one agent key) and their grants; scoped keys and their grants.

Two entries on one settings group: agents and scoped keys are different tokens of one account (their
markers, ownership records, listing caches and audit listings are kept apart by `kind`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import Setting, SettingsGroup, TokenVaultSettings
from .base import AuditWalk, Fanout, Issuer, missing_setting, text

if TYPE_CHECKING:
    from ..issuers.base import IssuedToken
    from ..issuers.tokenvault import TokenVaultClient, TokenVaultKeys
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


def _keys_client(settings: TokenVaultSettings, cancel: threading.Event) -> TokenVaultKeys:
    with IMPORT_LOCK:
        from ..issuers.tokenvault import TokenVaultKeys

    return TokenVaultKeys(_client(settings, cancel))


def _check(settings: TokenVaultSettings) -> ConfigError | None:
    return missing_setting("Missing Token Vault API key", API_KEY) if settings.api_key is None else None


def _resources() -> tuple[Resource, ...]:
    from ..resources.tokenvault_agent import TokenVaultAgent
    from ..resources.tokenvault_agent_grant import TokenVaultAgentGrant

    return (TokenVaultAgent(), TokenVaultAgentGrant())


def _key_resources() -> tuple[Resource, ...]:
    from ..resources.tokenvault_key import TokenVaultKey
    from ..resources.tokenvault_key_grant import TokenVaultKeyGrant

    return (TokenVaultKey(), TokenVaultKeyGrant())


def _list_account(client: TokenVaultClient, names: set[str], walk_all: bool,
                  fanout: Fanout) -> Mapping[str, Mapping[str, IssuedToken]]:
    """The audit's listing: a scope is an agent name. One agent list, then one read per agent of
    interest (the list carries no descriptions, which carry the markers)."""
    summaries = [s for s in client.list_agents() if walk_all or s.name in names]
    found = fanout("reading Token Vault agents", summaries, lambda s: client.lookup(s.name, s.id),
                   lambda s: f"tokenvault {s.name}")
    by_name: dict[str, dict[str, IssuedToken]] = {name: {} for name in names}
    for token in found:
        if token is not None:  # deleted between the list and the read
            by_name.setdefault(token.scope, {})[token.id] = token
    return by_name


ISSUER: Issuer[TokenVaultClient] = Issuer(
    name="tokenvault", label="Token Vault", scope_label="agent", settings=SETTINGS, client=_client,
    check=_check, resources=_resources,
    token_scopes={"tokendrop_tokenvault_agent": lambda attrs, _: text(attrs.get("name"))},
    list_account=_list_account,
    audit_walk=AuditWalk(flag="--tokenvault", source="tokenvault_account",
                         help="also list every agent of the Token Vault account",
                         switch_source=lambda settings: settings.api_url),
    # Grants hold no token and name no scope the audit lists: known to the registry, skipped by the audit.
    scope_resources={"tokendrop_tokenvault_agent_grant": lambda _attrs: None},
)

# Scoped keys: a key's scope is its configured name; one GET /api/keys lists them all (with markers).
KEYS: Issuer[TokenVaultKeys] = Issuer(
    name="tokenvault_key", label="Token Vault keys", scope_label="key name", settings=SETTINGS,
    client=_keys_client, check=_check, resources=_key_resources,
    token_scopes={"tokendrop_tokenvault_key": lambda attrs, _: text(attrs.get("name"))},
    scope_resources={"tokendrop_tokenvault_key_grant": lambda _attrs: None},
    list_tokens=lambda client, scope: client.list_tokens(scope),
    reports_last_use=True,  # GET /api/keys carries lastUsedAt (docs/wire.md, "Token Vault")
)
