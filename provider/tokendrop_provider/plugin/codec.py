"""msgpack encoding of cty values, as Terraform sends and expects them in DynamicValue.msgpack.

Unknown values are msgpack extension type 0; refined unknowns (Terraform >= 1.6) arrive as extension
type 12 and are sent back unchanged. Objects are encoded with every attribute of their type present
(null when absent), in sorted order, as cty does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import msgpack

from ..types import (
    BOOL,
    NUMBER,
    STRING,
    CtyType,
    Dynamic,
    ListOf,
    MapOf,
    ObjectOf,
    Primitive,
    SetOf,
    TupleOf,
    Unknown,
    inferred_type,
    type_from_json,
    typed,
)

_UNKNOWN_EXT = 0
_REFINED_UNKNOWN_EXT = 12


class CodecError(ValueError):
    pass


def _ext_hook(code: int, data: bytes) -> object:
    if code == _UNKNOWN_EXT:
        return Unknown()
    if code == _REFINED_UNKNOWN_EXT:
        return Unknown(refinements=data)
    raise CodecError(f"unsupported msgpack extension type {code}")


def decode(data: bytes) -> object:
    """Decode a DynamicValue.msgpack payload. An empty payload is null."""
    if not data:
        return None
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def decode_json(data: bytes) -> object:
    """Decode DynamicValue.json / RawState.json (no unknowns can appear there)."""
    if not data:
        return None
    return json.loads(data)


def encode(value: object, cty_type: CtyType) -> bytes:
    """Encode one value (a hot path keeps an `Encoder` per type instead)."""
    return Encoder(cty_type)(value)


class Encoder:
    """`encode` for one type, with the walk over the type done once: the service keeps one per resource
    type, so a state costs one pass over its value (no per-call type dispatch or path bookkeeping; the
    path is rebuilt only for an error message)."""

    def __init__(self, cty_type: CtyType) -> None:
        self._prepare = _compile(cty_type)

    def __call__(self, value: object) -> bytes:
        try:
            return msgpack.packb(self._prepare(value), use_bin_type=True)
        except _Mismatch as mismatch:
            raise CodecError(f"{_path_text(tuple(reversed(mismatch.path)))}: {mismatch.problem}") from None


class _Mismatch(Exception):
    """A value that does not fit its type; `path` grows (innermost step first) as it unwinds."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: list[str | int] = []


def _step(step: str | int, prepare, value: object) -> object:  # type: ignore[no-untyped-def]
    try:
        return prepare(value)
    except _Mismatch as mismatch:
        mismatch.path.append(step)
        raise


def _unknown(value: Unknown) -> msgpack.ExtType:
    if value.refinements is not None:
        return msgpack.ExtType(_REFINED_UNKNOWN_EXT, value.refinements)
    return msgpack.ExtType(_UNKNOWN_EXT, b"\x00")


