"""Terraform's value types (cty) and the unknown value, as plain Python with no protocol imports.

schema.py describes attributes with these types; plugin/codec.py turns them into msgpack; the CDKTF
constructs read them at synth time. Values are plain Python: None (null), str, int/float, bool, list,
dict, and `Unknown` for values Terraform will only know after apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass


class CtyType:
    def to_json(self) -> object:
        raise NotImplementedError

    def json_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Primitive(CtyType):
    name: str

    def to_json(self) -> object:
        return self.name


STRING = Primitive("string")
NUMBER = Primitive("number")
BOOL = Primitive("bool")


@dataclass(frozen=True)
class ListOf(CtyType):
    element: CtyType

    def to_json(self) -> object:
        return ["list", self.element.to_json()]


@dataclass(frozen=True)
class SetOf(CtyType):
    element: CtyType

    def to_json(self) -> object:
        return ["set", self.element.to_json()]


@dataclass(frozen=True)
class MapOf(CtyType):
    element: CtyType

    def to_json(self) -> object:
        return ["map", self.element.to_json()]


@dataclass(frozen=True)
class ObjectOf(CtyType):
    attributes: tuple[tuple[str, CtyType], ...]

    def to_json(self) -> object:
        return ["object", {name: t.to_json() for name, t in self.attributes}]

    def attribute_types(self) -> Mapping[str, CtyType]:
        return dict(self.attributes)


@dataclass(frozen=True)
class Dynamic(CtyType):
    """Any type (cty's DynamicPseudoType): Terraform sends the value with its type. `fallback` is the
    type of a plain object value the provider makes itself (an import, an upgraded state); a plain
    list is a list of it."""

    fallback: CtyType | None = None

    def to_json(self) -> object:
        return "dynamic"


@dataclass(frozen=True)
class TupleOf(CtyType):
    elements: tuple[CtyType, ...]

    def to_json(self) -> object:
        return ["tuple", [e.to_json() for e in self.elements]]


def type_from_json(raw: object) -> CtyType:
    """The type a cty type JSON names (the type Terraform sends with a dynamic value)."""
    if raw == "dynamic":
        return Dynamic()
    if isinstance(raw, str):
        return Primitive(raw)
    if isinstance(raw, list) and len(raw) == 2:
        kind, inner = raw
        if kind == "list":
            return ListOf(type_from_json(inner))
        if kind == "set":
            return SetOf(type_from_json(inner))
        if kind == "map":
            return MapOf(type_from_json(inner))
        if kind == "tuple" and isinstance(inner, list):
            return TupleOf(tuple(type_from_json(e) for e in inner))
        if kind == "object" and isinstance(inner, dict):
            return ObjectOf(tuple((k, type_from_json(v)) for k, v in inner.items()))
    raise ValueError(f"unsupported cty type {raw!r}")


def inferred_type(value: object) -> CtyType:
    """The type HCL gives a literal of this value: objects, tuples, and `dynamic` for null."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, Mapping):
        return ObjectOf(tuple((str(k), inferred_type(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return TupleOf(tuple(inferred_type(v) for v in value))
    return Dynamic()


class TypedDict(dict):  # type: ignore[type-arg]
    """A dynamic attribute's object value with the type Terraform gave it (kept so that the value
    goes back with exactly that type: a plan must repeat the configuration's type)."""

    cty: CtyType | None = None


class TypedList(list):  # type: ignore[type-arg]
    """A dynamic attribute's list or tuple value with the type Terraform gave it (see TypedDict)."""

    cty: CtyType | None = None


def typed(value: object, cty: CtyType) -> object:
    """`value` tagged with its type, where a container can carry it."""
    if isinstance(value, dict):
        out: TypedDict | TypedList = TypedDict(value)
    elif isinstance(value, list):
        out = TypedList(value)
    else:
        return value
    out.cty = cty
    return out


class Unknown:
    """A value Terraform will only know after apply. `refinements` keeps the raw msgpack payload of a
    refined unknown (extension type 12) so that it round-trips unchanged."""

    __slots__ = ("refinements",)

    def __init__(self, refinements: bytes | None = None) -> None:
        self.refinements = refinements

    def __repr__(self) -> str:
        return "<unknown>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown)

    def __hash__(self) -> int:
        return hash(Unknown)


UNKNOWN = Unknown()


def is_known(value: object) -> bool:
    """True when the value and everything inside it is known."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, dict):
        return all(is_known(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_known(v) for v in value)
    return True
