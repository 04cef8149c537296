"""When the previous token of a rotation is revoked: the pure decision behind `revoke_previous_when`.

`"overlap_ended"` (the default) revokes it once `keep_previous_for` has passed. `"unused"` revokes it as
soon as the issuer reports it idle for `previous_unused_for` (the issuer's last-use time), and at the
latest when `keep_previous_for` has passed: a consumer that keeps using the old token cannot keep it
alive for ever. The plan calls these functions; they take every time as an argument, so tests need no
clock. Bottom layer: imports only timestamps and validation.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .timestamps import format_rfc3339
from .validation import format_duration, humanize

OVERLAP_ENDED = "overlap_ended"
UNUSED = "unused"
REVOKE_PREVIOUS_WHEN = (OVERLAP_ENDED, UNUSED)
DEFAULT_UNUSED_FOR = datetime.timedelta(minutes=15)


@dataclass(frozen=True)
class PreviousDecision:
    revoke: bool
    reason: str  # why it is revoked now, or why it is kept (for the plan's warning)


def decide_previous(token_id: str, *, now: datetime.datetime, revoke_after: datetime.datetime | None,
                    when: str = OVERLAP_ENDED, live: bool = True, last_used_at: datetime.datetime | None = None,
                    unused_for: datetime.timedelta = DEFAULT_UNUSED_FOR) -> PreviousDecision:
    """Revoke the previous token `token_id` now, or keep it, and why.

    `revoke_after` is the end of `keep_previous_for` (None: unknown, so revoke). With `when="unused"`,
    `live` says whether the issuer still lists the token and `last_used_at` when it was last used
    (None: never)."""
    if revoke_after is None or revoke_after <= now:
        return PreviousDecision(True, "Its keep_previous_for grace period has ended.")
    if when != UNUSED:
        return PreviousDecision(False, f"keep_previous_for keeps it until {format_rfc3339(revoke_after)}.")
    if not live:
        return PreviousDecision(True, "The issuer no longer lists it as live.")
    if last_used_at is None:
        return PreviousDecision(True, "The issuer reports it never used (revoke_previous_when = \"unused\").")
    idle = max(now - last_used_at, datetime.timedelta(0))  # a last use "in the future" is clock skew: just now
    if idle >= unused_for:
        return PreviousDecision(True, f"The issuer reports it last used {humanize(idle)} ago "
                                f"({format_rfc3339(last_used_at)}), unused for at least previous_unused_for "
                                f"{format_duration(unused_for)} (revoke_previous_when = \"unused\").")
    return PreviousDecision(False, f"previous token {token_id} used {_ago(idle)}; revoked once unused for "
                            f"{format_duration(unused_for)} or at {format_rfc3339(revoke_after)} "
                            "(keep_previous_for), whichever comes first.")


def unswitched_warning(token_id: str, *, now: datetime.datetime, created_at: datetime.datetime | None,
                       last_used_at: datetime.datetime | None, keep_previous_for: datetime.timedelta) -> str | None:
    """Why to warn that consumers have not switched: the new token `token_id` was never used, half of
    `keep_previous_for` after it was minted. None when it was used, or it is too early to say."""
    if created_at is None or last_used_at is not None or keep_previous_for <= datetime.timedelta(0):
        return None
    age = now - created_at
    if age < keep_previous_for / 2:
        return None
    return (f"The new token {token_id} has not been used {humanize(age)} after it was minted (half of "
            f"keep_previous_for {format_duration(keep_previous_for)} has passed): its consumers may still read the "
            "previous value. Check that they re-read the sink.")


def _ago(idle: datetime.timedelta) -> str:
    return "just now" if idle < datetime.timedelta(minutes=1) else f"{humanize(idle)} ago"
