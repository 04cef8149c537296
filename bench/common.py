"""Shared pieces of the benchmarks: a sandbox in this process, a Terraform working directory, timing."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tokendrop_provider.install import install, provider_executable
from tokendrop_provider.sandbox import servers
from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator
from tokendrop_provider.sandbox.tfe import TfeEmulator

HEADER = """terraform {
  required_providers {
    tokendrop = { source = "tokendrop/tokendrop" }
  }
}
provider "tokendrop" {}
"""


@dataclass
class BenchSandbox:
    root: Path
    tfe: TfeEmulator
    buildkite: BuildkiteEmulator
    moto: servers.MotoServer
    bao: servers.OpenBaoServer
    cli_config: Path
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def sandbox(rate_limits: bool = False) -> Iterator[BenchSandbox]:
    root = Path(tempfile.mkdtemp(prefix="tokendrop-bench-"))
    tfe = TfeEmulator(rate_limit_enabled=rate_limits).start()
    buildkite = BuildkiteEmulator(rate_limit_enabled=rate_limits).start()
    moto = servers.start_moto(root / "logs", faults=True)
    bao = servers.start_openbao(root / "logs")
    try:
        installed = install(root / "mirror")
        cli_config = root / "cli.tfrc"
        cli_config.write_text(installed.cli_config())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_LOG", "TOKENDROP_LOG"))}
        env.update({"TF_CLI_CONFIG_FILE": str(cli_config), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
                    "TFE_ADDRESS": tfe.url, "TFE_TOKEN": tfe.sandbox_token, **moto.env(), **bao.env(),
                    "BUILDKITE_REST_URL": buildkite.url, "BUILDKITE_API_TOKEN": buildkite.sandbox_token,
                    "BUILDKITE_ORGANIZATION_SLUG": "acme"})
        yield BenchSandbox(root, tfe, buildkite, moto, bao, cli_config, env)
    finally:
        tfe.stop()
        buildkite.stop()
        moto.stop()
        bao.stop()
        shutil.rmtree(root, ignore_errors=True)


def terraform(directory: Path, env: Mapping[str, str], *args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["terraform", *args], cwd=directory, env=dict(env), capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"terraform {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def median_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(fn() for _ in range(runs))


def measuring_launcher(box: BenchSandbox) -> Path:
    """A mirror entry that runs the provider under bench/measure_wrapper.py, which records its peak RSS and
    CPU into the files TOKENDROP_BENCH_RSS_FILE / TOKENDROP_BENCH_CPU_FILE name. Returns its CLI config."""
    launcher = box.root / "measured-provider.sh"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / 'measure_wrapper.py'} "
                        f"{provider_executable()} \"$@\"\n")
    launcher.chmod(0o755)
    config = box.root / "measured.tfrc"
    config.write_text(install(box.root / "measured-mirror", executable=launcher).cli_config())
    return config


def print_rows(header: list[str], rows: list[list[str]]) -> None:
    """A right-aligned text table."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def tfe_tokens_config(n: int, pools: int, header: str, sink: str) -> str:
    """`n` agent tokens spread over `pools` pools, after `header`; `sink` is the token's sink line with
    `{path}` for its own parameter path (tokendrop's `deliver_to`, the peer's flat `ssm_name`)."""
    body = [header]
    for p in range(pools):
        body.append(f'resource "tokendrop_tfe_agent_pool" "p{p}" {{\n'
                    f'  organization = "acme"\n  name = "bench-{p}"\n}}\n')
    for i in range(n):
        p = i % pools
        body.append(f'resource "tokendrop_tfe_agent_token" "t{i}" {{\n'
                    f"  agent_pool_id = tokendrop_tfe_agent_pool.p{p}.id\n"
                    f"  {sink.format(path=f'/bench/p{p}/t{i}')}\n}}\n")
    return "".join(body)
