"""One way to talk to Vault (or OpenBao), shared by the KV v2 sink and the AppRole issuer.

Why this exists rather than hvac's client: every Vault request carries `X-Vault-Token`, and a write
carries the delivered value. So the transport here

- refuses a plain `http://` address on a non-loopback host (the token and every value would cross
  the network unencrypted); loopback stays allowed for the sandbox,
- never lets the HTTP library follow a redirect by itself: a 307 to the same scheme, host and port
  (a standby node naming the active one at the same address, or a path rewrite) is followed, up to
  `MAX_REDIRECTS`; a redirect anywhere else is refused with an error naming both addresses,
- parses Vault's error bodies in one place (`VaultReply.message`),
- answers `sys/capabilities-self` for the plan-time permission checks of both users.

The callers turn a `VaultReply` status into their own typed errors (sink or issuer). `requests` is
imported only when the first connection is made. Wire facts: docs/wire.md, section "Vault".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from .endpoints import checked_endpoint
from .errors import ConfigError, TokendropError
from .lazy import IMPORT_LOCK
from .secret import Secret
from .settings import VaultSettings

if TYPE_CHECKING:
    import requests

MAX_REDIRECTS = 3
_RELOGIN_MARGIN = 30.0  # seconds before an AppRole token's lease ends that we log in again
_TIMEOUT = (10.0, 30.0)  # connect, read


class VaultUnreachable(TokendropError):
    """No answer from Vault (connection refused, TLS failure, timeout). `sent` is False only when the
    request surely never left (no connection could be made); otherwise, for a write, whether Vault
    stored it is unknown."""

    def __init__(self, summary: str, detail: str = "", *, sent: bool = True) -> None:
        super().__init__(summary, detail)
        self.sent = sent


class VaultRedirectRefused(TokendropError):
    """Vault (or something in front of it) redirected to another origin; nothing was sent there."""


class VaultLoginFailed(TokendropError):
    """The AppRole login of the provider itself was refused."""


# --- addresses ----------------------------------------------------------------------------------


def checked_address(settings: VaultSettings) -> str:
    """The Vault address, checked (see `checked_endpoint`); ConfigError naming vault_address when unset."""
    if not settings.address:
        raise ConfigError("Vault address is not configured", "set vault_address in the provider block, or VAULT_ADDR",
                          attribute=("vault_address",))
    return checked_endpoint(settings.address, label="Vault address", setting="vault_address",
                            named="vault_address (or VAULT_ADDR)",
                            carries="the Vault token and every value tokendrop delivers")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


# --- replies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultReply:
    """One answer: status, the JSON body (None when empty or not JSON) and Vault's error text."""

    status: int
    body: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def data(self) -> dict[str, Any]:
        data = (self.body or {}).get("data")
        return data if isinstance(data, dict) else {}

    @property
    def message(self) -> str:
        """Vault's `errors` (or data.error) as one line, e.g. "permission denied"."""
        body = self.body or {}
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            text = "; ".join(str(e) for e in errors)
        else:
            data = body.get("data")
            text = str(data.get("error") or "") if isinstance(data, dict) else ""
        return one_line(text)


def one_line(text: str) -> str:
    """Vault wraps messages as "1 error occurred:\\n\\t* permission denied\\n\\n": keep the messages."""
    return " ".join(part.strip("\t *") for part in text.splitlines()
                    if part.strip("\t *") and not part.strip().endswith("error occurred:"))[:300]


# --- the connection -----------------------------------------------------------------------------


