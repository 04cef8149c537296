"""Property: whatever happens to one token resource — writes refused or with their answer lost, sinks
that cannot be read back, provider crashes, tokens revoked and sinks edited by someone else — one clean
apply afterwards leaves the invariants of docs/lifecycle.md:

- the issuer has exactly one live token carrying the sink's marker, and state names it;
- the sink holds that token, at the version state names, under our ownership record;
- nothing that is not ours was changed (a foreign token at the issuer, another team's sink).

The real `Delivery` runs against in-memory fakes of an issuer and a sink that implement the real
`TokenIssuer` and `Sink` contracts. `Terraform` below is the part of Terraform and of
resources/token.py that decides what an apply calls: refresh with `inspect`, create (or replace a
tainted object), rotate, revoke an expired previous token, and record what an apply returns.
Two sink flavours: the record written with the value (SSM), and the record written before the value,
naming the version the write will create (Vault KV).
"""

from __future__ import annotations

import datetime
import itertools
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokendrop_provider.delivery import Delivery, Listings, Target, UnsettledWrite, split_description
from tokendrop_provider.errors import SinkConflict, SinkError, SinkWriteUnknown, TokendropError
from tokendrop_provider.issuers.base import IssuedToken, MintedToken, TokenIssuer
from tokendrop_provider.secret import Secret
from tokendrop_provider.sinks.base import Ownership, Payload, Sink, SinkStatus

SCOPE = "apool-1"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class Crash(BaseException):
    """The provider process dies here: nothing it would have returned reaches state."""


# --- fakes --------------------------------------------------------------------------------------


class FakeIssuer(TokenIssuer):
    kind = "tfe"

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.live: dict[str, IssuedToken] = {}
        self.values: dict[str, str] = {}
        self.crash_after_mint = False

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        token = IssuedToken(id=f"at-{next(self.ids)}", scope=scope, description=description)
        self.live[token.id] = token
        self.values[token.id] = f"value-of-{token.id}"
        if self.crash_after_mint:
            self.crash_after_mint = False
            raise Crash
        return MintedToken(token, Secret(self.values[token.id]))

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        return self.live.get(token_id)

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        return list(self.live.values())

    def revoke(self, scope: str, token_id: str) -> bool:
        return self.live.pop(token_id, None) is not None


@dataclass
class Version:
    value: str
    record: Ownership | None  # the ownership record as it was after this version was written


