"""The benchmark itself works (at a tiny N): it is the tool that measures the performance targets, so it
must not rot. No timing is asserted here — the machines are shared and noisy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.e2e


def test_scale_benchmark_prints_its_table():
    proc = subprocess.run([sys.executable, "scale.py", "4", "--pools", "2", "--latency", "0", "--no-handshake",
                           "--synth-repeat", "1", "--buildkite", "2"],
                          cwd=BENCH, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("issuer |"))
    names = [h.strip() for h in lines[header].split("|")]
    row = [cell.strip() for cell in lines[header + 2].split("|")]
    assert row[:2] == ["tfe", "4"]
    buildkite = dict(zip(names, [cell.strip() for cell in lines[header + 3].split("|")], strict=True))
    assert (buildkite["issuer"], buildkite["N"]) == ("buildkite", "2")
    assert int(buildkite["apply calls API+SSM"].split("+")[0]) > 0 and buildkite["429s"] == "0"
    cells = dict(zip(names, row, strict=True))
    tfe, ssm = (int(x) for x in cells["plan calls API+SSM"].split("+"))
    assert tfe > 0 and ssm > 0, "the batched plan made issuer and sink calls, and the benchmark counted them"
    assert cells["429s"] == "0", "no call was refused with 429"
    assert float(cells["synth s"]) > 0 and float(cells["bare synth s"]) > 0


def test_handshake_benchmark_runs():
    proc = subprocess.run([sys.executable, "handshake.py", "3"], cwd=BENCH, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    measured = [line.split(" over ")[0].strip() for line in proc.stdout.splitlines()]
    assert measured == ["handshake", "schema launch", "schema launch CPU", "validate launch", "validate launch CPU"]


@pytest.mark.skipif(not (BENCH / ".venv-peer" / "bin" / "python").exists(), reason="make bench installs the peer")
def test_peer_provider_plans():
    proc = subprocess.run([sys.executable, "peer.py", "3"], cwd=BENCH, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("peer plan of 3 tokens: ")


def test_refresh_cpu_benchmark_splits_the_cpu_between_terraform_and_each_provider_process():
    proc = subprocess.run([sys.executable, "refresh_cpu.py", "3"], cwd=BENCH, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    names = [h.strip() for h in lines[0].split("|")]
    cells = dict(zip(names, [c.strip() for c in lines[2].split("|")], strict=True))
    providers = [float(p) for p in cells["provider processes CPU s"].split("+")]
    assert cells["N"] == "3" and len(providers) >= 2 and all(p > 0 for p in providers)
    assert float(cells["plan CPU s"]) > sum(providers), "terraform's own CPU is the remainder, and is positive"


def test_rpc_cost_measures_the_provider_and_its_handler():
    """Provider CPU per ValidateResourceConfig over gRPC, and the handler's share, are measured (the scale
    table prints both above it); the requests they send validate cleanly (they raise otherwise)."""
    script = ("import handshake\n"
              "print(handshake.rpc_cpu(calls=50) > 0, handshake.handler_cpu(calls=50) > 0)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=BENCH, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


def test_before_after_compares_the_launches_of_two_commits():
    proc = subprocess.run([sys.executable, "before_after.py", "HEAD", "launch", "1"], cwd=BENCH, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0].strip() for line in lines[:2]] == ["before", "after"]
    assert all("handshake" in line and "schema launch CPU" in line for line in lines[:2])
