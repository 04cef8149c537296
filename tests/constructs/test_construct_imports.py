"""The construct package loads only the provider's pure modules (schema, attributes, validation, types,
install, the sink rules, the registries' declarations): never grpc, boto3, hvac or anything that talks
to an API, even through a whole synthesis. Checked in a fresh interpreter, where nothing else could
have imported them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ALLOWED_PROVIDER_MODULES = {
    "tokendrop_provider", "tokendrop_provider.schema", "tokendrop_provider.attributes",
    "tokendrop_provider.validation", "tokendrop_provider.types", "tokendrop_provider.install",
    "tokendrop_provider.errors", "tokendrop_provider.secret", "tokendrop_provider.sinks",
    "tokendrop_provider.leaks",  # the text forms secret.py masks (stdlib only)
    "tokendrop_provider.markers",  # the AppRole marker key the schema reserves (stdlib only)
    "tokendrop_provider.overlap", "tokendrop_provider.timestamps",  # revoke_previous_when's rules (stdlib only)
    # whether the stored schema answer is current (stdlib only); a child interpreter builds it if not
    "tokendrop_provider.plugin", "tokendrop_provider.plugin.schema_cache",
    "tokendrop_provider.sinks.base", "tokendrop_provider.sinks.ssm_rules", "tokendrop_provider.sinks.vault_rules",
    "tokendrop_provider.sinks.secrets_manager_rules", "tokendrop_provider.sinks.aws_rules",
    "tokendrop_provider.sinks.tokenvault_webhook_rules",
    "tokendrop_provider.endpoints",  # the https-or-loopback rule of webhook_url (stdlib only)
    # the registries' declarations (settings, labels, lazy factories): the provider block's schema
    "tokendrop_provider.settings", "tokendrop_provider.lazy",
    *(f"tokendrop_provider.registry{m}" for m in ("", ".base", ".issuers", ".sinks", ".tfe", ".buildkite",
                                                   ".tokenvault", ".vault_approle", ".ssm", ".vault_kv",
                                                   ".secrets_manager", ".tokenvault_webhook", ".entra")),
}
HEAVY = ("grpc", "boto3", "botocore", "hvac", "requests", "urllib3", "google.protobuf", "msgpack", "cryptography")

PROGRAM = """
import json, sys, tempfile
from datetime import timedelta
import cdktf
from tokendrop import SecretsManagerSecret, SsmParameter, TfeAgentPool, TfeAgentToken, TokendropProvider, VaultSecret

app = cdktf.App(outdir=tempfile.mkdtemp())
stack = cdktf.TerraformStack(app, "ci-agents")
TokendropProvider(stack, "tokendrop")
pool = TfeAgentPool(stack, "pool", organization="acme", name="p")
token = pool.add_token("r", deliver_to=SsmParameter("/r", kms_key_id="alias/k"), rotate_every=timedelta(days=1))
pool.add_token("b", deliver_to=VaultSecret("ci/b"))
pool.add_token("s", deliver_to=SecretsManagerSecret("ci/s", replica_regions=["eu-west-1"])).read_policy()
token.read_policy()
app.synth()
print(json.dumps(sorted(sys.modules)))
"""


def test_synthesis_imports_nothing_heavy():
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []
    provider_modules = {m for m in modules if m == "tokendrop_provider" or m.startswith("tokendrop_provider.")}
    assert provider_modules <= ALLOWED_PROVIDER_MODULES, sorted(provider_modules - ALLOWED_PROVIDER_MODULES)
    assert "tokendrop_provider.schema" in provider_modules  # the check did look at a real synthesis
