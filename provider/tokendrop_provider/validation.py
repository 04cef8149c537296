"""Pure validation rules shared by the provider (plan time) and the CDKTF constructs (synth time).

A rule checks one known, non-null value and returns an error message, or None when the value is
fine. Each rule also carries a one-line `doc` for the generated documentation.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Rule:
    check: Callable[[object], str | None]
    doc: str

    def __call__(self, value: object) -> str | None:
        return self.check(value)


def pattern(regex: str, message: str, doc: str | None = None) -> Rule:
    compiled = re.compile(regex)

    def check(value: object) -> str | None:
        return None if isinstance(value, str) and compiled.fullmatch(value) else message

    return Rule(check, doc or message)


def length(min_len: int = 0, max_len: int | None = None) -> Rule:
    def check(value: object) -> str | None:
        size = len(value)  # type: ignore[arg-type]
        if size < min_len:
            return "must not be empty" if min_len == 1 else f"must be at least {min_len} characters"
        if max_len is not None and size > max_len:
            return f"must be at most {max_len} characters (got {size})"
        return None

    if max_len is None:
        doc = "must not be empty" if min_len == 1 else f"at least {min_len} characters"
    else:
        doc = f"{min_len}–{max_len} characters"
    return Rule(check, doc)


def one_of(*choices: str) -> Rule:
    def check(value: object) -> str | None:
        return None if value in choices else f"must be one of {', '.join(repr(c) for c in choices)}"

    return Rule(check, f"one of {', '.join(f'`{c}`' for c in choices)}")


def at_least(minimum: int) -> Rule:
    def check(value: object) -> str | None:
        return None if isinstance(value, int | float) and value >= minimum else f"must be {minimum} or more"

    return Rule(check, f"{minimum} or more")


def max_items(limit: int) -> Rule:
    def check(value: object) -> str | None:
        return None if len(value) <= limit else f"may hold at most {limit} entries"  # type: ignore[arg-type]

    return Rule(check, f"at most {limit} entries")


def each(rule: Rule) -> Rule:
    """Apply a rule to every element of a list/set (messages name the offending element)."""

    def check(value: object) -> str | None:
        for item in value:  # type: ignore[attr-defined]
            if item is None or not isinstance(item, str | int | float | bool):
                continue  # unknown elements are checked once known
            message = rule(item)
            if message:
                return f"{item!r} {message}"
        return None

    return Rule(check, f"each element: {rule.doc}")


def unique() -> Rule:
    def check(value: object) -> str | None:
        seen: set[object] = set()
        for item in value:  # type: ignore[attr-defined]
            if item in seen:
                return f"lists {item!r} twice"
            seen.add(item)
        return None

    return Rule(check, "no duplicates")


def from_function(fn: Callable[[str], str | None], doc: str) -> Rule:
    """Wrap a pure validator from a rules module (e.g. sinks.ssm_rules)."""
    return Rule(lambda value: fn(value), doc)  # type: ignore[arg-type]


# --- CIDRs -----------------------------------------------------------------------------------------

def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR block (a bare address means a /32 or /128). Host bits must be zero."""
    return ipaddress.ip_network(text, strict=True)


def cidr(*, ipv4_only: bool = False) -> Rule:
    """A CIDR block; with `ipv4_only`, IPv6 blocks are refused too (for APIs that take IPv4 only)."""
    kind = "an IPv4 CIDR block" if ipv4_only else "a CIDR block"

    def check(value: object) -> str | None:
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            return f"is not {kind} (expected e.g. 10.0.0.0/8)"
        try:
            network = parse_cidr(value)
        except ValueError as err:
            return f"is not a valid CIDR block: {err}"
        if ipv4_only and network.version != 4:
            return "is an IPv6 block: only IPv4 CIDR blocks are accepted here (e.g. 10.0.0.0/8)"
        return None

    return Rule(check, f"{kind} such as `10.0.0.0/8` or `192.0.2.7/32` (host bits zero)")


# --- durations -------------------------------------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([smhdw]))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse "90d", "720h", "1h30m", "45s", "2w". Raises ValueError with a readable message."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a duration (use a number and a unit: s, m, h, d, w; "
                         'e.g. "30d", "12h", "1h30m")')
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text.strip()))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The canonical text of a duration: the largest units that divide it exactly ("30d", "90m")."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def humanize(delta: timedelta) -> str:
    """A short, rounded rendering for messages ("31d", "5h", "12m")."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(minimum: timedelta | None = None, maximum: timedelta | None = None) -> Rule:
    def check(value: object) -> str | None:
        try:
            delta = parse_duration(value)  # type: ignore[arg-type]
        except ValueError as err:
            return str(err)
        if minimum is not None and delta < minimum:
            return f"must be at least {format_duration(minimum)} (got {value})"
        if maximum is not None and delta > maximum:
            return f"must be at most {format_duration(maximum)} (got {value})"
        return None

    bounds = ""
    if minimum is not None and maximum is not None:
        bounds = f", between {format_duration(minimum)} and {format_duration(maximum)}"
    elif minimum is not None:
        bounds = f", at least {format_duration(minimum)}"
    elif maximum is not None:
        bounds = f", at most {format_duration(maximum)}"
    return Rule(check, f'a duration such as `"30d"`, `"12h"` or `"1h30m"`{bounds}')


# --- timestamps ------------------------------------------------------------------------------------

def rfc3339() -> Rule:
    from datetime import datetime

    def check(value: object) -> str | None:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return "is not an RFC 3339 timestamp (e.g. 2030-01-31T12:00:00Z)"
        if parsed.tzinfo is None:
            return "needs a time zone (e.g. 2030-01-31T12:00:00Z)"
        return None

    return Rule(check, "an RFC 3339 timestamp with a time zone, e.g. `2030-01-31T12:00:00Z`")


def first_error(rules: Iterable[Rule], value: object) -> str | None:
    for rule in rules:
        message = rule(value)
        if message:
            return message
    return None
