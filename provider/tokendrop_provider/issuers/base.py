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
    # True where a rotation replaces the key of one long-lived object instead of minting a second
    # token (Token Vault's rotate-key): the id stays, the old value dies with the call. See `rekey`.
    rotates_in_place: bool = False
    # True where one listing of a scope (Listings) is the cheap way to answer many lookups; False
    # where listing costs a call per token anyway (Vault AppRole) or a lookup is one call (Token Vault).
    lookups_by_listing: bool = True

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

    def update(self, scope: str, token_id: str, description: str, **options: object) -> IssuedToken:
        """Edit a live token in place (description and issuer-specific options), keeping its value.
        Only issuers whose tokens are editable implement it (Buildkite); token resources call it for
        the arguments they list in `issuer_updatable`."""
        raise NotImplementedError(f"{self.kind} tokens cannot be edited in place")

    def rekey(self, scope: str, token_id: str) -> MintedToken:
        """Replace the value of a live token, keeping its id; the old value is invalid at once. Only
        issuers with `rotates_in_place` implement it."""
        raise NotImplementedError(f"{self.kind} tokens cannot be rotated in place")
