"""The audit's judgement: from what the states say, what the issuers list and what the sinks' metadata
says, one row per token with the flags that need attention. Pure: no calls, the clock is an argument.

The flags:

- `orphan`: a live token carrying a tokendrop marker that no given state knows (neither as a token
  nor as a previous token), in a scope the audit listed.
- `revoked`: a state names a token the issuer no longer has (and it did not simply expire).
- `sink_drift`: a sink is missing, at another version than state recorded, its ownership record
  names another token, it holds a dead Token Vault key, or state itself records it drifted or not yet
  written (`pending`). Every sink of state's `sinks` list is checked; one finding per sink, naming it.
- `rotation_overdue`: `rotate_every` has elapsed since `created_at`.
- `expiring`: the token expires within `rotate_before_expiry` (else the default window), or expired.
- `previous_overdue`: a `previous_token_id` whose `previous_revoke_after` has passed: no apply has run
  since to revoke it (a previous token that a `pending` sink still holds is not overdue: that sink is
  the finding).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..delivery import marker, split_description
from ..issuers.base import IssuedToken
from ..sinks.base import SinkStatus
from ..timestamps import parse_rfc3339
from ..validation import humanize, parse_duration
from .state import ManagedToken, StateSink

FLAGS = ("orphan", "revoked", "sink_drift", "rotation_overdue", "expiring", "previous_overdue")
DEFAULT_EXPIRY_WINDOW = datetime.timedelta(days=7)


def reports_last_use(issuer: str) -> bool:
    """The issuer reports when a token was last used (TFE's last-used-at); others show "n/a", not "never"."""
    from ..registry.issuers import issuer as registered

    try:
        return registered(issuer).reports_last_use
    except KeyError:
        return False


@dataclass(frozen=True)
class Flag:
    code: str  # one of FLAGS
    detail: str


@dataclass(frozen=True)
class ScopeListing:
    """Everything the issuer listed for one scope (one listing, all pages)."""

    issuer: str
    scope: str
    tokens: Mapping[str, IssuedToken]  # token id -> token; Buildkite's include expired ones
    exists: bool = True  # False: the pool / cluster / role itself is gone
    name: str | None = None  # display name (pool or cluster name), where known
    origin: str = "state"  # "state" | "walk" | "state+walk": how the audit came to list it


@dataclass(frozen=True)
class SinkCheck:
    address: str | None
    state_version: int | None  # the version state says holds the token
    version: int | None  # the current version, as the sink's metadata says (None: missing / not read)
    status: str  # delivered | missing | overwritten | foreign | stale | drifted | unchecked
    holder: str | None = None  # the token id the sink's current ownership record names


@dataclass
class Row:
    issuer: str
    scope: str
    token_id: str
    address: str | None  # None for an orphan
    source: str | None = None
    resource_type: str | None = None
    scope_name: str | None = None
    description: str | None = None  # the user's text, without the marker
    marker: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    issuer_status: str = "live"  # live | revoked | expired | suspended | unlisted
    sink: SinkCheck | None = None  # the first sink (sink_address)
    sinks: list[SinkCheck] = field(default_factory=list)  # every sink, in deliver_to's order
    previous_token_id: str | None = None
    previous_revoke_after: str | None = None
    previous_live: bool | None = None
    belongs_to: str | None = None  # an orphan: the managed token whose sink its marker names
    flags: list[Flag] = field(default_factory=list)

    @property
    def attention(self) -> bool:
        return bool(self.flags)

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.flags]


@dataclass
class Report:
    rows: list[Row]
    now: datetime.datetime

    @property
    def attention(self) -> list[Row]:
        return [r for r in self.rows if r.attention]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FLAGS, 0)
        for row in self.rows:
            for code in set(row.codes):
                counts[code] += 1
        return counts


def _duration(text: str | None) -> datetime.timedelta | None:
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _expired(expires_at: str | None, now: datetime.datetime) -> bool:
    moment = parse_rfc3339(expires_at)
    return moment is not None and moment <= now


