"""The one generic base of every tokendrop resource construct, driven by `tokendrop_provider.schema`.

A resource construct is a `ResourceSchema` plus a typed `__init__` that forwards its keyword arguments
here. This module turns them into the resource's configuration (sinks, durations, sets), validates it
with the provider's own rules (references count as unknown, as at plan time), and synthesizes it as
JSON and as HCL, where protocol-6 nested attributes render as object attributes
(`deliver_to = { ssm = { ... } }`), never as blocks.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from tokendrop_provider.attributes import Attr, ResourceSchema, dotted, validate_config
from tokendrop_provider.errors import ConfigError
from tokendrop_provider.schema import PROVIDER_NAME
from tokendrop_provider.types import BOOL, NUMBER, STRING, ListOf, MapOf, SetOf

from ._values import for_validation, hcl_string, is_unresolved, plain, type_error
from .core import CoreDispatch, check_same_core, scope_path
from .errors import Problem, TokendropValidationError
from .sinks import Sink

if TYPE_CHECKING:  # editors see the cdktf API; at run time the base is bound to the app's core
    from cdktf import TerraformResource as _ResourceBase
else:
    _ResourceBase = object

def child_path(scope: Any, id: str) -> str:
    """The construct path `id` will have under `scope`, known before the construct exists."""
    parent = scope_path(scope)
    return f"{parent}/{id}" if parent else id


def configure(path: str, attrs: Sequence[Attr], checks: Sequence[Any], arguments: Mapping[str, Any],
              what: str) -> dict[str, Any]:
    """Arguments -> validated configuration. Raises TokendropValidationError naming `path` and each
    attribute at fault; TypeError for an argument the schema does not have."""
    by_name = {a.name: a for a in attrs if a.is_argument}
    unexpected = sorted(set(arguments) - set(by_name))
    if unexpected:
        raise TypeError(f"{path}: {what} got unexpected argument(s) {', '.join(unexpected)}; "
                        f"it takes {', '.join(sorted(by_name))}")
    problems: list[Problem] = []
    config: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        try:
            config[name] = _convert(by_name[name], value)
        except (TypeError, ValueError) as err:
            problems.append(Problem(name, str(err)))
    view = for_validation(config)
    problems += _shape_problems(list(by_name.values()), view, ())
    if not problems:  # the rules assume well-typed values
        problems += [_problem(e) for e in validate_config(attrs, view, checks)]
    if problems:
        raise TokendropValidationError(path, problems)
    return config


def _nesting(attr: Attr) -> str:
    return getattr(attr, "nesting", "single")  # "list": a list of nested objects (e.g. grants)


def _convert(attr: Attr, value: Any) -> Any:
    if attr.nested is None:
        return plain(value)
    if _nesting(attr) == "list":
        if is_unresolved(value):
            return plain(value)
        if isinstance(value, Sequence) and not isinstance(value, str):
            return [_convert_object(attr, element) for element in value]
        raise TypeError(f"expected a list of {_expected(attr)} (got {type(value).__name__})")
    if _nesting(attr) == "one_or_list" and isinstance(value, Sequence) and not isinstance(value, str | Mapping):
        # Several sinks (fan-out): one token delivered to each, in this order.
        return [_convert_object(attr, element) for element in value]
    return _convert_object(attr, value)


def _convert_object(attr: Attr, value: Any) -> Any:
    """One nested object: a mapping, a reference, or a value object with `to_config()` (a Sink)."""
    to_config = getattr(value, "to_config", None)
    if callable(to_config):
        return plain(to_config())
    if isinstance(value, Mapping) or is_unresolved(value):
        return plain(value)
    raise TypeError(f"expected {_expected(attr)} (got {type(value).__name__})")


def _expected(attr: Attr) -> str:
    if attr.name == "deliver_to":
        return "a sink such as SsmParameter(...) or VaultSecret(...)"
    return "a mapping"


def _shape_problems(attrs: Sequence[Attr], config: Mapping[str, Any],
                    prefix: tuple[str | int, ...]) -> list[Problem]:
    """Type errors and unknown nested attribute names (easy to make in a hand-written mapping)."""
    problems: list[Problem] = []
    names = {a.name for a in attrs if a.is_argument}
    for key in config:
        if key not in names and prefix:
            problems.append(Problem(dotted((*prefix, key)),
                                    f"unknown attribute; expected one of {', '.join(sorted(names))}"))
    for attr in attrs:
        value = config.get(attr.name)
        path = (*prefix, attr.name)
        message = type_error(attr.cty_type, value)
        if message:
            problems.append(Problem(dotted(path), message))
        elif attr.nested is not None and _nesting(attr) != "single" and isinstance(value, list):
            for i, element in enumerate(value):
                if isinstance(element, Mapping):
                    problems += _shape_problems(attr.nested, element, (*path, i))
        elif attr.nested is not None and isinstance(value, Mapping):
            problems += _shape_problems(attr.nested, value, path)
    return problems


def _problem(error: ConfigError) -> Problem:
    where = dotted(error.attribute)
    message = error.detail or error.summary
    if message.startswith(f"The argument {where} is required"):
        message = "is required"
    elif where and message.startswith(where + " "):
        message = message[len(where) + 1:]
    return Problem(where, message.rstrip("."))


# --- HCL -----------------------------------------------------------------------------------------

def hcl_attributes(attrs: Sequence[Attr], config: Mapping[str, Any]) -> dict[str, Any]:
    """cdktf's typed HCL description of a configuration (see cdktf's hcl renderer)."""
    return {a.name: _hcl(a, config[a.name]) for a in attrs if a.name in config}


def _hcl(attr: Attr, value: Any) -> dict[str, Any]:
    if is_unresolved(value) and not isinstance(value, list):
        # A reference or template: the renderer writes the resolved expression as is.
        return {"value": value, "is_block": False, "type": "simple", "storage_class_type": "string"}
    if attr.nested is not None:
        # The renderer writes `name = { ... }` for a non-block "list" holding one object (a protocol-6
        # single nested attribute) and `name = [{ ... }, ...]` for a list of them. A block would be
        # `name { ... }`: wrong for our schema, whose nested attributes are attributes.
        nested = attr.nested
        rendered: Any = ([hcl_attributes(nested, e) if isinstance(e, Mapping) else e for e in value]
                         if isinstance(value, list) else hcl_attributes(nested, value))
        return {"value": rendered, "is_block": False, "type": "list", "storage_class_type": attr.name}
    cty = attr.cty_type
    if isinstance(cty, ListOf | SetOf):
        return {"value": [hcl_string(v) for v in value], "is_block": False,
                "type": "set" if isinstance(cty, SetOf) else "list", "storage_class_type": "stringList"}
    if isinstance(cty, MapOf):
        return {"value": {k: hcl_string(v) for k, v in value.items()}, "is_block": False, "type": "map",
                "storage_class_type": "stringMap"}
    storage = {STRING: "string", NUMBER: "number", BOOL: "boolean"}.get(cty, "string")
    return {"value": hcl_string(value), "is_block": False, "type": "simple", "storage_class_type": storage}


# --- the resource base ---------------------------------------------------------------------------

@functools.cache
def _generator_metadata(core: str) -> Any:
    # Names our provider so that cdktf's provider-presence validation reports a stack without a
    # TokendropProvider. Built once per core: the struct's constructor type-checks (slow) each time.
    return importlib.import_module(core).TerraformProviderGeneratorMetadata(provider_name=PROVIDER_NAME)


class TokendropResource(_ResourceBase, metaclass=CoreDispatch):
    """A resource of the tokendrop provider, described by `schema`. Subclasses give the schema and a
    typed `__init__`; everything else (validation, JSON and HCL synthesis, references) is here."""

    schema: ClassVar[ResourceSchema]
    _core_base = "TerraformResource"

    def __init__(self, scope: Any, id: str, *, depends_on: Sequence[Any] | None = None,
                 count: Any = None, for_each: Any = None, provider: Any = None, lifecycle: Any = None,
                 **arguments: Any) -> None:
        config = configure(child_path(scope, id), self.schema.attributes, self.schema.checks, arguments,
                           type(self).__name__)
        check_same_core(scope, provider, "provider")
        meta = {k: v for k, v in {"depends_on": depends_on, "count": count, "for_each": for_each,
                                  "provider": provider, "lifecycle": lifecycle}.items() if v is not None}
        super().__init__(scope, id, terraform_resource_type=self.schema.type_name,  # type: ignore[call-arg]
                         terraform_generator_metadata=_generator_metadata(self._tokendrop_core),
                         **meta)
        self._tokendrop_config = config
        self._tokendrop_arguments = dict(arguments)

    # Called by cdktf (twice per synth: prepare and write).
    def _synthesize_attributes(self) -> dict[str, Any]:
        return self._tokendrop_config

    def _synthesize_hcl_attributes(self) -> dict[str, Any]:
        return hcl_attributes(self.schema.attributes, self._tokendrop_config)

    @property
    def arguments(self) -> dict[str, Any]:
        """The configuration as synthesized (a copy): sinks as `deliver_to` objects, durations as text."""
        return copy.deepcopy(self._tokendrop_config)

    def attribute(self, name: str) -> Any:
        """A reference to any attribute of the schema, typed by it (string, number, list, map)."""
        attr = self.schema.attribute(name)
        cty = attr.cty_type
        if cty == STRING:
            return self.get_string_attribute(name)
        if cty == NUMBER:
            return self.get_number_attribute(name)
        if cty == BOOL:
            return self.get_boolean_attribute(name)
        if isinstance(cty, ListOf | SetOf) and cty.element == STRING:
            return self.get_list_attribute(name)
        if isinstance(cty, MapOf) and cty.element == STRING:
            return self.get_string_map_attribute(name)
        return self.interpolation_for_attribute(name)


class TokenResource(TokendropResource):
    """A resource that mints a token and delivers it to one sink (`deliver_to`), with the lifecycle
    arguments every token resource shares: rotate_every, rotate_on, keep_previous_for, adopt_existing."""

    @property
    def token_id(self) -> str:
        """The issuer's id of the live token (the resource's `id`)."""
        return self.get_string_attribute("id")

    @property
    def sink_address(self) -> str:
        """Where the token was delivered, e.g. `ssm:/ci/tfc-agent/token`."""
        return self.get_string_attribute("sink_address")

    @property
    def sink_version(self) -> float:
        """Version of the sink entry (SSM parameter version, KV v2 version) that holds the live token."""
        return self.get_number_attribute("sink_version")

    @property
    def sink_status(self) -> str:
        return self.get_string_attribute("sink_status")

    @property
    def created_at(self) -> str:
        return self.get_string_attribute("created_at")

    @property
    def expires_at(self) -> str:
        return self.get_string_attribute("expires_at")

    @property
    def previous_token_id(self) -> str:
        return self.get_string_attribute("previous_token_id")

    @property
    def sink(self) -> Sink | None:
        """The sink object given as `deliver_to` (None when a mapping, a reference or a list was given)."""
        given = self._tokendrop_arguments.get("deliver_to")
        return given if isinstance(given, Sink) else None

    @property
    def sinks(self) -> list[Sink]:
        """Every sink object given as `deliver_to`, one or a list, in order (mappings left out)."""
        given = self._tokendrop_arguments.get("deliver_to")
        listed = given if isinstance(given, list | tuple) else [given]
        return [sink for sink in listed if isinstance(sink, Sink)]

    def read_policy(self) -> Any:
        """What a consumer needs to read the token: `sink.read_policy()` (IAM document or Vault HCL). With
        several sinks, each consumer reads one of them: use `read_policies()`."""
        if self.sink is None:
            raise ValueError(f"{self.node.path}: read_policy() needs deliver_to given as one sink object "
                             "(with several sinks, read_policies() gives one per sink)")
        return self.sink.read_policy()

    def read_policies(self) -> list[Any]:
        """`read_policy()` of every sink object of `deliver_to`, in its order."""
        return [sink.read_policy() for sink in self.sinks]