@dataclass
class FakeSink(Sink):
    """A versioned secret with an ownership record. `record_first` mimics Vault KV (the record is a
    separate, earlier write naming the version to come); otherwise the record is written with the
    value (SSM). Faults are armed for the next write: "refused", "lost-answer" (stored, no answer),
    "lost-request" (not stored, no answer), "crash" (stored, then the provider dies)."""

    record_first: bool
    name: str = "ssm:/ci/t"
    versions: list[Version] = field(default_factory=list)  # index i holds version i + 1
    deleted: bool = False
    pending_record: Ownership | None = None  # Vault: a record whose data write never landed
    next_write: str = "ok"
    unreadable: bool = False  # status() fails (the sink became unreachable)
    down_after_write: bool = False  # the sink becomes unreachable right after a write that got no answer
    warnings: list[str] = field(default_factory=list)

    kind = "fake"

    @property
    def address(self) -> str:
        return self.name

    def _record(self) -> Ownership | None:
        if self.pending_record is not None:
            return self.pending_record
        return self.versions[-1].record if self.versions else None

    def status(self) -> SinkStatus:
        if self.unreadable:
            raise SinkError(f"Cannot reach {self.name}")
        if self.deleted or not self.versions:
            return SinkStatus(exists=False, ownership=self.pending_record if not self.deleted else None)
        own = self._record()
        version = len(self.versions)
        return SinkStatus(exists=True, version=version, ownership=own,
                          ownership_current=own is not None and own.version == version)

    def _write(self, payload: Payload, ownership: Ownership) -> int:
        assert isinstance(payload, Secret)
        fault, self.next_write = self.next_write, "ok"
        if fault in ("lost-answer", "lost-request") and self.down_after_write:
            self.unreadable = True
        if fault == "refused":
            raise SinkConflict(f"{self.name} refused the write")
        record = replace(ownership, version=len(self.versions) + 1)
        if self.record_first:
            self.pending_record = record  # written first, in its own call
        if fault == "lost-request":
            raise SinkWriteUnknown(f"No answer from {self.name}")
        self.versions.append(Version(payload.reveal(), record))
        self.pending_record = None
        self.deleted = False
        if fault == "lost-answer":
            raise SinkWriteUnknown(f"No answer from {self.name}")
        if fault == "crash":
            raise Crash
        return len(self.versions)

    def create(self, payload: Payload, ownership: Ownership) -> int:
        if self.versions and not self.deleted:
            raise SinkConflict(f"{self.name} already exists")
        pending = self.pending_record
        if pending is not None and pending.owner != ownership.owner:
            raise SinkConflict(f"{self.name} is reserved by another resource")
        return self._write(payload, ownership)

    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        if self.deleted or len(self.versions) != expected_version:
            raise SinkConflict(f"{self.name} changed")
        return self._write(payload, ownership)

    def abandon(self, ownership: Ownership) -> None:
        if self.pending_record is not None and self.pending_record.token_id == ownership.token_id:
            self.pending_record = None

    def delete(self, expected_token_id: str | None) -> bool:
        own = self._record()
        if expected_token_id is not None and (own is None or own.token_id != expected_token_id):
            return False
        if not self.versions and self.pending_record is None:
            return False
        self.versions, self.pending_record, self.deleted = [], None, False
        return True

    def foreign_write(self, value: str) -> None:
        """Someone else writes a new version, without a record (the old record stays, as SSM keeps a
        Description): it no longer describes the current version."""
        previous = self.versions[-1].record if self.versions else None
        self.versions.append(Version(value, previous))
        self.deleted = False


# --- Terraform, for one resource ----------------------------------------------------------------


@dataclass
class State:
    id: str
    sink_version: int
    sink_status: str
    epoch: int  # the rotation trigger (rotate_on) the object was applied with
    previous_token_id: str | None = None
    tainted: bool = False


@dataclass
class Terraform:
    issuer: FakeIssuer
    sink: FakeSink
    state: State | None = None
    epoch: int = 1  # the configuration's rotate_on

    def target(self) -> Target:
        return Target(resource_type="tokendrop_tfe_agent_token", issuer=self.issuer, scope=SCOPE,
                      description=None, sink=self.sink)

    def refresh(self) -> None:
        """ReadResource (as resources/token.py `read`), in its own provider process."""
        if self.state is None:
            return
        health = Delivery(Listings()).inspect(self.target(), self.state.id, self.state.sink_version)
        if health.token is None:
            self.state = None
            return
        if (health.recovered is not None and self.state.sink_status == "unknown"
                and health.recovered.token.id == self.state.previous_token_id):
            return
        if health.recovered is not None:
            delivered = health.recovered
            self.state = replace(self.state, id=delivered.token.id, sink_version=delivered.sink_version,
                                 sink_status="delivered", previous_token_id=delivered.previous_token_id)
            return
        self.state = replace(self.state, sink_status=health.sink_status)

    def apply(self) -> None:
        """Refresh, plan and apply, as `terraform apply` does; a Crash loses what the apply returned."""
        self.refresh()
        delivery, target = Delivery(Listings()), self.target()
        prior = self.state
        try:
            if prior is None or prior.tainted:
                if prior is not None:
                    delivery.retire(target, prior.id, prior.sink_version, prior.previous_token_id)
                    self.state = None  # Terraform forgets a destroyed object at once
                delivered = delivery.deliver(target)
                self.state = State(delivered.token.id, delivered.sink_version, "delivered", self.epoch)
            elif prior.sink_status != "delivered" or prior.epoch != self.epoch:
                delivered = delivery.rotate(target, prior.id, None, NOW, older_previous=prior.previous_token_id)
                self.state = State(delivered.token.id, delivered.sink_version, "delivered", self.epoch)
            elif prior.previous_token_id:
                delivery.retire_previous(target, prior.previous_token_id, prior.id)
                self.state = replace(prior, previous_token_id=None)
        except UnsettledWrite as unsettled:  # ApplyFailed: recorded, tainted if it was a create
            known = unsettled.delivered
            self.state = State(known.token.id, known.sink_version, "unknown", self.epoch,
                               known.previous_token_id, tainted=prior is None or prior.tainted)
        except TokendropError:
            pass  # reported; Terraform keeps what it had
        except Crash:
            pass  # the provider died: state stays as it was before this call


