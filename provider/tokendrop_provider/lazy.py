"""One lock for the first import of heavy modules (requests, boto3, the issuer clients), and an import
of grpc that leaves out what the provider never uses.

They load on demand so that start-up stays fast, which means in whichever RPC thread needs them first.
Two threads importing overlapping packages at once (requests via the Vault connection in one, via an issuer
client in the other) can trip Python's import deadlock avoidance and see a partially initialized module
("cannot import name ... from partially initialized module"). Serializing first imports prevents it;
later imports find the modules loaded and do not wait.
"""

from __future__ import annotations

import threading
import types

IMPORT_LOCK = threading.RLock()

# Packages grpc's __init__ imports whenever they are installed, only to alias them as grpc.tools,
# grpc.health and grpc.reflection (grpcio-tools comes with the dev requirements). The provider uses none.
GRPC_EXTENSIONS = ("grpc_tools", "grpc_health", "grpc_reflection")
# Modules grpc imports at start-up for its asyncio API (grpc.aio), which the provider's threaded server
# never calls: asyncio alone (with ssl, subprocess, inspect and socket under it) was about 20 ms of a
# ~130 ms launch. grpc gets a stand-in for each that imports the real module on first use.
GRPC_DEFERRED = ("asyncio", "grpc.aio")


class _Deferred(types.ModuleType):
    """Stands in for a module that is imported only when something reads one of its attributes."""

    def __getattr__(self, name: str) -> object:
        import importlib

        return getattr(importlib.import_module(self.__name__), name)


def import_grpc_core() -> None:
    """Import grpc without its optional extension packages, and with asyncio and grpc.aio deferred.
    Marking a module None in sys.modules makes its import fail fast, which grpc's __init__ treats as
    "not installed"; a `_Deferred` module in sys.modules is what `import asyncio` and `from grpc import aio`
    return. The marks and stand-ins are removed from sys.modules right after, so a later import of any of
    them loads the real module; grpc and cygrpc keep their stand-ins, which defer to it."""
    import sys

    if "grpc" in sys.modules:
        return
    marked = [name for name in GRPC_EXTENSIONS if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    deferred = {name: _Deferred(name) for name in GRPC_DEFERRED if name not in sys.modules}
    sys.modules.update(deferred)
    try:
        import grpc

        if "grpc.aio" in deferred and getattr(grpc, "aio", None) is None:
            grpc.aio = deferred["grpc.aio"]  # type: ignore[attr-defined]  # `grpc.aio.server(...)` still works
    finally:
        for name in marked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
        for name, stand_in in deferred.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
