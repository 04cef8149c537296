"""The one rule for user-configured service endpoints that carry credentials or delivered values
(the Vault address, a custom SSM endpoint): https, or plain http to a loopback host only.

Stdlib only: plan-time checks call it before any client library is loaded.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import ConfigError
from .settings import AwsSettings


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and "localhost": the only hosts plain http is accepted for."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_endpoint(url: str, *, label: str, setting: str, carries: str, named: str = "") -> str:
    """`url` without a trailing slash, after refusing what would expose `carries` on the way:
    a scheme other than http(s), credentials in the URL, and plain http to a non-loopback host.
    Errors point at `setting` (the provider attribute) and call it `named` in the text (default: the
    attribute), e.g. "vault_address (or VAULT_ADDR)"."""
    named = named or setting
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Invalid {label}", f"{url!r} is not an http(s) URL (e.g. https://host:8200)",
                          attribute=(setting,))
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"Invalid {label}", "the URL must be plain (no credentials, query or fragment)",
                          attribute=(setting,))
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"Insecure {label}",
                          f"{named} is http://{parts.netloc}: {carries} would cross the network "
                          "unencrypted. Use https:// (plain http is accepted for loopback addresses only, "
                          "e.g. a local dev server)", attribute=(setting,))
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def check_ssm_endpoint(aws: AwsSettings) -> None:
    """A custom SSM endpoint must not carry parameter values (and signed requests) in clear text."""
    if aws.endpoint_url_ssm:
        checked_endpoint(aws.endpoint_url_ssm, label="SSM endpoint", setting="aws_endpoint_url_ssm",
                         named="aws_endpoint_url_ssm (or AWS_ENDPOINT_URL_SSM / AWS_ENDPOINT_URL)",
                         carries="every value tokendrop delivers to SSM")
