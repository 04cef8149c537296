"""Python values as the constructs receive them, turned into what validation and synthesis need.

cdktf references (`pool.pool_id`, a TerraformVariable's value, `Fn.*`) arrive as token strings such as
`${TfToken[TOKEN.12]}`, list tokens `["#{TfToken[TOKEN.3]}"]`, numbers in a reserved range, or jsii
objects. Terraform only knows their values at plan or apply, so validation treats them as
`types.UNKNOWN`, exactly as the provider does at plan time. Any string holding `${` or `%{` is a
Terraform template, whose value is equally unknown at synth.

All checks here are pure Python: no call into the jsii kernel per value, which keeps synth of
hundreds of resources cheap.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from tokendrop_provider.types import BOOL, NUMBER, STRING, CtyType, ListOf, MapOf, ObjectOf, SetOf, Unknown
from tokendrop_provider.validation import format_duration

_TEMPLATE_MARKERS = ("${", "%{")
_LIST_TOKEN = "#{TfToken["
_MAP_TOKEN = "&{TfToken["


def is_unresolved(value: Any) -> bool:
    """True for a cdktf token, reference or Terraform template (a value only known at plan/apply)."""
    if isinstance(value, str):
        return any(m in value for m in _TEMPLATE_MARKERS) or _LIST_TOKEN in value or _MAP_TOKEN in value
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, float):
        return _is_number_token(value)
    # An IResolvable (e.g. a boolean attribute or variable): cdktf resolves it into an expression. Any
    # other object (a construct or a sink in the wrong place) is not a value: the type check reports it.
    jsii_object = hasattr(type(value), "__jsii_type__") or type(value).__module__.startswith("jsii.")
    return jsii_object and callable(getattr(value, "resolve", None))


def _is_number_token(value: float) -> bool:
    # cdktf encodes number tokens as doubles whose top 16 bits are 0xFDFF (0xFBFF inside number lists):
    # huge negative numbers no real argument takes (see cdktf's tokens/private/encoding). Ordinary
    # floats never carry these patterns.
    if math.isnan(value) or math.isinf(value):
        return False
    return struct.pack(">d", value)[:2] in (b"\xfd\xff", b"\xfb\xff")


def plain(value: Any) -> Any:
    """A value ready for jsii and JSON: timedelta -> duration text, sets -> sorted lists, tuples -> lists.
    Nulls inside objects are dropped (Terraform treats an absent attribute as null)."""
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if v is not None}
    return value


def _duration(delta: timedelta) -> str:
    if delta < timedelta(0):
        raise ValueError(f"must not be negative (got {delta.total_seconds():g} seconds)")
    if delta.microseconds:
        raise ValueError(f"must be whole seconds (got {delta.total_seconds():g} seconds)")
    return format_duration(delta)


def for_validation(value: Any) -> Any:
    """The value as `attributes.validate_config` sees it: unresolved parts become UNKNOWN."""
    if is_unresolved(value):
        return Unknown()
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], str) and _LIST_TOKEN in value[0]:
            return Unknown()  # a whole-list token
        return [for_validation(v) for v in value]
    if isinstance(value, Mapping):
        if any(isinstance(k, str) and is_unresolved(k) for k in value):
            return Unknown()  # a map token
        return {k: for_validation(v) for k, v in value.items()}
    return value


def type_error(cty: CtyType, value: Any) -> str | None:
    """Why a known value does not fit the attribute's type, or None. Unknowns always fit."""
    if isinstance(value, Unknown) or value is None:
        return None
    if cty == STRING:
        return None if isinstance(value, str) else f"must be a string (got {_describe(value)})"
    if cty == BOOL:
        return None if isinstance(value, bool) else f"must be true or false (got {_describe(value)})"
    if cty == NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"must be a number (got {_describe(value)})"
    if isinstance(cty, ListOf | SetOf):
        if not isinstance(value, list):
            return f"must be a list (got {_describe(value)})"
        for i, item in enumerate(value):
            problem = type_error(cty.element, item)
            if problem:
                return f"element {i} {problem}"
        return None
    if isinstance(cty, MapOf):
        if not isinstance(value, Mapping):
            return f"must be a map of strings (got {_describe(value)})"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"keys must be strings (got {_describe(key)})"
            problem = type_error(cty.element, item)
            if problem:
                return f"the value of {key!r} {problem}"
        return None
    if isinstance(cty, ObjectOf):
        return None if isinstance(value, Mapping) else f"must be an object (got {_describe(value)})"
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def hcl_string(value: Any) -> Any:
    """Escape a literal string for cdktf's HCL renderer, which only escapes double quotes: backslashes
    and control characters must be escaped here, and a multi-line value must stay one quoted string
    (the renderer would turn it into a heredoc, which adds a trailing newline). Templates and tokens
    are left alone: they are Terraform expressions."""
    if not isinstance(value, str) or is_unresolved(value):
        return value
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))
