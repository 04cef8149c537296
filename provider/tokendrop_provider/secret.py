"""A wrapper for secret values so that they cannot reach a log, a repr, an exception or state by accident,
and the scrubber that is the last line of defence when one does reach text.

Every value wrapped in this process, and every credential in the environment (`register_environment`),
is registered. `scrub()` replaces each form it can take in text (raw, repr-/JSON-escaped, URL-encoded,
base64 at any alignment; see `leaks.text_forms`) and any prefix of at least `_PREFIX` characters of one,
which is what a truncation such as `message[:300]` leaves. RPCs run on many threads: the registry is
guarded by a lock and `scrub` works on an immutable snapshot, so registering never disturbs a scrub.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .leaks import text_forms

_MIN_SCRUB_LENGTH = 8  # shorter strings would scrub ordinary words
_PREFIX = 12  # a cut-off value is still recognised from this many leading characters
_MASK = "***"
_FEW_KEYS = 200  # measured: below this, substring checks find "nothing here" faster than the regex

# Credentials the provider (or boto3 on its behalf) may read from the environment. Registered at
# start-up, before anything can log, so that even a value the provider never wraps is scrubbed.
CREDENTIAL_VARIABLES = (
    "TFE_TOKEN", "BUILDKITE_API_TOKEN", "TOKENVAULT_API_KEY", "VAULT_TOKEN", "VAULT_APPROLE_SECRET_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "ARM_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
)


@dataclass(frozen=True)
class _Matcher:
    """An immutable snapshot of the registry: one regex over the first `_PREFIX` characters of every
    form (as a trie, so a search costs about the same for ten values as for a thousand), and for each
    such key the whole forms it starts, to extend a match as far as the text follows one."""

    pattern: re.Pattern[str]
    forms_by_key: Mapping[str, tuple[str, ...]]

    def scrub(self, text: str) -> str:
        # Most lines hold no secret. With few keys, str's `in` (fast C search) says so sooner than
        # the regex, which starts a match attempt at every position; with many, the trie wins.
        if len(self.forms_by_key) <= _FEW_KEYS and not any(key in text for key in self.forms_by_key):
            return text
        pieces: list[str] = []
        position = 0
        for match in self.pattern.finditer(text):
            start = match.start()
            if start < position:  # inside a stretch already masked
                continue
            length = max(_common_prefix(text, start, form) for form in self.forms_by_key[match.group()])
            pieces += [text[position:start], _MASK]
            position = start + length
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)


def _common_prefix(text: str, start: int, form: str) -> int:
    length = 0
    for expected, seen in zip(form, text[start:start + len(form)], strict=False):
        if expected != seen:
            break
        length += 1
    return length


def _trie_pattern(keys: list[str]) -> str:
    """A regex matching any of `keys`, factored by common prefixes (re's alternation is tried branch by
    branch; a trie keeps that to the characters that can still match)."""
    root: dict[str, dict] = {}
    for key in keys:
        node = root
        for char in key:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        ends_here = "" in node
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and not ends_here else "(?:" + "|".join(branches) + ")"
        return body + ("?" if ends_here else "")

    return build(root)


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms_by_key: dict[str, tuple[str, ...]] = {}
        self._matcher: _Matcher | None = None

    def add(self, value: str) -> None:
        if len(value.strip()) < _MIN_SCRUB_LENGTH:
            return
        forms = text_forms(value)  # outside the lock: other threads keep registering meanwhile
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            for form in forms:
                key = form[:_PREFIX]
                if form not in self._forms_by_key.get(key, ()):
                    self._forms_by_key[key] = (*self._forms_by_key.get(key, ()), form)
            self._matcher = None  # rebuilt by the next scrub

    def matcher(self) -> _Matcher | None:
        matcher = self._matcher
        if matcher is not None or not self._values:
            return matcher
        with self._lock:
            if self._matcher is None:
                forms = dict(self._forms_by_key)
                self._matcher = _Matcher(re.compile(_trie_pattern(list(forms))), forms)
            return self._matcher


_REGISTRY = _Registry()


def register(value: str) -> None:
    """Scrub this value (and its forms) from every log line and diagnostic from now on."""
    if isinstance(value, str) and value:
        _REGISTRY.add(value)


def register_environment(env: Mapping[str, str] = os.environ) -> None:
    """Register the credentials in the environment (CREDENTIAL_VARIABLES): boto3 reads AWS ones itself,
    so they would otherwise never pass through a `Secret`."""
    for name in CREDENTIAL_VARIABLES:
        register(env.get(name, ""))


def scrub(text: str) -> str:
    """Replace any secret value this process has seen, in any form or cut short, with ***."""
    matcher = _REGISTRY.matcher()
    return text if matcher is None else matcher.scrub(text)


class Secret:
    """Holds a token value. `str()`, `repr()` and f-strings show a placeholder; `reveal()` is the only way in.

    Call `reveal()` only at the last moment, inside the one function that sends the value to a sink.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret value must be a non-empty string")
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # never pickled into caches or subprocess payloads
        raise TypeError("Secret values cannot be pickled")
