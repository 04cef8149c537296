"""A small JSON-over-HTTP session shared by every REST issuer (TFE, Buildkite, Token Vault).

What it guarantees, so that issuer modules only describe their API:

- The credential goes into one header, built per request from a `Secret`; it is never stored as a
  plain string, never logged, and never part of an exception (messages are scrubbed for it).
- Requests wait for every `RateLimiter` the session was given; rate-limit headers feed them back.
- Retries: 429 for every method (the server refused before doing anything), honouring Retry-After
  and the issuer's reset headers; 5xx and broken connections only for idempotent methods. A POST
  that failed after it may have reached the server is never retried: a retried create could mint a
  second token whose value nobody ever sees.
- Each request is logged at DEBUG as method, path, status and duration: no bodies, no headers, no
  query strings.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import importlib.metadata
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests
import requests.adapters
import requests.auth
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError

from ..endpoints import checked_endpoint
from ..errors import (
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
    RateLimitedError,
    TokendropError,
)
from ..ratelimit import RateLimiter, Sleeper, WaitCancelled, acquire_all, cancellable_sleep
from ..secret import Secret

log = logging.getLogger("tokendrop.http")
_E = TypeVar("_E", bound=TokendropError)

# PATCH is listed because our PATCH bodies always carry absolute values, so repeating one is harmless.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
# 501/505 will not change on a retry.
RETRYABLE_5XX = frozenset({500, 502, 503, 504})


def _version() -> str:
    try:
        return importlib.metadata.version("tokendrop")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"tokendrop/{_version()}"


class HttpResponse:
    """A finished response. Its repr shows method, path and status only: the body may hold a token."""

    __slots__ = ("content", "elapsed", "headers", "issuer", "method", "path", "status")

    def __init__(self, *, issuer: str, method: str, path: str, status: int,
                 headers: Mapping[str, str], content: bytes, elapsed: float) -> None:
        self.issuer = issuer
        self.method = method
        self.path = path  # without query string
        self.status = status
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers)
        self.content = content
        self.elapsed = elapsed

    def json(self) -> Any:
        """The body as JSON; an `IssuerError` (without the body) if it is not JSON."""
        try:
            return json.loads(self.content) if self.content else None
        except ValueError:
            raise IssuerError(f"{self.issuer} sent a response that is not JSON",
                              f"{self.method} {self.path} returned HTTP {self.status}",
                              status=self.status) from None

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON (error bodies of proxies)."""
        try:
            return json.loads(self.content) if self.content else None
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"<HttpResponse {self.method} {self.path} {self.status}>"


@dataclass(frozen=True)
class RateLimitInfo:
    """What one set of rate-limit headers says. `limiter=None` means every limiter of the session."""

    limit: float | None = None
    remaining: float | None = None
    reset_seconds: float | None = None
    limiter: RateLimiter | None = None


# Maps a non-success response to the typed error to raise. `what` names the object or operation,
# e.g. "agent pool apool-123". Must not copy anything from the body that could hold a secret.
ErrorMapper = Callable[[HttpResponse, str], IssuerError]
# Reads an issuer's own rate-limit headers (x-ratelimit-*, RateLimit-*).
RateLimitHook = Callable[[HttpResponse], Sequence[RateLimitInfo]]


