"""The first imports of requests and boto3 happen in whichever RPC thread needs them first.
Concurrent first imports must never surface a partially initialized module (a real failure seen when
a Buildkite and an AppRole resource were planned together)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import threading
from tokendrop_provider.provider import ProviderCore
from tokendrop_provider.settings import Settings

core = ProviderCore()
core.settings = Settings.resolve({}, env={
    "TFE_TOKEN": "x" * 30, "BUILDKITE_API_TOKEN": "x" * 30, "BUILDKITE_ORGANIZATION_SLUG": "acme",
    "TOKENVAULT_API_KEY": "x" * 30, "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "x" * 30,
    "AWS_REGION": "us-east-1"})
errors = []
barrier = threading.Barrier(2)

def run(fn):
    barrier.wait()
    try:
        fn()
    except ImportError as exc:
        errors.append(repr(exc))
    except Exception:  # nothing listens on 127.0.0.1:1: connection errors are expected
        pass

# Pairs of first uses that import overlapping packages (requests through an issuer client, and through
# the Vault connection or boto3's dependencies).
from tokendrop_provider.registry import buildkite, tfe, tokenvault, vault_approle
from tokendrop_provider.vault import vault_connection

clients = core.clients
pairs = [(lambda: clients.of(buildkite.ISSUER),
          lambda: vault_connection(core.settings.vault).request("GET", "sys/health")),
         (lambda: clients.of(tokenvault.ISSUER), lambda: clients.of(vault_approle.ISSUER).role_id("ci")),
         (lambda: clients.of(tfe.ISSUER), lambda: clients.sink({"ssm": {"name": "/x/y"}}).status())]
work = pairs[int(__import__("sys").argv[1])]
threads = [threading.Thread(target=run, args=(fn,)) for fn in work]
for t in threads: t.start()
for t in threads: t.join()
import boto3, requests  # all loaded
print("errors:", errors)
"""


def test_concurrent_first_imports_are_safe():
    # A fresh interpreter each time (only first imports can race); the first pair is the one seen to
    # fail in the field, so it gets most attempts.
    for pair in [0] * 10 + [1, 2]:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(pair)], capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "partially initialized" not in proc.stdout + proc.stderr
        assert proc.stdout.strip() == "errors: []", proc.stdout


GRPC_AIO = r"""
import sys
from tokendrop_provider import lazy

lazy.import_grpc_core()
import grpc
assert "asyncio" not in sys.modules and "grpc.aio" not in sys.modules, "deferred modules were loaded"
import asyncio  # the real module: the stand-ins are out of sys.modules
assert type(asyncio).__name__ == "module" and hasattr(asyncio, "run")

async def roundtrip():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = await channel.unary_unary("/t.S/Echo")(b"ping", timeout=30)
    await server.stop(None)
    return answer

print(asyncio.run(roundtrip()), isinstance(grpc.aio.AioRpcError("x", None, None), grpc.RpcError))
"""


def test_grpc_aio_still_works_after_the_deferred_import():
    """import_grpc_core defers asyncio and grpc.aio (the provider's threaded server uses neither); code
    that does use them gets the real modules, through grpc.aio or its own imports."""
    proc = subprocess.run([sys.executable, "-c", GRPC_AIO], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "b'ping' True"
