"""`Clients`: the typed access resources and the audit have to issuers, sinks and settings.

One per provider process. Clients and memoized answers are built once, on first use, and shared by
every concurrent call: concurrent callers of one key wait for a single build; different keys build in
parallel (a build may call the API). A failed build is not kept, so the next caller retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError
from ..settings import Settings
from .base import Issuer
from .sinks import SINKS, chosen

if TYPE_CHECKING:
    from ..sinks.base import Sink

T = TypeVar("T")
C = TypeVar("C")


class Clients:
    def __init__(self, settings: Callable[[], Settings], cancel: threading.Event | None = None) -> None:
        self._settings = settings  # read on each use: the provider is configured after it is built
        # Set by StopProvider: waits that have not started yet give up; calls in flight finish.
        self.cancel = cancel or threading.Event()
        self._built: dict[object, _Once] = {}
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self._settings()

    def shared(self, key: object, build: Callable[[], T]) -> T:
        """The shared value for `key`, built on first use."""
        with self._lock:
            once = self._built.get(key)
            if once is None:
                once = self._built[key] = _Once()
        return once.get(build)  # type: ignore[no-any-return]

    def memo(self, key: object, compute: Callable[[], T]) -> T:
        """A value computed once per process (e.g. "does this pool exist?" during one plan)."""
        return self.shared(("memo", key), compute)

    # --- issuers ------------------------------------------------------------------------------------

    def check(self, issuer: Issuer[Any]) -> None:
        """The issuer's settings are set (plan time: before anything is created)."""
        error = issuer.check(self.settings.group(issuer.settings.name))
        if error is not None:
            raise error

    def of(self, issuer: Issuer[C]) -> C:
        """The issuer's client, built once per settings."""
        settings = self.settings.group(issuer.settings.name)
        return self.shared(("issuer", issuer.name, settings), lambda: issuer.client(settings, self.cancel))

    # --- sinks --------------------------------------------------------------------------------------

    def check_sink(self, deliver_to: Mapping[str, object], index: int | None = None) -> None:
        """The sink's settings are set and its location is valid with them; `index`: its place in a
        list of sinks (named in the error's attribute path)."""
        found = chosen(deliver_to)
        if found is not None:
            kind, block = found
            error = kind.check(self.settings, self.memo)
            if error is None and kind.check_location is not None:
                error = kind.check_location(kind.with_defaults(block), self.settings)
            if error is not None:
                if index is not None and error.attribute[:1] == ("deliver_to",):
                    error.attribute = ("deliver_to", index, *error.attribute[1:])
                raise error

    def sink(self, deliver_to: Mapping[str, object], session: str | None = None) -> Sink:
        """The sink a `deliver_to` object names (exactly one kind is set; validation saw to it).
        `session`: who asks (a resource type), for the session name of an assumed role."""
        found = chosen(deliver_to)
        if found is None:
            names = " or ".join(f"deliver_to.{s.name}" for s in SINKS)
            raise ConfigError("No sink", f"Set {names}.", ("deliver_to",))
        kind, block = found
        location = kind.with_defaults(block)
        if session:
            location["role_session_name"] = f"tokendrop-{session}"[:64]  # STS allows 64 characters
        return kind.from_config(location, self.settings)


class _Once:
    """A value computed by the first caller; a failed build is not kept, so the next caller retries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value: object = None

    def get(self, build: Callable[[], object]) -> object:
        with self._lock:
            if not self._done:
                self._value = build()
                self._done = True
            return self._value
