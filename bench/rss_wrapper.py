"""Run the provider as a child, pass its output through untouched, and append the child's peak RSS
(KiB) to $TOKENDROP_BENCH_RSS_FILE when it exits. Benchmark-only: keeps measurement out of the provider."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the provider does
    child = subprocess.Popen(sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    code = child.wait()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.environ["TOKENDROP_BENCH_RSS_FILE"], "a", encoding="utf-8") as out:
        out.write(f"{peak_kib}\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
