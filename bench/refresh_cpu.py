"""Where a refresh plan's time goes: wall time and CPU seconds of `terraform plan` over N tokens (10 pools,
SSM sinks, no latency), split into terraform's own CPU and each provider process terraform launched
(schema, validate, plan), next to a `terraform_data` plan of N resources. For whoever works on the refresh
wall-time target: the plan is CPU-bound on 2 cores, so CPU is the number to cut.

Usage: python bench/refresh_cpu.py [N ...]   (default 1000)
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from common import measuring_launcher, print_rows, sandbox, terraform
from scale import data_config, tokens_config


def timed_plan(directory: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of terraform and everything it launched) of one refresh plan."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(["terraform", "plan", "-input=false", "-detailed-exitcode"], cwd=directory,
                          env=dict(env), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:  # 0: no changes — the refresh found everything as applied
        raise RuntimeError(f"plan exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(n: int) -> list[str]:
    with sandbox() as box:
        work = Path(tempfile.mkdtemp(dir=box.root))
        (work / "main.tf").write_text(tokens_config(n, 10))
        cpu_file = box.root / "cpu.txt"
        env = {**box.env, "TF_CLI_CONFIG_FILE": str(measuring_launcher(box)), "TOKENDROP_BENCH_CPU_FILE": str(cpu_file)}
        terraform(work, env, "init", "-input=false")
        terraform(work, env, "apply", "-auto-approve", "-input=false")
        cpu_file.unlink(missing_ok=True)
        wall, total_cpu = timed_plan(work, env)
        providers = [float(line) for line in cpu_file.read_text().split()]
        terraform(work, env, "destroy", "-auto-approve", "-input=false")

        floor_dir = Path(tempfile.mkdtemp(dir=box.root))
        (floor_dir / "main.tf").write_text(data_config(n))
        terraform(floor_dir, box.env, "init", "-input=false")
        terraform(floor_dir, box.env, "apply", "-auto-approve", "-input=false")
        data_wall, data_cpu = timed_plan(floor_dir, box.env)
    return [str(n), f"{wall:.2f}", f"{total_cpu:.2f}", f"{total_cpu - sum(providers):.2f}",
            " + ".join(f"{p:.2f}" for p in providers), f"{data_wall:.2f}", f"{data_cpu:.2f}"]


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [1000]
    header = ["N", "plan wall s", "plan CPU s", "terraform CPU s", "provider processes CPU s",
              "terraform_data wall s", "terraform_data CPU s"]
    rows = [run(n) for n in sizes]
    print_rows(header, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