def _string(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Mismatch(f"expected a string, got {type(value).__name__}")
    return str(value)


def _bool(value: object) -> object:
    if not isinstance(value, bool):
        raise _Mismatch(f"expected a bool, got {type(value).__name__}")
    return value


def _number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Mismatch(f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_PRIMITIVES = {STRING.name: _string, BOOL.name: _bool, NUMBER.name: _number}


def _compile(cty_type: CtyType):  # type: ignore[no-untyped-def]
    """A function value -> msgpack-ready object for `cty_type`: null and unknown allowed anywhere, objects
    with every attribute of their type (null when absent) in sorted order, sets in a stable order,
    integral floats as integers."""
    if isinstance(cty_type, Primitive):
        check = _PRIMITIVES.get(cty_type.name)
        if check is None:
            raise CodecError(f"unsupported primitive {cty_type.name}")

        def primitive(value: object) -> object:
            if value is None:
                return None
            if isinstance(value, Unknown):
                return _unknown(value)
            return check(value)

        return primitive
    if isinstance(cty_type, ListOf | SetOf):
        element = _compile(cty_type.element)

        def sequence(value: object) -> object:
            if value is None:
                return None
            if isinstance(value, Unknown):
                return _unknown(value)
            if not isinstance(value, list | tuple | set | frozenset):
                raise _Mismatch(f"expected a list, got {type(value).__name__}")
            items = sorted(value, key=_sort_key) if isinstance(value, set | frozenset) else value
            return [_step(i, element, v) for i, v in enumerate(items)]

        return sequence
    if isinstance(cty_type, MapOf):
        element = _compile(cty_type.element)

        def mapping(value: object) -> object:
            if value is None:
                return None
            if isinstance(value, Unknown):
                return _unknown(value)
            if not isinstance(value, Mapping):
                raise _Mismatch(f"expected a map, got {type(value).__name__}")
            return {str(k): _step(str(k), element, v) for k, v in sorted(value.items())}

        return mapping
    if isinstance(cty_type, ObjectOf):
        fields = [(name, _compile(t)) for name, t in sorted(cty_type.attribute_types().items())]
        names = frozenset(name for name, _ in fields)

        def obj(value: object) -> object:
            if value is None:
                return None
            if isinstance(value, Unknown):
                return _unknown(value)
            if not isinstance(value, Mapping):
                raise _Mismatch(f"expected an object, got {type(value).__name__}")
            if not names.issuperset(value):
                raise _Mismatch(f"unexpected attributes {sorted(set(value) - names)}")
            out = {}
            for name, prepare in fields:
                item = value.get(name)
                out[name] = None if item is None else _step(name, prepare, item)
            return out

        return obj
    if isinstance(cty_type, TupleOf):
        elements = [_compile(t) for t in cty_type.elements]

        def tuple_(value: object) -> object:
            if value is None:
                return None
            if isinstance(value, Unknown):
                return _unknown(value)
            if not isinstance(value, list | tuple) or len(value) != len(elements):
                raise _Mismatch(f"expected a tuple of {len(elements)}, got {type(value).__name__}")
            return [_step(i, prepare, v) for i, (prepare, v) in enumerate(zip(elements, value, strict=True))]

        return tuple_
    if isinstance(cty_type, Dynamic):
        fallback = cty_type.fallback

        def dynamic(value: object) -> object:
            # cty's msgpack form of a dynamic value: [type JSON, value encoded with that type]
            if value is None:
                return None
            if isinstance(value, Unknown):
                return _unknown(value)
            actual = getattr(value, "cty", None)
            if actual is None:
                actual = (fallback if isinstance(value, Mapping) and fallback is not None else
                          ListOf(fallback) if isinstance(value, list | tuple) and fallback is not None else
                          inferred_type(value))
            return [actual.json_bytes(), _compiled(actual)(value)]

        return dynamic
    raise CodecError(f"unsupported type {cty_type!r}")


_COMPILED: dict[CtyType, object] = {}


def _compiled(cty_type: CtyType):  # type: ignore[no-untyped-def]
    """`_compile`, cached: the types of dynamic values repeat from call to call."""
    prepare = _COMPILED.get(cty_type)
    if prepare is None:
        prepare = _COMPILED[cty_type] = _compile(cty_type)
    return prepare


def attach_dynamic(value: object, cty_type: ObjectOf) -> object:
    """A decoded object value with its dynamic attributes (top level) turned from cty's [type JSON,
    value] pair into the value tagged with its type (`types.typed`)."""
    if not isinstance(value, dict):
        return value
    for name, attr_type in cty_type.attributes:
        item = value.get(name)
        if isinstance(attr_type, Dynamic) and isinstance(item, list) and len(item) == 2 and isinstance(
                item[0], bytes | str):
            value[name] = typed(item[1], type_from_json(json.loads(item[0])))
    return value


def attach_dynamic_json(value: object, cty_type: ObjectOf) -> object:
    """The same for state in JSON (UpgradeResourceState), where cty writes {"value": ..., "type": ...}."""
    if not isinstance(value, dict):
        return value
    for name, attr_type in cty_type.attributes:
        item = value.get(name)
        if isinstance(attr_type, Dynamic) and isinstance(item, dict) and set(item) == {"value", "type"}:
            value[name] = typed(item["value"], type_from_json(item["type"]))
    return value



def _path_text(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "<root>"


def _sort_key(v: object) -> str:
    return json.dumps(v, sort_keys=True, default=str)
