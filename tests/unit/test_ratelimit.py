"""The token-bucket limiter, driven by a fake clock: no assertion depends on wall-clock time."""

from __future__ import annotations

import threading
import time

import pytest

from tokendrop_provider.errors import TokendropError
from tokendrop_provider.ratelimit import (
    RateLimiter,
    WaitCancelled,
    acquire_all,
    budget_owner,
    clear_shared_limiters,
    shared_limiter,
)


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it. Thread-safe."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        self.on_sleep = None  # optional callback(seconds) run before the clock moves

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, cancel: threading.Event | None) -> bool:
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
        time.sleep(0)  # let other threads run
        return cancel is not None and cancel.is_set()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter(clock: FakeClock, rate: float = 10, per: float = 1, burst: int | None = None) -> RateLimiter:
    return RateLimiter(rate, per, burst, name="test", clock=clock, sleep=clock.sleep)


def test_burst_is_free_then_requests_are_spaced_at_the_rate(clock):
    lim = limiter(clock, rate=10, per=1, burst=3)
    assert [lim.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    start = clock()
    waited = lim.acquire()
    assert waited == pytest.approx(0.1)
    assert clock() - start == pytest.approx(0.1)
    assert lim.acquire() == pytest.approx(0.1)


def test_rate_per_minute_and_default_burst(clock):
    lim = limiter(clock, rate=50, per=60)  # Buildkite's per-user budget
    assert lim.burst == 50
    for _ in range(50):
        assert lim.acquire() == 0.0
    assert lim.acquire() == pytest.approx(60 / 50)


def test_idle_time_refills_up_to_burst_only(clock):
    lim = limiter(clock, rate=10, burst=2)
    lim.acquire()
    lim.acquire()
    clock.advance(100)
    assert lim.available() == pytest.approx(2)


@pytest.mark.parametrize(("rate", "per", "burst"), [(0, 1, None), (-1, 1, None), (1, 0, None),
                                                    (1, 1, 0), (float("inf"), 1, None)])
def test_invalid_parameters_are_rejected(rate, per, burst):
    with pytest.raises(ValueError):
        RateLimiter(rate, per, burst)


def test_try_acquire_never_waits(clock):
    lim = limiter(clock, rate=1, burst=1)
    assert lim.try_acquire() is True
    assert lim.try_acquire() is False
    assert clock.sleeps == []


def test_pause_blocks_until_deadline_and_resumes_without_a_burst(clock):
    lim = limiter(clock, rate=10, burst=5)
    lim.pause_until(clock() + 5.0)
    assert lim.paused_until == pytest.approx(clock() + 5.0)
    assert lim.available() == 0
    start = clock()
    lim.acquire()
    # Waited for the pause, then for one slot to accrue after it (no slots accrue while paused).
    assert clock() - start == pytest.approx(5.1)
    assert lim.paused_until is None
    assert lim.acquire() == pytest.approx(0.1)


def test_a_pause_never_shortens_an_existing_one(clock):
    lim = limiter(clock)
    lim.pause_until(clock() + 10)
    lim.pause_until(clock() + 2)
    assert lim.paused_until == pytest.approx(clock() + 10)
    lim.pause_for(20)
    assert lim.paused_until == pytest.approx(clock() + 20)


def test_observe_remaining_zero_pauses_until_reset(clock):
    lim = limiter(clock, rate=30, burst=30)
    lim.observe(limit=30, remaining=0, reset_seconds=0.75)
    assert lim.paused_until == pytest.approx(clock() + 0.75)
    start = clock()
    lim.acquire()
    assert clock() - start >= 0.75


def test_observe_remaining_caps_the_bucket(clock):
    lim = limiter(clock, rate=10, burst=10)
    lim.observe(remaining=2)
    assert lim.available() == pytest.approx(2)
    assert lim.paused_until is None


def test_observe_limit_caps_capacity_but_never_raises_it(clock):
    lim = limiter(clock, rate=100, per=60, burst=100)
    lim.observe(limit=20)
    clock.advance(3600)
    assert lim.available() == pytest.approx(20)
    lim.observe(limit=1000)
    clock.advance(3600)
    assert lim.available() == pytest.approx(100)


def test_observe_without_information_changes_nothing(clock):
    lim = limiter(clock, burst=4)
    lim.observe(None, None, None)
    lim.observe(remaining=0)  # exhausted but no reset time: nothing to pause until
    assert lim.paused_until is None


def test_cancel_while_waiting_raises_a_clear_error(clock):
    lim = limiter(clock, rate=1, burst=1)
    lim.acquire()
    cancel = threading.Event()
    clock.on_sleep = lambda seconds: cancel.set()  # Terraform's StopProvider arrives mid-wait
    with pytest.raises(WaitCancelled) as info:
        lim.acquire(cancel)
    assert isinstance(info.value, TokendropError)
    assert "Cancelled while waiting for the API rate limit" in str(info.value)
    assert "test" in info.value.detail


def test_cancel_already_set_still_grants_a_free_slot_but_never_waits(clock):
    lim = limiter(clock, rate=1, burst=1)
    cancel = threading.Event()
    cancel.set()
    assert lim.acquire(cancel) == 0.0  # in-flight work may finish
    with pytest.raises(WaitCancelled):
        lim.acquire(cancel)
    assert clock.sleeps == []


def test_acquire_all_takes_no_slot_while_another_budget_is_empty(clock):
    org = limiter(clock, rate=200, per=60, burst=5)
    user = limiter(clock, rate=50, per=60, burst=1)
    assert acquire_all([org, user]) == 0.0
    seen = []
    clock.on_sleep = lambda seconds: seen.append(org.available())
    waited = acquire_all([user, org])  # order of the list must not matter
    assert waited == pytest.approx(60 / 50)
    assert seen and all(avail >= 4 for avail in seen), "org budget was consumed while waiting for user"
    assert org.available() == pytest.approx(min(5, 4 + 1.2 * 200 / 60) - 1)


def test_acquire_all_waits_for_the_longest_pause(clock):
    a, b = limiter(clock), limiter(clock)
    a.pause_for(3)
    b.pause_for(7)
    start = clock()
    acquire_all([a, b])
    assert clock() - start >= 7


def test_acquire_all_of_nothing_is_free():
    assert acquire_all([]) == 0.0


def test_concurrent_callers_never_exceed_burst_plus_rate(clock):
    """Many threads on one limiter: in every window the grants stay within burst + rate * window."""
    rate, burst = 50.0, 5
    lim = RateLimiter(rate, 1, burst, clock=clock, sleep=clock.sleep)
    grants: list[float] = []
    take = lim._take

    def recording_take() -> None:  # runs under the limiter's lock, at the moment of the grant
        grants.append(clock())
        take()

    lim._take = recording_take  # type: ignore[method-assign]
    threads = [threading.Thread(target=lambda: [lim.acquire() for _ in range(25)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(grants) == 200
    grants.sort()
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            assert j - i + 1 <= burst + rate * (grants[j] - grants[i]) + 1e-6


def test_shared_limiter_is_one_instance_per_key():
    clear_shared_limiters()
    try:
        a = shared_limiter("tfe|https://x|u1", 30, 1)
        assert shared_limiter("tfe|https://x|u1", 99, 1) is a  # first caller's budget wins
        assert a.rate == 30
        b = shared_limiter("tfe|https://x|u2", 30, 1, name="tfe x")
        assert b is not a
        assert b.name == "tfe x"
        assert a.name == "tfe|https://x|u1"
        clear_shared_limiters()
        assert shared_limiter("tfe|https://x|u1", 30, 1) is not a
    finally:
        clear_shared_limiters()


def test_shared_limiter_is_safe_to_create_from_many_threads():
    clear_shared_limiters()
    try:
        found: list[RateLimiter] = []
        threads = [threading.Thread(target=lambda: found.append(shared_limiter("k", 1, 1))) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(x) for x in found}) == 1
    finally:
        clear_shared_limiters()


def test_repr_names_the_budget(clock):
    assert repr(limiter(clock, rate=30, burst=1)) == "RateLimiter(name='test', rate=30, per=1, burst=1)"


# -- the sliding-window limiter (how TFE and Buildkite count) ------------------------------------------

def window(clock: FakeClock, rate: int = 30, per: float = 1.0, margin: float = 0.0):
    from tokendrop_provider.ratelimit import WindowLimiter

    return WindowLimiter(rate, per, "window", margin=margin, clock=clock, sleep=clock.sleep)


def test_window_lets_a_full_window_go_at_once_then_waits_for_the_oldest(clock):
    lim = window(clock, rate=30, per=1.0)
    start = clock()
    assert all(lim.acquire() == 0.0 for _ in range(30))
    assert lim.acquire() == pytest.approx(1.0)
    assert clock() - start == pytest.approx(1.0)


def test_window_never_exceeds_the_limit_in_any_window(clock):
    lim = window(clock, rate=30, per=1.0, margin=0.03)
    sent = []
    for i in range(400):
        lim.acquire()
        sent.append(clock())
        if i % 7 == 0:
            clock.advance(0.011)  # callers arrive unevenly
    for i, t in enumerate(sent):
        in_window = sum(1 for u in sent[i:] if u < t + 1.0)
        assert in_window <= 30
    # and the budget is used: 400 sends need about (400 - 30) / 30 windows of 1.03 s, not more
    assert sent[-1] - sent[0] < (400 - 30) / 30 * 1.03 + 1.1


def test_window_uses_slots_no_caller_was_ready_for(clock):
    """A bucket of 1 loses every slot nobody waited on; the window gives them back."""
    lim = window(clock, rate=10, per=1.0)
    for _ in range(5):
        lim.acquire()
    clock.advance(0.9)  # a pause in the work: five slots unused in this window
    start = clock()
    for _ in range(5):
        assert lim.acquire() == 0.0
    assert clock() == start


def test_window_pauses_when_the_server_says_so(clock):
    lim = window(clock, rate=50, per=60.0)
    lim.acquire()
    lim.observe(limit=50, remaining=0, reset_seconds=12)
    assert lim.acquire() == pytest.approx(12.0)


def test_window_counts_what_the_server_counted(clock):
    lim = window(clock, rate=50, per=60.0)
    lim.observe(limit=50, remaining=3)  # another process of this user spent 47
    assert all(lim.acquire() == 0.0 for _ in range(3))
    assert lim.acquire() > 0


def test_two_windows_together(clock):
    user, org = window(clock, rate=5, per=60.0), window(clock, rate=8, per=60.0)
    for _ in range(5):
        assert acquire_all((user, org)) == 0.0
    assert user.available() == 0.0 and org.available() == pytest.approx(3.0)
    waited = acquire_all((user, org))
    assert waited == pytest.approx(60.0), "the per-user window is the tighter one"
    assert org.available() == pytest.approx(7.0), "the wait took one org slot, not one per retry"


def test_shared_limiter_can_be_a_window():
    from tokendrop_provider.ratelimit import WindowLimiter

    clear_shared_limiters()
    try:
        lim = shared_limiter("window-test", 30, 1.0, window=True, margin=0.03)
        assert isinstance(lim, WindowLimiter) and shared_limiter("window-test", 1, 1.0) is lim
    finally:
        clear_shared_limiters()


# -- budget owners ---------------------------------------------------------------------------------

def test_budget_owner_asks_once_per_credential_even_under_concurrency():
    clear_shared_limiters()
    calls: list[str] = []
    started = threading.Event()

    def lookup() -> str:
        calls.append("asked")
        started.wait(5)  # hold every other caller at the lock until all threads are waiting
        return "user-1"

    try:
        results: list[str | None] = []
        threads = [threading.Thread(target=lambda: results.append(budget_owner("tfe|x|token-a", lookup)))
                   for _ in range(8)]
        for t in threads:
            t.start()
        started.set()
        for t in threads:
            t.join(10)
        assert results == ["user-1"] * 8 and calls == ["asked"]
        assert budget_owner("tfe|x|token-a", lambda: "never asked") == "user-1"
        assert budget_owner("tfe|x|token-b", lambda: None) is None  # "the API does not say" is remembered
        assert budget_owner("tfe|x|token-b", lambda: "user-2") is None
    finally:
        clear_shared_limiters()


def test_budget_owner_does_not_remember_a_failed_lookup():
    clear_shared_limiters()

    def cancelled() -> str:
        raise WaitCancelled("Cancelled while waiting for the API rate limit")

    try:
        with pytest.raises(WaitCancelled):
            budget_owner("bk|x|token", cancelled)
        assert budget_owner("bk|x|token", lambda: "user-9") == "user-9"
        clear_shared_limiters()  # forgets owners with the limiters
        assert budget_owner("bk|x|token", lambda: "user-10") == "user-10"
    finally:
        clear_shared_limiters()
