"""Stack settings: an environment variable, else the cdktf context, else a default for the sandbox.

Context comes from `cdktf.json` ("context": {...}) or `cdktf synth --context` style CDKTF_CONTEXT_JSON;
environment variables win so that CI can override a committed cdktf.json.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any


def text(scope: Any, key: str, env: str, default: str) -> str:
    """A string setting: `$<env>`, else context `<key>`, else `default`."""
    value = os.environ.get(env)
    if value:
        return value
    context = scope.node.try_get_context(key)
    return str(context) if context not in (None, "") else default


def optional_text(scope: Any, key: str, env: str) -> str | None:
    value = text(scope, key, env, "")
    return value or None


def text_list(scope: Any, key: str, env: str, default: Sequence[str] = ()) -> list[str]:
    """A list setting: `$<env>` as comma- or space-separated items, else context `<key>` (a list or such
    a string), else `default`."""
    raw: Any = os.environ.get(env)
    if raw is None:
        raw = scope.node.try_get_context(key)
    if raw is None:
        return list(default)
    if isinstance(raw, str):
        return [item for item in re.split(r"[,\s]+", raw) if item]
    return [str(item) for item in raw]
