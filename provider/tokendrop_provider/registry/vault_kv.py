"""Vault: the connection settings (shared with the AppRole issuer) and the KV v2 sink."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import schema
from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import Setting, Settings, SettingsGroup, VaultSettings
from .base import SinkKind, missing_setting

if TYPE_CHECKING:
    from ..sinks.vault_kv import VaultKvSink

ADDRESS = Setting("vault_address", "Vault address.", ("VAULT_ADDR",))
TOKEN = Setting("vault_token", "Vault token.", ("VAULT_TOKEN",), sensitive=True)
SETTINGS = SettingsGroup("vault", (
    ADDRESS,
    TOKEN,
    Setting("vault_namespace", "Vault Enterprise namespace.", ("VAULT_NAMESPACE",)),
    Setting("vault_approle_role_id", "Log in to Vault with this AppRole role id (with `vault_approle_secret_id`).",
            ("VAULT_APPROLE_ROLE_ID",)),
    Setting("vault_approle_secret_id", "AppRole secret id for the Vault login.", ("VAULT_APPROLE_SECRET_ID",),
            sensitive=True),
    Setting("vault_approle_mount", "Mount of the AppRole auth method used to log in.", ("VAULT_APPROLE_MOUNT",),
            default="approle"),
    Setting("vault_ca_cert", "CA bundle to verify Vault's TLS certificate.", ("VAULT_CACERT",)),
    Setting("vault_skip_verify", "Skip Vault TLS verification (testing only).", ("VAULT_SKIP_VERIFY",),
            boolean=True),
), lambda v: VaultSettings(address=v["vault_address"], token=v["vault_token"], namespace=v["vault_namespace"],
                           approle_role_id=v["vault_approle_role_id"],
                           approle_secret_id=v["vault_approle_secret_id"],
                           approle_mount=v["vault_approle_mount"], ca_cert=v["vault_ca_cert"],
                           skip_verify=bool(v["vault_skip_verify"])))


def check_vault(vault: VaultSettings, who: str = "") -> ConfigError | None:
    """Vault's address and credentials (a token, or an AppRole login) are set; `who` needs them."""
    why = f" ({who} needs it)" if who else ""
    if not vault.address:
        return missing_setting("Vault address is not configured", ADDRESS, why)
    if vault.token is None and not (vault.approle_role_id and vault.approle_secret_id):
        return missing_setting("Vault credentials are not configured", TOKEN,
                               f", or vault_approle_role_id and vault_approle_secret_id for an AppRole login{why}")
    from ..vault import check_settings  # not at synth time: the constructs import this module

    try:  # https (or http on loopback), complete AppRole credentials
        check_settings(vault, who or "Vault")
    except ConfigError as problem:
        return problem
    return None


def _from_config(location: Mapping[str, Any], settings: Settings) -> VaultKvSink:
    with IMPORT_LOCK:
        from ..sinks.vault_kv import VaultKvSink

    return VaultKvSink(mount=str(location["mount"]), path=str(location["path"]), field=str(location["field"]),
                       settings=settings.vault)


def _address(location: Mapping[str, Any]) -> str:
    return f"{location['mount']}/{location['path']}#{location['field']}"


def _parse_address(rest: str) -> dict[str, Any] | None:
    if "/" not in rest:
        return None
    place, _, field = rest.partition("#")
    mount, _, path = place.partition("/")
    return {"mount": mount, "path": path, "field": field or SINK.defaults()["field"]}


def _statuses(locations: Any, settings: Settings) -> list[Any]:
    return [_from_config(location, settings).status() for location in locations]


SINK = SinkKind(
    attribute=schema.VAULT_KV_SINK, settings=SETTINGS,
    check=lambda settings, _memo: check_vault(settings.vault, "deliver_to.vault_kv"),
    from_config=_from_config, address=_address, parse_address=_parse_address,
    address_format="vault_kv:<mount>/<path>#<field>", checks_access_at_plan=True,
    address_fields=("mount", "path", "field"), statuses=_statuses, libraries=("requests",),
)
