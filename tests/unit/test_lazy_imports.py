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
