"""Provider start-up to handshake: launch the provider as Terraform does and time the handshake line.

Usage: python bench/handshake.py [runs]   (prints median, min and max in milliseconds)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE


def provider_command() -> list[str]:
    script = Path(sys.executable).parent / "terraform-provider-tokendrop"
    return [str(script)]


def time_handshake() -> float:
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "5,6"}
    env.pop("TF_LOG", None)
    started = time.perf_counter()
    proc = subprocess.Popen(provider_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - started
        if not line.startswith(b"1|6|unix|"):
            raise RuntimeError(f"unexpected handshake line: {line[:80]!r}")
        return elapsed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure(runs: int = 20) -> list[float]:
    time_handshake()  # warm the page cache
    return [time_handshake() for _ in range(runs)]


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    samples = [s * 1000 for s in measure(runs)]
    print(f"handshake over {runs} launches: median {statistics.median(samples):.0f} ms, "
          f"min {min(samples):.0f} ms, max {max(samples):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
