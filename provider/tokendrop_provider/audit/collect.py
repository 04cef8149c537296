"""What the audit asks the issuers and sinks, through the provider's own clients (`Clients`). What is
particular to an issuer (its walking option, how it lists) comes from its registry entry.

Cost: one listing (all pages) per pool / cluster / AppRole role, or what an issuer's `list_account`
makes (Token Vault: one agent list plus a read per agent, its list carrying no descriptions), SSM
DescribeParameters per 50 parameters, one metadata read per Vault KV secret. Listings and Vault reads
run a few at a time; the issuer clients share their rate limiters across threads, so a large audit
slows down instead of failing. Only metadata is read: no call here returns a token value.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from ..errors import ConfigError, IssuerNotFound
from ..sinks.base import SinkStatus
from .evaluate import ScopeListing
from .state import ManagedToken, StateScope

if TYPE_CHECKING:
    from ..issuers.base import IssuedToken
    from ..registry.clients import Clients

T = TypeVar("T")
R = TypeVar("R")


class WalkError(ConfigError):
    """Something the command line asked to walk does not exist or cannot be seen (exit code 2)."""


@dataclass
class Walk:
    """Scopes the command line asks for besides those the states name: issuer name -> the values of
    its audit option (`Issuer.audit_walk`); a switch that is on has one empty value."""

    asked: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Any) -> Walk:
        from ..registry import issuers

        asked: dict[str, list[str]] = {}
        for entry in issuers.ISSUERS:
            option = entry.audit_walk
            if option is not None:
                value = getattr(args, option.dest, None)
                asked[entry.name] = list(value or ()) if option.metavar else ([""] if value else [])
        return cls(asked)

    def values(self, issuer: str) -> list[str]:
        return self.asked.get(issuer, [])

    @property
    def issuers(self) -> set[str]:
        return {name for name, values in self.asked.items() if values}


@dataclass
class Target:
    """One scope to list."""

    issuer: str
    scope: str
    name: str | None = None
    origins: set[str] = field(default_factory=set)  # "state", "walk"

    @property
    def origin(self) -> str:
        return "+".join(o for o in ("state", "walk") if o in self.origins)


# --- progress -------------------------------------------------------------------------------------


class Progress:
    """A progress line on stderr. On a terminal it redraws one line and erases it at the end; with
    --progress on a pipe it prints a line per step. Disabled, it prints nothing."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = False, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._label = ""
        self._done = 0
        self._total = 0
        self._drawn = False
        self._last = 0.0

    def stage(self, label: str, total: int) -> None:
        with self._lock:
            self._label, self._done, self._total = label, 0, total
            if self.live:  # a pipe gets a line per finished step, not "0/N"
                self._draw(force=True)

    def step(self, what: str = "") -> None:
        with self._lock:
            self._done += 1
            self._draw(what, force=not self.live or self._done == self._total)

    def finish(self) -> None:
        with self._lock:
            if self.enabled and self.live and self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self._drawn = False

    def _draw(self, what: str = "", force: bool = False) -> None:
        if not self.enabled or not self._total:
            return
        now = time.monotonic()
        if self.live and not force and now - self._last < 0.1:  # at most ten redraws a second
            return
        self._last = now
        text = f"tokendrop audit: {self._label} {self._done}/{self._total}" + (f" {what}" if what else "")
        if self.live:
            self.stream.write("\r\x1b[K" + text[:_columns() - 1])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def parallel(items: Sequence[T], work: Callable[[T], R], workers: int, progress: Progress,
             describe: Callable[[T], str] = lambda _: "") -> list[R]:
    """`work` over `items`, a few at a time, results in order. The first failure stops the rest
    (calls not yet started are cancelled) and is raised."""
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        results = []
        for item in items:
            results.append(work(item))
            progress.step(describe(item))
        return results
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="audit") as pool:
        futures: list[Future[R]] = []
        for item in items:
            future = pool.submit(work, item)
            future.add_done_callback(lambda f, item=item: _stepped(f, progress, describe(item)))
            futures.append(future)
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def _stepped(future: Future[Any], progress: Progress, what: str) -> None:
    if not future.cancelled() and future.exception() is None:
        progress.step(what)


# --- credentials ----------------------------------------------------------------------------------