def default_error(response: HttpResponse, what: str) -> IssuerError:
    """Generic mapping by status code; issuers usually wrap it to add attribute paths."""
    issuer, status = response.issuer, response.status
    detail = f"{what}: HTTP {status}"
    if status == 401:
        return IssuerAuthError(f"{issuer} rejected the credentials", detail, status=status)
    if status == 403:
        return IssuerAuthError(f"{issuer} denied access", detail, status=status)
    if status == 404:
        return IssuerNotFound(f"{what} not found", f"{issuer} answered HTTP 404", status=status)
    if status in (400, 409, 422):
        return IssuerValidationError(f"{issuer} rejected the request", detail, status=status)
    if status == 429:
        return RateLimitedError(f"{issuer} rate limit still exceeded", detail, status=status)
    if 300 <= status < 400:
        return IssuerError(f"{issuer} answered with an unexpected redirect", detail, status=status)
    if status >= 500:
        return IssuerError(f"{issuer} failed to handle the request", detail, status=status)
    return IssuerError(f"Unexpected response from {issuer}", detail, status=status)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def parse_float(value: str | None) -> float | None:
    """A header value as a float, None when absent or malformed (servers' headers are hints only)."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


class _HeaderAuth(requests.auth.AuthBase):
    """Puts the credential into one header at send time. Being an AuthBase also stops requests from
    replacing it with ~/.netrc credentials."""

    def __init__(self, header: str, scheme: str | None, secret: Secret) -> None:
        self._header = header
        self._scheme = scheme
        self._secret = secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        value = self._secret.reveal()
        r.headers[self._header] = f"{self._scheme} {value}" if self._scheme else value
        return r

    def __repr__(self) -> str:
        return f"<{self._header} auth ***>"


def _classify(exc: requests.RequestException) -> tuple[str, bool, bool]:
    """(what happened, whether the request certainly never left us, whether a retry can help)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed", True, False
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out", True, True
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no response within the timeout", False, True
    if isinstance(exc, requests.exceptions.ConnectionError):
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", None)  # urllib3 MaxRetryError wraps the cause
        if isinstance(reason, NewConnectionError) or isinstance(inner, NewConnectionError):
            return "connection failed", True, True
        return "connection lost", False, True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "response cut off", False, True
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema)):
        return "invalid URL", True, False
    return type(exc).__name__, False, False


