"""What the audit asks the issuers and sinks, through the provider's own clients (`ProviderCore`).

Cost: one listing (all pages) per pool / cluster / AppRole role, one agent list plus a read per agent
for Token Vault (its list carries no descriptions), SSM DescribeParameters per 50 parameters, one
metadata read per Vault KV secret. Listings and Vault reads run a few at a time; the issuer clients
share their rate limiters across threads, so a large audit slows down instead of failing. Only
metadata is read: no call here returns a token value.
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
    from ..provider import ProviderCore

T = TypeVar("T")
R = TypeVar("R")
SSM_BATCH = 50  # DescribeParameters takes at most 50 names per call


class WalkError(ConfigError):
    """Something the command line asked to walk does not exist or cannot be seen (exit code 2)."""


@dataclass
class Walk:
    """Scopes the command line asks for, besides those the states name."""

    tfe_organizations: list[str] = field(default_factory=list)
    buildkite_organizations: list[str] = field(default_factory=list)
    tokenvault: bool = False  # every agent of the Token Vault account
    approle_roles: list[str] = field(default_factory=list)  # "<mount>/<role>"

    @property
    def any(self) -> bool:
        return bool(self.tfe_organizations or self.buildkite_organizations or self.tokenvault or self.approle_roles)


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


def check_settings(core: ProviderCore, issuers: Iterable[str], sink_kinds: Iterable[str]) -> None:
    """Every credential the audit will need is set, before any call: a clear error naming the
    environment variable (exit code 2) instead of a failure halfway."""
    settings = core.require_configured()
    needed = set(issuers)
    if "tfe" in needed and settings.tfe.token is None:
        raise ConfigError("Missing TFE token", "Set TFE_TOKEN (and TFE_ADDRESS, or --tfe-address, for Terraform "
                          "Enterprise): the states hold TFE agent tokens, or --tfe-organization was given.")
    if "buildkite" in needed and settings.buildkite.api_token is None:
        raise ConfigError("Missing Buildkite API token", "Set BUILDKITE_API_TOKEN (with the read_clusters scope): "
                          "the states hold Buildkite cluster tokens, or --buildkite-organization was given.")
    if "tokenvault" in needed and settings.tokenvault.api_key is None:
        raise ConfigError("Missing Token Vault API key", "Set TOKENVAULT_API_KEY: the states hold Token Vault "
                          "agents, or --tokenvault was given.")
    kinds = set(sink_kinds)
    if "vault-approle" in needed or "vault_kv" in kinds:
        why = ("the states hold AppRole secret ids or Vault KV sinks, or --approle-role was given")
        if not settings.vault.address:
            raise ConfigError("Vault address is not configured", f"Set VAULT_ADDR or --vault-address: {why}.")
        if settings.vault.token is None and not (settings.vault.approle_role_id and settings.vault.approle_secret_id):
            raise ConfigError("Vault credentials are not configured", "Set VAULT_TOKEN, or VAULT_APPROLE_ROLE_ID and "
                              f"VAULT_APPROLE_SECRET_ID for an AppRole login: {why}.")
    if "ssm" in kinds:
        from ..provider import _aws_region

        if not _aws_region(settings.aws):
            raise ConfigError("AWS region is not configured", "Set AWS_REGION (or --aws-region, or a region in your "
                              "AWS profile): the states deliver to SSM parameters.")


def prepare(core: ProviderCore, issuers: Iterable[str], sink_kinds: Iterable[str]) -> None:
    """Build the issuer clients and import the sink libraries on this thread, before any listing runs
    in parallel: first imports of `requests` through different modules race in threads (ImportError
    on a partially initialized requests.utils), and a bad address is reported before any call."""
    import requests  # noqa: F401 - imported whole, first, on one thread

    factories: dict[str, Callable[[], object]] = {"tfe": core.tfe, "buildkite": core.buildkite,
                                                  "tokenvault": core.tokenvault, "vault-approle": core.vault_approle}
    for issuer in sorted(set(issuers)):
        factories[issuer]()
    kinds = set(sink_kinds)
    if "ssm" in kinds:
        import boto3  # noqa: F401


# --- scopes ---------------------------------------------------------------------------------------


def plan_targets(state_scopes: Iterable[StateScope], walk: Walk) -> dict[tuple[str, str], Target]:
    targets: dict[tuple[str, str], Target] = {}
    for scope in state_scopes:
        target = targets.setdefault((scope.issuer, scope.scope), Target(scope.issuer, scope.scope))
        target.name = target.name or scope.name
        target.origins.add("state")
    for role in walk.approle_roles:
        from ..issuers.vault_approle import split_scope

        try:
            mount, name = split_scope(role.strip("/"))
        except ConfigError:
            raise WalkError(f"--approle-role {role!r}",
                            "give the role as <mount>/<role name>, e.g. approle/ci") from None
        target = targets.setdefault(("vault-approle", f"{mount}/{name}"),
                                    Target("vault-approle", f"{mount}/{name}"))
        target.origins.add("walk")
    return targets


def walk_organizations(core: ProviderCore, walk: Walk, targets: dict[tuple[str, str], Target],
                       progress: Progress) -> None:
    """Add every pool of each TFE organization and every cluster of each Buildkite organization."""
    total = len(walk.tfe_organizations) + len(walk.buildkite_organizations)
    if not total:
        return
    progress.stage("walking organizations", total)
    for org in walk.tfe_organizations:
        try:
            pools = core.tfe().list_agent_pools(org)
        except IssuerNotFound:
            raise WalkError(f"TFE organization {org!r} not found",
                            "It does not exist, this TFE token may not see it, or it has no agents entitlement "
                            "(TFE answers 404 for all three).") from None
        for pool in pools:
            target = targets.setdefault(("tfe", pool.id), Target("tfe", pool.id))
            target.name = pool.name
            target.origins.add("walk")
        progress.step(f"tfe {org}")
    for org in walk.buildkite_organizations:
        from ..issuers.buildkite import scope_of

        try:
            clusters = core.buildkite().list_clusters(org)
        except IssuerNotFound:
            raise WalkError(f"Buildkite organization {org!r} not found",
                            "It does not exist, or this API token may not read its clusters (read_clusters "
                            "scope).") from None
        for cluster in clusters:
            scope = scope_of(org, cluster.id)
            target = targets.setdefault(("buildkite", scope), Target("buildkite", scope))
            target.name = cluster.name
            target.origins.add("walk")
        progress.step(f"buildkite {org}")


def list_scopes(core: ProviderCore, targets: Mapping[tuple[str, str], Target], walk: Walk, workers: int,
                progress: Progress) -> dict[tuple[str, str], ScopeListing]:
    """One listing per scope. Token Vault is listed per account (see `_tokenvault_listings`)."""
    per_scope = [t for t in targets.values() if t.issuer != "tokenvault"]
    agent_names = {t.scope for t in targets.values() if t.issuer == "tokenvault"}
    listings: dict[tuple[str, str], ScopeListing] = {}
    progress.stage("listing scopes", len(per_scope))
    for listing in parallel(per_scope, lambda t: _list_one(core, t), workers, progress,
                            describe=lambda t: f"{t.issuer} {t.scope}"):
        listings[(listing.issuer, listing.scope)] = listing
    if agent_names or walk.tokenvault:
        for listing in _tokenvault_listings(core, agent_names, walk.tokenvault, workers, progress):
            listings[(listing.issuer, listing.scope)] = listing
    return listings


def _list_one(core: ProviderCore, target: Target) -> ScopeListing:
    tokens: Sequence[IssuedToken]
    try:
        if target.issuer == "tfe":
            tokens = core.tfe().list_tokens(target.scope)
        elif target.issuer == "buildkite":
            # expired ones too, so that a state token past its expiry reads "expired", not "revoked"
            tokens = core.buildkite().list_tokens(target.scope, include_expired=True)
        elif target.issuer == "vault-approle":
            tokens = core.vault_approle().list_tokens(target.scope)
        else:
            raise ConfigError(f"Unknown issuer {target.issuer!r}")
    except IssuerNotFound as err:
        if "walk" in target.origins:
            raise WalkError(f"{target.scope} not found", err.detail or err.summary) from None
        # the pool / cluster / role itself is gone: so is every token of it
        return ScopeListing(target.issuer, target.scope, {}, exists=False, name=target.name, origin=target.origin)
    return ScopeListing(target.issuer, target.scope, {t.id: t for t in tokens}, name=target.name,
                        origin=target.origin)


def _tokenvault_listings(core: ProviderCore, names: set[str], walk_all: bool, workers: int,
                         progress: Progress) -> list[ScopeListing]:
    """Token Vault's scope is an agent name. One agent list, then one read per agent of interest
    (the list has no descriptions, which carry the markers)."""
    client = core.tokenvault()
    summaries = [s for s in client.list_agents() if walk_all or s.name in names]
    progress.stage("reading Token Vault agents", len(summaries))
    found = parallel(summaries, lambda s: client.lookup(s.name, s.id), workers, progress,
                     describe=lambda s: f"tokenvault {s.name}")
    by_name: dict[str, dict[str, IssuedToken]] = {name: {} for name in names}
    for token in found:
        if token is not None:  # deleted between the list and the read
            by_name.setdefault(token.scope, {})[token.id] = token
    return [ScopeListing("tokenvault", name, tokens,
                         origin="+".join(o for o, on in (("state", name in names), ("walk", walk_all)) if on))
            for name, tokens in sorted(by_name.items())]


# --- sinks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkRef:
    address: str  # as state recorded it
    kind: str  # "ssm" | "vault_kv"
    location: Mapping[str, Any]  # the deliver_to block of that kind


def sink_ref(token: ManagedToken) -> SinkRef | None:
    """Where a token was delivered: state's `deliver_to` block, else its `sink_address`."""
    if token.sink_address is None:
        return None
    block = token.deliver_to
    if block is None:
        from ..resources.token import deliver_to_from_address

        try:
            block = deliver_to_from_address(token.sink_address)
        except ConfigError:
            return None
    for kind in ("ssm", "vault_kv"):
        location = block.get(kind)
        if isinstance(location, Mapping):
            return SinkRef(token.sink_address, kind, location)
    return None


