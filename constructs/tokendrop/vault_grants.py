"""Vault grants: Token Vault agents and scoped keys with their per-service grants (the `tvagent_` /
`tvkey_` key delivered to a sink), and HashiCorp Vault AppRole secret ids (delivered with their role id)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokendrop_provider import schema

from ._base import TokendropResource, TokenResource, configure
from .errors import Problem, TokendropValidationError
from .tfe import Duration, SinkArgument


class TokenVaultAgent(TokenResource):
    """A Token Vault agent whose API key (`tvagent_…`, shown once by Token Vault) is written straight into
    `deliver_key_to`. Grants are added with `grant()`, each a `TokenVaultAgentGrant` resource that changes
    without touching the key (the inline `grants` argument is the older form: authoritative, so not both);
    rotating the key (rotate_every, rotate_on) writes the new key as the next sink version. With rotate-key
    (the default) the old key dies with the rotation, so there is no keep_previous_for; with
    `rotation="successor"` a new agent with the same grants takes over and the old one is deleted after
    `keep_previous_for` (for a provider key that may not rotate agent keys)."""

    schema = schema.TOKENVAULT_AGENT

    def __init__(self, scope: Any, id: str, *, name: str, deliver_key_to: SinkArgument,
                 description: str | None = None, grants: Sequence[Mapping[str, Any]] | None = None,
                 rotate_every: Duration | None = None, rotate_on: Mapping[str, str] | None = None,
                 rotation: str | None = None, keep_previous_for: Duration | None = None,
                 adopt_existing: bool | None = None, **meta: Any) -> None:
        super().__init__(scope, id, name=name, description=description, grants=list(grants or []) or None,
                         deliver_to=deliver_key_to, rotate_every=rotate_every, rotate_on=rotate_on,
                         rotation=rotation, keep_previous_for=keep_previous_for, adopt_existing=adopt_existing,
                         **meta)
        self._granted: dict[str, TokenVaultAgentGrant] = {}

    @property
    def agent_id(self) -> str:
        """The agent's id (stable across key rotations), a reference for outputs."""
        return self.get_string_attribute("id")

    def grant(self, service: str) -> TokenVaultAgentGrant:
        """Let the agent use `service` until the grant is revoked: declares a
        `tokendrop_tokenvault_agent_grant` beside the agent (id `<agent id>-<service>`). Token Vault's agent
        grant route takes no expiry or refresh policy (docs/wire.md), so neither can be asked for here.
        Validated at once: a duplicate or malformed service, or an agent that also lists inline `grants`
        (which would revoke this one), raises here."""
        path = self.node.path
        if self._tokendrop_arguments.get("grants"):
            raise TokendropValidationError(path, [Problem("grants", "grant() declares tokendrop_tokenvault_agent_"
                                                          "grant resources, and inline grants on the agent revoke "
                                                          "every grant they do not list: use one form, not both")])
        if service in self._granted:
            raise TokendropValidationError(path, [Problem("grants", f"{service!r} is already granted: an agent "
                                                          "holds one grant per service")])
        # Validate before the construct exists, so that a refused grant leaves nothing behind.
        configure(f"{path}-{service}", schema.TOKENVAULT_AGENT_GRANT.attributes, (),
                  {"agent_id": "agent", "service": service}, "TokenVaultAgentGrant")
        granted = TokenVaultAgentGrant(self.node.scope, f"{self.node.id}-{service}", agent_id=self.agent_id,
                                       service=service)
        self._granted[service] = granted
        return granted

    @property
    def grants(self) -> dict[str, TokenVaultAgentGrant]:
        """The grant resources declared with `grant()`, by service."""
        return dict(self._granted)


class TokenVaultAgentGrant(TokendropResource):
    """One service granted to a Token Vault agent, read back from the agent's record; destroy revokes it.
    Usually declared with `TokenVaultAgent.grant(service)`."""

    schema = schema.TOKENVAULT_AGENT_GRANT

    def __init__(self, scope: Any, id: str, *, agent_id: str, service: str, **meta: Any) -> None:
        super().__init__(scope, id, agent_id=agent_id, service=service, **meta)

    @property
    def expires_at(self) -> str:
        """When the grant expires at Token Vault, as the agent's record says (null: until revoked)."""
        return self.get_string_attribute("expires_at")


