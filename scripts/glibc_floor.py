"""Print the glibc floor of a directory: the highest GLIBC_x.y symbol version any ELF file in it needs
(what `objdump -T` shows, read by tokendrop_provider.freeze.glibc_floor), and the files that need it.

Usage: python scripts/glibc_floor.py [DIR]
  DIR defaults to the cached frozen provider of this checkout (built if missing); give an unpacked
  provider zip, or `.terraform/providers/.../linux_amd64`, to check what a runner would load.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokendrop_provider import freeze


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else freeze.build_frozen().directory
    if not directory.is_dir():
        print(f"not a directory: {directory}", file=sys.stderr)
        return 2
    floor, files = freeze.glibc_floor(directory)
    print(f"{floor}  {directory}")
    for name in files:
        print(f"  needed by {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
