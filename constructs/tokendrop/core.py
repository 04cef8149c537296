"""Which CDK core an app runs on: CDK for Terraform (`cdktf` 0.21) or CDK Terrain (`cdktn` 0.24).

Both publish the same Python API under different module names, and their objects cannot be mixed in
one app (a cdktn stack inside a cdktf App is silently left out of the synthesis). tokendrop imports
neither at import time: each construct picks the core of the scope it is created in, and the public
classes are bound to that core's `TerraformResource` / `TerraformProvider` on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import weakref
from types import ModuleType
from typing import Any

from .errors import CoreMismatchError

CORES = ("cdktf", "cdktn")

# Classes of the scopes seen so far -> core name (None: a class of neither core, e.g. constructs.Construct).
_CLASS_CORE: dict[type, str | None] = {}
_BOUND: dict[tuple[type, str], type] = {}
_LOCK = threading.Lock()
# Scope -> (core, construct path): each lookup costs jsii round trips, and a pool gets many tokens.
_SCOPES: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()


def _core_of_class(cls: type) -> str | None:
    try:
        return _CLASS_CORE[cls]
    except KeyError:
        pass
    found = None
    for klass in cls.__mro__:
        top = klass.__module__.partition(".")[0]
        if top in CORES:
            found = top
            break
    _CLASS_CORE[cls] = found
    return found


def core_name(scope: Any) -> str:
    """"cdktf" or "cdktn": the core of `scope`'s app. Raises CoreMismatchError when the scope's
    ancestors come from both cores, or from neither."""
    return _scope_info(scope)[0]


def scope_path(scope: Any) -> str:
    """`scope.node.path`, remembered (it never changes once the construct exists)."""
    return _scope_info(scope)[1]


def _scope_info(scope: Any) -> tuple[str, str]:
    try:
        return _SCOPES[scope]
    except (KeyError, TypeError):
        pass
    info = (_find_core(scope), scope.node.path)
    with contextlib.suppress(TypeError):  # not weakly referenceable: looked up again next time
        _SCOPES[scope] = info
    return info


def _find_core(scope: Any) -> str:
    cores: dict[str, str] = {}  # core -> path of the first construct that belongs to it
    # node.scopes is [root, ..., scope]; one call to node, however deep the tree.
    for construct in scope.node.scopes:
        name = _core_of_class(type(construct))
        if name is not None and name not in cores:
            cores[name] = construct.node.path or "(the app)"
    if len(cores) == 1:
        return next(iter(cores))
    if not cores:
        raise CoreMismatchError(
            f"{scope.node.path or scope!r}: tokendrop constructs must be created inside a stack of a "
            "cdktf or cdktn App (found no App or TerraformStack of either library among its scopes)")
    where = ", ".join(f"{name} at {path!r}" for name, path in cores.items())
    raise CoreMismatchError(
        f"{scope.node.path}: this app mixes CDK for Terraform and CDK Terrain objects ({where}). "
        "cdktf and cdktn objects cannot be combined in one app: import App, TerraformStack, "
        "TerraformOutput, ... from one of them only")


def core_of(scope: Any) -> ModuleType:
    """The core module (`cdktf` or `cdktn`) that `scope`'s app uses; useful for writing stacks and
    libraries that run on either."""
    return importlib.import_module(core_name(scope))


def check_same_core(scope: Any, value: Any, what: str) -> None:
    """Refuse a construct from the other core passed as an argument (e.g. `provider=`)."""
    if value is None:
        return
    theirs = _core_of_class(type(value))
    ours = core_name(scope)
    if theirs is not None and theirs != ours:
        raise CoreMismatchError(f"{scope_path(scope)}: {what} is a {theirs} object but this app uses {ours}; "
                                "cdktf and cdktn objects cannot be mixed")


class CoreDispatch(type):
    """Metaclass of tokendrop's public construct classes.

    `TfeAgentPool(scope, "pool", ...)` builds an instance of a subclass of both TfeAgentPool and the
    scope's core class (e.g. `cdktf.TerraformResource`), so users get a real construct of the core
    their app uses, and `isinstance(pool, TfeAgentPool)` holds for either core.
    """

    # Set on the public classes: "TerraformResource" or "TerraformProvider".
    _core_base: str

    def __call__(cls, scope: Any, id: str, *args: Any, **kwargs: Any) -> Any:
        if cls.__dict__.get("_tokendrop_bound"):
            return super().__call__(scope, id, *args, **kwargs)
        return bound_class(cls, core_name(scope))(scope, id, *args, **kwargs)


def bound_class(cls: type, core: str) -> type:
    """The subclass of `cls` bound to `core`'s jsii base class, built once per (class, core)."""
    key = (cls, core)
    with _LOCK:
        bound = _BOUND.get(key)
        if bound is None:
            module = importlib.import_module(core)
            base = getattr(module, cls._core_base)  # type: ignore[attr-defined]
            # The jsii metaclass registers instances with the kernel; ours dispatches. The combined
            # metaclass lists ours first so that bound classes construct directly.
            meta = type(f"_{core}Bound", (CoreDispatch, type(base)), {})
            bound = meta(cls.__name__, (cls, base), {
                "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
                "_tokendrop_bound": True, "_tokendrop_core": core,
            })
            _BOUND[key] = bound
            _CLASS_CORE[bound] = core
        return bound
