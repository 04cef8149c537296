"""The serialized GetProviderSchema answer, stored by `tokendrop provider install` beside the provider's
bytecode, so that a launch which only answers GetProviderSchema (the first of every Terraform command)
never imports protobuf, the generated tfplugin6 module or the provider core (see plugin/routes.py).

The file starts with a fingerprint of the package's source files (path, size, modification time),
so an edit after install, another version, or a missing, partial or unreadable file means no cache:
the launch builds the schema as it always did. The frozen build has no sources to fingerprint: its
answer is written into the bundle when it is built from these sources (freeze.py) and, the bundle
being immutable, is served as it is. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import hashlib
import os
import sys

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_PATH = os.path.join(PACKAGE_DIR, "plugin", "__pycache__", "schema.cache")
FROZEN_NAME = "tokendrop-schema.answer"  # in the frozen bundle's data directory (sys._MEIPASS)
_FORMAT = b"tokendrop-schema-cache 1\n"


def fingerprint(package_dir: str = PACKAGE_DIR) -> bytes | None:
    """A digest of every module's path, size and mtime under the package; None where the package is not a
    directory of source files (a frozen build)."""
    digest = hashlib.blake2b(_FORMAT, digest_size=20)
    found = False
    for directory, subdirectories, files in os.walk(package_dir):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            found = True
            stat = os.stat(os.path.join(directory, name))
            relative = os.path.relpath(os.path.join(directory, name), package_dir)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest().encode() + b"\n" if found else None


def load(path: str | None = None, package_dir: str = PACKAGE_DIR) -> bytes | None:
    """The stored answer (at `path`, by default CACHE_PATH) if it was stored for exactly these sources,
    else None. In the frozen build: the answer built into it, if any."""
    if path is None and getattr(sys, "frozen", False):
        try:
            with open(os.path.join(getattr(sys, "_MEIPASS", ""), FROZEN_NAME), "rb") as bundled:
                return bundled.read() or None
        except OSError:
            return None
    expected = fingerprint(package_dir)
    if expected is None:
        return None
    try:
        with open(path or CACHE_PATH, "rb") as cache:
            data = cache.read()
    except OSError:
        return None
    header = _FORMAT + expected
    return data[len(header):] if data.startswith(header) and len(data) > len(header) else None


def store(answer: bytes, path: str | None = None, package_dir: str = PACKAGE_DIR) -> bool:
    """Write the answer for the current sources (atomically: a launch never reads half a file). False where
    the package is read-only or not a source directory; the launches then build the schema themselves."""
    current = fingerprint(package_dir)
    if current is None or not answer:
        return False
    path = path or CACHE_PATH
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        with open(partial, "wb") as out:
            out.write(_FORMAT + current + answer)
        os.replace(partial, path)
    except OSError:
        return False
    return True
