"""The sink contract shared by every secret store.

A sink is one location (an SSM parameter, a Vault KV v2 secret) that holds one delivered payload.
Beside the payload it records an `Ownership`: which issuer token it holds and which resource put it
there. Sinks read that record, never the payload, when they answer `status()`.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import SinkError
from ..secret import Secret

# A payload is one secret (written under the sink's own field/value) or several named fields
# (the AppRole grant delivers {"role_id": ..., "secret_id": ...}). Non-secret fields may be plain str.
Payload = Secret | Mapping[str, Secret | str]


@dataclass(frozen=True)
class Ownership:
    """What a sink records about the token it holds. Never a secret, never a hash of one."""

    token_id: str  # the issuer's id of the token held (TFE at-..., Buildkite uuid, accessor, ...)
    issuer: str  # "tfe" | "buildkite" | "tokenvault" | "vault-approle"
    owner: str  # fingerprint of the resource that wrote it (see delivery.owner_fingerprint)
    # The sink version this record describes. A sink whose metadata cannot be written atomically
    # with the payload (Vault KV) records the version its write will create; if the current version
    # differs, the record is stale and nothing can be said about who wrote the current version.
    version: int | None = None


@dataclass(frozen=True)
class SinkStatus:
    """The sink as it is now, read from metadata only."""

    exists: bool  # a current, readable (not deleted/destroyed) version exists
    version: int | None = None  # current version number (SSM Version, Vault current_version)
    ownership: Ownership | None = None  # None when the sink carries no tokendrop record
    # True when `ownership` describes the current version (always so for SSM, whose record is
    # written in the same call as the value).
    ownership_current: bool = False
    # What the location holds that tokendrop did not write, in words ("3 versions (2 not written by
    # tokendrop; the latest, 3, is deleted)"), even when no readable current version exists; None
    # when nothing foreign is there. A create is refused where this is set, unless adopt_existing.
    occupant: str | None = None


class Sink(abc.ABC):
    """One delivery location. Implementations raise the typed errors of `tokendrop_provider.errors`:
    `SinkConflict` when create-only or compare-and-set fails, `SinkAccessDenied` on 403/AccessDenied,
    `SinkError` for anything else, with a message naming `self.address` and never the payload."""

    kind: str  # "ssm" | "vault_kv"

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """Canonical, human-readable address, e.g. "ssm:/ci/tfc-agent/token" or
        "vault_kv:secret/ci/tfc-agent/batch#token". Stored in state and used in markers."""

    @abc.abstractmethod
    def status(self) -> SinkStatus:
        """Current version and ownership record. Never reads the payload."""

    @abc.abstractmethod
    def create(self, payload: Payload, ownership: Ownership) -> int:
        """Write the first version; fail with SinkConflict if the sink already exists.
        Returns the version written."""

    @abc.abstractmethod
    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        """Write a new version only if the current version is `expected_version`
        (compare-and-set); fail with SinkConflict otherwise. Returns the version written."""

    @abc.abstractmethod
    def delete(self, expected_token_id: str | None) -> bool:
        """Remove what we wrote, and only that. If `expected_token_id` is given, delete only when the
        ownership record still names that token (someone else's value is never deleted). A location
        that also holds data tokendrop did not write (other versions, other metadata) keeps it: the
        sink removes only its own versions, or nothing where the store cannot do that, and says so in
        `warnings`. Returns False if nothing was removed."""

    def read_payload(self, version: int) -> Payload:
        """The payload stored at `version` (the current one), read only to copy a delivered token into
        a sibling sink of the same resource (docs/lifecycle.md, "One token, many sinks"). Raises
        `SinkError` when the sink cannot be read or is at another version."""
        raise SinkError(f"Cannot read {self.address} back", f"the {self.kind} sink cannot be read to copy its "
                        "token into another sink")

    def abandon(self, ownership: Ownership) -> None:  # noqa: B027 - optional hook
        """A write for `ownership` got no clear answer (SinkWriteUnknown), and reading the sink back
        showed that it had not landed: take back whatever was recorded for it ahead of the value, so
        that a value stored later at that version (by the write arriving late, or by someone else) is
        not taken for ours. Default: nothing, for sinks that write the record with the value."""

    def landed(self, version: int) -> None:  # noqa: B027 - optional hook
        """A write whose answer was lost turned out, read back, to have created `version`: finish what the
        write would have done after its answer (SSM moves its `current`/`previous` labels). Failures go to
        `warnings`. Default: nothing."""

    # Non-fatal problems of the last call (the value was written, so they are reported, not raised).
    warnings: list[str] = []

    def note_expiry(self, expires_at: str | None) -> None:  # noqa: B027 - optional hook
        """The token about to be written expires at this time (RFC 3339), or never. Sinks that can
        age a value out (SSM Expiration policies) use it; the default ignores it."""

    def current_settings(self) -> dict[str, object]:
        """The sink's configurable settings as it has them now, in the shape of its `deliver_to`
        block (used by import). Default: none besides the location."""
        return {}

    def reconcile_settings(self) -> None:  # noqa: B027 - optional hook
        """Bring non-payload settings (tags, description, tier) in line with the configuration
        without writing a new version. Default: nothing to do."""


def stored_payload(text: str, field: str | None = None) -> Payload:
    """The payload a stored text holds (the inverse of rendering it): the token itself, the token under
    `field` of a JSON object, or a multi-field JSON object (the AppRole grant's)."""
    if field is None and not text.startswith("{"):
        return Secret(text)
    try:
        parsed = json.loads(text)
    except ValueError:
        if field is None:
            return Secret(text)
        raise SinkError("The stored value is not a JSON object", f"expected the token under {field!r}") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) and v for v in parsed.values()):
        if field is None:
            return Secret(text)
        raise SinkError("The stored value is not a JSON object of strings", f"expected the token under {field!r}")
    if field is not None:
        if field not in parsed:
            raise SinkError("The stored value does not hold the token", f"no key {field!r}")
        return Secret(parsed[field])
    return {k: Secret(v) for k, v in parsed.items()}
