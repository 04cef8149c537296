"""The lifecycle every token resource shares: plan (create, rotation, drift, previous-token expiry),
create/rotate/retire through delivery.py, refresh with drift detection, and import by sink.

A resource module for one issuer only says which issuer, which attribute holds the scope, and what
extra options a mint takes.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Mapping

from ..attributes import dotted
from ..delivery import (
    Delivered,
    Delivery,
    PartialDelivery,
    Target,
    UnsettledWrite,
    issuer_description,
    split_description,
)
from ..errors import ConfigError, IssuerNotFound
from ..issuers.base import IssuedToken, TokenIssuer
from ..overlap import DEFAULT_UNUSED_FOR, UNUSED, PreviousDecision, decide_previous, unswitched_warning
from ..registry.sinks import address_of as sink_address_of
from ..registry.sinks import addresses_of, chosen, deliver_to_from_address, written_form
from ..registry.sinks import blocks as sink_blocks
from ..registry.sinks import prefixes as sink_prefixes
from ..timestamps import format_rfc3339, parse_rfc3339
from ..types import UNKNOWN, Unknown
from ..validation import format_duration, humanize, parse_duration
from .base import ApplyFailed, Context, Path, Resource, State, changed_paths

TOKEN_COMPUTED = ("id", "sink_version", "created_at", "expires_at")


class TokenResource(Resource, abc.ABC):
    scope_attribute: str  # the attribute holding the pool / cluster / agent the token belongs to
    expiring: bool = False  # the issuer sets an expiry on the token
    # Arguments the issuer can change on a live token (`on_change="update"`): a change is sent with
    # `TokenIssuer.update`, keeping the token and its sink version.
    issuer_updatable: tuple[str, ...] = ()

    @abc.abstractmethod
    def issuer(self, ctx: Context) -> TokenIssuer: ...

    def mint_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        return {}

    def update_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        """Issuer-specific options of an in-place update (besides the description)."""
        return {}

    def scope_of(self, state: Mapping[str, object]) -> str:
        """The issuer scope of the token, as the `TokenIssuer` methods take it."""
        return str(state[self.scope_attribute])

    def scope_state(self, scope: str) -> State:
        """The attributes that name `scope` (the inverse of `scope_of`, for import)."""
        return {self.scope_attribute: scope}

    def delivery(self, ctx: Context) -> Delivery:
        return ctx.provider.delivery

    def target(self, ctx: Context, state: Mapping[str, object]) -> Target:
        """The token and its first sink (the one a single-sink resource has)."""
        found = sink_blocks(state.get("deliver_to"))
        if isinstance(found, Unknown) or not found:
            raise ConfigError("Missing deliver_to", "The resource has no sink.", ("deliver_to",))
        deliver_to = found[0]
        return Target(
            resource_type=self.schema.type_name,
            issuer=self.issuer(ctx),
            scope=self.scope_of(state),
            description=state.get("description"),  # type: ignore[arg-type]
            sink=ctx.clients.sink(deliver_to, self.schema.type_name),
            mint_options=self.mint_options(ctx, state),
            adopt_existing=bool(state.get("adopt_existing")),
            description_in_fingerprint="description" not in self.issuer_updatable,
            spec=self.token_spec(state),
        )

    def targets(self, ctx: Context, state: Mapping[str, object]) -> tuple[Target, list[Target]]:
        """The first sink's target and the other sinks' (fan-out: the same token, each sink its own
        ownership record)."""
        first = self.target(ctx, state)
        found = sink_blocks(state.get("deliver_to"))
        rest = found[1:] if not isinstance(found, Unknown) else []
        return first, [first.for_sink(ctx.clients.sink(element, self.schema.type_name)) for element in rest]

    def token_spec(self, state: Mapping[str, object]) -> dict[str, object]:
        """Configured properties fixed at mint time (see `Target.spec`). Default: none."""
        return {}

    # --- plan -----------------------------------------------------------------------------------

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        self.check_issuer(ctx, prior, planned)
        found = sink_blocks(planned.get("deliver_to"))
        if isinstance(found, Unknown):
            return
        listed = isinstance(planned.get("deliver_to"), list)
        known = set(sink_addresses(prior or {}))
        for i, deliver_to in enumerate(found):
            ctx.clients.check_sink(deliver_to, i if listed else None)
            address = sink_address_of(deliver_to)
            if isinstance(address, str) and address not in known:
                self.check_sink_access(ctx, deliver_to, address, ("deliver_to", i) if listed else ("deliver_to",))

    @staticmethod
    def check_sink_access(ctx: Context, deliver_to: Mapping[str, object], address: str,
                          at: tuple[str | int, ...] = ("deliver_to",)) -> None:
        """A new sink location: fail the plan if the sink credentials may not write there (Vault
        answers that without side effects; SSM cannot be asked, so it is found at apply)."""
        found = chosen(deliver_to)
        if found is None or not found[0].checks_access_at_plan:
            return
        sink = ctx.clients.sink(deliver_to)
        missing = ctx.clients.memo(("sink-capabilities", address), sink.missing_capabilities)  # type: ignore[attr-defined]
        if missing:
            needs = "; ".join(f"'{capability}' on {path}" for path, capability in missing)
            raise ConfigError(f"The Vault token cannot deliver to {address}",
                              f"Its policies lack {needs}. Grant them in a policy of the provider's Vault token "
                              "(`vault policy write`) or deliver elsewhere.",
                              (*at, found[0].name, "path"))

    @abc.abstractmethod
    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        """Settings present and the scope exists (read-only calls, cached per process)."""

    def plan_create(self, ctx: Context, planned: State) -> None:
        planned["sink_address"] = first_address(planned.get("deliver_to"))
        planned["sink_status"] = "delivered"
        planned["sinks"] = planned_sinks(planned.get("deliver_to"))
        planned["previous_token_id"] = None
        planned["previous_revoke_after"] = None
        if not self.expiring:
            planned["expires_at"] = None

    def plan_update(self, ctx: Context, prior: State, planned: State, replace: list[Path]) -> None:
        planned["sink_address"] = first_address(planned.get("deliver_to"))
        if replace:
            return  # Terraform plans the new object separately (a create with no prior state)
        reasons = self.rotation_reasons(ctx, prior, planned)
        if reasons:
            planned["sinks"] = planned_sinks(planned.get("deliver_to"))
            for name in TOKEN_COMPUTED:
                if name != "expires_at" or self.expiring:
                    planned[name] = UNKNOWN
            planned["sink_status"] = "delivered"
            keep = planned.get("keep_previous_for")
            # "0s" is no grace period, like unset: apply revokes at once, so the plan must say so.
            grace = isinstance(keep, str) and parse_duration(keep).total_seconds() > 0
            if isinstance(keep, Unknown):
                planned["previous_token_id"] = planned["previous_revoke_after"] = UNKNOWN
            elif grace:
                planned["previous_token_id"] = prior.get("id")
                planned["previous_revoke_after"] = UNKNOWN
            else:
                planned["previous_token_id"] = None
                planned["previous_revoke_after"] = None
            kept = (f"keeps {prior.get('id')} valid until the issuer reports it unused for "
                    f"{format_duration(_unused_for(planned))}, for at most {keep}."
                    if planned.get("revoke_previous_when") == UNUSED else f"keeps {prior.get('id')} valid for {keep}.")
            everywhere = ", ".join(sink_addresses(prior)) or str(prior.get("sink_address"))
            ctx.warn(f"{self.schema.type_name} {prior.get('id')} will rotate",
                     "; ".join(reasons) + f". Apply mints a new token, writes it as the next version of "
                     f"{everywhere}, then " + (kept if grace else f"revokes {prior.get('id')}."))
            return
        if self._plan_heal(ctx, prior, planned):
            return  # the previous token waits until every sink holds the live one
        previous = prior.get("previous_token_id")
        if previous:
            decision = self.previous_decision(ctx, prior, planned, str(previous))
            if decision.revoke:
                planned["previous_token_id"] = None
                planned["previous_revoke_after"] = None
                ctx.warn(f"Previous token {previous} will be revoked", decision.reason)
            elif planned.get("revoke_previous_when") == UNUSED:
                ctx.warn(f"Previous token {previous} is kept", decision.reason + self._unswitched(ctx, prior, planned))

    def previous_decision(self, ctx: Context, prior: State, planned: State, previous: str) -> PreviousDecision:
        """Revoke the previous token in this plan, or keep it (see overlap.py). With
        `revoke_previous_when = "unused"` the issuer is asked when it was last used (from the listing
        refresh already fetched, so usually no extra call)."""
        now = ctx.now()
        deadline = parse_rfc3339(prior.get("previous_revoke_after"))  # type: ignore[arg-type]
        if planned.get("revoke_previous_when") != UNUSED or deadline is None or deadline <= now:
            return decide_previous(previous, now=now, revoke_after=deadline)
        token = self.delivery(ctx).listings.lookup(self.issuer(ctx), self.scope_of(prior), previous)
        return decide_previous(previous, now=now, revoke_after=deadline, when=UNUSED, live=token is not None,
                               last_used_at=parse_rfc3339(token.last_used_at) if token is not None else None,
                               unused_for=_unused_for(planned))

    def _unswitched(self, ctx: Context, prior: State, planned: State) -> str:
        """A sentence (with a leading space) when the live token was never used half-way through
        keep_previous_for; else empty."""
        keep = planned.get("keep_previous_for")
        if not isinstance(keep, str):
            return ""
        token = self.delivery(ctx).listings.lookup(self.issuer(ctx), self.scope_of(prior), str(prior.get("id")))
        if token is None:
            return ""
        note = unswitched_warning(str(prior.get("id")), now=ctx.now(),
                                  created_at=parse_rfc3339(prior.get("created_at")),  # type: ignore[arg-type]
                                  last_used_at=parse_rfc3339(token.last_used_at),
                                  keep_previous_for=parse_duration(keep))
        return f" {note}" if note else ""

    def _plan_heal(self, ctx: Context, prior: State, planned: State) -> bool:
        """Fan-out drift: some sinks do not hold the live token (deleted, overwritten, not written yet)
        while another does. Only those are written, with a copy of the live token; the plan says which."""
        recorded = recorded_sinks(prior)
        heal = [s for s in recorded if s.get("status") != "delivered"]
        if not heal:
            return False
        planned["sinks"] = [dict(s, version=UNKNOWN, status="delivered") if s.get("status") != "delivered" else dict(s)
                            for s in recorded]
        if recorded[0].get("status") != "delivered":
            planned["sink_version"] = UNKNOWN
            planned["sink_status"] = "delivered"
        held = [str(s.get("address")) for s in recorded if s.get("status") == "delivered"]
        then = ""
        if prior.get("previous_token_id"):
            # A rotation that did not reach every sink: the previous token's overlap starts once it has.
            keep = planned.get("keep_previous_for")
            if isinstance(keep, str) and parse_duration(keep).total_seconds() > 0:
                planned["previous_revoke_after"] = UNKNOWN
                then = f" Then {prior.get('previous_token_id')} stays valid for {keep}."
            elif not isinstance(keep, Unknown):
                planned["previous_token_id"] = planned["previous_revoke_after"] = None
                then = f" Then {prior.get('previous_token_id')}, which no sink needs any more, is revoked."
        ctx.warn(f"{self.schema.type_name} {prior.get('id')}: {len(heal)} of {len(recorded)} sinks will be written",
                 "Apply copies the live token " + str(prior.get("id")) + " from " + held[0] + " to: " +
                 "; ".join(f"{s.get('address')} ({s.get('status')})" for s in heal) +
                 ". Unchanged: " + ", ".join(held) + ". No token is minted." + then)
        return True

    def rotation_reasons(self, ctx: Context, prior: State, planned: State) -> list[str]:
        reasons = [f"{dotted(path)} changed" for path in changed_paths(self.schema.attributes, prior, planned,
                                                                         "rotate")]
        recorded = recorded_sinks(prior)
        sink_status = prior.get("sink_status")
        if len(recorded) > 1 and any(s.get("status") == "delivered" for s in recorded):
            sink_status = None  # fan-out: a sink holds the live token, so the others are healed from it
        if sink_status == "unknown":
            reasons.append(f"the last write to the sink {prior.get('sink_address')} may not have landed")
        elif sink_status and sink_status != "delivered":
            reasons.append(f"the sink {prior.get('sink_address')} is {sink_status} (found by refresh)")
        now = ctx.now()
        created = parse_rfc3339(prior.get("created_at"))  # type: ignore[arg-type]
        every = planned.get("rotate_every")
        if isinstance(every, str) and created is not None:
            period = parse_duration(every)
            if now - created >= period:
                reasons.append(f"rotation due: minted {humanize(now - created)} ago, rotate_every {every}")
        before = planned.get("rotate_before_expiry")
        expires = parse_rfc3339(prior.get("expires_at"))  # type: ignore[arg-type]
        if isinstance(before, str) and expires is not None and expires - parse_duration(before) <= now:
            left = expires - now
            reasons.append(f"expiry near: expires in {humanize(left)}, rotate_before_expiry {before}"
                           if left.total_seconds() > 0 else "the token has expired")
        return reasons

    # --- apply ----------------------------------------------------------------------------------

    def create(self, ctx: Context, planned: State) -> State:
        target, others = self.targets(ctx, planned)
        try:
            delivered = self.delivery(ctx).deliver_all(target, others)
        except UnsettledWrite as unsettled:
            raise self._unsettled(planned, target, unsettled, others) from None
        except PartialDelivery as partial:
            raise ApplyFailed(partial, self._state_after(planned, target.sink.address, partial.delivered)) from None
        if delivered.adopted:
            ctx.warn("Adopted a token delivered by an interrupted run",
                     f"{target.sink.address} already held {delivered.token.id}, delivered by this resource in "
                     "an apply that did not finish; it was kept instead of minting another.")
        if delivered.revoked:
            ctx.warn("Revoked orphaned tokens",
                     f"Revoked {', '.join(delivered.revoked)}: minted for {target.sink.address} by an "
                     "interrupted run and never recorded in state.")
        self._sink_warnings(ctx, target, delivered)
        return self._state_after(planned, target.sink.address, delivered)

    def _unsettled(self, planned: State, target: Target, unsettled: UnsettledWrite,
                   others: list[Target] | None = None) -> ApplyFailed:
        """The token may be in the sink: state records it with sink_status "unknown", so that the next
        refresh compares the sink with it (and a failed create is replaced as tainted). The other sinks
        of a fan-out were not written yet."""
        state = self._state_after(planned, target.sink.address, unsettled.delivered)
        state["sink_status"] = "unknown"
        state["sinks"] = [{"address": target.sink.address, "version": unsettled.delivered.sink_version,
                           "status": "unknown"},
                          *({"address": o.sink.address, "version": None, "status": "pending"} for o in others or ())]
        return ApplyFailed(unsettled, state)

    @staticmethod
    def _sink_warnings(ctx: Context, target: Target, delivered: Delivered | None = None) -> None:
        for warning in target.sink.warnings:
            ctx.warn(f"{target.sink.address}", warning)
        for note in delivered.notes if delivered is not None else ():
            ctx.warn(f"{target.sink.address}", note)

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        target, others = self.targets(ctx, planned)
        state = dict(planned)
        # A rotation: a new token (unknown id), or a new value for the same id (rotates_in_place); both
        # plan created_at unknown. A repair of some sinks (`_plan_heal`) plans only their versions unknown.
        rotating = isinstance(planned.get("id"), Unknown) or isinstance(planned.get("created_at"), Unknown)
        healing = not rotating and isinstance(planned.get("sinks"), list) and any(
            isinstance(s, Mapping) and isinstance(s.get("version"), Unknown) for s in planned["sinks"])  # type: ignore[union-attr]
        if rotating:
            keep = planned.get("keep_previous_for")
            try:
                delivered = self.delivery(ctx).rotate(
                    target, str(prior["id"]), parse_duration(keep) if isinstance(keep, str) else None, ctx.now(),
                    older_previous=prior.get("previous_token_id"), others=others)  # type: ignore[arg-type]
            except UnsettledWrite as unsettled:
                if target.issuer.rotates_in_place:
                    raise  # the key was rotated in place: nothing new to record (see Delivery._rekey_and_write)
                raise self._unsettled(planned, target, unsettled, others) from None
            except PartialDelivery as partial:
                raise ApplyFailed(partial, self._state_after(planned, target.sink.address, partial.delivered)) from None
            self._sink_warnings(ctx, target, delivered)
            return self._state_after(planned, target.sink.address, delivered)
        if healing:
            recorded = recorded_sinks(prior)
            versions = [_int(s.get("version")) for s in recorded]
            try:
                healed = self.delivery(ctx).heal(target, others, str(prior["id"]), versions)
            except PartialDelivery as partial:
                failed = dict(prior, deliver_to=planned.get("deliver_to"),
                              sinks=[s.as_state() for s in partial.delivered.sinks])
                raise ApplyFailed(partial, failed) from None
            state["sinks"] = [s.as_state() for s in healed.sinks]
            state["sink_version"] = healed.sinks[0].version
            state["sink_status"] = "delivered"
            if isinstance(planned.get("previous_revoke_after"), Unknown):
                keep = planned.get("keep_previous_for")
                state["previous_revoke_after"] = format_rfc3339(ctx.now() + parse_duration(str(keep)))
            for note in healed.notes:
                ctx.warn("Sink written", note)
        if prior.get("previous_token_id") and planned.get("previous_token_id") is None:
            orphans = self.delivery(ctx).retire_previous(target, str(prior["previous_token_id"]), str(prior["id"]))
            if orphans:
                ctx.warn("Revoked orphaned tokens",
                         f"Revoked {', '.join(orphans)}: minted for {target.sink.address} by an interrupted run "
                         "and never recorded in state.")
        if any(prior.get(name) != planned.get(name) for name in self.issuer_updatable):
            # Edited at the issuer; the marker stays in the description so orphan sweeps still work.
            target.issuer.update(target.scope, str(prior["id"]), issuer_description(target.description, target.marker),
                                 **self.update_options(ctx, planned))
        for sink_target in (target, *others):
            sink_target.sink.reconcile_settings()
            self._sink_warnings(ctx, sink_target)
        return state

    def _state_after(self, planned: State, address: str, delivered: Delivered) -> State:
        state = dict(planned)
        state.update(
            id=delivered.token.id,
            sink_address=address,
            sink_version=delivered.sink_version,
            sink_status="delivered",
            created_at=delivered.token.created_at or format_rfc3339(datetime.datetime.now(datetime.UTC)),
            expires_at=same_instant(planned.get("expires_at"), delivered.token.expires_at) if self.expiring else None,
            previous_token_id=delivered.previous_token_id,
            previous_revoke_after=delivered.previous_revoke_after,
            sinks=[s.as_state() for s in delivered.sinks] or [
                {"address": address, "version": delivered.sink_version, "status": "delivered"}],
        )
        return state

    def delete(self, ctx: Context, prior: State) -> None:
        target, others = self.targets(ctx, prior)
        versions = {str(s.get("address")): _int(s.get("version")) for s in recorded_sinks(prior)}
        notes = self.delivery(ctx).retire(target, str(prior["id"]), _int(prior.get("sink_version")),
                                          prior.get("previous_token_id"),  # type: ignore[arg-type]
                                          others=[(o, versions.get(o.sink.address)) for o in others])
        for note in notes:
            ctx.warn("Sink left in place", note)
        for sink_target in (target, *others):
            self._sink_warnings(ctx, sink_target)  # e.g. a secret kept because tokendrop did not create it

    # --- read -----------------------------------------------------------------------------------

    def read(self, ctx: Context, state: State) -> State | None:
        target, others = self.targets(ctx, state)
        new = self._read_first(ctx, state, fan_out=bool(others))
        if new is None:
            return None
        first = {"address": target.sink.address, "version": new.get("sink_version"), "status": new.get("sink_status")}
        if not others:
            new["sinks"] = [first]
            return new
        recorded = recorded_sinks(state)
        found = self.delivery(ctx).inspect_all(others, str(new["id"]), recorded[1:],
                                               new.get("previous_token_id"))  # type: ignore[arg-type]
        new["sinks"] = [first, *(s.as_state() for s in found)]
        held = [str(s["address"]) for s in new["sinks"] if s.get("status") == "delivered"]  # type: ignore[union-attr]
        for sink in new["sinks"]:  # type: ignore[union-attr]
            if sink["status"] in ("missing", "overwritten"):
                then = (f"The next apply copies {new['id']} there from {held[0]}, and writes no other sink."
                        if held else "No sink holds it any more: the next apply rotates the token.")
                ctx.warn(f"Sink drift: {sink['address']}",
                         f"{sink['address']} is {sink['status']}: it no longer holds {new['id']}. {then}")
        return new

    def _read_first(self, ctx: Context, state: State, fan_out: bool = False) -> State | None:
        """Refresh of the token and the first sink; `fan_out`: other sinks follow, and drift of this one
        is reported with theirs (see `read`)."""
        target = self.target(ctx, state)
        try:
            health = self.delivery(ctx).inspect(target, str(state["id"]), _int(state.get("sink_version")))
        except IssuerNotFound:
            return None  # the scope itself is gone (pool deleted): so is the token
        if health.token is None:
            return None
        new = dict(state)
        if (health.recovered is not None and state.get("sink_status") == "unknown"
                and health.recovered.token.id == state.get("previous_token_id")):
            # A rotation whose write was unsettled did not land: the sink still holds the previous token.
            # The status stays "unknown", so the plan carries the rotation out again.
            return new
        if health.recovered is not None:
            return self._state_after(state, target.sink.address, health.recovered)
        new["sink_status"] = health.sink_status
        if health.sink_status != "delivered" and not fan_out:
            ctx.warn(f"Sink drift: {target.sink.address}", health.detail + " The next apply mints a new "
                     "token, writes it to the sink and revokes " + str(state["id"]) + ".")
        if self.expiring:
            new["expires_at"] = same_instant(state.get("expires_at"), health.token.expires_at)
        new.update(self.refreshed_attributes(health.token, state))
        return new

    def refreshed_attributes(self, token: IssuedToken, state: State) -> State:
        """Arguments as the issuer now has them (drift of `issuer_updatable` arguments edited outside
        Terraform): the plan then shows the update that puts them back."""
        return {}

    # --- import ---------------------------------------------------------------------------------

    def import_state(self, ctx: Context, import_id: str) -> State:
        scope, token_id, address = self.parse_import_id(import_id)
        state: State = {a.name: None for a in self.schema.attributes}
        state.update({**self.scope_state(scope), "deliver_to": deliver_to_from_address(address),
                      "adopt_existing": False})
        target = self.target(ctx, state)
        kind = next(k for k, v in state["deliver_to"].items() if v is not None)  # type: ignore[union-attr]
        state["deliver_to"][kind].update(target.sink.current_settings())  # type: ignore[index]
        status = target.sink.status()
        if not status.exists:
            raise ConfigError("Cannot import", f"{address} does not exist, so it holds no token to adopt.")
        if token_id is None:
            if status.ownership is None or not status.ownership_current:
                raise ConfigError("Cannot import",
                                  f"{address} carries no tokendrop record naming its token. Give the token id "
                                  f"too: {scope}/<token id>/{address}.")
            token_id = status.ownership.token_id
        token = self.delivery(ctx).listings.lookup(target.issuer, scope, token_id)
        if token is None:
            raise ConfigError("Cannot import", f"Token {token_id} is not alive in {scope}.")
        state.update(self.imported_attributes(token))
        state.update(id=token.id, sink_address=target.sink.address, sink_version=status.version,
                     sink_status="delivered", created_at=token.created_at,
                     expires_at=token.expires_at if self.expiring else None,
                     sinks=[{"address": target.sink.address, "version": status.version, "status": "delivered"}],
                     deliver_to=written_form(state["deliver_to"]))
        return state

    def upgrade(self, version: int, raw: dict[str, object]) -> State:
        """Version 0 held `deliver_to` as an object of every sink kind; version 1 serves it as written
        (one object or a list, a dynamic attribute)."""
        if version < 1:
            raw = dict(raw, deliver_to=written_form(raw.get("deliver_to")))
        return raw

    def imported_attributes(self, token: IssuedToken) -> State:
        return {"description": split_description(token.description)[0]}

    def parse_import_id(self, import_id: str) -> tuple[str, str | None, str]:
        """`<scope>/<sink address>` or `<scope>/<token id>/<sink address>`."""
        scope, _, rest = import_id.partition("/")
        if rest.startswith(sink_prefixes()):
            return scope, None, rest
        token_id, _, address = rest.partition("/")
        if scope and token_id and address.startswith(sink_prefixes()):
            return scope, token_id, address
        raise ConfigError("Invalid import id",
                          f"Expected <{self.scope_attribute}>/<sink address> or "
                          f"<{self.scope_attribute}>/<token id>/<sink address>, got {import_id!r}. "
                          "Sink addresses look like ssm:/ci/token or vault_kv:secret/ci/token#token.")


def _unused_for(planned: State) -> datetime.timedelta:
    value = planned.get("previous_unused_for")
    return parse_duration(value) if isinstance(value, str) else DEFAULT_UNUSED_FOR


def same_instant(known: object, reported: str | None) -> str | None:
    """`reported` (the issuer's timestamp), or `known` when both name the same moment: a configured
    `expires_at` keeps the user's spelling, so Terraform sees no difference."""
    if isinstance(known, str) and reported:
        try:
            if parse_rfc3339(known) == parse_rfc3339(reported):
                return known
        except ValueError:
            pass
    return reported


def _int(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def first_address(deliver_to: object) -> object:
    """The address of the first sink (`sink_address`), Unknown until known."""
    found = sink_blocks(deliver_to)
    if isinstance(found, Unknown) or not found:
        return UNKNOWN
    return sink_address_of(found[0])


def planned_sinks(deliver_to: object) -> object:
    """The `sinks` a create or rotation plans: every sink, delivered at a version known after apply."""
    addresses = addresses_of(deliver_to)
    if isinstance(addresses, Unknown):
        return UNKNOWN
    return [{"address": address, "version": UNKNOWN, "status": "delivered"} for address in addresses]


def recorded_sinks(state: Mapping[str, object]) -> list[Mapping[str, object]]:
    """The `sinks` state records ([] in state written before it existed)."""
    value = state.get("sinks")
    return [s for s in value if isinstance(s, Mapping)] if isinstance(value, list) else []


def sink_addresses(state: Mapping[str, object]) -> list[str]:
    """The addresses of every sink state records (the first one's alone in older state)."""
    recorded = [str(s.get("address")) for s in recorded_sinks(state)]
    if recorded:
        return recorded
    address = state.get("sink_address")
    return [address] if isinstance(address, str) else []