def check_settings(clients: Clients, issuers: Iterable[str], sink_kinds: Iterable[str]) -> None:
    """Every credential the audit will need is set, before any call: a clear error naming the
    environment variable (exit code 2) instead of a failure halfway."""
    from ..registry.issuers import issuer

    for name in sorted(set(issuers)):
        try:
            clients.check(issuer(name))
        except ConfigError as err:
            raise ConfigError(err.summary, f"{err.detail} The states hold {name} tokens or scopes, or the "
                              "command line asks to walk them.") from None
    for name in sorted(set(sink_kinds)):
        try:
            clients.check_sink({name: {}})
        except ConfigError as err:
            raise ConfigError(err.summary, f"{err.detail} The states deliver to {name} sinks.") from None


def prepare(clients: Clients, issuers: Iterable[str], sink_kinds: Iterable[str]) -> None:
    """Build the issuer clients and import the sink libraries on this thread, before any listing runs
    in parallel: first imports of `requests` through different modules race in threads (ImportError
    on a partially initialized requests.utils), and a bad address is reported before any call."""
    import importlib

    import requests  # noqa: F401 - imported whole, first, on one thread

    from ..registry.issuers import issuer
    from ..registry.sinks import sink_kind

    for name in sorted(set(issuers)):
        for library in issuer(name).libraries:
            importlib.import_module(library)
        clients.of(issuer(name))
    for name in sorted(set(sink_kinds)):
        for library in sink_kind(name).libraries:
            importlib.import_module(library)


# --- scopes ---------------------------------------------------------------------------------------


def plan_targets(state_scopes: Iterable[StateScope], walk: Walk) -> dict[tuple[str, str], Target]:
    targets: dict[tuple[str, str], Target] = {}
    for scope in state_scopes:
        target = targets.setdefault((scope.issuer, scope.scope), Target(scope.issuer, scope.scope))
        target.name = target.name or scope.name
        target.origins.add("state")
    from ..registry import issuers

    for entry in issuers.ISSUERS:  # options naming one scope each (an AppRole role): no call needed
        option = entry.audit_walk
        if option is None or option.scope is None:
            continue
        for value in walk.values(entry.name):
            try:
                scope = option.scope(value)
            except ConfigError as err:
                raise WalkError(f"{option.flag} {value!r}", err.detail or err.summary) from None
            target = targets.setdefault((entry.name, scope), Target(entry.name, scope))
            target.origins.add("walk")
    return targets


def walk_organizations(clients: Clients, walk: Walk, targets: dict[tuple[str, str], Target],
                       progress: Progress) -> None:
    """Add every scope under each value of an option that walks (every pool of a TFE organization,
    every cluster of a Buildkite organization), as the issuers' entries list them."""
    from ..registry import issuers

    asked = [(entry, entry.audit_walk, value) for entry in issuers.ISSUERS
             if entry.audit_walk is not None and entry.audit_walk.scopes is not None
             for value in walk.values(entry.name)]
    if not asked:
        return
    progress.stage("walking organizations", len(asked))
    for entry, option, value in asked:
        assert option.scopes is not None  # picked above
        try:
            found = option.scopes(clients.of(entry), value)
        except IssuerNotFound:
            raise WalkError(f"{option.what} {value!r} not found", option.not_found) from None
        for scope, name in found:
            target = targets.setdefault((entry.name, scope), Target(entry.name, scope))
            target.name = name
            target.origins.add("walk")
        progress.step(f"{entry.name} {value}")


