"""Typed errors. Each starts where the failure happens and becomes a Terraform diagnostic in one place
(plugin/service.py), so messages must be written for the user and must never contain a secret."""

from __future__ import annotations

from collections.abc import Sequence

AttributePath = tuple[str | int, ...]


class TokendropError(Exception):
    """An expected failure: a summary line, a detail paragraph and, where known, the attribute at fault."""

    def __init__(self, summary: str, detail: str = "", attribute: Sequence[str | int] = ()) -> None:
        super().__init__(summary if not detail else f"{summary}: {detail}")
        self.summary = summary
        self.detail = detail
        self.attribute: AttributePath = tuple(attribute)

    def at(self, *prefix: str | int) -> TokendropError:
        """Prefix the attribute path (used when a nested validator reports relative to its parent)."""
        self.attribute = tuple(prefix) + self.attribute
        return self


class ConfigError(TokendropError):
    """Bad input or missing credentials, found before anything is created."""


class IssuerError(TokendropError):
    """The token issuer (TFE, Buildkite, Token Vault, Vault AppRole) refused or failed a call."""

    def __init__(self, summary: str, detail: str = "", attribute: Sequence[str | int] = (),
                 status: int | None = None) -> None:
        super().__init__(summary, detail, attribute)
        self.status = status


class IssuerNotFound(IssuerError):
    """The object does not exist, or the credentials may not see it (TFE answers 404 for both)."""


class IssuerAuthError(IssuerError):
    """Missing or invalid credentials (401), or not allowed (403)."""


class IssuerValidationError(IssuerError):
    """The issuer rejected the request body (422)."""


class RateLimitedError(IssuerError):
    """Still rate limited after every retry the client was allowed."""


class SinkError(TokendropError):
    """The secret store (SSM, Vault KV) refused or failed a call."""


class SinkConflict(SinkError):
    """The sink exists and belongs to someone else, or changed under us (compare-and-set failed)."""


class SinkNotFound(SinkError):
    """The sink entry does not exist."""


class SinkAccessDenied(SinkError):
    """The credentials may not read or write the sink."""


class SinkWriteUnknown(SinkError):
    """A sink write whose outcome is unknown: the request went out, but no answer came back that says
    whether the value was stored (read timeout, connection dropped after sending, a 5xx). The caller
    must read the sink back before deciding, and must never treat it as "not written"."""
