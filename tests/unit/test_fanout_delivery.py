"""One token, many sinks: `Delivery` with N sinks (docs/lifecycle.md, "One token, many sinks").

The real `Delivery` runs against the in-memory issuer and sinks of test_delivery_properties.py (they
implement the real `TokenIssuer` and `Sink` contracts), each sink able to be read back as the real ones
are (`read_payload`). What must hold: one mint for all sinks; a sink that refuses never causes a revoke
while another sink holds the token; the next apply writes only what is missing, with the same token; a
crash between two sink writes is adopted, not minted again; a rotation keeps the previous token while
any sink still holds it; a property run of random faults ends, after clean applies, with every sink
holding the one live token."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_delivery_properties import SCOPE, Crash, FakeIssuer, FakeSink

from tokendrop_provider.delivery import Delivery, Listings, PartialDelivery, Target, UnsettledWrite
from tokendrop_provider.errors import SinkConflict, SinkError
from tokendrop_provider.secret import Secret
from tokendrop_provider.sinks.base import Payload

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@dataclass
class ReadableSink(FakeSink):
    """A FakeSink that can be read back, as SSM (GetParameter), Secrets Manager and Vault can."""

    reads: int = 0

    def read_payload(self, version: int) -> Payload:
        self.reads += 1
        if self.unreadable or self.deleted or len(self.versions) != version:
            raise SinkError(f"Cannot read {self.name} back")
        return Secret(self.versions[-1].value)


def world(n: int = 3, record_first: tuple[bool, ...] = ()) -> tuple[FakeIssuer, list[ReadableSink]]:
    sinks = [ReadableSink(record_first=(record_first[i] if i < len(record_first) else i % 2 == 1),
                          name=f"ssm:/ci/t{i}") for i in range(n)]
    return FakeIssuer(), sinks


def targets(issuer: FakeIssuer, sinks: list[ReadableSink]) -> tuple[Target, list[Target]]:
    first = Target(resource_type="tokendrop_tfe_agent_token", issuer=issuer, scope=SCOPE, description=None,
                   sink=sinks[0])
    return first, [first.for_sink(sink) for sink in sinks[1:]]


def holders(sinks: list[ReadableSink]) -> list[str | None]:
    return [s.versions[-1].record.token_id if s.versions and not s.deleted and s.versions[-1].record else None
            for s in sinks]


def test_one_mint_for_every_sink_each_with_its_own_record():
    issuer, sinks = world()
    first, others = targets(issuer, sinks)
    delivered = Delivery(Listings()).deliver_all(first, others)
    assert list(issuer.live) == [delivered.token.id], "one token for three sinks"
    assert holders(sinks) == [delivered.token.id] * 3
    assert {s.versions[-1].value for s in sinks} == {issuer.values[delivered.token.id]}
    assert len({s.versions[-1].record.owner for s in sinks}) == 3, "each sink's record names its own location"
    assert [(s.address, s.status) for s in delivered.sinks] == [(s.name, "delivered") for s in sinks]
    assert sum(s.reads for s in sinks) == 0, "the minted value is copied from memory, not read back"
    # one marker for the token: the first sink's, also on the other sinks' targets
    assert {t.marker for t in (first, *others)} == {first.marker}


def test_a_refused_sink_keeps_the_token_and_the_next_apply_writes_only_it():
    issuer, sinks = world()
    sinks[2].next_write = "refused"
    first, others = targets(issuer, sinks)
    with pytest.raises(PartialDelivery) as raised:
        Delivery(Listings()).deliver_all(first, others)
    partial = raised.value.delivered
    assert f"was not delivered to {sinks[2].name}" in raised.value.summary
    assert "stays valid" in raised.value.detail and raised.value.attribute == ("deliver_to",)
    assert list(issuer.live) == [partial.token.id], "not revoked: two sinks hold it"
    assert [s.status for s in partial.sinks] == ["delivered", "delivered", "pending"]
    assert holders(sinks) == [partial.token.id, partial.token.id, None]

    # next apply, another process: copy the live token into the missing sink only
    versions_before = [len(s.versions) for s in sinks]
    healed = Delivery(Listings()).heal(*targets(issuer, sinks), partial.token.id, [1, 1, None])
    assert [s.status for s in healed.sinks] == ["delivered"] * 3
    assert holders(sinks) == [partial.token.id] * 3 and list(issuer.live) == [partial.token.id]
    assert [len(s.versions) for s in sinks] == [versions_before[0], versions_before[1], 1], "others untouched"
    assert sinks[2].versions[-1].value == issuer.values[partial.token.id]


def test_a_foreign_sink_anywhere_is_refused_before_anything_is_minted():
    issuer, sinks = world()
    sinks[1].foreign_write("someone else's")
    with pytest.raises(SinkConflict) as raised:
        Delivery(Listings()).deliver_all(*targets(issuer, sinks))
    assert sinks[1].name in raised.value.summary
    assert issuer.live == {} and holders(sinks)[0] is None


def test_a_crash_between_the_second_and_third_write_is_adopted_and_completed():
    issuer, sinks = world()
    sinks[1].next_write = "crash"
    with pytest.raises(Crash):
        Delivery(Listings()).deliver_all(*targets(issuer, sinks))
    [token_id] = issuer.live
    assert holders(sinks) == [token_id, token_id, None]
    # state was never saved: the next apply creates again, in a new process
    delivered = Delivery(Listings()).deliver_all(*targets(issuer, sinks))
    assert delivered.adopted and delivered.token.id == token_id and list(issuer.live) == [token_id]
    assert holders(sinks) == [token_id] * 3
    assert sinks[0].reads == 1, "the adopted token's value is copied from the first sink"
    assert len(sinks[0].versions) == len(sinks[1].versions) == 1


def test_a_lost_answer_on_one_sink_is_read_back():
    issuer, sinks = world()
    sinks[2].next_write = "lost-answer"
    delivered = Delivery(Listings()).deliver_all(*targets(issuer, sinks))
    assert [s.status for s in delivered.sinks] == ["delivered"] * 3
    assert any("was lost" in note for note in delivered.notes)
    sinks[2].next_write = "lost-request"
    issuer2, sinks2 = world()
    sinks2[2].next_write = "lost-request"
    with pytest.raises(PartialDelivery) as raised:
        Delivery(Listings()).deliver_all(*targets(issuer2, sinks2))
    assert [s.status for s in raised.value.delivered.sinks] == ["delivered", "delivered", "unknown"]
    assert len(issuer2.live) == 1


def test_a_rotation_refused_by_one_sink_keeps_the_previous_token_until_every_sink_moved():
    issuer, sinks = world()
    first, others = targets(issuer, sinks)
    old = Delivery(Listings()).deliver_all(first, others).token.id
    sinks[1].next_write = "refused"
    with pytest.raises(PartialDelivery) as raised:
        Delivery(Listings()).rotate(first, old, None, NOW, others=others)
    new = raised.value.delivered.token.id
    assert raised.value.delivered.previous_token_id == old
    assert sorted(issuer.live) == sorted([old, new]), "the refusing sink still holds the old token: kept"
    assert holders(sinks) == [new, old, new]
    healed = Delivery(Listings()).heal(first, others, new, [2, 1, 2])
    assert holders(sinks) == [new] * 3 and [s.version for s in healed.sinks] == [2, 2, 2]
    Delivery(Listings()).retire_previous(first, old, new)
    assert list(issuer.live) == [new]


def test_a_complete_rotation_writes_every_sink_then_revokes():
    issuer, sinks = world()
    first, others = targets(issuer, sinks)
    old = Delivery(Listings()).deliver_all(first, others).token.id
    delivered = Delivery(Listings()).rotate(first, old, None, NOW, others=others)
    assert holders(sinks) == [delivered.token.id] * 3 and list(issuer.live) == [delivered.token.id]
    assert [s.version for s in delivered.sinks] == [2, 2, 2]


def test_destroy_cleans_every_sink_it_owns_and_leaves_a_foreign_one():
    issuer, sinks = world()
    first, others = targets(issuer, sinks)
    token_id = Delivery(Listings()).deliver_all(first, others).token.id
    sinks[2].foreign_write("someone else's")
    sinks[2].versions[-1].record = None
    notes = Delivery(Listings()).retire(first, token_id, 1, None, others=list(zip(others, [1, 1], strict=True)))
    assert not sinks[0].versions and not sinks[1].versions
    assert sinks[2].versions[-1].value == "someone else's" and any(sinks[2].name in n for n in notes)
    assert issuer.live == {}


def test_refresh_reports_each_sink():
    issuer, sinks = world()
    first, others = targets(issuer, sinks)
    token_id = Delivery(Listings()).deliver_all(first, others).token.id
    sinks[1].deleted = True
    sinks[2].foreign_write("someone else's")
    found = Delivery(Listings()).inspect_all(others, token_id, [{"status": "delivered"}] * 2, None)
    assert [(s.address, s.status) for s in found] == [(sinks[1].name, "missing"), (sinks[2].name, "overwritten")]


FAULTS = st.sampled_from(["ok", "ok", "refused", "lost-answer", "lost-request", "crash"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=st.lists(FAULTS, min_size=3, max_size=3), rotate=st.booleans(),
       rotation_faults=st.lists(FAULTS, min_size=3, max_size=3))
def test_any_faults_then_clean_applies_leave_one_live_token_in_every_sink(faults, rotate, rotation_faults):
    """Create (and maybe rotate) with a fault armed on each sink, then apply as Terraform would (create
    again when nothing was saved, else heal) until every sink holds one live token, which is the only
    token alive."""
    issuer, sinks = world()
    first, others = targets(issuer, sinks)
    state: tuple[str, list[int | None], str | None] | None = None  # (token id, versions, previous)

    def attempt(action):  # type: ignore[no-untyped-def]
        nonlocal state
        try:
            delivered = action()
        except Crash:
            return  # nothing saved: state stays as it was
        except (PartialDelivery, UnsettledWrite) as failed:
            delivered = failed.delivered
            if not delivered.sinks:  # the first sink's write is unsettled: a failed create or rotation
                if state is None:
                    return  # tainted create: modelled as "not saved" (its token is swept as an orphan)
                state = (delivered.token.id, [delivered.sink_version, *state[1][1:]],
                         delivered.previous_token_id)
                return
        except SinkConflict:
            return  # refused by the first sink: its token was revoked
        state = (delivered.token.id, [s.version for s in delivered.sinks] or [delivered.sink_version],
                 delivered.previous_token_id or (state[2] if state and state[0] == delivered.token.id else None))

    for sink, fault in zip(sinks, faults, strict=True):
        sink.next_write = fault
    attempt(lambda: Delivery(Listings()).deliver_all(first, others))
    if rotate and state is not None:
        for sink, fault in zip(sinks, rotation_faults, strict=True):
            sink.next_write = fault
        current = state[0]
        attempt(lambda: Delivery(Listings()).rotate(first, current, None, NOW, older_previous=state[2],
                                                    others=others))
    for _ in range(4):  # clean applies
        delivery = Delivery(Listings())
        if state is None:
            attempt(lambda d=delivery: d.deliver_all(first, others))
            continue
        token_id, versions, previous = state
        # refresh (resources/token.py `read`): our own later write whose state was lost is taken in
        health = delivery.inspect(first, token_id, versions[0])
        if health.recovered is not None:
            state = (health.recovered.token.id, [health.recovered.sink_version, *versions[1:]], token_id)
            token_id, versions, previous = state
        elif health.token is None:
            state = None
            continue
        if delivery.listings.lookup(issuer, SCOPE, token_id) is None or not any(
                h == token_id for h in holders(sinks)):
            # nothing holds the live token (a rotation whose first write did not land): rotate again
            attempt(lambda d=delivery, t=token_id, p=previous: d.rotate(first, t, None, NOW, older_previous=p,
                                                                         others=others))
            continue
        attempt(lambda d=delivery, t=token_id, v=versions: d.heal(first, others, t, v))
        token_id, versions, previous = state
        if previous and holders(sinks) == [token_id] * 3:
            delivery.retire_previous(first, previous, token_id)
            state = (token_id, versions, None)
    assert state is not None
    assert holders(sinks) == [state[0]] * 3, "every sink holds the live token"
    assert list(issuer.live) == [state[0]], "and it is the only one alive"
    assert {s.versions[-1].value for s in sinks} == {issuer.values[state[0]]}
