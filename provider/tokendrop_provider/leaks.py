"""The one leak scanner: does a secret value appear in some text or file, in any form it takes there?

A value rarely shows up only as itself. JSON and HCL escape it, `repr()` escapes it, URLs percent-encode
it, saved plans are zip archives, logs may be gzipped, and private state or binary payloads hold it as
base64 – whose characters depend on the value's alignment in the encoded bytes. `needles()` lists every
byte string that betrays a value; `scan_items()` / `scan_paths()` search data for them, opening zip
members and gzip streams. Reports name the secret's label and the form found, never the value.

Used by the e2e tests (`tests/fixtures/terraform.py`), `scripts/demo.py` and `tokendrop audit`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

# A base64 core shorter than this could match by chance in large logs.
MIN_BASE64_CORE = 12
# A truncated value (e.g. `text[:300]` cutting through it) is caught by this many leading characters.
PREFIX_LENGTH = 16
_MAX_NESTING = 3  # zip in gzip in zip: deep enough for plans and logs, bounded for hostile input
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"


def base64_cores(raw: bytes) -> list[bytes]:
    """Base64 of `raw` at each of the three alignments, standard and URL-safe alphabets, minus the
    characters at either end that also depend on the surrounding bytes."""
    cores = []
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw)
            # Character i holds bits 6i..6i+5: keep those made only of the value's bits.
            core = encoded[(4 * pad + 2) // 3:(4 * (pad + len(raw))) // 3]
            if len(core) >= MIN_BASE64_CORE:
                cores.append(core)
    return list(dict.fromkeys(cores))


def text_forms(value: str) -> dict[str, str]:
    """Every whole form in which `value` can appear in text (form -> its name). A value read with a
    trailing newline (HCL's `file()`) is also listed without it."""
    found: dict[str, str] = {}
    for text in dict.fromkeys(v for v in (value, value.rstrip("\r\n")) if v):
        forms = {
            "raw": text,
            "repr-escaped": repr(text)[1:-1],
            "repr-escaped bytes": repr(text.encode("utf-8"))[2:-1],
            "JSON-escaped": json.dumps(text, ensure_ascii=False)[1:-1],
            "JSON-escaped (ASCII)": json.dumps(text)[1:-1],
            "URL-encoded": quote(text, safe=""),
            "URL-encoded (form)": quote_plus(text, safe=""),
        }
        for shown, form in ((shown, form) for form, shown in forms.items()):
            found.setdefault(shown, form)
        for core in base64_cores(text.encode("utf-8")):
            found.setdefault(core.decode("ascii"), "base64")
    return found


def needles(value: str) -> dict[bytes, str]:
    """Every byte string that shows `value` (needle -> name of the form): its text forms, and the first
    PREFIX_LENGTH characters of each long one, which a truncation (`text[:300]`) leaves behind."""
    forms = text_forms(value)
    found = {shown.encode("utf-8", "surrogateescape"): form for shown, form in forms.items()}
    for shown, form in forms.items():
        if len(shown) >= PREFIX_LENGTH + 8:
            found.setdefault(shown[:PREFIX_LENGTH].encode("utf-8", "surrogateescape"), f"truncated {form}")
    return found


@dataclass(frozen=True)
class Hit:
    artifact: str  # where: a file, "file!member" inside an archive, or a caller's label
    label: str  # which secret (the caller's name for it, never its value)
    form: str  # how it was written: raw, base64, JSON-escaped...


@dataclass
class ScanResult:
    files: int = 0
    archives: int = 0  # zip members and gzip streams opened
    hits: list[Hit] = field(default_factory=list)


class Scanner:
    """Searches data for a set of secrets (label -> value) in all their forms."""

    def __init__(self, secrets: Mapping[str, str] | Iterable[str]) -> None:
        labelled = secrets.items() if isinstance(secrets, Mapping) else ((v, v) for v in secrets)
        self._patterns: list[tuple[str, bytes, str]] = [
            (label, needle, form) for label, value in labelled if value
            for needle, form in needles(value).items()]

    def scan(self, name: str, data: bytes | str, result: ScanResult | None = None, _depth: int = 0) -> ScanResult:
        """Search one artifact (and any archive inside it); hits are added to `result`."""
        result = result if result is not None else ScanResult()
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        result.files += _depth == 0
        reported: set[str] = set()
        for label, needle, form in self._patterns:
            if label not in reported and needle in data:
                reported.add(label)
                result.hits.append(Hit(name, label, form))
        if _depth < _MAX_NESTING:
            for member, content in _unpack(data):
                result.archives += 1
                self.scan(f"{name}!{member}", content, result, _depth + 1)
        return result


def _unpack(data: bytes) -> Iterator[tuple[str, bytes]]:
    # Imported here: the provider imports this module for its forms, and starts faster without these.
    import gzip
    import io
    import zipfile
    import zlib

    if data[:4] == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield member, archive.read(member)
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError):
            return
    elif data[:2] == _GZIP_MAGIC:
        try:
            yield "gunzip", gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return


def scan_items(secrets: Mapping[str, str] | Iterable[str],
               items: Iterable[tuple[str, bytes | str]]) -> ScanResult:
    """Scan (name, content) pairs, e.g. captured command output."""
    scanner = Scanner(secrets)
    result = ScanResult()
    for name, data in items:
        scanner.scan(name, data, result)
    return result


def files_under(paths: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file in the given files and directories; symlinks are skipped."""
    seen: set[Path] = set()
    for top in paths:
        if not top.exists():
            continue
        files = [top] if top.is_file() else sorted(
            Path(d) / f for d, _, names in os.walk(top, followlinks=False) for f in names)
        for path in files:
            if path in seen or path.is_symlink() or not path.is_file():
                continue
            seen.add(path)
            yield str(path), path.read_bytes()


def scan_paths(secrets: Mapping[str, str] | Iterable[str], paths: Iterable[Path]) -> ScanResult:
    """Scan every file under the given paths (archives opened)."""
    return scan_items(secrets, files_under(paths))
