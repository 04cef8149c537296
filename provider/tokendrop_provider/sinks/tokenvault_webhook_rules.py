"""Pure rules of the Token Vault Webhook Mode sink: input validators and the ownership record.

No HTTP here: the schema (the block is declared in `registry/tokenvault_webhook.py`) and the CDKTF
constructs call these at synth and plan time. Validators return an error message for the user, or None.
Wire facts: docs/wire.md, "Token Vault" -> "Webhook Mode".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..endpoints import checked_endpoint
from ..errors import ConfigError
from .base import Ownership

# Token Vault documents no limit on service names. The name travels in a URL path
# (/api/tokens/{service}) and in a query string (the agent's ?service=): letters, digits and `._-` only.
MAX_SERVICE_LENGTH = 100
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# The tokenData field holding tokendrop's record. Not a credential field, so the webhook keeps it in the
# token's metadata, which is what Token Vault (and so the sink's status) can read back.
RECORD_FIELD = "tokendrop"
TOKEN_TYPE = "PlainText"  # the CLI's default type (tokens.go store-ticket): the value goes in accessToken
CREDENTIAL_FIELD = "accessToken"


def validate_service(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "a service name must be a non-empty string"
    if len(name) > MAX_SERVICE_LENGTH:
        return f"service name is {len(name)} characters; tokendrop allows at most {MAX_SERVICE_LENGTH}"
    if not _SERVICE.fullmatch(name):
        return (f"service name {name!r} must start with a letter or digit and hold only letters, digits and "
                "`._-` (it travels in URL paths and query strings)")
    return None


def validate_webhook_url(url: str) -> str | None:
    """The webhook the value is posted to: https, or http on a loopback address (endpoints.py)."""
    try:
        checked_endpoint(url, label="Token Vault webhook URL", setting="webhook_url",
                         carries="every value tokendrop delivers to the webhook")
    except ConfigError as problem:
        return problem.detail
    return None


def same_webhook(configured: str, named: str) -> bool:
    """Whether the webhook Token Vault names in a store ticket is the one the configuration pins."""
    def norm(url: str) -> str:
        return url.strip().rstrip("/").lower()

    return norm(configured) == norm(named)


# --- ownership record -------------------------------------------------------------------------------
#
#     "issuer=buildkite;token=0b1f...;owner=1a2b3c4d5e6f;version=2"
#
# It is stored with the value in one /v1/store call, so it always describes the credential it sits beside;
# its version is tokendrop's own count of the values it wrote there (the webhook keeps no versions).

_SAFE = "-._~:@/+="


@dataclass(frozen=True)
class Record:
    ownership: Ownership


def format_record(ownership: Ownership, version: int) -> str:
    fields = (("issuer", ownership.issuer), ("token", ownership.token_id), ("owner", ownership.owner),
              ("version", str(version)))
    return ";".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in fields)


def parse_record(text: object) -> Record | None:
    if not isinstance(text, str) or not text:
        return None
    fields = dict(item.partition("=")[::2] for item in text.split(";"))
    try:
        ownership = Ownership(token_id=unquote(fields["token"]), issuer=unquote(fields["issuer"]),
                              owner=unquote(fields["owner"]), version=int(fields["version"]))
    except (KeyError, ValueError):
        return None
    if not ownership.token_id or not ownership.issuer or not ownership.version or ownership.version < 1:
        return None
    return Record(ownership)