class TokenVaultKey(TokenResource):
    """A Token Vault scoped key (`tvkey_…`, shown once by Token Vault) written straight into `deliver_to`.
    Changing `scopes` rotates: a successor key is minted and delivered as the next sink version, and the old
    one revoked (or kept for `keep_previous_for`). Scopes only a human may delegate are refused here.
    `grant()` lets the key use a service for a limited time."""

    schema = schema.TOKENVAULT_KEY

    def __init__(self, scope: Any, id: str, *, name: str, scopes: Sequence[str], deliver_to: SinkArgument,
                 expires_at: str | None = None, rotate_every: Duration | None = None,
                 rotate_on: Mapping[str, str] | None = None, keep_previous_for: Duration | None = None,
                 adopt_existing: bool | None = None, revoke_previous_when: str | None = None,
                 previous_unused_for: Duration | None = None, **meta: Any) -> None:
        super().__init__(scope, id, name=name, scopes=scopes, expires_at=expires_at, deliver_to=deliver_to,
                         rotate_every=rotate_every, rotate_on=rotate_on, keep_previous_for=keep_previous_for,
                         adopt_existing=adopt_existing, revoke_previous_when=revoke_previous_when,
                         previous_unused_for=previous_unused_for, **meta)
        self._granted: dict[str, TokenVaultKeyGrant] = {}

    @property
    def key_id(self) -> str:
        """The key's id (it changes with each rotation), a reference for outputs."""
        return self.get_string_attribute("id")

    def grant(self, service: str, *, expires_in: Duration | None = None) -> TokenVaultKeyGrant:
        """Let the key use `service` for `expires_in` (1h to 30d, whole hours) or, unset, until revoked:
        declares a `tokendrop_tokenvault_key_grant` beside the key (id `<key id>-<service>`). Validated at
        once: a duplicate service, a malformed one or an expiry out of range raises here."""
        path = self.node.path
        if service in self._granted:
            raise TokendropValidationError(path, [Problem("grant", f"{service!r} is already granted: a key holds "
                                                          "one grant per service")])
        configure(f"{path}-{service}", schema.TOKENVAULT_KEY_GRANT.attributes, (),
                  {"key_id": "key", "service": service, "expires_in": expires_in}, "TokenVaultKeyGrant")
        granted = TokenVaultKeyGrant(self.node.scope, f"{self.node.id}-{service}", key_id=self.key_id,
                                     service=service, expires_in=expires_in)
        self._granted[service] = granted
        return granted


class TokenVaultKeyGrant(TokendropResource):
    """One service granted to a scoped key, for `expires_in` (1h to 30d) or until revoked. Usually declared
    with `TokenVaultKey.grant(service, expires_in=...)`."""

    schema = schema.TOKENVAULT_KEY_GRANT

    def __init__(self, scope: Any, id: str, *, key_id: str, service: str, expires_in: Duration | None = None,
                 **meta: Any) -> None:
        super().__init__(scope, id, key_id=key_id, service=service, expires_in=expires_in, **meta)

    @property
    def expires_at(self) -> str:
        """When the grant expires at Token Vault, as reported (null: until revoked)."""
        return self.get_string_attribute("expires_at")


class VaultAppRoleSecretId(TokenResource):
    """A Vault AppRole secret id, minted and written, with the role id, straight into `deliver_to` (Vault KV:
    keys `role_id` and `secret_id`; SSM: the two as a JSON object). State keeps the secret id's accessor,
    never the secret id. `metadata` is visible in Vault's audit log: keep secrets out of it."""

    schema = schema.VAULT_APPROLE_SECRET_ID

    def __init__(self, scope: Any, id: str, *, role_name: str, deliver_to: SinkArgument, mount: str | None = None,
                 ttl: Duration | None = None, cidr_list: Sequence[str] | None = None,
                 token_bound_cidrs: Sequence[str] | None = None, num_uses: int | None = None,
                 metadata: Mapping[str, str] | None = None, rotate_before_expiry: Duration | None = None,
                 rotate_every: Duration | None = None, rotate_on: Mapping[str, str] | None = None,
                 keep_previous_for: Duration | None = None, adopt_existing: bool | None = None,
                 **meta: Any) -> None:
        super().__init__(scope, id, role_name=role_name, mount=mount, ttl=ttl, cidr_list=cidr_list,
                         token_bound_cidrs=token_bound_cidrs, num_uses=num_uses, metadata=metadata,
                         rotate_before_expiry=rotate_before_expiry, deliver_to=deliver_to,
                         rotate_every=rotate_every, rotate_on=rotate_on, keep_previous_for=keep_previous_for,
                         adopt_existing=adopt_existing, **meta)

    @property
    def accessor(self) -> str:
        """The secret id's accessor (the resource's id): safe to log and to look the secret id up by."""
        return self.get_string_attribute("id")
