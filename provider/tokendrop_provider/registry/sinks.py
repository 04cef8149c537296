"""The sink registry: one line per kind of sink. Adding a sink = its entry module + one line here.

A sink address is `<kind>:<rest>`, `rest` formatted and parsed by the kind's entry; state records it
as `sink_address`, import ids end with it, and the audit reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..attributes import one_or_list
from ..errors import ConfigError
from ..types import UNKNOWN, Unknown, inferred_type, typed
from . import secrets_manager, ssm, tokenvault_webhook, vault_kv
from .base import SinkKind

SINKS: list[SinkKind] = [
    ssm.SINK,
    vault_kv.SINK,
    secrets_manager.SINK,
    tokenvault_webhook.SINK,
]


def sink_kind(name: str) -> SinkKind:
    for entry in SINKS:
        if entry.name == name:
            return entry
    raise KeyError(f"no sink {name!r} is registered")


def chosen(deliver_to: Mapping[str, object]) -> tuple[SinkKind, Mapping[str, Any]] | None:
    """The kind a `deliver_to` object sets and its block (exactly one is set; validation saw to it)."""
    for entry in SINKS:
        block = deliver_to.get(entry.name)
        if isinstance(block, Mapping):
            return entry, block
    return None


def blocks(deliver_to: object) -> list[Mapping[str, Any]] | Unknown:
    """The sinks of a `deliver_to` value, one `{kind: block}` object each (one object, or a list of
    them: see schema.DELIVER_TO), or Unknown while the list itself is not known."""
    if isinstance(deliver_to, Unknown):
        return UNKNOWN
    return [element for element in one_or_list(deliver_to) if isinstance(element, Mapping)]


def addresses_of(deliver_to: object) -> list[object] | Unknown:
    """The address of every sink of `deliver_to` (each Unknown until its values are known)."""
    found = blocks(deliver_to)
    return found if isinstance(found, Unknown) else [address_of(element) for element in found]


def with_defaults(element: Mapping[str, Any]) -> dict[str, Any]:
    """One `{kind: block}` object with the block's defaults filled in and null attributes left out."""
    found = chosen(element)
    if found is None:
        return {}
    kind, block = found
    return {kind.name: kind.with_defaults(block)}


def all_in_state(deliver_to: object) -> list[Mapping[str, Any]]:
    """Every sink's `{kind: block}` of `deliver_to` as a state file holds it: a dynamic value is
    `{"value": …, "type": …}` there (schema version 1), an object in older state."""
    if isinstance(deliver_to, Mapping) and set(deliver_to) == {"value", "type"}:
        deliver_to = deliver_to["value"]
    found = blocks(deliver_to)
    return [] if isinstance(found, Unknown) else found



def written_form(deliver_to: object) -> object:
    """`deliver_to` as a configuration most likely writes it: only the block that is set, without null
    attributes or ones equal to their default, typed as HCL types such a literal. What import and the
    upgrade of older state record, so that the usual configuration plans no change (a dynamic value
    compares with its type: docs/lifecycle.md, "One token, many sinks")."""
    def one(element: Mapping[str, Any]) -> dict[str, Any]:
        found = chosen(element)
        if found is None:
            return {}
        kind, block = found
        defaults = kind.defaults()
        return {kind.name: {k: v for k, v in block.items() if v is not None and defaults.get(k) != v}}

    if isinstance(deliver_to, Mapping):
        value: object = one(deliver_to)
    elif isinstance(deliver_to, list):
        value = [one(e) for e in deliver_to if isinstance(e, Mapping)]
    else:
        return deliver_to
    return typed(value, inferred_type(value))


def address_of(deliver_to: object) -> object:
    """The sink address one `deliver_to` object names, or Unknown until its values are known."""
    if not isinstance(deliver_to, Mapping) or any(isinstance(deliver_to.get(e.name), Unknown) for e in SINKS):
        return UNKNOWN
    found = chosen(deliver_to)
    if found is None:
        return UNKNOWN
    kind, block = found
    location = kind.with_defaults(block)
    if any(isinstance(location.get(name), Unknown) or location.get(name) is None for name in kind.address_fields):
        return UNKNOWN
    return format_address(kind.name, location)


def format_address(kind: str, location: Mapping[str, Any]) -> str:
    """The address of a location of the sink `kind` (its block; unset attributes take the schema's
    defaults)."""
    entry = sink_kind(kind)
    return f"{kind}:{entry.address(entry.with_defaults(location))}"


def prefixes() -> tuple[str, ...]:
    """How every sink address starts: `<kind>:`."""
    return tuple(f"{entry.name}:" for entry in SINKS)


def split_before_address(import_id: str) -> tuple[str, str] | None:
    """(what comes before, the sink address) of an import id ending in `/<sink address>`: the first
    `/<kind>:` starts it. None when there is none."""
    cuts = [i for i in (import_id.find(f"/{p}") for p in prefixes()) if i >= 0]
    if not cuts:
        return None
    return import_id[:min(cuts)], import_id[min(cuts) + 1:]


def deliver_to_from_address(address: str) -> dict[str, object]:
    """Invert `address_of`: the `deliver_to` object (every kind's block, one set) of a sink address."""
    name, _, rest = address.partition(":")
    for entry in SINKS:
        if entry.name == name:
            location = entry.parse_address(rest)
            if location is not None:
                return {e.name: (location if e is entry else None) for e in SINKS}
    formats = " or ".join(e.address_format for e in SINKS)
    raise ConfigError("Invalid import id", f"{address!r} is not a sink address: use {formats}.")