def read_sinks(core: ProviderCore, refs: Iterable[SinkRef], workers: int,
               progress: Progress) -> dict[str, SinkStatus]:
    """Metadata of every sink (never a value): SSM in batches of 50 names, Vault KV one read each."""
    unique = {r.address: r for r in refs}
    ssm = [r for r in unique.values() if r.kind == "ssm"]
    vault = [r for r in unique.values() if r.kind == "vault_kv"]
    batches = [ssm[i:i + SSM_BATCH] for i in range(0, len(ssm), SSM_BATCH)]
    progress.stage("reading sinks", len(batches) + len(vault))
    statuses: dict[str, SinkStatus] = {}
    settings = core.require_configured()
    if batches:
        from ..sinks.ssm import describe_many

        for batch, found in zip(batches, parallel(
                batches, lambda b: describe_many([str(r.location["name"]) for r in b], settings.aws),
                workers, progress, describe=lambda b: f"ssm ({len(b)} parameters)"), strict=True):
            for ref in batch:
                statuses[ref.address] = found[str(ref.location["name"])]
    if vault:
        from ..sinks.vault_kv import VaultKvSink

        def status(ref: SinkRef) -> SinkStatus:
            loc = ref.location
            return VaultKvSink(str(loc.get("mount") or "secret"), str(loc["path"]), settings=settings.vault,
                               field=str(loc.get("field") or "token")).status()

        for ref, found_status in zip(vault, parallel(vault, status, workers, progress,
                                                     describe=lambda r: r.address), strict=True):
            statuses[ref.address] = found_status
    return statuses
