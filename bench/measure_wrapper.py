"""Run the provider as a child, pass its output through untouched, and when it exits append the child's
peak RSS (KiB) to $TOKENDROP_BENCH_RSS_FILE and its user+system CPU seconds to $TOKENDROP_BENCH_CPU_FILE,
each only if set. Benchmark-only: keeps measurement out of the provider."""

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
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    for variable, value in (("TOKENDROP_BENCH_RSS_FILE", f"{usage.ru_maxrss}"),
                            ("TOKENDROP_BENCH_CPU_FILE", f"{usage.ru_utime + usage.ru_stime:.3f}")):
        if os.environ.get(variable):
            with open(os.environ[variable], "a", encoding="utf-8") as out:
                out.write(value + "\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
