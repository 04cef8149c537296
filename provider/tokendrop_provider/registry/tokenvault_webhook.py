"""Token Vault Webhook Mode: a token delivered to the user's webhook through a Token Vault store ticket.

The sink uses the Token Vault issuer's settings (its URL and `tvkey_` key); its block, `tokenvault_webhook`,
is declared here (docs/contributing.md, "A new sink")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..attributes import Attr
from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import Settings
from ..sinks import tokenvault_webhook_rules as rules
from ..types import STRING
from ..validation import from_function
from .base import SinkKind, missing_setting
from .tokenvault import API_KEY, SETTINGS

if TYPE_CHECKING:
    from ..sinks.base import SinkStatus
    from ..sinks.tokenvault_webhook import TokenVaultWebhookSink

ATTRIBUTE = Attr(
    "tokenvault_webhook",
    description="Deliver to a Token Vault vault in Webhook Mode: tokendrop asks Token Vault (with "
    "`tokenvault_api_key`) for a store ticket and posts the value to the vault's webhook itself, so Token "
    "Vault never sees it. Agents granted the service read it through Token Vault's redirect to the webhook.",
    optional=True,
    nested=(
        Attr("service", STRING, "Token Vault service name the credential is stored under, e.g. `buildkite-ci`.",
             required=True, on_change="replace",
             rules=(from_function(rules.validate_service, "letters, digits and `._-`, at most "
                                  f"{rules.MAX_SERVICE_LENGTH} characters"),)),
        Attr("webhook_url", STRING, "The webhook Token Vault must name in its store ticket (https, or http on "
             "loopback); a ticket for another webhook is refused before the value is sent. Unset: the webhook "
             "Token Vault names, after the same https check.", optional=True, on_change="update",
             rules=(from_function(rules.validate_webhook_url, "an https URL (http on loopback only)"),)),
    ),
)


def _check(settings: Settings, memo: Callable[[object, Callable[[], Any]], Any]) -> ConfigError | None:
    """The API key is set and holds the scopes the sink uses (GET /api/agents/whoami, once per process)."""
    tokenvault = settings.tokenvault
    if tokenvault.api_key is None:
        return missing_setting("Missing Token Vault API key", API_KEY,
                               " (deliver_to.tokenvault_webhook asks Token Vault for store tickets)")
    from ..sinks.tokenvault_webhook import NEEDED_SCOPES, tokenvault_client

    missing = memo(("tokenvault-webhook-scopes", tokenvault.api_url),
                   lambda: tokenvault_client(tokenvault).missing_scopes(NEEDED_SCOPES))
    if missing:
        return ConfigError("The Token Vault API key cannot deliver through Webhook Mode",
                           f"It lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)} (store tickets: "
                           "tokens:create; reading the token's metadata back: tokens:list; destroy: tokens:delete). "
                           "Mint a key with them in the dashboard and set tokenvault_api_key (or TOKENVAULT_API_KEY).",
                           ("tokenvault_api_key",))
    return None


def _from_config(location: Mapping[str, Any], settings: Settings) -> TokenVaultWebhookSink:
    with IMPORT_LOCK:
        from ..sinks.tokenvault_webhook import TokenVaultWebhookSink

    return TokenVaultWebhookSink(str(location["service"]), settings=settings.tokenvault,
                                 webhook_url=location.get("webhook_url") or None)


def _statuses(locations: Sequence[Mapping[str, Any]], settings: Settings) -> list[SinkStatus]:
    return [_from_config(location, settings).status() for location in locations]


SINK = SinkKind(
    attribute=ATTRIBUTE, settings=SETTINGS, check=_check, from_config=_from_config,
    address=lambda location: str(location["service"]),
    parse_address=lambda rest: {"service": rest, "webhook_url": None} if rest else None,
    address_format="tokenvault_webhook:<service>", address_fields=("service",), statuses=_statuses,
    libraries=("requests",),
)