class HttpSession:
    """JSON over HTTP against one base URL, with auth, rate limiting, retries and typed errors.

    Thread-safe: one session may serve every thread of the provider. `sleep` exists for tests.
    """

    def __init__(self, base_url: str, *, issuer: str, auth: Secret | None,
                 auth_scheme: str | None = "Bearer", auth_header: str = "Authorization",
                 content_type: str = "application/json", accept: str | None = None,
                 limiters: Sequence[RateLimiter] = (),
                 timeout: float | tuple[float, float] = (10.0, 60.0),
                 max_retries: int = 5, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 max_retry_wait: float = 300.0,
                 error_mapper: ErrorMapper | None = None,
                 rate_limit_hook: RateLimitHook | None = None,
                 secret_patterns: Sequence[re.Pattern[str]] = (),
                 cancel: threading.Event | None = None,
                 sleep: Sleeper | None = None,
                 pool_maxsize: int = 16,
                 verify: str | bool = True) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base URL must be an absolute http(s) URL, got {base_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("base URL must not carry a query, fragment or credentials")
        self.base_url = base_url.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self.issuer = issuer
        self._auth_value = auth
        self._auth = _HeaderAuth(auth_header, auth_scheme, auth) if auth is not None else None
        self._content_type = content_type
        self._accept = accept or content_type
        self.limiters: tuple[RateLimiter, ...] = tuple(limiters)
        self._timeout = timeout
        self._max_retries = max(0, max_retries)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_retry_wait = max_retry_wait
        self._error_mapper = error_mapper or default_error
        self._rate_limit_hook = rate_limit_hook
        self._secret_patterns = tuple(secret_patterns)
        self._cancel = cancel
        self._sleep: Sleeper = sleep or cancellable_sleep
        # A CA bundle path (Entra's sandbox); passed per request, where it wins over REQUESTS_CA_BUNDLE.
        self._verify = verify
        self._session = requests.Session()
        # APIs need no cookies, and a shared cookie jar is the one part of Session that is not
        # safe across threads.
        self._session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize,
                                                max_retries=0)  # retries are ours, see request()
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.clear()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": self._accept})

    # -- URLs -------------------------------------------------------------------------------------

    def absolute(self, link: str) -> str:
        """Resolve a link the API returned (absolute or root-relative) to an absolute URL, refusing
        any link outside the API's origin so the credential is never sent elsewhere."""
        if link.startswith("/") and not link.startswith("//"):
            link = self._origin + link
        parts = urlsplit(link)
        if f"{parts.scheme}://{parts.netloc}" != self._origin or not (
                parts.path == self._base_path or parts.path.startswith(self._base_path + "/")):
            raise IssuerError(f"{self.issuer} returned a link outside its API",
                              f"refusing to send credentials to {parts.scheme}://{parts.netloc}{parts.path}")
        return link

    def _url(self, path_or_url: str, params: Mapping[str, Any] | None) -> tuple[str, str]:
        if path_or_url.startswith(("http://", "https://", "//")):
            url = self.absolute(path_or_url)
        else:
            url = self.base_url + ("" if path_or_url.startswith("/") else "/") + path_or_url
        if params:
            # quote (not quote_plus) and no safe characters: brackets in page[size] become %5B/%5D.
            query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True,
                              quote_via=quote)
            if query:
                url += ("&" if "?" in url else "?") + query
        return url, urlsplit(url).path

    # -- requests ---------------------------------------------------------------------------------

    def get(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("DELETE", path, **kw)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, expect: Collection[int] | None = None,
                idempotent: bool | None = None, what: str | None = None) -> HttpResponse:
        """Send one logical request (with retries) and return the response if its status is in
        `expect` (default: any 2xx); otherwise raise the error the mapper chooses.

        `path` is relative to the base URL, or an absolute link returned by the API. `idempotent`
        overrides the method's default (e.g. a POST search may be retried)."""
        method = method.upper()
        url, log_path = self._url(path, params)
        what = what or f"{method} {log_path}"
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        headers = {}
        data = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = self._content_type

        attempt = 0
        while True:
            attempt += 1
            waited = acquire_all(self.limiters, self._cancel)
            if waited > 0.001:
                log.debug("%s %s waited %.0f ms for the rate limiter", method, log_path, waited * 1000)
            started = time.monotonic()
            try:
                raw = self._session.request(method, url, data=data, headers=headers, auth=self._auth,
                                            timeout=self._timeout, allow_redirects=False, verify=self._verify)
                content = raw.content
            except requests.RequestException as exc:
                elapsed = time.monotonic() - started
                problem, never_sent, can_retry = _classify(exc)
                log.debug("%s %s -> %s after %.0f ms", method, log_path, problem, elapsed * 1000)
                if can_retry and (idempotent or never_sent) and attempt <= self._max_retries:
                    self._retry_wait(method, log_path, self._backoff(attempt), attempt, problem)
                    continue
                hint = ("" if (idempotent or never_sent)
                        else " (not retried: the request may have reached the server)")
                raise self._scrub(IssuerError(
                    f"Could not reach {self.issuer}",
                    f"{what}: {problem} talking to {self._origin} after {attempt} attempt(s){hint}",
                )) from None
            elapsed = time.monotonic() - started
            response = HttpResponse(issuer=self.issuer, method=method, path=log_path,
                                    status=raw.status_code, headers=raw.headers, content=content,
                                    elapsed=elapsed)
            raw.close()
            log.debug("%s %s -> %d in %.0f ms", method, log_path, response.status, elapsed * 1000)
            infos = self._observe(response)

            if response.status == 429:
                wait = self._rate_limit_wait(response, infos)
                if attempt <= self._max_retries and (wait is None or wait <= self._max_retry_wait):
                    # A hint of 0 would burn every retry at once; back off instead.
                    delay = wait if wait else self._backoff(attempt)
                    self._pause(infos, delay)
                    self._retry_wait(method, log_path, delay + self._jitter(delay), attempt, "HTTP 429")
                    continue
                raise self._fail(response, what, attempt, wait)
            if response.status in RETRYABLE_5XX and idempotent and attempt <= self._max_retries:
                server_hint = parse_retry_after(response.headers.get("Retry-After"))
                delay = self._backoff(attempt)
                if server_hint is not None and server_hint <= self._max_retry_wait:
                    delay = max(delay, server_hint)
                self._retry_wait(method, log_path, delay, attempt, f"HTTP {response.status}")
                continue
            if (expect is None and 200 <= response.status < 300) or (
                    expect is not None and response.status in expect):
                return response
            raise self._fail(response, what, attempt, None)

    # -- retries and rate limits ------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": at least half the step, so retries never hammer.
        step = min(self._backoff_max, self._backoff_base * (2 ** (attempt - 1)))
        return step / 2 + random.random() * step / 2  # noqa: S311 - jitter, not crypto

    @staticmethod
    def _jitter(delay: float) -> float:
        # Spread the threads that all got the same Retry-After.
        return random.random() * min(1.0, 0.1 * delay + 0.05)  # noqa: S311

    def _retry_wait(self, method: str, path: str, delay: float, attempt: int, why: str) -> None:
        log.debug("%s %s: retrying in %.2f s after %s (attempt %d of %d)", method, path, delay, why,
                  attempt + 1, self._max_retries + 1)
        if delay > 0 and self._sleep(delay, self._cancel):
            raise WaitCancelled(f"Cancelled while retrying a {self.issuer} request",
                                f"{method} {path}: the provider was asked to stop")

    def _observe(self, response: HttpResponse) -> Sequence[RateLimitInfo]:
        if self._rate_limit_hook is None:
            return ()
        infos = self._rate_limit_hook(response)
        for info in infos:
            for limiter in ((info.limiter,) if info.limiter is not None else self.limiters):
                limiter.observe(info.limit, info.remaining, info.reset_seconds)
        return infos

    def _rate_limit_wait(self, response: HttpResponse, infos: Sequence[RateLimitInfo]) -> float | None:
        """Seconds to wait after a 429: the longest of Retry-After and the reset of every exhausted
        budget (or of any budget, when none says it is exhausted). None if the server gave no hint."""
        waits = []
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            waits.append(retry_after)
        exhausted = [i.reset_seconds for i in infos
                     if i.reset_seconds is not None and i.remaining is not None and i.remaining <= 0]
        resets = exhausted or [i.reset_seconds for i in infos if i.reset_seconds is not None]
        waits.extend(r for r in resets if r is not None and r >= 0)
        return max(waits) if waits else None

    def _pause(self, infos: Sequence[RateLimitInfo], delay: float) -> None:
        # Stop every thread sharing the exhausted budget(s), not just this one.
        targets = [i.limiter for i in infos
                   if i.limiter is not None and i.remaining is not None and i.remaining <= 0]
        for limiter in targets or self.limiters:
            limiter.pause_for(delay)

    # -- errors -----------------------------------------------------------------------------------

    def _fail(self, response: HttpResponse, what: str, attempts: int, wait: float | None) -> IssuerError:
        exc = self._error_mapper(response, what)
        if response.status == 429:
            if wait is not None and wait > self._max_retry_wait:
                extra = (f"the server asks to wait {wait:.0f} s, longer than the "
                         f"{self._max_retry_wait:.0f} s allowed")
            else:
                extra = f"gave up after {attempts} attempt(s)"
            _rewrite(exc, exc.summary, f"{exc.detail} ({extra})" if exc.detail else extra)
        elif attempts > 1:
            _rewrite(exc, exc.summary, f"{exc.detail} (after {attempts} attempts)")
        return self._scrub(exc)

    def _scrub(self, exc: _E) -> _E:
        """Remove the credential and anything shaped like an issued token from the message."""
        secrets = [self._auth_value.reveal()] if self._auth_value is not None else []

        def clean(text: str) -> str:
            for s in secrets:
                text = text.replace(s, "***")
            for pattern in self._secret_patterns:
                text = pattern.sub("***", text)
            return text

        summary, detail = clean(exc.summary), clean(exc.detail)
        if (summary, detail) != (exc.summary, exc.detail):
            _rewrite(exc, summary, detail)
        return exc

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpSession({self.issuer!r}, {self.base_url!r})"


