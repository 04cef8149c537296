"""What scrubbing costs per log line: `python scripts/scrub_cost.py`.

The scrubber (tokendrop_provider/secret.py) runs on every log line and diagnostic, so its cost is
measured with 10, 100 and 1,000 registered values (each a TFE-style token) on a typical hclog line and
on a 6 KB text. Prints a table; nothing is asserted (speed is a measurement, not a test).
"""

from __future__ import annotations

import secrets
import timeit

from tokendrop_provider.secret import Secret, scrub

LINE = ('{"@level":"debug","@message":"PUT https://127.0.0.1:4566/ 200 in 12.3 ms for /ci/tfc-agent/batch '
        'version 3 at-AbCdEf123456"}')
BIG = LINE * 50


def main() -> None:
    line_header, text_header = f"µs per {len(LINE)}-char line", f"µs per {len(BIG)}-char text"
    print(f"{'secrets':>8} | {line_header:>22} | {text_header:>22}")
    registered = 0
    for count in (10, 100, 1000):
        for _ in range(count - registered):
            Secret(secrets.token_urlsafe(10) + ".atlasv1." + secrets.token_urlsafe(48))
        registered = count
        scrub(LINE)  # builds the matcher once, as the first log line after a registration does
        per_line = timeit.timeit(lambda: scrub(LINE), number=2000) / 2000 * 1e6
        per_text = timeit.timeit(lambda: scrub(BIG), number=50) / 50 * 1e6
        print(f"{count:>8} | {per_line:>22.1f} | {per_text:>22.1f}")


if __name__ == "__main__":
    main()
