"""The token-issuer contract used by delivery.py for every token resource."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from ..secret import Secret


@dataclass(frozen=True)
class IssuedToken:
    """A token as the issuer describes it, without its value."""

    id: str
    scope: str  # the pool / cluster / agent / role the token belongs to
    description: str  # as stored at the issuer, marker included
    created_at: str | None = None  # RFC 3339
    expires_at: str | None = None  # RFC 3339, None = never
    last_used_at: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class MintedToken:
    """The create response: the only moment the value exists outside the sink."""

    token: IssuedToken
    value: Secret


class TokenIssuer(abc.ABC):
    """Mint, look up, list and revoke the tokens of one scope. Clients raise the typed errors of
    `tokendrop_provider.errors` (IssuerNotFound, IssuerAuthError, IssuerValidationError, ...)."""

    kind: str

    @abc.abstractmethod
    def mint(self, scope: str, description: str, **options: object) -> MintedToken: ...

    @abc.abstractmethod
    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        """The token if it is alive (not revoked, not expired), else None."""

    @abc.abstractmethod
    def list_tokens(self, scope: str) -> list[IssuedToken]:
        """Every live token of the scope (all pages)."""

    @abc.abstractmethod
    def revoke(self, scope: str, token_id: str) -> bool:
        """Revoke; False if it was already gone. Idempotent."""
