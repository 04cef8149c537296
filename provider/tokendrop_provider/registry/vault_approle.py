"""Vault AppRole: secret ids of a role. Connection settings are Vault's (registry/vault_kv.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import AuditWalk, Issuer, StateAttributes, text
from .vault_kv import SETTINGS, check_vault

if TYPE_CHECKING:
    import threading

    from ..issuers.vault_approle import VaultAppRoleIssuer
    from ..resources.base import Resource
    from ..settings import Settings, VaultSettings


def _client(settings: VaultSettings, cancel: threading.Event) -> VaultAppRoleIssuer:
    # Vault calls cannot be cancelled; each is short and bounded by the client's timeout.
    from ..lazy import IMPORT_LOCK

    with IMPORT_LOCK:
        from ..issuers.vault_approle import VaultAppRoleIssuer

    return VaultAppRoleIssuer(settings)


def _resources() -> tuple[Resource, ...]:
    from ..resources.vault_approle_secret_id import VaultAppRoleSecretId

    return (VaultAppRoleSecretId(),)


def _scope(attrs: StateAttributes, _settings: Settings) -> str | None:
    role = text(attrs.get("role_name"))
    return f"{text(attrs.get('mount')) or 'approle'}/{role}" if role else None


def _walked_role(value: str) -> str:
    from ..issuers.vault_approle import split_scope

    try:
        mount, name = split_scope(value.strip("/"))
    except ConfigError:
        raise ConfigError("Invalid AppRole role", "give the role as <mount>/<role name>, e.g. approle/ci") from None
    return f"{mount}/{name}"


ISSUER: Issuer[VaultAppRoleIssuer] = Issuer(
    name="vault-approle", label="Vault AppRole", scope_label="AppRole role", settings=SETTINGS, client=_client,
    check=lambda vault: check_vault(vault, "tokendrop_vault_approle_secret_id (the issuing Vault)"),
    resources=_resources,
    token_scopes={"tokendrop_vault_approle_secret_id": _scope},
    list_tokens=lambda client, scope: client.list_tokens(scope),
    libraries=("requests",),
    audit_walk=AuditWalk(
        flag="--approle-role", metavar="MOUNT/ROLE", source="approle_role", scope=_walked_role,
        help="also list the secret ids of this AppRole role, e.g. approle/ci. Repeatable"),
)