def evaluate(tokens: Sequence[ManagedToken], listings: Mapping[tuple[str, str], ScopeListing],
             sinks: Mapping[str, SinkStatus], now: datetime.datetime,
             expiry_window: datetime.timedelta = DEFAULT_EXPIRY_WINDOW) -> Report:
    """One row per managed token (in the order given), then one per orphan.

    `sinks` maps a sink address to its status; a sink missing from it was not read (unchecked)."""
    rows = [_managed_row(t, listings.get((t.issuer, t.scope)), sinks, now, expiry_window) for t in tokens]
    rows += _orphan_rows(tokens, listings.values(), sinks, now)
    return Report(rows, now)


# --- managed tokens -------------------------------------------------------------------------------


def _managed_row(token: ManagedToken, listing: ScopeListing | None, sinks: Mapping[str, SinkStatus],
                 now: datetime.datetime, window: datetime.timedelta) -> Row:
    live = listing.tokens.get(token.token_id) if listing is not None and listing.exists else None
    row = Row(issuer=token.issuer, scope=token.scope, token_id=token.token_id, address=token.address,
              source=token.source, resource_type=token.resource_type,
              scope_name=listing.name if listing is not None else None,
              description=token.description, created_at=token.created_at,
              expires_at=(live.expires_at if live is not None and live.expires_at else token.expires_at),
              last_used_at=live.last_used_at if live is not None else None,
              previous_token_id=token.previous_token_id, previous_revoke_after=token.previous_revoke_after)
    if live is not None:
        row.marker = split_description(live.description)[1]
    row.issuer_status = _issuer_status(token, listing, live, now)
    if row.issuer_status == "revoked":
        if listing is not None and not listing.exists:
            why = f"{_scope_noun(token.issuer)} {token.scope} no longer exists"
        elif token.issuer == "tokenvault":
            why = f"Token Vault has no agent {token.token_id} named {token.scope} any more"
        else:
            why = f"{_scope_noun(token.issuer)} {token.scope} no longer lists it"
        row.flags.append(Flag("revoked", f"{token.token_id} is gone at the issuer ({why}): revoked outside "
                                         "Terraform. The next plan creates a new token; run terraform apply."))
    row.sinks = [_sink_check(token, sink, sinks, live) for sink in token.all_sinks]
    row.sink = row.sinks[0] if row.sinks else SinkCheck(None, None, None, "unchecked")
    for sink, check in zip(token.all_sinks, row.sinks, strict=True):
        drift = _sink_drift(token, sink, check)
        if drift:
            row.flags.append(Flag("sink_drift", drift))
    if row.issuer_status != "revoked":
        overdue = _rotation_overdue(token, now)
        if overdue:
            row.flags.append(Flag("rotation_overdue", overdue))
        expiring = _expiring(row.expires_at, token.rotate_before_expiry, now, window)
        if expiring:
            row.flags.append(Flag("expiring", expiring))
    held_by_a_pending_sink = token.previous_revoke_after is None and any(
        s.status == "pending" for s in token.all_sinks)
    if token.previous_token_id and not held_by_a_pending_sink:
        if listing is not None and listing.exists:
            previous = listing.tokens.get(token.previous_token_id)
            row.previous_live = previous is not None and not _expired(previous.expires_at, now)
        overdue = _previous_overdue(token, row.previous_live, now)
        if overdue:
            row.flags.append(Flag("previous_overdue", overdue))
    return row


def _scope_noun(issuer: str) -> str:
    from ..registry.issuers import issuer as registered

    try:
        return registered(issuer).scope_label
    except KeyError:
        return "scope"


def _issuer_status(token: ManagedToken, listing: ScopeListing | None, live: IssuedToken | None,
                   now: datetime.datetime) -> str:
    if listing is None:
        return "unlisted"  # not asked (cannot happen through the command; kept honest for callers)
    if live is None:
        # Gone. A token past its expiry is reported as expired, not as revoked by someone.
        return "expired" if _expired(token.expires_at, now) else "revoked"
    if _expired(live.expires_at, now):
        return "expired"
    if live.extra.get("status") not in (None, "active"):
        return str(live.extra["status"])  # a suspended Token Vault agent: its key is refused
    return "live"


