"""Client-side rate limiting shared by every thread of the provider process.

One `RateLimiter` per API budget (TFE: per address and user; Buildkite: per organization *and* per
user), obtained through `shared_limiter()` so that all concurrent calls against one budget draw from
the same bucket. The user behind an API token is asked of the API once (`budget_owner()`), so two
tokens of one user share one budget, as the servers count. A 429 or an exhausted-quota header pauses
the limiter, which stops every thread until the server's window resets: a large rollout slows down
instead of failing.

`RateLimiter` is a token bucket: `burst` slots, refilled at `rate / per` slots per second.
`WindowLimiter` counts as TFE and Buildkite do — at most `rate` requests in any `per`-second window —
so a rollout can use the whole budget (a bucket with a burst of 1 wastes every slot no caller was
ready for; one with a full burst can send twice the limit in the first window). A caller that needs
several budgets at once (Buildkite) uses `acquire_all()`, which takes one slot from each only when all
of them have one, so waiting on one budget never burns a slot of another.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from .errors import TokendropError

_EPSILON = 1e-9

Clock = Callable[[], float]
# Waits up to `seconds`; returns True if `cancel` was set meanwhile (then it may return early).
Sleeper = Callable[[float, "threading.Event | None"], bool]


class WaitCancelled(TokendropError):
    """A wait for the rate limiter or for a retry was cancelled (Terraform asked the provider to stop)."""


def cancellable_sleep(seconds: float, cancel: threading.Event | None) -> bool:
    """Sleep; return True early if `cancel` is set (the default `Sleeper`)."""
    if cancel is not None:
        return cancel.wait(seconds)
    time.sleep(seconds)
    return False


class RateLimiter:
    """A thread-safe token bucket that can be paused by the server's rate-limit signals.

    `rate` requests per `per` seconds, with up to `burst` (default: `rate`, at least 1) requests
    available at once. `clock` and `sleep` exist for tests (a fake clock); they default to
    `time.monotonic` and a cancellable sleep.
    """

    def __init__(self, rate: float, per: float, burst: int | None = None, name: str = "", *,
                 clock: Clock = time.monotonic, sleep: Sleeper = cancellable_sleep) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if not (per > 0 and math.isfinite(per)):
            raise ValueError(f"per must be a positive number of seconds, got {per!r}")
        if burst is None:
            burst = max(1, math.floor(rate))
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.name = name
        self.rate = float(rate)
        self.per = float(per)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._capacity = float(self.burst)  # may be lowered by the server's advertised limit
        self._tokens = float(self.burst)
        self._updated = clock()
        self._paused_until = -math.inf

    # -- state, all under self._lock -------------------------------------------------------------

    @property
    def _per_second(self) -> float:
        return self.rate / self.per

    def _refill(self, now: float) -> None:
        # No slots accrue while paused: after a pause, requests resume at `rate`, not in a burst.
        start = max(self._updated, self._paused_until)
        if now > start:
            self._tokens = min(self._capacity, self._tokens + (now - start) * self._per_second)
        self._updated = max(self._updated, now)

    def _delay(self, now: float) -> float:
        """Seconds until a slot is free (0 = now). Call with the lock held, after `_refill`."""
        if now < self._paused_until:
            return self._paused_until - now + (1.0 - min(self._tokens, 1.0)) / self._per_second
        # Refills are float sums: 0.9999999999 must count as a slot, or a caller could wait for
        # an amount of time too small to move the clock.
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self._tokens) / self._per_second

    def _take(self) -> None:
        self._tokens = max(0.0, self._tokens - 1.0)

    # -- public API ------------------------------------------------------------------------------

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Block until a request may be sent; return the seconds spent waiting.

        Raises `WaitCancelled` if `cancel` is set while waiting. A slot that is free right away is
        granted even when `cancel` is set, so calls already under way can finish."""
        return acquire_all((self,), cancel)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if self._delay(now) > 0:
                return False
            self._take()
            return True

    def pause_until(self, monotonic_deadline: float) -> None:
        """Stop every caller until `monotonic_deadline` (same clock as `time.monotonic`).

        Used on 429 / Retry-After / an exhausted quota. A pause never shortens an existing one."""
        with self._lock:
            self._refill(self._clock())
            if monotonic_deadline > self._paused_until:
                self._paused_until = monotonic_deadline
                self._tokens = min(self._tokens, 0.0)  # the server says the window is spent

    def pause_for(self, seconds: float) -> None:
        """`pause_until(now + seconds)`."""
        self.pause_until(self._clock() + max(0.0, seconds))

    def observe(self, limit: float | None = None, remaining: float | None = None,
                reset_seconds: float | None = None) -> None:
        """Adapt to the rate-limit headers of a response. Any argument may be None (header absent).

        - `limit`: the server's window size; the bucket never holds more slots than that.
        - `remaining`: requests left in the server's window; the bucket never holds more. With 0
          left and a known `reset_seconds`, every caller pauses until the window resets.
        """
        with self._lock:
            now = self._clock()
            self._refill(now)
            if limit is not None and limit >= 1:
                self._capacity = min(float(self.burst), float(limit))
                self._tokens = min(self._tokens, self._capacity)
            if remaining is not None:
                self._tokens = min(self._tokens, max(0.0, float(remaining)))
            pause_to = None
            if remaining is not None and remaining <= 0 and reset_seconds is not None and reset_seconds > 0:
                pause_to = now + float(reset_seconds)
        if pause_to is not None:
            self.pause_until(pause_to)

    @property
    def paused_until(self) -> float | None:
        """The monotonic time the current pause ends, or None when not paused."""
        with self._lock:
            return self._paused_until if self._clock() < self._paused_until else None

    def available(self) -> float:
        """Slots free right now (fractional); for diagnostics and tests."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            return 0.0 if now < self._paused_until else max(0.0, self._tokens)

    def __repr__(self) -> str:
        return f"RateLimiter(name={self.name!r}, rate={self.rate:g}, per={self.per:g}, burst={self.burst})"


class WindowLimiter(RateLimiter):
    """At most `rate` requests in any `per`-second sliding window, the way the servers count: the first
    `rate` go at once, then each waits for the oldest send of the window to age out. `margin` widens the
    window a little, for the difference between when we send and when the server counts."""

    def __init__(self, rate: float, per: float, name: str = "", *, margin: float = 0.0,
                 clock: Clock = time.monotonic, sleep: Sleeper = cancellable_sleep) -> None:
        super().__init__(rate, per, burst=max(1, math.floor(rate)), name=name, clock=clock, sleep=sleep)
        self._window = self.per + max(0.0, margin)
        self._sent: deque[float] = deque()  # send times, oldest first

    def _refill(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self._window:
            self._sent.popleft()
        self._tokens = max(0.0, self._capacity - len(self._sent))
        self._updated = max(self._updated, now)

    def _delay(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        over = len(self._sent) - int(self._capacity) + 1  # sends that must age out before one more
        if over <= 0:
            return 0.0
        return max(0.0, self._sent[over - 1] + self._window - now)

    def _take(self) -> None:
        self._sent.append(self._clock())
        self._tokens = max(0.0, self._capacity - len(self._sent))

    def observe(self, limit: float | None = None, remaining: float | None = None,
                reset_seconds: float | None = None) -> None:
        super().observe(limit, remaining, reset_seconds)
        if remaining is None:
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            # The server counted more than we sent (another process of the same user): stand-ins for
            # those sends keep us within what is left, until the server's window resets.
            missing = int(max(0.0, self._capacity - len(self._sent) - max(0.0, float(remaining))))
            if missing:
                expires = now + reset_seconds if reset_seconds is not None and reset_seconds > 0 else now + self._window
                stand_in = expires - self._window
                self._sent = deque(sorted([*self._sent, *([stand_in] * missing)]))
            self._tokens = max(0.0, self._capacity - len(self._sent))

    def __repr__(self) -> str:
        return f"WindowLimiter(name={self.name!r}, rate={self.rate:g}, per={self.per:g})"


def acquire_all(limiters: Sequence[RateLimiter], cancel: threading.Event | None = None) -> float:
    """Take one slot from each limiter at the same moment; return the seconds spent waiting.

    Slots are taken only when every limiter has one free, so a caller waiting on a per-user budget
    does not consume the shared per-organization budget meanwhile. Locks are taken in a fixed order
    (by id), so two callers acquiring overlapping sets cannot deadlock. The first limiter's clock and
    sleep are used for waiting."""
    unique = sorted({id(lim): lim for lim in limiters}.values(), key=id)
    if not unique:
        return 0.0
    clock, sleep = unique[0]._clock, unique[0]._sleep
    started = clock()
    while True:
        for lim in unique:
            lim._lock.acquire()
        try:
            delay = 0.0
            for lim in unique:
                now = lim._clock()
                lim._refill(now)
                delay = max(delay, lim._delay(now))
            if delay <= 0:
                for lim in unique:
                    lim._take()
                return max(0.0, clock() - started)
        finally:
            for lim in reversed(unique):
                lim._lock.release()
        if cancel is not None and cancel.is_set():
            raise _cancelled(unique)
        # Wake a little early is harmless (we loop); sleeping past the pause is not needed.
        if sleep(delay, cancel):
            raise _cancelled(unique)


def _cancelled(limiters: Sequence[RateLimiter]) -> WaitCancelled:
    names = ", ".join(lim.name or "unnamed" for lim in limiters)
    return WaitCancelled("Cancelled while waiting for the API rate limit",
                         f"the provider was asked to stop while waiting for a request slot ({names})")


# -- process-wide registry ----------------------------------------------------------------------

_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(key: str, rate: float, per: float, burst: int | None = None, *,
                   name: str | None = None, window: bool = False, margin: float = 0.0) -> RateLimiter:
    """The one limiter of `key` in this process, created on first use.

    `key` names the budget the server enforces (e.g. "tfe|https://app.terraform.io|<user hash>");
    it must never contain a credential. `name` (default: the key) is what messages show. Later
    calls with the same key get the first instance, whatever rate they pass, so every caller
    shares one budget. `window=True` makes a `WindowLimiter` (`burst` is then `rate`)."""
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            label = key if name is None else name
            limiter = (WindowLimiter(rate, per, label, margin=margin) if window
                       else RateLimiter(rate, per, burst, name=label))
            _registry[key] = limiter
        return limiter


def clear_shared_limiters() -> None:
    """Forget every shared limiter and every known budget owner (tests; a forked child)."""
    with _registry_lock:
        _registry.clear()
        _owners.clear()
        _owner_locks.clear()


# -- whose budget a credential spends -----------------------------------------------------------
#
# TFE and Buildkite count requests per *user*, and one user may hold several API tokens. A client
# asks the API once per credential who it acts as; every credential of that user then draws from
# one limiter, keyed by the user instead of the credential.

_owners: dict[str, str | None] = {}
_owner_locks: dict[str, threading.Lock] = {}


def budget_owner(credential_key: str, lookup: Callable[[], str | None]) -> str | None:
    """The user whose rate-limit budget the credential behind `credential_key` spends.

    `lookup` asks the API (one request); it runs at most once per key and process, however many
    threads and clients ask at the same time. It returns None when the API does not say, and the
    caller then keeps a budget per credential. An exception from `lookup` (e.g. `WaitCancelled`) is
    not remembered: the next caller asks again. `credential_key` must never contain a credential."""
    with _registry_lock:
        if credential_key in _owners:
            return _owners[credential_key]
        lock = _owner_locks.setdefault(credential_key, threading.Lock())
    with lock:
        with _registry_lock:
            if credential_key in _owners:
                return _owners[credential_key]
        owner = lookup()
        with _registry_lock:
            _owners[credential_key] = owner
        return owner


# A forked child must not inherit locks that a parent thread held at fork time.
if hasattr(os, "register_at_fork"):
    def _after_fork_in_child() -> None:
        global _registry_lock
        _registry_lock = threading.Lock()
        _registry.clear()
        _owners.clear()
        _owner_locks.clear()

    os.register_at_fork(after_in_child=_after_fork_in_child)
