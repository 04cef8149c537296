"""The audit's two outputs: an aligned table for people and a JSON document for pipelines.

The JSON schema is versioned (`schema`); fields are only ever added within a version. See
docs/audit.md for every field.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..timestamps import format_rfc3339, parse_rfc3339
from ..validation import humanize
from .evaluate import FLAGS, Report, Row, ScopeListing, SinkCheck, reports_last_use

SCHEMA = "tokendrop-audit/1"
_LABELS = {"orphan": "orphan", "revoked": "revoked", "sink_drift": "sink drift", "rotation_overdue": "rotation overdue",
           "expiring": "expiring", "previous_overdue": "previous overdue"}


@dataclass(frozen=True)
class Source:
    """Where the audit's knowledge came from: a state, or an organization / account / role walked."""

    type: str  # "state" | "tfe_organization" | "buildkite_organization" | "tokenvault_account" | "approle_role"
    name: str  # a path ("-" for stdin), organization, API URL or "<mount>/<role>"
    format: str | None = None  # states: "tfstate" | "show-json" | "plan-json"
    tokens: int | None = None  # states: how many token resources it holds


def _age_seconds(row: Row, now: datetime.datetime) -> int | None:
    created = parse_rfc3339(row.created_at)
    return None if created is None else int((now - created).total_seconds())


def summary(report: Report) -> dict[str, Any]:
    counts = report.counts()
    return {"tokens": len(report.rows), "attention": len(report.attention), "flags": counts}


def to_json(report: Report, sources: Sequence[Source], listings: Sequence[ScopeListing]) -> dict[str, Any]:
    now = report.now
    return {
        "schema": SCHEMA,
        "generated_at": format_rfc3339(now),
        "summary": summary(report),
        "sources": [{k: v for k, v in (("type", s.type), ("name", s.name), ("format", s.format),
                                       ("tokens", s.tokens)) if v is not None} for s in sources],
        "scopes": [{"issuer": s.issuer, "scope": s.scope, "name": s.name, "origin": s.origin, "exists": s.exists,
                    "tokens": len(s.tokens)} for s in sorted(listings, key=lambda s: (s.issuer, s.scope))],
        "tokens": [_row_json(r, now) for r in report.rows],
    }


def _sink_json(check: SinkCheck) -> dict[str, Any]:
    return {"address": check.address, "state_version": check.state_version, "version": check.version,
            "status": check.status, "holder": check.holder}


def _row_json(row: Row, now: datetime.datetime) -> dict[str, Any]:
    sink = None if row.sink is None else _sink_json(row.sink)
    previous = None if row.previous_token_id is None else {
        "id": row.previous_token_id, "revoke_after": row.previous_revoke_after, "live": row.previous_live}
    return {
        "address": row.address,
        "state": row.source,
        "resource_type": row.resource_type,
        "issuer": row.issuer,
        "scope": row.scope,
        "scope_name": row.scope_name,
        "token_id": row.token_id,
        "description": row.description,
        "marker": row.marker,
        "created_at": row.created_at,
        "age_seconds": _age_seconds(row, now),
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "issuer_status": row.issuer_status,
        "sink": sink,
        "sinks": [_sink_json(check) for check in row.sinks],
        "previous_token": previous,
        "belongs_to": row.belongs_to,
        "flags": [{"code": f.code, "detail": f.detail} for f in row.flags],
        "attention": row.attention,
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


# --- the table ------------------------------------------------------------------------------------


def _ago(text: str | None, now: datetime.datetime) -> str | None:
    moment = parse_rfc3339(text)
    return None if moment is None else humanize(now - moment)


def _expires(row: Row, now: datetime.datetime) -> str:
    moment = parse_rfc3339(row.expires_at)
    if moment is None:
        return "never"
    left = moment - now
    return f"in {humanize(left)}" if left.total_seconds() > 0 else f"{humanize(-left)} ago"


def _last_used(row: Row, now: datetime.datetime) -> str:
    if row.last_used_at:
        return f"{_ago(row.last_used_at, now) or row.last_used_at} ago"
    return "never" if reports_last_use(row.issuer) else "n/a"


def _version(sink: SinkCheck | None) -> str:
    if sink is None or sink.address is None:
        return "-"
    recorded = "-" if sink.state_version is None else str(sink.state_version)
    if sink.status == "unchecked":
        return recorded
    current = "none" if sink.version is None else str(sink.version)
    return recorded if current == recorded else f"{recorded}->{current}"


def _status(row: Row) -> str:
    if row.flags:
        return ",".join(dict.fromkeys(row.codes))
    return "ok" if row.issuer_status == "live" else row.issuer_status


def _address(row: Row) -> str:
    if row.address is not None:
        return row.address
    where = f"{row.scope_name} ({row.scope})" if row.scope_name else row.scope
    return f"(orphan in {where})"


def table(report: Report, *, show_state: bool = False) -> str:
    now = report.now
    headers = ["ADDRESS", "ISSUER", "TOKEN", "AGE", "EXPIRES", "LAST USED", "SINK", "VERSION", "STATUS"]
    if show_state:
        headers.insert(0, "STATE")
    lines: list[list[str]] = []
    for row in report.rows:
        age = _ago(row.created_at, now)
        cells = [_address(row), row.issuer, row.token_id, age or "-", _expires(row, now), _last_used(row, now),
                 (row.sink.address if row.sink is not None and row.sink.address else "-"), _version(row.sink),
                 _status(row)]
        if show_state:
            cells.insert(0, row.source or "-")
        lines.append(cells)
        for sink in row.sinks[1:]:  # a line per further sink of the token: its address, version, status
            more = ["", "", "", "", "", "", sink.address or "-", _version(sink), sink.status]
            lines.append(["", *more] if show_state else more)
    out: list[str] = []
    if lines:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
        for cells in [headers, *lines]:
            out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        out.append("")
    out.append(summary_line(report))
    attention = report.attention
    if attention:
        out.append("")
        for row in attention:
            label = row.address if row.address is not None else f"orphan {row.token_id} in {row.issuer} {row.scope}"
            if show_state and row.source:
                label += f" ({row.source})"
            out.append(label)
            out.extend(f"  {flag.code}: {flag.detail}" for flag in row.flags)
    return "\n".join(out) + "\n"


def summary_line(report: Report) -> str:
    total, needing = len(report.rows), len(report.attention)
    text = f"{total} token{'' if total == 1 else 's'}, {needing} need{'s' if needing == 1 else ''} attention"
    counts = [f"{n} {_LABELS[code]}{'s' if code == 'orphan' and n > 1 else ''}"
              for code in FLAGS if (n := report.counts()[code])]
    return text + (f" ({', '.join(counts)})" if counts else "")