def _sink_check(token: ManagedToken, sink: StateSink, sinks: Mapping[str, SinkStatus],
                live: IssuedToken | None) -> SinkCheck:
    status = sinks.get(sink.address)
    if status is None:
        return SinkCheck(sink.address, sink.version, None, "unchecked")
    own = status.ownership
    holder = own.token_id if own is not None and status.ownership_current else None
    if not status.exists:
        state = "missing"
    elif sink.status in ("pending", "unknown"):
        state = "drifted"  # not written yet, or not known to be: whatever it holds, the next apply writes it
    elif status.version != sink.version:
        state = "overwritten"
    elif holder is not None and holder != token.token_id:
        state = "foreign"
    elif sink.status not in (None, "delivered"):
        state = "drifted"  # as refresh recorded it; the sink looks fine now but state will rotate
    elif (token.issuer == "tokenvault" and live is not None and live.created_at and token.created_at
          and parse_rfc3339(live.created_at) != parse_rfc3339(token.created_at)):
        state = "stale"  # the agent's key is newer than the delivered one: the sink holds a dead key
    else:
        state = "delivered"
    return SinkCheck(sink.address, sink.version, status.version if status.exists else None, state, holder)


def _recorded(sink: StateSink) -> str:
    if sink.status == "pending":
        return (f"state records {sink.address} as pending (not written yet: a write failed or the apply stopped); "
                "the next apply writes the live token to it")
    if sink.status == "unknown":
        return (f"state records {sink.address} as unknown (an apply could not tell whether its write landed); "
                "the next apply settles it")
    return (f"state records sink_status {sink.status!r} for {sink.address} (found by a refresh); the next apply "
            "writes the live token to it")


def _sink_drift(token: ManagedToken, sink: StateSink, check: SinkCheck) -> str | None:
    address = check.address or "(no sink address in state)"
    if check.status == "unchecked":
        if sink.status not in (None, "delivered"):
            return f"{_recorded(sink)}. The sink itself was not read."
        return None
    if check.status == "missing":
        return f"{address} no longer exists (deleted outside tokendrop). The next apply rotates the token into it."
    if check.status == "overwritten":
        who = (f"a record naming {check.holder}" if check.holder and check.holder != token.token_id
               else "our token under a newer version (an apply whose state was lost)" if check.holder
               else "a value that tokendrop did not write")
        return (f"{address} is at version {check.version}, not {check.state_version} as state recorded; it holds "
                f"{who}. The next apply rotates the token into it.")
    if check.status == "foreign":
        return (f"{address} (version {check.version}) carries an ownership record naming {check.holder}, not "
                f"{token.token_id}. Another resource or stack writes to this sink; give each resource its own sink.")
    if check.status == "drifted":
        return f"{_recorded(sink)}."

    if check.status == "stale":
        return (f"{address} holds a dead key: Token Vault's agent {token.token_id} has a newer key than the one "
                "delivered (a rotation that did not finish, or rotate-key outside tokendrop). The next apply rotates "
                "the key again and delivers it.")
    return None


def _rotation_overdue(token: ManagedToken, now: datetime.datetime) -> str | None:
    period = _duration(token.rotate_every)
    created = parse_rfc3339(token.created_at)
    if period is None or created is None or now - created < period:
        return None
    late = now - created - period
    return (f"minted {humanize(now - created)} ago, rotate_every {token.rotate_every} (due {humanize(late)} ago). "
            "Run terraform apply: the plan rotates it.")


