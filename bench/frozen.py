"""The self-contained (frozen) provider next to the virtualenv one: start-up to the plugin handshake,
launched as Terraform does, interleaved so both see the same machine load; plus the frozen build's
time (or cache hit), size and glibc floor. Prints one table.

Usage: python bench/frozen.py [runs]   (default 20 launches of each)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import print_rows

from tokendrop_provider import freeze
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE


def time_handshake(command: list[str]) -> float:
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "5,6"}
    env.pop("TF_LOG", None)
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - started
        if not line.startswith(b"1|6|unix|"):
            raise RuntimeError(f"unexpected handshake line from {command[0]}: {line[:80]!r}")
        return elapsed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1_000_000


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    build = freeze.build_frozen(log=lambda message: print(message, file=sys.stderr))
    commands = {"venv": [str(Path(sys.executable).parent / "terraform-provider-tokendrop")],
                "frozen": [str(build.executable)]}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        time_handshake(command)  # warm the page cache
    for _ in range(runs):
        for name, command in commands.items():
            samples[name].append(time_handshake(command) * 1000)
    venv_median = statistics.median(samples["venv"])
    floor, _files = freeze.glibc_floor(build.directory)
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append([name, f"{median:.0f}", f"{min(values):.0f}", f"{max(values):.0f}",
                     f"{median / venv_median:.2f}x",
                     f"{size_mb(build.directory):.0f} MB" if name == "frozen" else "-",
                     floor if name == "frozen" else "-"])
    print(f"provider start-up to handshake, {runs} launches each (ms); frozen build: "
          f"{'cache hit' if build.cached else 'built'} in {build.seconds:.1f} s")
    print_rows(["provider", "median", "min", "max", "vs venv", "size", "glibc floor"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
