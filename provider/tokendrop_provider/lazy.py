"""One lock for the first import of heavy modules (requests, boto3, the issuer clients).

They load on demand so that start-up stays fast, which means in whichever RPC thread needs them first.
Two threads importing overlapping packages at once (requests via the Vault connection in one, via an issuer
client in the other) can trip Python's import deadlock avoidance and see a partially initialized module
("cannot import name ... from partially initialized module"). Serializing first imports prevents it;
later imports find the modules loaded and do not wait.
"""

from __future__ import annotations

import threading

IMPORT_LOCK = threading.RLock()

# Packages grpc's __init__ imports whenever they are installed, only to alias them as grpc.tools,
# grpc.health and grpc.reflection (grpcio-tools comes with the dev requirements). The provider uses none.
GRPC_EXTENSIONS = ("grpc_tools", "grpc_health", "grpc_reflection")


def import_grpc_core() -> None:
    """Import grpc without its optional extension packages. Marking a module None in sys.modules makes
    its import fail fast, which grpc's __init__ treats as "not installed"; the marks are removed again
    so that a later explicit import of those packages works."""
    import sys

    if "grpc" in sys.modules:
        return
    marked = [name for name in GRPC_EXTENSIONS if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import grpc  # noqa: F401
    finally:
        for name in marked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
