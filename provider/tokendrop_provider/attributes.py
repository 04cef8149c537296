"""The building blocks of schema.py: attributes, resource schemas and the validation walk.

Plain data with no protocol imports, so that the CDKTF constructs can read the same definitions at
synth time that the provider serves at plan time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .types import BOOL, CtyType, Dynamic, ListOf, ObjectOf, Unknown, is_known
from .validation import Rule

# How a change to an argument is carried out:
#   "update"  in place, the token (if any) is kept
#   "rotate"  in place, by minting a new token and writing it as a new sink version
#   "replace" destroy and create (a different object at the issuer or a different sink location)
OnChange = Literal["update", "rotate", "replace"]


@dataclass(frozen=True)
class Attr:
    name: str
    type: CtyType | None = None  # None for a nested object (see `nested`)
    description: str = ""
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    default: object = None  # planned when the configuration leaves an optional+computed value null
    rules: tuple[Rule, ...] = ()
    on_change: OnChange = "update"
    # nested attributes (protocol 6): one object, or see `nesting`; a sequence that may be read on use
    # (schema.DELIVER_TO's blocks are the registered sinks')
    nested: Sequence[Attr] | None = None
    # "single": one nested object; "list": a list of them (e.g. a Token Vault agent's grants);
    # "one_or_list": either, as the configuration writes it (`deliver_to`). Terraform has no nesting
    # mode for that, so it is served as a dynamic attribute and checked by the provider (docs/lifecycle.md).
    nesting: Literal["single", "list", "one_or_list"] = "single"

    def __post_init__(self) -> None:
        if (self.type is None) == (self.nested is None):
            raise ValueError(f"{self.name}: give either a type or nested attributes")
        if not (self.required or self.optional or self.computed):
            raise ValueError(f"{self.name}: must be required, optional or computed")

    @property
    def cty_type(self) -> CtyType:
        if self.nested is not None:
            if self.nesting == "one_or_list":
                return Dynamic(fallback=object_type(self.nested))
            return ListOf(object_type(self.nested)) if self.nesting == "list" else object_type(self.nested)
        assert self.type is not None
        return self.type

    @property
    def is_argument(self) -> bool:
        return self.required or self.optional


def object_type(attrs: Sequence[Attr]) -> ObjectOf:
    return ObjectOf(tuple((a.name, a.cty_type) for a in attrs))


# A cross-attribute check: receives the whole configuration (values may be Unknown) and returns
# (attribute path, message) pairs.
CheckFn = Callable[[Mapping[str, object]], list[tuple[tuple[str | int, ...], str]]]


@dataclass(frozen=True)
class Check:
    fn: CheckFn
    doc: str


@dataclass(frozen=True)
class ResourceSchema:
    type_name: str
    description: str
    attributes: tuple[Attr, ...]
    checks: tuple[Check, ...] = ()
    version: int = 0
    import_id: str = ""  # documentation of the import id format
    import_examples: tuple[str, ...] = ()  # import ids the documentation shows (a test parses each)
    secret_delivered: str = ""  # what the resource delivers (docs), empty for non-token resources
    in_state: str = ""  # documentation: what lands in state

    @property
    def cty_type(self) -> ObjectOf:
        return object_type(self.attributes)

    def attribute(self, name: str) -> Attr:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True)
class ProviderSchema:
    description: str
    attributes: tuple[Attr, ...]

    @property
    def cty_type(self) -> ObjectOf:
        return object_type(self.attributes)


def exactly_one_of(parent: tuple[str, ...], names: Sequence[str]) -> Check:
    """Exactly one of the nested attributes `names` under `parent` must be set."""

    def fn(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
        node: object = config
        for step in parent:
            if not isinstance(node, Mapping):
                return []
            node = node.get(step)
        if node is None or isinstance(node, Unknown) or not isinstance(node, Mapping):
            return []
        if any(isinstance(node.get(n), Unknown) for n in names):
            return []
        present = [n for n in names if node.get(n) is not None]
        choices = " or ".join(f"`{n}`" for n in names)
        if not present:
            return [(parent, f"set exactly one sink: {choices}")]
        if len(present) > 1:
            both = " and ".join(f"`{n}`" for n in present)
            return [((*parent, present[1]), f"set exactly one sink, not both {both}")]
        return []

    return Check(fn, f"exactly one of {', '.join(names)} under {'.'.join(parent)}")


def validate_config(attrs: Sequence[Attr], config: Mapping[str, object] | None,
                    checks: Sequence[Check] = (), prefix: tuple[str | int, ...] = ()) -> list[ConfigError]:
    """Check a configuration object against attribute rules and checks. Unknown values are skipped
    (they are checked once known, at apply). Returns every error, each naming its attribute path."""
    errors: list[ConfigError] = []
    config = config or {}
    for attr in attrs:
        path = (*prefix, attr.name)
        value = config.get(attr.name)
        if isinstance(value, Unknown):
            continue
        if value is None:
            if attr.required:
                errors.append(ConfigError(f"Missing required argument {_dotted(path)}",
                                          f"The argument {_dotted(path)} is required.", path))
            continue
        if not attr.is_argument:
            continue
        if attr.nested is not None:
            if attr.nesting == "one_or_list" and not isinstance(value, Mapping | list | tuple):
                errors.append(ConfigError(f"Invalid {_dotted(path)}", f"{_dotted(path)} must be one object or a "
                                          "list of objects.", path))
            elif attr.nesting != "single" and isinstance(value, list | tuple):
                for i, element in enumerate(value):
                    if isinstance(element, Mapping):
                        errors.extend(validate_config(attr.nested, element, (), (*path, i)))
                    elif attr.nesting == "one_or_list" and not isinstance(element, Unknown):
                        errors.append(ConfigError(f"Invalid {_dotted((*path, i))}",
                                                  f"{_dotted((*path, i))} must be an object.", (*path, i)))
            elif isinstance(value, Mapping):
                errors.extend(validate_config(attr.nested, value, (), path))
            continue
        if attr.type == BOOL or not is_known(value):
            continue
        for rule in attr.rules:
            message = rule(value)
            if message:
                errors.append(ConfigError(f"Invalid {_dotted(path)}", f"{_dotted(path)} {message}.", path))
                break
    for check in checks:
        for path, message in check.fn(config):
            full = (*prefix, *path)
            errors.append(ConfigError(f"Invalid {_dotted(full)}", f"{message}.", full))
    return errors


def one_or_list(value: object) -> list[object]:
    """The elements of a `one_or_list` value: [value] for one object, the list itself, [] for null."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


dotted = _dotted
