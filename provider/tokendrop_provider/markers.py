"""tokendrop's marker on the tokens it mints: derived from (issuer, scope, sink address), kept at the end
of the issuer-side description (or, for AppRole secret ids, under one metadata key) so that orphans of
a crashed run can be recognised (docs/lifecycle.md). Bottom layer: issuers, delivery and the audit all
read it, so it imports nothing of tokendrop."""

from __future__ import annotations

import hashlib
import re

_MARKER = re.compile(r"\s*\[td:([0-9a-f]{12})\]\s*\Z")
APPROLE_MARKER_KEY = "tokendrop_marker"  # secret-id metadata key holding tokendrop's orphan-sweep marker


def marker(issuer: str, scope: str, sink_address: str) -> str:
    digest = hashlib.sha256(f"{issuer}\0{scope}\0{sink_address}".encode()).hexdigest()[:12]
    return f"td:{digest}"


def issuer_description(description: str | None, mark: str) -> str:
    """The description stored at the issuer: the user's text and our marker."""
    return f"{description} [{mark}]" if description else f"[{mark}]"


def split_description(text: str | None) -> tuple[str | None, str | None]:
    """(the user's description, our marker) of an issuer-side description."""
    if not text:
        return None, None
    found = _MARKER.search(text)
    if not found:
        return text, None
    user = text[: found.start()]
    return (user or None), f"td:{found.group(1)}"