def _rewrite(exc: TokendropError, summary: str, detail: str) -> None:
    exc.summary = summary
    exc.detail = detail
    exc.args = (summary if not detail else f"{summary}: {detail}",)



# --- base URLs and credential keys, shared by every issuer client ----------------------------------

def normalize_base_url(url: str, *, label: str, setting: str, credential: str = "API token",
                       strip_suffix: str = "") -> str:
    """"scheme://host[:port][/prefix]" from a URL or bare host name (https assumed). The one endpoint
    rule, `endpoints.checked_endpoint`: no credentials, query or fragment in the URL, and plain http
    on loopback only (the credential would travel unencrypted). Errors name `setting`."""
    raw = (url or "").strip()
    if "://" not in raw:
        raw = "https://" + raw
    base = checked_endpoint(raw, label=label, setting=setting, carries=f"the {credential}")
    return base.removesuffix(strip_suffix) if strip_suffix else base


_CREDENTIAL_SALT = os.urandom(16)  # per process: digests cannot be compared across runs


def credential_digest(secret: Secret) -> str:
    """A salted, per-process digest that tells credentials apart (to share a rate limiter per API user)
    without holding the credential itself or a plain hash of it."""
    import hashlib
    import hmac

    return hmac.new(_CREDENTIAL_SALT, secret.reveal().encode(), hashlib.sha256).hexdigest()[:24]
