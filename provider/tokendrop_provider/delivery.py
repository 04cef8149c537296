"""mint → deliver → reconcile, shared by every token resource.

The one invariant: after any call, or a crash at any point of one followed by another apply, each
sink holds a live token and the issuer has exactly one live token per sink carrying our marker
(plus the previous one while `keep_previous_for` lasts).

- Every token we mint carries a *marker* in its issuer-side description, derived from
  (issuer, scope, sink address). Tokens with our marker that no state or sink knows are orphans of a
  crashed run, and the next delivery to that sink revokes them.
- Every sink records an `Ownership` beside the value: the token id it holds and the *fingerprint* of
  the resource that wrote it (resource type, scope, sink, description). A create finding its own
  fingerprint on a live token adopts it instead of minting (the previous run crashed after the sink
  write); a create finding someone else's record fails unless `adopt_existing` is set.
- If the sink refuses the write (a definite answer: conflict, access denied, invalid), the token just
  minted is revoked before the error is reported. If the outcome of the write is unknown (the answer
  was lost, a 5xx, any unexpected error), the sink is read back: a record naming our token means it
  landed and the delivery finishes; otherwise the token is kept (the sink may hold it, or a write still
  in flight may store it) and `UnsettledWrite` carries what is known for state, so the next apply
  settles it. A token that a sink might hold is never revoked.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import SinkConflict, SinkError, SinkWriteUnknown, TokendropError
from .issuers.base import IssuedToken, MintedToken, TokenIssuer
from .markers import issuer_description as issuer_description  # re-exported (resources, audit)
from .markers import marker as marker
from .markers import split_description as split_description
from .settings import batching_enabled
from .sinks.base import Ownership, Payload, Sink, SinkStatus
from .timestamps import format_rfc3339 as rfc3339
from .timestamps import parse_rfc3339 as parse_time

log = logging.getLogger("tokendrop.delivery")

def owner_fingerprint(resource_type: str, scope: str, sink_address: str, description: str | None) -> str:
    material = "\0".join((resource_type, scope, sink_address, description or ""))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass
class Target:
    """What one token resource wants: a token of this issuer and scope, delivered to this sink."""

    resource_type: str
    issuer: TokenIssuer
    scope: str
    description: str | None
    sink: Sink
    mint_options: dict[str, object] = field(default_factory=dict)
    adopt_existing: bool = False
    # How a minted token becomes the sink payload (the AppRole grant also delivers its role id).
    payload: Callable[[MintedToken], Payload] = lambda minted: minted.value
    # False where the issuer edits descriptions in place (Buildkite): the sink's ownership record,
    # written with the value, must stay ours after such an edit.
    description_in_fingerprint: bool = True
    # The configured properties a token is minted with that the issuer cannot change afterwards (a
    # Buildkite expiry). A live token is adopted only if it was minted with the same ones; a token of
    # the same owner minted with others is overwritten, never adopted (e.g. the replacement of an
    # expiry under create_before_destroy).
    spec: dict[str, object] = field(default_factory=dict)
    # With several sinks (fan-out) the one token carries the marker of the first sink's address; each
    # sink still records its own fingerprint. None: this target's own sink.
    marker_address: str | None = None

    @property
    def marker(self) -> str:
        return marker(self.issuer.kind, self.scope, self.marker_address or self.sink.address)

    def for_sink(self, sink: Sink) -> Target:
        """The same token delivered to another sink of the resource."""
        return dataclasses.replace(self, sink=sink, marker_address=self.marker_address or self.sink.address)

    @property
    def fingerprint(self) -> str:
        return owner_fingerprint(self.resource_type, self.scope, self.sink.address,
                                 self.description if self.description_in_fingerprint else None)

    @property
    def owner_record(self) -> str:
        """What the sink records as owner: the fingerprint, and the spec's digest when there is one."""
        if not self.spec:
            return self.fingerprint
        digest = hashlib.sha256(json.dumps(self.spec, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return f"{self.fingerprint}-{digest}"

    def owns(self, own: Ownership) -> bool:
        """The record was written by this resource (whatever token spec)."""
        return own.owner.split("-", 1)[0] == self.fingerprint

    def ownership(self, token_id: str) -> Ownership:
        return Ownership(token_id=token_id, issuer=self.issuer.kind, owner=self.owner_record)


@dataclass
class Delivered:
    token: IssuedToken
    sink_version: int
    adopted: bool = False
    previous_token_id: str | None = None
    previous_revoke_after: str | None = None
    revoked: list[str] = field(default_factory=list)


    # Things the user should know although the delivery succeeded (e.g. a lost answer, read back).
    notes: list[str] = field(default_factory=list)
    # The minted value, while this call still has it: copied into the other sinks of a fan-out.
    minted: MintedToken | None = field(default=None, repr=False)
    # Every sink of the resource (fan-out), the first one included; empty for a single sink.
    sinks: list[SinkState] = field(default_factory=list)


@dataclass
class SinkState:
    """What state records about one sink of a resource: where, which version holds the token, and
    `delivered`, `pending` (not written yet), `unknown` (a write without a clear answer), `missing` or
    `overwritten` (found by refresh)."""

    address: str
    version: int | None
    status: str

    def as_state(self) -> dict[str, object]:
        return {"address": self.address, "version": self.version, "status": self.status}


class PartialDelivery(TokendropError):
    """Some sinks of a fan-out hold the token and others do not. The token stays live (a sink holds
    it); `delivered` is what state records, so that the next apply writes the rest."""

    def __init__(self, summary: str, detail: str, delivered: Delivered) -> None:
        super().__init__(summary, detail, ("deliver_to",))
        self.delivered = delivered


class UnsettledWrite(SinkWriteUnknown):
    """A sink write whose outcome could not be established, even by reading the sink back. The
    token was kept; `delivered` is what state should record (the token and the sink version the
    write would have created) so that the next refresh finds out whether the write landed."""

    def __init__(self, summary: str, detail: str, delivered: Delivered) -> None:
        super().__init__(summary, detail)
        self.delivered = delivered


def definite_refusal(err: BaseException) -> bool:
    """The sink said no, so nothing was stored (conflict, denied, invalid, throttled past retries,
    refused before sending). Anything else may have stored the value."""
    return isinstance(err, TokendropError) and not isinstance(err, SinkWriteUnknown)


@dataclass
class Health:
    """What refresh found."""

    token: IssuedToken | None  # None: revoked or expired at the issuer
    sink_status: str  # "delivered" | "missing" | "overwritten"
    sink_version: int | None
    detail: str = ""
    recovered: Delivered | None = None  # our own write whose state was lost (see inspect)


class Listings:
    """Per-process cache of each scope's live tokens, so that one listing (all pages) answers every
    ReadResource and orphan sweep of that scope during a Terraform command. Concurrent callers of one
    scope share a single fetch. Tokens minted by this process are tracked apart, because a listing
    taken earlier cannot know them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scopes: dict[tuple[str, str], _ScopeListing] = {}
        self.minted_here: set[str] = set()
        self.revoked_here: set[str] = set()
        self.enabled = batching_enabled()

    def tokens(self, issuer: TokenIssuer, scope: str) -> dict[str, IssuedToken]:
        with self._lock:
            entry = self._scopes.setdefault((issuer.kind, scope), _ScopeListing())
        return entry.get(lambda: {t.id: t for t in issuer.list_tokens(scope)})

    def lookup(self, issuer: TokenIssuer, scope: str, token_id: str) -> IssuedToken | None:
        if token_id in self.revoked_here:
            return None
        if not self.enabled or token_id in self.minted_here or not issuer.lookups_by_listing:
            return issuer.lookup(scope, token_id)
        found = self.tokens(issuer, scope).get(token_id)
        if found is not None and _expired(found):
            return None
        return found

    def note_minted(self, token_id: str) -> None:
        with self._lock:
            self.minted_here.add(token_id)

    def note_revoked(self, token_id: str) -> None:
        with self._lock:
            self.revoked_here.add(token_id)


class _ScopeListing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: dict[str, IssuedToken] | None = None

    def get(self, fetch: Callable[[], dict[str, IssuedToken]]) -> dict[str, IssuedToken]:
        with self._lock:  # the first caller fetches; the others wait for its answer
            if self._value is None:
                self._value = fetch()
            return self._value


def _describe_failure(err: BaseException) -> str:
    if isinstance(err, TokendropError):
        return err.summary + (f": {err.detail}" if err.detail else "")
    return type(err).__name__  # an unexpected error's text is not shown: it may quote the request


def _expired(token: IssuedToken, now: datetime.datetime | None = None) -> bool:
    expires = parse_time(token.expires_at)
    return expires is not None and expires <= (now or datetime.datetime.now(datetime.UTC))


class Delivery:
    """The algorithm, bound to one provider process's listings cache."""

    def __init__(self, listings: Listings) -> None:
        self.listings = listings

    # --- create ---------------------------------------------------------------------------------

    def deliver(self, target: Target) -> Delivered:
        """Create: adopt our own live token if a crashed run already delivered it, else mint one and
        write it; then revoke orphans carrying our marker."""
        status = target.sink.status()
        adopted = self._adoptable(target, status)
        if adopted is not None:
            log.info("adopting %s already delivered to %s", adopted.id, target.sink.address)
            revoked = self.sweep(target, keep={adopted.id})
            assert status.version is not None
            return Delivered(adopted, status.version, adopted=True, revoked=revoked)
        self._check_ownership(target, status)
        return self._mint_and_write(target, status, keep=set())

    def _adoptable(self, target: Target, status: SinkStatus) -> IssuedToken | None:
        own = status.ownership
        if not (status.exists and status.ownership_current and own is not None):
            return None
        if own.owner != target.owner_record or own.issuer != target.issuer.kind:
            return None
        live = self.listings.lookup(target.issuer, target.scope, own.token_id)
        if live is None or split_description(live.description)[1] != target.marker:
            return None
        return live

    def _check_ownership(self, target: Target, status: SinkStatus) -> None:
        own = status.ownership
        if target.adopt_existing or (own is not None and target.owns(own)):
            return  # adopted, or ours: a token that has since died (or was deleted); overwrite it
        if not status.exists and status.occupant:
            # No readable value, but versions or metadata someone else wrote: writing there would
            # make them part of a secret tokendrop then thinks it owns.
            raise SinkConflict(f"{target.sink.address} is not empty",
                               f"{target.sink.address} holds {status.occupant}. tokendrop delivers only to an "
                               "empty location. Remove what is there, point this resource at another sink, or "
                               "set adopt_existing = true to write there (destroy then removes only the versions "
                               "tokendrop wrote).", ("deliver_to",))
        if not status.exists:
            return
        if own is None:
            who = "a value that tokendrop did not write"
        else:
            who = f"token {own.token_id} from {own.issuer}, written by another tokendrop resource"
        raise SinkConflict(
            f"{target.sink.address} is already in use",
            f"{target.sink.address} (version {status.version}) holds {who}. Two resources must not deliver "
            "to one sink. Point this resource at another sink, or set adopt_existing = true to take this "
            "one over (the other owner's token is left alive at its issuer).",
            ("deliver_to",),
        )

    def _mint_and_write(self, target: Target, status: SinkStatus, keep: set[str]) -> Delivered:
        minted = target.issuer.mint(target.scope, issuer_description(target.description, target.marker),
                                    **target.mint_options)
        self.listings.note_minted(minted.token.id)
        log.info("minted %s in %s", minted.token.id, target.scope)
        try:
            version, notes = self._write(target, minted, status)
        except UnsettledWrite:
            raise  # kept: the sink may hold it
        except Exception as err:
            self._revoke_after_failed_write(target, minted.token.id, err)
            raise
        log.info("delivered %s to %s version %s", minted.token.id, target.sink.address, version)
        revoked = self.sweep(target, keep=keep | {minted.token.id})
        return Delivered(minted.token, version, revoked=revoked, notes=notes, minted=minted)

    def _write(self, target: Target, minted: MintedToken | IssuedToken, status: SinkStatus,
               payload: Payload | None = None) -> tuple[int, list[str]]:
        """Write the minted token to the sink: (version written, notes). A definite refusal is raised
        as it is; after any other failure the sink is read back, and the write either counts as
        landed or ends in `UnsettledWrite`."""
        # A deleted/destroyed version that is still current is overwritten, as an existing one.
        expected = 1 if status.version is None else status.version + 1
        token = minted.token if isinstance(minted, MintedToken) else minted
        try:
            if payload is None:
                assert isinstance(minted, MintedToken)
                payload = target.payload(minted)
            ownership = target.ownership(token.id)
            target.sink.note_expiry(token.expires_at)
            if status.version is not None:
                return target.sink.replace(payload, ownership, expected_version=status.version), []
            return target.sink.create(payload, ownership), []
        except Exception as err:
            if definite_refusal(err):
                raise
            failure = err
        return self._read_back(target, token, expected, failure)

    def _read_back(self, target: Target, token: IssuedToken, expected: int,
                   failure: Exception) -> tuple[int, list[str]]:
        what = _describe_failure(failure)
        try:
            after: SinkStatus | None = target.sink.status()
            seen = ""
        except Exception as read_err:  # the sink is still unreachable: nothing can be said
            after = None
            seen = f"Reading it back failed too ({_describe_failure(read_err)})."
        own = after.ownership if after is not None else None
        if (after is not None and after.exists and after.ownership_current and own is not None
                and own.token_id == token.id and own.owner == target.owner_record and after.version == expected):
            log.warning("the write of %s to %s failed (%s), but reading it back shows it landed",
                        token.id, target.sink.address, what)
            target.sink.landed(after.version)
            return after.version, [f"The answer to the write of {token.id} to {target.sink.address} was lost "
                                   f"({what}); reading the sink back showed the token at version "
                                   f"{after.version}, so it was kept."]
        if after is not None:
            seen = (f"Reading it back showed version {after.version}, which does not name {token.id}; a write "
                    "still in flight may yet store it.")
            try:  # a record written ahead of the value must not vouch for what lands there later
                target.sink.abandon(target.ownership(token.id))
            except Exception as undo_err:
                log.warning("could not take back the record of %s at %s: %s", token.id, target.sink.address,
                            _describe_failure(undo_err))
        log.warning("cannot tell whether %s reached %s: %s", token.id, target.sink.address, what)
        raise UnsettledWrite(
            f"Cannot tell whether {target.sink.address} now holds {token.id}",
            f"The write got no clear answer ({what}). {seen} The token was kept, not revoked, because the sink "
            f"may hold it. State records it; the next apply settles it: it keeps {token.id} if "
            f"{target.sink.address} holds it, and otherwise writes a new token and revokes {token.id}.",
            Delivered(token, expected))

    def _revoke_after_failed_write(self, target: Target, token_id: str, err: BaseException) -> None:
        try:
            target.issuer.revoke(target.scope, token_id)
            self.listings.note_revoked(token_id)
            log.info("revoked %s after the sink write failed", token_id)
            if isinstance(err, TokendropError):
                err.detail += (f"\n\nThe token minted for this delivery ({token_id}) was revoked again: "
                               "nothing was left behind.")
        except Exception as revoke_err:
            log.error("could not revoke %s after the sink write failed: %s", token_id, revoke_err)
            if isinstance(err, TokendropError):
                err.detail += (f"\n\nThe token {token_id} minted for this write could not be revoked "
                               f"({revoke_err}); it carries the marker {target.marker} and the next apply "
                               "revokes it.")

    # --- rotate ---------------------------------------------------------------------------------

    def rotate(self, target: Target, current_id: str, keep_previous_for: datetime.timedelta | None,
               now: datetime.datetime, older_previous: str | None = None,
               others: Sequence[Target] = ()) -> Delivered:
        """Mint a new token, write it as the next sink version (and to each of `others`, the other
        sinks of a fan-out), then revoke the current one (or keep it for `keep_previous_for`, which
        starts once every sink holds the new token). The sinks are ours per state, so they are
        overwritten even if someone else wrote them since."""
        status = target.sink.status()
        if target.issuer.rotates_in_place:
            return self._rekey_and_write(target, current_id, status)
        keep = {current_id} if keep_previous_for or others else set()
        statuses = [other.sink.status() for other in others]
        try:
            delivered = self._mint_and_write(target, status, keep=keep)
            if others:
                self._fill(target, others, statuses, delivered)
        except UnsettledWrite as unsettled:
            # The sink holds the current token or the new one: both stay alive. The current one
            # becomes the previous token, revoked once the next apply has settled which one landed.
            # The one before it cannot be in the sink any more.
            if older_previous and older_previous != current_id:
                self._revoke_quietly(target, older_previous)
            unsettled.delivered.previous_token_id = current_id
            unsettled.delivered.previous_revoke_after = rfc3339(now + (keep_previous_for or datetime.timedelta()))
            raise
        except PartialDelivery as partial:
            # The sinks not written still hold the current token: it stays, as the previous one, until
            # the next apply has written the new token everywhere (its overlap starts then).
            pending = {s.address for s in partial.delivered.sinks if s.status != "delivered"}
            held = {own.token_id for other, st in zip(others, statuses, strict=True)
                    if other.sink.address in pending and (own := st.ownership) is not None}
            if older_previous and older_previous not in (current_id, *held):
                self._revoke_quietly(target, older_previous)
            partial.delivered.previous_token_id = current_id
            partial.delivered.previous_revoke_after = rfc3339(now + (keep_previous_for or datetime.timedelta()))
            raise
        if older_previous and older_previous != current_id:
            self._revoke(target, older_previous, delivered)
        if keep_previous_for:
            delivered.previous_token_id = current_id
            delivered.previous_revoke_after = rfc3339(now + keep_previous_for)
        else:
            self._revoke(target, current_id, delivered)
        return delivered

    def _rekey_and_write(self, target: Target, token_id: str, status: SinkStatus) -> Delivered:
        """Rotation for issuers that replace the key of one object (Token Vault's rotate-key): the id
        stays and the old key is dead once the call returns, so there is nothing to revoke or keep,
        and a failed sink write cannot be undone. The error says so; the state is not updated, so the
        next plan rotates again (and refresh notices the dead key, see resources/tokenvault_agent.py)."""
        minted = target.issuer.rekey(target.scope, token_id)
        self.listings.note_minted(token_id)
        log.info("rotated the key of %s in %s", token_id, target.scope)
        try:
            version, notes = self._write(target, minted, status)
        except TokendropError as err:
            holds = ("may hold the new key or the previous, now invalid one" if isinstance(err, UnsettledWrite)
                     else "still holds that previous, now invalid key")
            err.detail += (f"\n\nThe key of {token_id} was already rotated, and rotating invalidates the previous "
                           f"key at once: {target.sink.address} {holds}. Fix the sink and apply again; the next "
                           "apply rotates the key again and delivers it.")
            raise
        log.info("delivered the new key of %s to %s version %s", token_id, target.sink.address, version)
        return Delivered(minted.token, version, revoked=self.sweep(target, keep={token_id}), notes=notes)

    def _revoke(self, target: Target, token_id: str, delivered: Delivered) -> None:
        if token_id in delivered.revoked:
            return
        target.issuer.revoke(target.scope, token_id)
        self.listings.note_revoked(token_id)
        delivered.revoked.append(token_id)

    def _revoke_quietly(self, target: Target, token_id: str) -> None:
        """Revoke while another error is being reported: a failure is logged, never raised (the token
        carries our marker, so a later sweep gets it)."""
        try:
            self.revoke(target, token_id)
        except Exception as err:
            log.error("could not revoke %s: %s", token_id, err)

    def retire_previous(self, target: Target, previous_id: str, current_id: str) -> list[str]:
        """The previous token's time is over: revoke it, and any orphan of this sink. An unsettled write
        (see `UnsettledWrite`) ends the apply before its sweep, so settling it here is the first chance
        to revoke an orphan of an earlier crash. Returns the orphans revoked."""
        self.revoke(target, previous_id)
        return self.sweep(target, keep={current_id})

    def revoke(self, target: Target, token_id: str) -> bool:
        gone = target.issuer.revoke(target.scope, token_id)
        self.listings.note_revoked(token_id)
        return gone

    # --- fan-out: one token, many sinks ------------------------------------------------------------

    def deliver_all(self, target: Target, others: Sequence[Target]) -> Delivered:
        """Create with several sinks: every sink is checked before anything is minted; the first
        receives the token as `deliver` does (adopting one an interrupted run delivered), then the
        same token is written to the others (`PartialDelivery` when some could not be written)."""
        statuses = [other.sink.status() for other in others]
        for other, status in zip(others, statuses, strict=True):
            self._check_ownership(other, status)
        delivered = self.deliver(target)
        return self._fill(target, others, statuses, delivered)

    def _holds(self, target: Target, status: SinkStatus, token_id: str) -> bool:
        own = status.ownership
        return (status.exists and status.ownership_current and own is not None and own.token_id == token_id
                and target.owns(own))

    def _fill(self, source: Target, others: Sequence[Target], statuses: Sequence[SinkStatus],
              delivered: Delivered) -> Delivered:
        """Write `delivered`'s token to each of `others` that does not hold it yet, copying the value
        from this call's mint or, failing that, from `source`'s sink. A sink that refuses or cannot be
        written does not stop the others; the token is never revoked (a sink holds it)."""
        token = delivered.token
        payload: Payload | None = source.payload(delivered.minted) if delivered.minted is not None else None
        states = [SinkState(source.sink.address, delivered.sink_version, "delivered")]
        failures: list[str] = []
        for other, status in zip(others, statuses, strict=True):
            address = other.sink.address
            if self._holds(other, status, token.id):
                states.append(SinkState(address, status.version, "delivered"))
                continue
            try:
                if payload is None:
                    payload = source.sink.read_payload(delivered.sink_version)
                version, notes = self._write(other, token, status, payload)
            except UnsettledWrite as unsettled:
                states.append(SinkState(address, unsettled.delivered.sink_version, "unknown"))
                failures.append(f"{address}: {_describe_failure(unsettled)}")
                continue
            except Exception as err:  # refused, or the value could not be read: the next apply retries
                states.append(SinkState(address, status.version, "pending"))
                failures.append(f"{address}: {_describe_failure(err)}")
                continue
            delivered.notes += notes
            log.info("delivered %s to %s version %s", token.id, address, version)
            states.append(SinkState(address, version, "delivered"))
        delivered.sinks = states
        if failures:
            held = [s.address for s in states if s.status == "delivered"]
            unwritten = [s.address for s in states if s.status != "delivered"]
            raise PartialDelivery(
                f"{token.id} was not delivered to {', '.join(unwritten)}",
                "\n".join(failures) + f"\n\nThe token {token.id} stays valid: {', '.join(held)} "
                f"{'holds' if len(held) == 1 else 'hold'} it, so it is not revoked. State records which sinks "
                "hold it; fix the cause and apply again: the next apply writes it to the sinks not yet written.",
                delivered)
        return delivered

    def heal(self, target: Target, others: Sequence[Target], token_id: str,
             versions: Sequence[int | None]) -> Delivered:
        """Write the live token to every sink of the resource that does not hold it (deleted, written
        by someone else, or not yet written), copying it from a sink that does. The sinks are ours per
        state, so they are overwritten."""
        targets = [target, *others]
        statuses = [t.sink.status() for t in targets]
        holder = next((i for i, (t, s) in enumerate(zip(targets, statuses, strict=True))
                       if self._holds(t, s, token_id)), None)
        token = self.listings.lookup(target.issuer, target.scope, token_id)
        if holder is None or token is None:
            raise SinkError("No sink holds the live token",
                            f"None of {', '.join(t.sink.address for t in targets)} holds {token_id} any more "
                            "(or it was revoked): apply again, and the plan rotates the token.")
        source = targets[holder]
        rest = [(t, s) for i, (t, s) in enumerate(zip(targets, statuses, strict=True)) if i != holder]
        delivered = Delivered(token, statuses[holder].version or 0)
        try:
            self._fill(source, [t for t, _ in rest], [s for _, s in rest], delivered)
        finally:  # keep the order of the configuration in what state records
            by_address = {s.address: s for s in delivered.sinks}
            delivered.sinks = [by_address.get(t.sink.address, SinkState(t.sink.address, v, "pending"))
                               for t, v in zip(targets, versions, strict=True)]
            delivered.sink_version = delivered.sinks[0].version or 0
        return delivered

    def inspect_all(self, others: Sequence[Target], token_id: str, recorded: Sequence[Mapping[str, object]],
                    previous_token_id: str | None) -> list[SinkState]:
        """Refresh of the other sinks of a fan-out against the live token `token_id`: `delivered`,
        `pending` (it holds the previous token, or still nothing after a write that failed), `missing`
        or `overwritten`. `recorded`: what state said of them."""
        out: list[SinkState] = []
        for i, other in enumerate(others):
            before = recorded[i] if i < len(recorded) else {}
            status = other.sink.status()
            own = status.ownership
            address = other.sink.address
            if self._holds(other, status, token_id):
                out.append(SinkState(address, status.version, "delivered"))
            elif before.get("status") in ("pending", "unknown") and (
                    not status.exists or (own is not None and status.ownership_current and other.owns(own))):
                out.append(SinkState(address, status.version, "pending"))
            elif (own is not None and status.ownership_current and own.token_id == previous_token_id
                  and other.owns(own)):
                out.append(SinkState(address, status.version, "pending"))  # a rotation not written here yet
            elif not status.exists:
                out.append(SinkState(address, status.version, "missing"))
            else:
                out.append(SinkState(address, status.version, "overwritten"))
        return out

    # --- orphans --------------------------------------------------------------------------------

    def sweep(self, target: Target, keep: set[str]) -> list[str]:
        """Revoke live tokens of the scope that carry this sink's marker and are not kept."""
        mark = target.marker
        revoked: list[str] = []
        for token in list(self.listings.tokens(target.issuer, target.scope).values()):
            if token.id in keep or token.id in self.listings.minted_here or token.id in self.listings.revoked_here:
                continue
            if split_description(token.description)[1] != mark:
                continue
            log.info("revoking orphan %s (marker %s)", token.id, mark)
            target.issuer.revoke(target.scope, token.id)
            self.listings.note_revoked(token.id)
            revoked.append(token.id)
        return revoked

    # --- delete ---------------------------------------------------------------------------------

    def retire(self, target: Target, token_id: str, sink_version: int | None,
               previous_token_id: str | None = None, others: Sequence[tuple[Target, int | None]] = ()) -> list[str]:
        """Delete: remove what we wrote from the sink (and from `others`, the other sinks of a fan-out,
        with the versions state names), then revoke the token (and the previous one). A sink that
        someone else has overwritten is left alone. Returns notes for the user."""
        ours = {token_id} | ({previous_token_id} if previous_token_id else set())
        notes, status = self._remove(target, token_id, sink_version, ours)
        for other, version in others:
            notes += self._remove(other, token_id, version, ours)[0]
        for tid in (token_id, previous_token_id):
            if tid:
                self.revoke(target, tid)
        # Orphans go too, but never the token the sink now holds for someone else (a replacement
        # created before this destroy, under create_before_destroy, delivers to the same sink).
        own = status.ownership
        keep = {own.token_id} if own is not None and own.token_id not in ours and status.exists else set()
        self.sweep(target, keep=keep)
        return notes

    @staticmethod
    def _remove(target: Target, token_id: str, sink_version: int | None,
                ours: set[str]) -> tuple[list[str], SinkStatus]:
        """Remove our value from one sink: only if its record names one of `ours` (the token, or the
        previous one that a sink not yet rewritten by a rotation still holds)."""
        notes: list[str] = []
        status = target.sink.status()
        own = status.ownership
        if own is not None and own.token_id in ours:
            target.sink.delete(own.token_id)
        elif own is None and status.exists and status.version == sink_version:
            target.sink.delete(None)  # imported sink without our record, still as we left it
        elif status.exists:
            notes.append(f"{target.sink.address} no longer holds {token_id} (version {status.version}); "
                         "it was left as it is.")
        return notes, status

    # --- read -----------------------------------------------------------------------------------

    def inspect(self, target: Target, token_id: str, sink_version: int | None) -> Health:
        token = self.listings.lookup(target.issuer, target.scope, token_id)
        status = target.sink.status()
        if not status.exists:
            return Health(token, "missing", status.version,
                          f"{target.sink.address} no longer exists (deleted outside tokendrop).")
        own = status.ownership
        # The version we recorded, unless our record says someone wrote after it: a write whose outcome
        # was unknown records the version it would have created, and another writer can create it.
        written_after = (own is not None and own.version is not None and status.version is not None
                         and status.version > own.version)
        holds_another = own is not None and status.ownership_current and own.token_id != token_id
        if status.version == sink_version and not written_after and not holds_another:
            return Health(token, "delivered", status.version)
        if (own is not None and status.ownership_current and own.owner == target.owner_record
                and own.token_id != token_id):
            # Our own later write whose state was lost (a crash after the sink write of a rotation):
            # take the newer token into state and schedule the older one for revocation.
            newer = self.listings.lookup(target.issuer, target.scope, own.token_id)
            if newer is not None and split_description(newer.description)[1] == target.marker:
                # The older token, if still alive, is revoked by the next apply (its grace is over).
                recovered = Delivered(newer, status.version or 0, adopted=True)
                if token is not None:
                    recovered.previous_token_id = token_id
                    recovered.previous_revoke_after = rfc3339(datetime.datetime.now(datetime.UTC))
                return Health(newer, "delivered", status.version, recovered=recovered)
        who = f"token {own.token_id}" if own is not None and status.ownership_current else "an unknown value"
        return Health(token, "overwritten", status.version,
                      f"{target.sink.address} is at version {status.version}, not {sink_version} as "
                      f"delivered; it now holds {who}.")
