"""The test tree has no `__init__.py` files, so pytest imports each test module by its file name: two
test files with one name in different folders make the second one an import error at collection."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_unique() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if ".venv" not in path.parts:
            seen[path.name].append(str(path.relative_to(TESTS)))
    assert len(seen) > 50  # the walk did find the suite
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
