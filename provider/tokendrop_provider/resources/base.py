"""What every resource module builds on: the per-call context and the schema-driven planner.

Resources see plain dicts (attribute name -> value, `Unknown` for values known after apply) and
raise the typed errors of errors.py. They never touch protobuf or msgpack.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..attributes import Attr, ResourceSchema, one_or_list, validate_config
from ..errors import ConfigError, IssuerNotFound, TokendropError
from ..settings import batching_enabled
from ..types import UNKNOWN, Unknown

if TYPE_CHECKING:
    from ..provider import ProviderCore
    from ..registry.clients import Clients

State = dict[str, object]
Path = tuple[str | int, ...]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Listed = TypeVar("Listed", bound=_Identified)


class Context:
    """One RPC call: the configured provider's clients and delivery, and the warnings to report with the
    answer."""

    def __init__(self, provider: ProviderCore) -> None:
        self.provider = provider
        self.clients: Clients = provider.clients
        self.warnings: list[TokendropError] = []

    def warn(self, summary: str, detail: str = "", attribute: Sequence[str | int] = ()) -> None:
        self.warnings.append(TokendropError(summary, detail, attribute))

    @staticmethod
    def now() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def from_listing(self, key: object, list_all: Callable[[], Sequence[Listed]], item_id: object) -> Listed | None:
        """Batched refresh: `list_all` runs once per `key` and provider process (concurrent readers share
        it) and answers every item's read. None when batching is off, the listing is refused, or the item
        is not in it: the caller then looks the item up on its own before calling it gone."""
        if not batching_enabled():
            return None
        try:
            items = self.clients.memo(key, list_all)
        except IssuerNotFound:
            return None
        return next((item for item in items if item.id == item_id), None)


@dataclass
class Plan:
    planned: State | None
    requires_replace: list[Path] = field(default_factory=list)


class Resource(abc.ABC):
    """A managed resource type. Subclasses implement create/read/update/delete/import and may refine
    `plan_create` / `plan_update`; the generic plan keeps configured values, applies defaults, carries
    computed values over from the prior state and reports replacement paths."""

    schema: ResourceSchema

    # --- validation -----------------------------------------------------------------------------

    def validate(self, config: Mapping[str, object]) -> list[ConfigError]:
        return validate_config(self.schema.attributes, config, self.schema.checks)

    # --- planning -------------------------------------------------------------------------------

    def plan(self, ctx: Context, prior: State | None, proposed: State | None, config: State | None) -> Plan:
        if proposed is None:  # destroy
            return Plan(None)
        errors = self.validate(config or {})
        if errors:
            raise errors[0] if len(errors) == 1 else _combine(errors)
        planned = apply_defaults(self.schema.attributes, proposed, config or {})
        self.preflight(ctx, prior, planned)
        if prior is None:
            planned = unknown_computed(self.schema.attributes, planned, config or {})
            self.plan_create(ctx, planned)
            return Plan(planned)
        replace = changed_paths(self.schema.attributes, prior, planned, "replace")
        self.plan_update(ctx, prior, planned, replace)
        return Plan(planned, replace)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:  # noqa: B027
        """Fail the plan, before anything is created, when settings are missing or the configuration
        names something that does not exist. May read (never write) the issuer."""

    def plan_create(self, ctx: Context, planned: State) -> None:  # noqa: B027 - optional hook
        """Refine a create plan in place (e.g. computed values already known at plan time)."""

    def plan_update(self, ctx: Context, prior: State, planned: State, replace: list[Path]) -> None:  # noqa: B027
        """Refine an update plan in place (e.g. mark values that the update will change unknown)."""

    # --- lifecycle ------------------------------------------------------------------------------

    @abc.abstractmethod
    def create(self, ctx: Context, planned: State) -> State: ...

    @abc.abstractmethod
    def read(self, ctx: Context, state: State) -> State | None:
        """The object as it is now, or None when it is gone (Terraform then plans to create it)."""

    @abc.abstractmethod
    def update(self, ctx: Context, prior: State, planned: State) -> State: ...

    @abc.abstractmethod
    def delete(self, ctx: Context, prior: State) -> None: ...

    @abc.abstractmethod
    def import_state(self, ctx: Context, import_id: str) -> State: ...

    def upgrade(self, version: int, raw: dict[str, object]) -> State:
        """Bring state written by an older schema version up to date. Version 0 is current."""
        return raw

    def apply(self, ctx: Context, prior: State | None, planned: State | None) -> State | None:
        if planned is None:
            assert prior is not None
            self.delete(ctx, prior)
            return None
        if prior is None:
            return self.create(ctx, planned)
        return self.update(ctx, prior, planned)


class ApplyFailed(TokendropError):
    """Apply failed after something was created: `state` describes what exists, so that Terraform
    records it (as tainted) instead of losing track of it."""

    def __init__(self, error: TokendropError, state: State) -> None:
        super().__init__(error.summary, error.detail, error.attribute)
        self.state = state


def _combine(errors: list[ConfigError]) -> ConfigError:
    # Several problems: report the first with its path and list the others in the detail.
    first = errors[0]
    others = "\n".join(f"- {e.detail or e.summary}" for e in errors[1:])
    return ConfigError(first.summary, f"{first.detail}\n\nAlso:\n{others}", first.attribute)


# --- the generic planner ---------------------------------------------------------------------------

def apply_defaults(attrs: Sequence[Attr], proposed: Mapping[str, object], config: Mapping[str, object]) -> State:
    """Planned values: the proposed new state, with schema defaults where the configuration leaves
    an optional+computed attribute null."""
    planned: State = dict(proposed)
    for attr in attrs:
        configured = config.get(attr.name) if isinstance(config, Mapping) else None
        value = planned.get(attr.name)
        if attr.nesting == "one_or_list":
            continue  # a dynamic value: planned exactly as configured (its defaults apply on use)
        if attr.nested is not None and isinstance(value, Mapping):
            nested_config = configured if isinstance(configured, Mapping) else {}
            planned[attr.name] = apply_defaults(attr.nested, value, nested_config)
        elif attr.nested is not None and isinstance(value, list):
            planned[attr.name] = [apply_defaults(attr.nested, v, _element(configured, i)) if isinstance(v, Mapping)
                                  else v for i, v in enumerate(value)]
        elif attr.default is not None and attr.optional and attr.computed and configured is None:
            planned[attr.name] = attr.default
    return planned


def unknown_computed(attrs: Sequence[Attr], planned: Mapping[str, object], config: Mapping[str, object]) -> State:
    """On create, computed values nobody configured are unknown until apply."""
    out: State = dict(planned)
    for attr in attrs:
        configured = config.get(attr.name) if isinstance(config, Mapping) else None
        value = out.get(attr.name)
        if attr.nested is not None:
            if attr.nesting == "one_or_list":
                continue
            if isinstance(value, Mapping):
                out[attr.name] = unknown_computed(attr.nested, value,
                                                  configured if isinstance(configured, Mapping) else {})
            elif isinstance(value, list):
                out[attr.name] = [unknown_computed(attr.nested, v, _element(configured, i))
                                  if isinstance(v, Mapping) else v for i, v in enumerate(value)]
            continue
        if attr.computed and configured is None and value is None and attr.default is None:
            out[attr.name] = UNKNOWN
    return out


def _reports(attrs: Sequence[Attr], on_change: str) -> bool:
    """Some argument under `attrs` is carried out by `on_change`."""
    return any(_reports(a.nested, on_change) if a.nested is not None else a.on_change == on_change and a.is_argument
               for a in attrs)


def _with_defaults(value: object) -> Mapping[str, object]:
    """An element of a one_or_list value with the defaults of its blocks filled in (config leaves
    them null, a state upgraded from the object form has them)."""
    if not isinstance(value, Mapping):
        return {}
    from ..registry.sinks import with_defaults

    return with_defaults(value)


def _element(config: object, index: int) -> Mapping[str, object]:
    """The configuration of element `index` of a list-nested attribute ({} when absent)."""
    if isinstance(config, list) and index < len(config) and isinstance(config[index], Mapping):
        return config[index]
    return {}


def _lookup(value: object, path: Path) -> tuple[bool, object]:
    for step in path:
        if isinstance(value, Unknown):
            return True, UNKNOWN
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return False, None
            value = value[step]
            continue
        if not isinstance(value, Mapping) or step not in value:
            return False, None
        value = value[step]
    return True, value


def changed_paths(attrs: Sequence[Attr], prior: Mapping[str, object], planned: Mapping[str, object],
                  on_change: str, prefix: Path = ()) -> list[Path]:
    """Paths of arguments with the given `on_change` whose planned value differs from the prior one
    (or is unknown). A path is listed only if it exists in at least one of the two values, as
    Terraform requires for requires_replace."""
    found: list[Path] = []
    for attr in attrs:
        path = (*prefix, attr.name)
        if attr.nested is not None and attr.nesting == "one_or_list":
            # One object or a list: compared element by element (unset values as the defaults), and
            # reported as the whole attribute, since a path into it differs between the two forms.
            before_all, after_all = (_lookup(v, path)[1] for v in (prior, planned))
            if isinstance(after_all, Unknown) and before_all is not None:
                if _reports(attr.nested, on_change):
                    found.append(path)
                continue
            before, after = (one_or_list(v) if not isinstance(v, Unknown) else [] for v in (before_all, after_all))
            for i in range(max(len(before), len(after))):
                b = _with_defaults(before[i]) if i < len(before) else {}
                a = _with_defaults(after[i]) if i < len(after) else {}
                if changed_paths(attr.nested, b, a, on_change):
                    found.append(path)
                    break
            continue
        if attr.nested is not None and attr.nesting == "list":
            # Element by element; while the planned list is unknown, any prior element may change.
            lengths = [len(v) for v in (_lookup(prior, path)[1], _lookup(planned, path)[1]) if isinstance(v, list)]
            for i in range(max(lengths, default=0)):
                found.extend(changed_paths(attr.nested, prior, planned, on_change, (*path, i)))
            continue
        if attr.nested is not None:
            found.extend(changed_paths(attr.nested, prior, planned, on_change, path))
            continue
        if attr.on_change != on_change or not attr.is_argument:
            continue
        in_prior, before = _lookup(prior, path)
        in_planned, after = _lookup(planned, path)
        if not (in_prior or in_planned):
            continue
        if isinstance(after, Unknown) or before != after:
            found.append(path)
    return found