class VaultConnection:
    """One session per settings, logged in with a token or AppRole, shared by every caller."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self.address = checked_address(settings)
        self.lock = threading.Lock()
        self.kv2_mounts: set[str] = set()  # mounts already checked to be KV v2 (by the sink)
        self._session: requests.Session | None = None
        # A Secret, so that an AppRole login's token is registered with the scrubber like any credential.
        self._token: Secret | None = settings.token
        self._expires_at: float | None = None  # monotonic time the AppRole token runs out

    def request(self, method: str, path: str, json: Any = None) -> VaultReply:
        """`method` /v1/`path` (quoted here), with the provider's token. Raises VaultUnreachable,
        VaultRedirectRefused or VaultLoginFailed; any HTTP status is returned as a reply."""
        self._ensure_login()
        return self._send(method, path, json, with_token=True)

    def capabilities(self, paths: Sequence[str]) -> dict[str, set[str]] | None:
        """sys/capabilities-self for `paths` (read-only; the default policy allows it). None when
        Vault would not say (a policy that denies even that)."""
        reply = self.request("POST", "sys/capabilities-self", {"paths": list(paths)})
        if not reply.ok:
            return None
        data = reply.data or reply.body or {}
        return {path: set(data.get(path) or []) for path in paths}

    def missing_capabilities(self, needed: Mapping[str, Sequence[str]]) -> list[tuple[str, str]] | None:
        """(path, capability) pairs the token lacks of `needed` (path -> capabilities); None when
        Vault would not say."""
        held = self.capabilities(list(needed))
        if held is None:
            return None
        return [(path, capability) for path, capabilities in needed.items() if "root" not in held[path]
                for capability in capabilities if capability not in held[path]]

    # -- plumbing

    def _session_now(self) -> requests.Session:
        with self.lock:
            if self._session is None:
                with IMPORT_LOCK:  # lazy: a provider that never touches Vault never loads requests
                    import requests
                    import requests.adapters

                session = requests.Session()
                session.trust_env = False  # no .netrc credentials or environment proxies for Vault
                session.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
                session.mount("https://", requests.adapters.HTTPAdapter(max_retries=0))
                session.verify = self.settings.ca_cert or not self.settings.skip_verify
                self._session = session
            return self._session

    def _ensure_login(self) -> None:
        if self.settings.token is not None:
            return
        with self.lock:
            fresh = self._token is not None and (
                self._expires_at is None or time.monotonic() < self._expires_at - _RELOGIN_MARGIN)
        if not fresh:
            self._approle_login()

    def _approle_login(self) -> None:
        s = self.settings
        if not s.approle_role_id or not s.approle_secret_id:  # vault_connection() checked: cannot happen
            raise ConfigError("Vault AppRole credentials are incomplete", attribute=("vault_approle_role_id",))
        path = f"auth/{s.approle_mount}/login"
        reply = self._send("POST", path, {"role_id": s.approle_role_id, "secret_id": s.approle_secret_id.reveal()},
                           with_token=False)
        auth = (reply.body or {}).get("auth") if reply.ok else None
        if not isinstance(auth, dict) or not auth.get("client_token"):
            raise VaultLoginFailed("Vault AppRole login failed",
                                   f"{path} answered: {reply.message or f'HTTP {reply.status}'}. Check "
                                   "vault_approle_role_id, vault_approle_secret_id and vault_approle_mount",
                                   attribute=("vault_approle_role_id",))
        lease = int(auth.get("lease_duration") or 0)
        with self.lock:
            self._token = Secret(str(auth["client_token"]))
            self._expires_at = time.monotonic() + lease if lease else None

    def _headers(self, with_token: bool) -> dict[str, str]:
        headers = {"X-Vault-Request": "true"}
        if self.settings.namespace:
            headers["X-Vault-Namespace"] = self.settings.namespace
        if with_token and self._token is not None:
            headers["X-Vault-Token"] = self._token.reveal()
        return headers

    def _send(self, method: str, path: str, json: Any, *, with_token: bool) -> VaultReply:
        session = self._session_now()  # first: it imports requests under the import lock
        import requests

        url = f"{self.address}/v1/{quote(path, safe='/')}"
        home = _origin(self.address)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                # allow_redirects=False: requests would resend X-Vault-Token (and a POST body, on 307/308)
                # to whatever host a redirect names.
                response = session.request(method, url, json=json, headers=self._headers(with_token),
                                           timeout=_TIMEOUT, allow_redirects=False)
            except requests.RequestException as exc:
                raise VaultUnreachable(f"Cannot reach Vault at {self.address}",
                                       f"{method} {path}: {type(exc).__name__}", sent=_sent(exc)) from None
            if response.status_code not in (301, 302, 303, 307, 308):
                return VaultReply(response.status_code, _json(response))
            target = urljoin(url, response.headers.get("Location", ""))
            if _origin(target) != home:
                parts = urlsplit(target)
                raise VaultRedirectRefused(
                    f"Vault at {self.address} redirected to another address",
                    f"{method} {path} answered {response.status_code} with a redirect to "
                    f"{parts.scheme}://{parts.netloc}; tokendrop sends the Vault token only to vault_address "
                    "and did not follow it. Point vault_address at the active node (or the load balancer "
                    "that forwards to it)")
            if response.status_code == 303:
                method, json = "GET", None
            url = target
        raise VaultRedirectRefused(f"Vault at {self.address} redirected too often",
                                   f"{method} {path}: more than {MAX_REDIRECTS} redirects")


def _sent(exc: Exception) -> bool:
    """False only when the request surely never left: no connection could be made."""
    import requests
    import urllib3.exceptions

    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


def _json(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json() if response.content else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


_connections: dict[VaultSettings, VaultConnection] = {}
_connections_lock = threading.Lock()


def check_settings(settings: VaultSettings, who: str = "Vault") -> None:
    """Address set and safe, credentials complete: a ConfigError naming the setting otherwise.
    Called at plan time (and before every connection), never contacts Vault."""
    if not settings.address:
        raise ConfigError("Vault address is not configured",
                          f"{who} needs vault_address in the provider block or VAULT_ADDR",
                          attribute=("vault_address",))
    checked_address(settings)
    if settings.token is None:
        if not settings.approle_role_id and not settings.approle_secret_id:
            raise ConfigError("Vault credentials are not configured",
                              f"{who} needs vault_token in the provider block (or VAULT_TOKEN), or "
                              "vault_approle_role_id and vault_approle_secret_id for an AppRole login",
                              attribute=("vault_token",))
        if not settings.approle_role_id or not settings.approle_secret_id:
            missing = "vault_approle_role_id" if not settings.approle_role_id else "vault_approle_secret_id"
            raise ConfigError("Incomplete Vault AppRole credentials",
                              f"{missing} is not set; AppRole login needs both the role id and a secret id",
                              attribute=(missing,))


def vault_connection(settings: VaultSettings) -> VaultConnection:
    """The process-wide connection for these settings (checked first; logs in on first request)."""
    check_settings(settings)
    with _connections_lock:
        connection = _connections.get(settings)
        if connection is None:
            connection = _connections[settings] = VaultConnection(settings)
        return connection


def clear_connections() -> None:
    """Forget cached connections (tests; or after credentials were rotated in-process)."""
    with _connections_lock:
        _connections.clear()
