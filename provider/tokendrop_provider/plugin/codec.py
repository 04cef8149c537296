"""msgpack encoding of cty values, as Terraform sends and expects them in DynamicValue.msgpack.

Unknown values are msgpack extension type 0; refined unknowns (Terraform >= 1.6) arrive as extension
type 12 and are sent back unchanged. Objects are encoded with every attribute of their type present
(null when absent), in sorted order, as cty does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import msgpack

from ..types import BOOL, NUMBER, STRING, CtyType, ListOf, MapOf, ObjectOf, Primitive, SetOf, Unknown

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
    return msgpack.packb(_prepare(value, cty_type, ()), use_bin_type=True)


def _path_text(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "<root>"


def _prepare(value: object, cty_type: CtyType, path: tuple[str | int, ...]) -> object:
    if value is None:
        return None
    if isinstance(value, Unknown):
        if value.refinements is not None:
            return msgpack.ExtType(_REFINED_UNKNOWN_EXT, value.refinements)
        return msgpack.ExtType(_UNKNOWN_EXT, b"\x00")
    if isinstance(cty_type, Primitive):
        return _prepare_primitive(value, cty_type, path)
    if isinstance(cty_type, ListOf | SetOf):
        if not isinstance(value, list | tuple | set | frozenset):
            raise CodecError(f"{_path_text(path)}: expected a list, got {type(value).__name__}")
        items = sorted(value, key=_sort_key) if isinstance(value, set | frozenset) else value
        return [_prepare(v, cty_type.element, (*path, i)) for i, v in enumerate(items)]
    if isinstance(cty_type, MapOf):
        if not isinstance(value, Mapping):
            raise CodecError(f"{_path_text(path)}: expected a map, got {type(value).__name__}")
        return {str(k): _prepare(v, cty_type.element, (*path, str(k))) for k, v in sorted(value.items())}
    if isinstance(cty_type, ObjectOf):
        if not isinstance(value, Mapping):
            raise CodecError(f"{_path_text(path)}: expected an object, got {type(value).__name__}")
        types = cty_type.attribute_types()
        extra = set(value) - set(types)
        if extra:
            raise CodecError(f"{_path_text(path)}: unexpected attributes {sorted(extra)}")
        return {name: _prepare(value.get(name), types[name], (*path, name)) for name in sorted(types)}
    raise CodecError(f"{_path_text(path)}: unsupported type {cty_type!r}")


def _prepare_primitive(value: object, cty_type: Primitive, path: tuple[str | int, ...]) -> object:
    if cty_type == STRING:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise CodecError(f"{_path_text(path)}: expected a string, got {type(value).__name__}")
        return value if isinstance(value, str) else str(value)
    if cty_type == BOOL:
        if not isinstance(value, bool):
            raise CodecError(f"{_path_text(path)}: expected a bool, got {type(value).__name__}")
        return value
    if cty_type == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"{_path_text(path)}: expected a number, got {type(value).__name__}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    raise CodecError(f"{_path_text(path)}: unsupported primitive {cty_type.name}")


def _sort_key(v: object) -> str:
    return json.dumps(v, sort_keys=True, default=str)
