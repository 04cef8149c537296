"""RFC 3339 timestamps, as tokendrop writes them to state and reads them from issuers and sinks: one
formatter, one lenient parser. Bottom layer: imports nothing of tokendrop."""

from __future__ import annotations

import datetime


def format_rfc3339(moment: datetime.datetime) -> str:
    """UTC, whole seconds, `Z` suffix (e.g. 2026-01-31T12:00:00Z): the spelling state keeps."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> datetime.datetime | None:
    """The moment `text` names, or None when it is absent or unreadable: callers decide what a missing
    time means (an audit reports it, a refresh keeps what it knew). A time without a zone is UTC."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
