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