# --- the property -------------------------------------------------------------------------------

WRITE_FAULTS = ("ok", "refused", "lost-answer", "lost-request", "crash")
STEPS = st.one_of(
    st.tuples(st.just("apply"), st.sampled_from(WRITE_FAULTS), st.booleans()),  # fault, read-back fails
    st.tuples(st.just("crash-after-mint"), st.none(), st.none()),
    st.tuples(st.just("rotate-on-change"), st.none(), st.none()),
    st.tuples(st.just("revoke-ours-elsewhere"), st.none(), st.none()),
    st.tuples(st.just("foreign-write"), st.none(), st.none()),
    st.tuples(st.just("foreign-delete"), st.none(), st.none()),
)


def we_wrote(sink: FakeSink) -> bool:
    status = sink.status()
    return status.exists and status.ownership is not None


def run(record_first: bool, steps: list[tuple[str, object, object]]) -> None:
    issuer = FakeIssuer()
    sink = FakeSink(record_first=record_first)
    foreign_token = IssuedToken(id="at-foreign", scope=SCOPE, description="another team's token")
    issuer.live[foreign_token.id] = foreign_token
    other_sink = FakeSink(record_first=record_first, name="ssm:/other/team")
    other_sink.foreign_write("theirs")
    tf = Terraform(issuer, sink)
    foreign_values = 0

    for kind, fault, read_back_fails in steps:
        if kind == "apply":
            sink.next_write = str(fault)
            sink.down_after_write = bool(read_back_fails)
            tf.apply()
            sink.down_after_write = sink.unreadable = False
        elif kind == "crash-after-mint":
            issuer.crash_after_mint = True
            tf.epoch += 1  # something to do: a rotation (or the create)
            tf.apply()
            issuer.crash_after_mint = False
        elif kind == "rotate-on-change":
            tf.epoch += 1
        elif kind == "revoke-ours-elsewhere":
            ours = [t for t in issuer.live if t != foreign_token.id]
            if ours:
                issuer.revoke(SCOPE, ours[0])
        elif kind == "foreign-write" and tf.state is not None and we_wrote(sink) and sink.pending_record is None:
            # (Not over a record written ahead of an unanswered value that could not be taken back: a
            # foreign value landing at exactly the version it names is taken for ours, a limit of
            # record-first sinks documented in docs/lifecycle.md.)
            # Only a sink we have written: one that someone else filled first is theirs, and a create
            # there fails with SinkConflict (tested with the sinks).
            foreign_values += 1
            sink.foreign_write(f"foreign-{foreign_values}")
        elif kind == "foreign-delete" and tf.state is not None:
            sink.deleted = True

    sink.next_write = "ok"
    sink.unreadable = False
    tf.apply()  # the one clean apply

    state = tf.state
    assert state is not None and not state.tainted, state
    mark = tf.target().marker
    marked = sorted(t.id for t in issuer.live.values() if split_description(t.description)[1] == mark)
    assert marked == [state.id], f"one live token for the sink: {marked}, state {state}"
    status = sink.status()
    assert status.exists and status.version == state.sink_version, (status, state)
    assert sink.versions[-1].value == issuer.values[state.id], "the sink holds the live token"
    assert status.ownership_current and status.ownership.token_id == state.id
    assert state.sink_status == "delivered"
    assert foreign_token.id in issuer.live, "a token that is not ours is never revoked"
    assert [v.value for v in other_sink.versions] == ["theirs"], "another sink is never written"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEPS, max_size=10))
def test_one_clean_apply_restores_the_invariants_ssm_like(steps):
    run(False, steps)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEPS, max_size=10))
def test_one_clean_apply_restores_the_invariants_vault_like(steps):
    run(True, steps)
