"""The stored GetProviderSchema answer is served only for the exact sources it was stored for."""

from __future__ import annotations

import os
import sys

from tokendrop_provider.plugin import schema_cache


def _package(tmp_path):  # type: ignore[no-untyped-def]
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 2\n")
    return package


def test_an_answer_is_served_for_the_sources_it_was_stored_for(tmp_path):
    package, cache = _package(tmp_path), tmp_path / "cache"
    assert schema_cache.store(b"answer", str(cache), str(package))
    assert schema_cache.load(str(cache), str(package)) == b"answer"


def test_any_change_to_the_sources_means_no_answer(tmp_path):
    package, cache = _package(tmp_path), tmp_path / "cache"
    edits = [
        lambda: (package / "a.py").write_text("A = 10\n"),  # size
        lambda: os.utime(package / "sub" / "b.py", ns=(1, 1)),  # modification time
        lambda: (package / "sub" / "c.py").write_text(""),  # a new module
        lambda: (package / "a.py").unlink(),  # a removed one
    ]
    for edit in edits:
        assert schema_cache.store(b"answer", str(cache), str(package))
        edit()
        assert schema_cache.load(str(cache), str(package)) is None


def test_missing_partial_or_foreign_files_mean_no_answer(tmp_path):
    package, cache = _package(tmp_path), tmp_path / "cache"
    assert schema_cache.load(str(cache), str(package)) is None  # never stored
    assert schema_cache.store(b"answer", str(cache), str(package))
    whole = cache.read_bytes()
    cache.write_bytes(whole[:-len(b"answer")])  # the header alone
    assert schema_cache.load(str(cache), str(package)) is None
    cache.write_bytes(b"something else entirely")
    assert schema_cache.load(str(cache), str(package)) is None
    assert list(tmp_path.glob("*.partial")) == []


def test_no_answer_where_there_are_no_sources(tmp_path):
    """A frozen build has no source directory: nothing is stored and nothing is served."""
    empty, cache = tmp_path / "frozen", tmp_path / "cache"
    empty.mkdir()
    assert not schema_cache.store(b"answer", str(cache), str(empty))
    assert schema_cache.load(str(cache), str(empty)) is None


def test_a_read_only_place_is_not_an_error(tmp_path):
    package = _package(tmp_path)
    (tmp_path / "a-file").write_text("")
    assert not schema_cache.store(b"answer", str(tmp_path / "a-file" / "cache"), str(package))


def test_a_frozen_build_serves_the_answer_built_into_it(tmp_path, monkeypatch):
    """The frozen bundle has no sources to fingerprint: the answer freeze.py wrote into it is served, and
    a bundle without one builds the schema itself."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert schema_cache.load() is None
    (tmp_path / schema_cache.FROZEN_NAME).write_bytes(b"answer")
    assert schema_cache.load() == b"answer"
