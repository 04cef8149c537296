"""The peer in the benchmark table: bench/peer_provider.py (the PyPI `tf` framework) installed into a
mirror of its own and planned over the same N tokens in P pools, with no API behind it.

Usage: python bench/peer.py [N ...]   (prints the refresh plan time of each N)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from common import terraform, tfe_tokens_config

from tokendrop_provider.install import provider_version, terraform_platform
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2
from tokendrop_provider.types import BOOL, NUMBER, STRING, MapOf, ObjectOf

BENCH = Path(__file__).resolve().parent
PEER_PYTHON = BENCH / ".venv-peer" / "bin" / "python"
PEER_SOURCE = "registry.terraform.io/bench/tokendrop"
PEER_HEADER = """terraform {
  required_providers {
    tokendrop = { source = "bench/tokendrop" }
  }
}
"""


def available() -> bool:
    return PEER_PYTHON.exists()


def command() -> list[str]:
    return [str(PEER_PYTHON), str(BENCH / "peer_provider.py")]


def validate_request() -> tfplugin6_pb2.ValidateResourceConfig.Request:
    """The peer's ValidateResourceConfig for one token (its schema: bench/peer_provider.py)."""
    strings = {"agent_pool_id", "description", "ssm_name", "rotate_every", "keep_previous_for", "id",
               "sink_address", "sink_status", "created_at", "expires_at", "previous_token_id",
               "previous_revoke_after"}
    token_type = ObjectOf(tuple(sorted([(name, STRING) for name in strings] + [
        ("rotate_on", MapOf(STRING)), ("adopt_existing", BOOL), ("sink_version", NUMBER)])))
    config = {name: None for name, _ in token_type.attributes}
    config.update(agent_pool_id="apool-1234567890abcdef", ssm_name="/ci/token")
    return tfplugin6_pb2.ValidateResourceConfig.Request(
        type_name="tokendrop_tfe_agent_token",
        config=tfplugin6_pb2.DynamicValue(msgpack=codec.encode(config, token_type)))


def install_peer(root: Path) -> Path:
    """A filesystem mirror holding the peer; returns a Terraform CLI configuration that uses it."""
    version = provider_version()
    directory = root / "peer-mirror" / PEER_SOURCE / version / terraform_platform()
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / f"terraform-provider-tokendrop_v{version}"
    launcher.write_text("#!/bin/sh\nexec " + " ".join(command()) + ' "$@"\n')
    launcher.chmod(0o755)
    config = root / "peer.tfrc"
    config.write_text('provider_installation {\n  filesystem_mirror {\n'
                      f'    path    = "{root / "peer-mirror"}"\n    include = ["bench/*"]\n  }}\n'
                      '  direct {\n    exclude = ["bench/*"]\n  }\n}\n')
    return config


def peer_config(n: int, pools: int) -> str:
    return tfe_tokens_config(n, pools, PEER_HEADER, 'ssm_name = "{path}"')


def plan_seconds(n: int, pools: int, env: Mapping[str, str], runs: int = 3) -> float:
    """Median wall time of a refresh plan of N peer tokens in `pools` pools (applied first)."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        (work / "main.tf").write_text(peer_config(n, pools))
        peer_env = {**env, "TF_CLI_CONFIG_FILE": str(install_peer(root))}
        terraform(work, peer_env, "init", "-input=false")
        terraform(work, peer_env, "apply", "-auto-approve", "-input=false")
        return statistics.median(terraform(work, peer_env, "plan", "-input=false", "-detailed-exitcode")
                                 for _ in range(runs))


def main() -> int:
    if not available():
        print(f"no peer environment at {PEER_PYTHON}: make bench creates it", file=sys.stderr)
        return 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_LOG")}
    env.update({"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"})
    for n in [int(a) for a in sys.argv[1:]] or [10]:
        print(f"peer plan of {n} tokens: {plan_seconds(n, 10 if n >= 10 else 1, env):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
