"""Token Vault Webhook Mode sink: a token delivered to the user's own webhook, never to Token Vault.

Wire facts (docs/wire.md, "Token Vault" -> "Webhook Mode"; the CLI's `internal/api/vault.go` and
`internal/api/tokens.go` StoreTokenViaWebhook, docs.tokenvault.uk/webhook-protocol):

- A write asks Token Vault for a store ticket (`POST /api/vault/store-ticket {serviceName}` with the
  provider's `tvkey_` key) and posts `{ticket, service, tokenData}` to `<webhookUrl>/v1/store` itself: the
  value travels from tokendrop to the webhook only. `tokenData` is `{tokenType: "PlainText", accessToken:
  <value>, tokendrop: <ownership record>}`; the webhook keeps every non-credential field as metadata, so
  the record is written atomically with the value.
- Status reads metadata only: `GET /api/tokens/{service}`, which in Webhook Mode Token Vault answers from
  the webhook's `/v1/storage` without the secret fields. The value is never read back.
- The webhook keeps one credential per service and no versions: a store replaces it. There is no
  compare-and-set, so `replace` reads the record, then writes (like the SSM sink); a concurrent writer
  shows on the next read.
- Destroy is `DELETE /api/tokens/{service}` (Token Vault deletes through the webhook's signed
  `/v1/storage`), and only while the record names our token.

The webhook URL comes from Token Vault's answer; `webhook_url`, when set, pins it (a ticket naming another
webhook is refused before the value is sent), and the URL must be https or loopback http (endpoints.py).
The POST to the webhook is sent once and never follows a redirect.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..endpoints import checked_endpoint
from ..errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    SinkAccessDenied,
    SinkConflict,
    SinkError,
    SinkWriteUnknown,
)
from ..secret import Secret
from ..settings import TokenVaultSettings
from .base import Ownership, Payload, Sink, SinkStatus
from .tokenvault_webhook_rules import (
    CREDENTIAL_FIELD,
    RECORD_FIELD,
    TOKEN_TYPE,
    format_record,
    parse_record,
    same_webhook,
    validate_service,
    validate_webhook_url,
)

if TYPE_CHECKING:
    import requests

    from ..issuers.tokenvault import TokenVaultClient

# Scopes of the provider's key this sink uses (assumed from the scope names: docs/wire.md "Webhook Mode").
NEEDED_SCOPES = ("tokens:create", "tokens:list", "tokens:delete")
_TIMEOUT = (10.0, 30.0)  # connect, read: the protocol gives webhooks 10 s per call (error-codes page)

_clients: dict[tuple[str, str], TokenVaultClient] = {}
_clients_lock = threading.Lock()


def tokenvault_client(settings: TokenVaultSettings) -> TokenVaultClient:
    """One Token Vault client per URL and key in this process (its session and rate limiter shared)."""
    from ..issuers.tokenvault import TokenVaultClient, limiter_key, normalize_url

    if settings.api_key is None:
        raise ConfigError("Missing Token Vault API key", "deliver_to.tokenvault_webhook asks Token Vault for store "
                          "tickets: set tokenvault_api_key (or TOKENVAULT_API_KEY).", attribute=("tokenvault_api_key",))
    key = (normalize_url(settings.api_url), limiter_key(settings.api_url, settings.api_key))
    with _clients_lock:
        if key not in _clients:
            _clients[key] = TokenVaultClient(settings)
        return _clients[key]


def _session() -> requests.Session:
    import requests
    import requests.adapters

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment sees the value
    adapter = requests.adapters.HTTPAdapter(max_retries=0)  # a store is sent once (see _post)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class TokenVaultWebhookSink(Sink):
    """One service's credential at the user's webhook, written through a Token Vault store ticket."""

    kind = "tokenvault_webhook"

    def __init__(self, service: str, *, settings: TokenVaultSettings, webhook_url: str | None = None,
                 client: TokenVaultClient | None = None) -> None:
        for attribute, error in (("service", validate_service(service)),
                                 ("webhook_url", webhook_url and validate_webhook_url(webhook_url))):
            if error:
                raise ConfigError("Invalid Token Vault webhook setting", error, attribute=(attribute,))
        self.service = service
        self.webhook_url = webhook_url
        self.settings = settings
        self._client_override = client
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"TokenVaultWebhookSink({self.service!r})"

    @property
    def address(self) -> str:
        return f"tokenvault_webhook:{self.service}"

    def _client(self) -> TokenVaultClient:
        return self._client_override or tokenvault_client(self.settings)

    # -- Sink API ---------------------------------------------------------------------------------

    def status(self) -> SinkStatus:
        with _as_sink_errors(self.address, "read the metadata of"):
            meta = self._client().token_metadata(self.service)
        if meta is None:
            return SinkStatus(exists=False)
        record = parse_record(meta.get(RECORD_FIELD))
        if record is None:
            kind = meta.get("tokenType")
            return SinkStatus(exists=True, version=0, occupant="a credential tokendrop did not write"
                              + (f" (Token Vault lists it as {kind})" if isinstance(kind, str) and kind else ""))
        return SinkStatus(exists=True, version=record.ownership.version, ownership=record.ownership,
                          ownership_current=True)

    def create(self, payload: Payload, ownership: Ownership) -> int:
        self.warnings = []
        value = self._value(payload)
        current = self.status()
        if current.exists:
            own = current.ownership
            if own is not None and own.token_id == ownership.token_id and own.owner == ownership.owner \
                    and current.version == 1:
                return 1  # our own earlier attempt landed
            held = current.occupant or (f"{own.issuer} token {own.token_id}, written by tokendrop resource "
                                        f"{own.owner}" if own else "a credential")
            raise SinkConflict(f"{self.address} already exists",
                               f"The webhook holds {held} for service {self.service!r}; tokendrop creates it and "
                               "will not overwrite one it did not write. Delete it in Token Vault, choose another "
                               "service, or adopt it (adopt_existing = true)", attribute=("service",))
        return self._store(value, ownership, 1)

    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        self.warnings = []
        value = self._value(payload)
        current = self.status()
        if not current.exists or current.version != expected_version:
            raise SinkConflict(f"{self.address} changed outside tokendrop",
                               f"expected version {expected_version}, found "
                               f"{current.version if current.exists else 'nothing'}; the new value was not sent")
        return self._store(value, ownership, expected_version + 1)

    def delete(self, expected_token_id: str | None) -> bool:
        self.warnings = []
        current = self.status()
        if not current.exists:
            return False
        own = current.ownership
        if own is None:
            self.warnings.append(f"{self.address} was left in place: it holds a credential tokendrop did not write.")
            return False
        if expected_token_id is not None and own.token_id != expected_token_id:
            return False  # someone else's value is never deleted
        with _as_sink_errors(self.address, "delete"):
            return self._client().delete_token(self.service)

    # -- internals --------------------------------------------------------------------------------

    def _value(self, payload: Payload) -> Secret:
        if isinstance(payload, Mapping):
            raise ConfigError("Token Vault holds one credential per service",
                              "this resource delivers several fields; deliver it to ssm, vault_kv or "
                              "secrets_manager instead", attribute=("deliver_to", "tokenvault_webhook"))
        return payload

    def _store(self, value: Secret, ownership: Ownership, version: int) -> int:
        with _as_sink_errors(self.address, "get a store ticket for"):
            ticket = self._client().store_ticket(self.service)
        if self.webhook_url and not same_webhook(self.webhook_url, ticket.webhook_url):
            raise SinkError(f"Token Vault named another webhook for {self.address}",
                            f"the store ticket is for {ticket.webhook_url}, but webhook_url is {self.webhook_url}; "
                            "the value was not sent", attribute=("webhook_url",))
        try:
            url = checked_endpoint(ticket.webhook_url, label="Token Vault webhook URL", setting="webhook_url",
                                   named="the webhook URL Token Vault named",
                                   carries="every value tokendrop delivers to the webhook")
        except ConfigError as problem:
            raise SinkError(problem.summary, f"{problem.detail}. The value was not sent",
                            attribute=("webhook_url",)) from None
        body = {"ticket": ticket.ticket.reveal(), "service": self.service,
                "tokenData": {"tokenType": TOKEN_TYPE, CREDENTIAL_FIELD: value.reveal(),
                              RECORD_FIELD: format_record(ownership, version)}}
        self._post(f"{url}/v1/store", body)
        return version

    def _post(self, url: str, body: dict[str, Any]) -> None:
        """One POST to the webhook: never resent (a resent store could land twice), never redirected."""
        import requests
        from urllib3.exceptions import NewConnectionError

        where = f"POST {url.split('?')[0]}"
        try:
            with _session() as session:
                answer = session.post(url, json=body, timeout=_TIMEOUT, allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise SinkError(f"Could not reach the webhook for {self.address}", f"{where}: connection timed out; "
                            "nothing was sent") from None
        except requests.exceptions.SSLError as exc:
            raise SinkError(f"TLS with the webhook failed for {self.address}", f"{where}: {type(exc).__name__}; "
                            "nothing was sent") from None
        except requests.exceptions.ConnectionError as exc:
            inner = exc.args[0] if exc.args else None
            if isinstance(getattr(inner, "reason", None), NewConnectionError) or isinstance(inner, NewConnectionError):
                raise SinkError(f"Could not reach the webhook for {self.address}",
                                f"{where}: connection failed; nothing was sent") from None
            raise SinkWriteUnknown(f"No answer from the webhook for {self.address}",
                                   f"{where}: the connection was lost after the value was sent, so it may or may "
                                   "not have been stored") from None
        except requests.exceptions.RequestException as exc:  # read timeout and the like: sent, no answer
            raise SinkWriteUnknown(f"No answer from the webhook for {self.address}", f"{where}: "
                                   f"{type(exc).__name__}; the value may or may not have been stored") from None
        if 200 <= answer.status_code < 300:
            return
        code, message = _webhook_error(answer)
        said = f"{answer.status_code} {code}{': ' + message if message else ''}"
        if answer.status_code >= 500:
            raise SinkWriteUnknown(f"The webhook failed storing {self.address}",
                                   f"{where} answered {said}; the value may or may not have been stored")
        if 300 <= answer.status_code < 400:
            raise SinkError(f"The webhook redirected the store of {self.address}",
                            f"{where} answered {answer.status_code}; tokendrop does not follow a redirect with a "
                            "value, and nothing was stored")
        if answer.status_code in (401, 403):
            raise SinkAccessDenied(f"The webhook refused the store ticket for {self.address}",
                                   f"{where} answered {said} (a ticket Token Vault signed for another webhook, "
                                   "expired or already used, or a webhook not bound to this vault)")
        raise SinkError(f"The webhook refused the store of {self.address}", f"{where} answered {said}")


def _webhook_error(answer: Any) -> tuple[str, str]:
    """(`error`, `message`) of the protocol's error body (error-codes page), shortened; never the request."""
    try:
        doc = answer.json()
    except ValueError:
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    return str(doc.get("error") or "")[:64], str(doc.get("message") or "")[:200]


@contextlib.contextmanager
def _as_sink_errors(address: str, doing: str) -> Iterator[None]:
    """Token Vault's answers to the sink's calls as sink errors (its scope diagnostics kept)."""
    try:
        yield
    except IssuerAuthError as exc:
        raise SinkAccessDenied(exc.summary, exc.detail, attribute=exc.attribute) from None
    except IssuerError as exc:
        raise SinkError(f"Token Vault could not {doing} {address}", str(exc), attribute=exc.attribute) from None