def _expiring(expires_at: str | None, rotate_before_expiry: str | None, now: datetime.datetime,
              default: datetime.timedelta) -> str | None:
    expires = parse_rfc3339(expires_at)
    if expires is None:
        return None
    left = expires - now
    if left.total_seconds() <= 0:
        return f"expired {humanize(-left)} ago ({expires_at}). Run terraform apply: the plan mints a new token."
    window = _duration(rotate_before_expiry)
    if left > (window if window is not None else default):
        return None
    if window is not None:
        return (f"expires in {humanize(left)} ({expires_at}), within rotate_before_expiry {rotate_before_expiry}. "
                "Run terraform apply: the plan rotates it.")
    return (f"expires in {humanize(left)} ({expires_at}), within {humanize(default)}, and no rotate_before_expiry "
            "rotates it before then. Set rotate_before_expiry, or change rotate_on to rotate it now.")


def _previous_overdue(token: ManagedToken, live: bool | None, now: datetime.datetime) -> str | None:
    deadline = parse_rfc3339(token.previous_revoke_after)
    if deadline is not None and deadline > now:
        return None
    when = (f"its grace period ended {humanize(now - deadline)} ago ({token.previous_revoke_after})"
            if deadline is not None else "no revoke deadline is recorded")
    alive = {True: "it is still live at the issuer", False: "it is already gone at the issuer",
             None: "its state at the issuer is unknown"}[live]
    return (f"previous token {token.previous_token_id}: {when}; {alive}. No apply has run since; run terraform "
            "apply: it revokes it.")


# --- orphans --------------------------------------------------------------------------------------


def _orphan_rows(tokens: Sequence[ManagedToken], listings: Iterable[ScopeListing],
                 sinks: Mapping[str, SinkStatus], now: datetime.datetime) -> list[Row]:
    known = {(t.issuer, i) for t in tokens for i in (t.token_id, t.previous_token_id) if i}
    owners = {marker(t.issuer, t.scope, t.sink_address): t for t in tokens if t.sink_address}
    held = {s.ownership.token_id: address for address, s in sinks.items()
            if s.exists and s.ownership is not None and s.ownership_current}
    addresses = {t.address: {s.address for s in t.all_sinks} for t in tokens}
    rows: list[Row] = []
    for listing in sorted(listings, key=lambda item: (item.issuer, item.scope)):
        if not listing.exists:
            continue
        for token in sorted(listing.tokens.values(), key=lambda t: (t.created_at or "", t.id)):
            mark = split_description(token.description)[1]
            if mark is None or (listing.issuer, token.id) in known or _expired(token.expires_at, now):
                continue
            owner = owners.get(mark)
            row = Row(issuer=listing.issuer, scope=listing.scope, token_id=token.id, address=None,
                      scope_name=listing.name, description=split_description(token.description)[0], marker=mark,
                      created_at=token.created_at, expires_at=token.expires_at, last_used_at=token.last_used_at,
                      issuer_status=_issuer_status_of(token), belongs_to=owner.address if owner else None)
            holder = held.get(token.id)
            row.flags.append(Flag("orphan", _orphan_detail(
                token, mark, owner, holder if owner is not None and holder in addresses[owner.address] else None)))
            rows.append(row)
    return rows


def _issuer_status_of(token: IssuedToken) -> str:
    status = token.extra.get("status")
    return str(status) if status not in (None, "active") else "live"


def _orphan_detail(token: IssuedToken, mark: str, owner: ManagedToken | None, held_by: str | None) -> str:
    if held_by is not None and owner is not None:  # held_by is one of owner's sinks
        return (f"{token.id} carries marker {mark} and {held_by} holds it, but the state of {owner.address} names "
                f"{owner.token_id}: an apply delivered it and its state was lost. The next refresh of "
                f"{owner.address} takes it into state.")
    if owner is not None:
        return (f"{token.id} carries marker {mark} of {owner.address}'s sink {owner.sink_address} but no state "
                f"knows it (left by an interrupted run). The next delivery to that sink (a rotation of "
                f"{owner.address}) revokes it; revoke it at the issuer now if it should not wait.")
    return (f"{token.id} carries marker {mark}, which names no sink of the given states: it was minted by a stack "
            "whose state was not given, or by a resource since removed. If no state knows it, revoke it at the "
            "issuer.")
