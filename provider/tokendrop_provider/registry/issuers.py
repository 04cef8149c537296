"""The issuer registry: one line per issuer. Adding an issuer = its entry module + one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import buildkite, entra, tfe, tokenvault, vault_approle
from .base import Issuer

if TYPE_CHECKING:
    from ..resources.base import Resource

ISSUERS: list[Issuer[Any]] = [
    tfe.ISSUER,
    buildkite.ISSUER,
    tokenvault.ISSUER,
    tokenvault.KEYS,
    vault_approle.ISSUER,
    entra.ISSUER,
    entra.CERTIFICATES,
]


def issuer(name: str) -> Issuer[Any]:
    for entry in ISSUERS:
        if entry.name == name:
            return entry
    raise KeyError(f"no issuer {name!r} is registered")


def resources() -> dict[str, Resource]:
    """Every resource type the provider serves, by type name: one list, the issuers' own."""
    found: dict[str, Resource] = {}
    for entry in ISSUERS:
        for resource in entry.resources():
            found[resource.schema.type_name] = resource
    return found


def issuer_of_resource(resource_type: str) -> Issuer[Any] | None:
    """The issuer whose token or scope resource `resource_type` is (what the audit reads in a state)."""
    for entry in ISSUERS:
        if resource_type in entry.token_scopes or resource_type in entry.scope_resources:
            return entry
    return None