def list_scopes(clients: Clients, targets: Mapping[tuple[str, str], Target], walk: Walk, workers: int,
                progress: Progress) -> dict[tuple[str, str], ScopeListing]:
    """One listing per scope, or per account for an issuer that lists that way (`list_account`)."""
    from ..registry import issuers

    per_scope = [t for t in targets.values() if issuers.issuer(t.issuer).list_tokens is not None]
    listings: dict[tuple[str, str], ScopeListing] = {}
    progress.stage("listing scopes", len(per_scope))
    for listing in parallel(per_scope, lambda t: _list_one(clients, t), workers, progress,
                            describe=lambda t: f"{t.issuer} {t.scope}"):
        listings[(listing.issuer, listing.scope)] = listing

    def fanout(label: str, items: Sequence[Any], work: Callable[[Any], Any],
               describe: Callable[[Any], str]) -> list[Any]:
        progress.stage(label, len(items))
        return parallel(items, work, workers, progress, describe=describe)

    for entry in issuers.ISSUERS:
        names = {t.scope for t in targets.values() if t.issuer == entry.name}
        walk_all = entry.name in walk.issuers
        if entry.list_account is None or not (names or walk_all):
            continue
        for scope, tokens in sorted(entry.list_account(clients.of(entry), names, walk_all, fanout).items()):
            origin = "+".join(o for o, on in (("state", scope in names), ("walk", walk_all)) if on)
            listings[(entry.name, scope)] = ScopeListing(entry.name, scope, dict(tokens), origin=origin)
    return listings


def _list_one(clients: Clients, target: Target) -> ScopeListing:
    from ..registry.issuers import issuer

    entry = issuer(target.issuer)
    assert entry.list_tokens is not None  # list_scopes picks these
    try:
        tokens: Sequence[IssuedToken] = entry.list_tokens(clients.of(entry), target.scope)
    except IssuerNotFound as err:
        if "walk" in target.origins:
            raise WalkError(f"{target.scope} not found", err.detail or err.summary) from None
        # the pool / cluster / role itself is gone: so is every token of it
        return ScopeListing(target.issuer, target.scope, {}, exists=False, name=target.name, origin=target.origin)
    return ScopeListing(target.issuer, target.scope, {t.id: t for t in tokens}, name=target.name,
                        origin=target.origin)


# --- sinks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkRef:
    address: str  # as state recorded it
    kind: str  # a registered sink's name: "ssm" | "vault_kv" | ...
    location: Mapping[str, Any]  # the deliver_to block of that kind


def sink_refs(token: ManagedToken) -> list[SinkRef]:
    """Every sink a token was delivered to: each entry of state's `sinks` list (else its `sink_address`),
    located by its `deliver_to` block (its region and role), else by parsing the address. An address
    naming another account that has no block is skipped (unchecked): the role is not in the address."""
    from ..registry.sinks import chosen, deliver_to_from_address

    refs: list[SinkRef] = []
    for sink in token.all_sinks:
        block = sink.deliver_to
        if block is None:
            try:
                block = deliver_to_from_address(sink.address)
            except ConfigError:
                continue
            if _names_an_account(sink.address):
                continue
        found = chosen(block)
        if found is not None:
            refs.append(SinkRef(sink.address, found[0].name, found[1]))
    return refs


def _names_an_account(address: str) -> bool:
    """`ssm:111111111111:...`: a sink reached through a role of another account."""
    part = address.partition(":")[2].partition(":")[0]
    return len(part) == 12 and part.isdigit()


def read_sinks(clients: Clients, refs: Iterable[SinkRef], workers: int,
               progress: Progress) -> dict[str, SinkStatus]:
    """Metadata of every sink (never a value), in batches as large as each kind reads at once (SSM:
    50 names per call; Vault KV: one read each)."""
    from ..registry.sinks import SINKS

    unique = {r.address: r for r in refs}
    batches: list[tuple[Any, list[SinkRef]]] = []
    for kind in SINKS:
        mine = [r for r in unique.values() if r.kind == kind.name]
        batches += [(kind, mine[i:i + kind.batch]) for i in range(0, len(mine), kind.batch)]
    progress.stage("reading sinks", len(batches))
    settings = clients.settings

    def read(batch: tuple[Any, list[SinkRef]]) -> Sequence[SinkStatus]:
        kind, batch_refs = batch
        return kind.statuses([kind.with_defaults(r.location) for r in batch_refs], settings)

    def describe(batch: tuple[Any, list[SinkRef]]) -> str:
        kind, batch_refs = batch
        return batch_refs[0].address if len(batch_refs) == 1 else f"{kind.name} ({len(batch_refs)} locations)"

    statuses: dict[str, SinkStatus] = {}
    for (_, batch_refs), found in zip(batches, parallel(batches, read, workers, progress, describe=describe),
                                      strict=True):
        for ref, status in zip(batch_refs, found, strict=True):
            statuses[ref.address] = status
    return statuses
