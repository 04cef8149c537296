"""The issuer and sink registries (`issuers.py`, `sinks.py`) and what is derived from them: the
provider block's schema and settings, and the typed `Clients` resources and the audit use.

Importing this package is cheap; the entries load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..attributes import ProviderSchema
    from ..settings import SettingsGroup

PROVIDER_DESCRIPTION = (
    "tokendrop mints CI and agent tokens and delivers them into SSM, Secrets Manager or Vault; Terraform state "
    "keeps ids, sink addresses and versions only. Every setting falls back to the environment variable the "
    "official provider uses.")


def settings_groups() -> list[SettingsGroup[Any]]:
    """Every registered issuer's and sink's settings group, each once (Vault's is shared), in order."""
    from .issuers import ISSUERS
    from .sinks import SINKS

    groups: dict[str, SettingsGroup[Any]] = {}
    for group in [i.settings for i in ISSUERS] + [s.settings for s in SINKS]:
        groups.setdefault(group.name, group)
    return list(groups.values())


def provider_schema() -> ProviderSchema:
    """The provider block: every registered setting, described with its environment variables."""
    from ..attributes import Attr, ProviderSchema
    from ..types import BOOL, STRING

    return ProviderSchema(description=PROVIDER_DESCRIPTION, attributes=tuple(
        Attr(s.name, BOOL if s.boolean else STRING, s.doc, optional=True, sensitive=s.sensitive)
        for group in settings_groups() for s in group.settings))
