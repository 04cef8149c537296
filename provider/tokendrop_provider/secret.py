"""A wrapper for secret values so that they cannot reach a log, a repr, an exception or state by accident."""

from __future__ import annotations

# Every value wrapped in this process, so log lines and diagnostics can be scrubbed as a last line of
# defence (see `scrub`). The provider process is short-lived; the set dies with it.
_KNOWN_VALUES: set[str] = set()
_MIN_SCRUB_LENGTH = 8  # shorter strings would scrub ordinary words


def scrub(text: str) -> str:
    """Replace any secret value this process has seen with ***."""
    for value in _KNOWN_VALUES:
        if value in text:
            text = text.replace(value, "***")
    return text


class Secret:
    """Holds a token value. `str()`, `repr()` and f-strings show a placeholder; `reveal()` is the only way in.

    Call `reveal()` only at the last moment, inside the one function that sends the value to a sink.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret value must be a non-empty string")
        self._value = value
        if len(value) >= _MIN_SCRUB_LENGTH:
            _KNOWN_VALUES.add(value)

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
