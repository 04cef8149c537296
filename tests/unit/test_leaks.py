"""The one leak scanner (tokendrop_provider.leaks): each form a value takes in text or files is found,
archives are opened, clean data has no hits, and reports never show the value."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tokendrop_provider.leaks import Scanner, scan_items, scan_paths

# Characters that every escaping changes: slash, plus, space, quote, backslash, non-ASCII.
VALUE = 'Tk/9+a b"c\\d-é_0123456789abcdefXYZ'
SECRETS = {"token at-1": VALUE}


def forms_of(value: str) -> dict[str, bytes]:
    return {
        "raw": f"x {value} y".encode(),
        "repr": repr({"v": value}).encode(),
        "repr-bytes": repr(value.encode()).encode(),
        "json": json.dumps({"v": value}).encode(),
        "json-unicode": json.dumps({"v": value}, ensure_ascii=False).encode(),
        "url": f"https://h/?t={quote(value, safe='')}&x=1".encode(),
        "url-form": f"t={quote_plus(value)}".encode(),
        "truncated": (f"error: {value}"[:30]).encode(),
    }


@pytest.mark.parametrize("form", sorted(forms_of(VALUE)))
def test_each_text_form_is_found(form):
    hits = scan_items(SECRETS, [("artifact", forms_of(VALUE)[form])]).hits
    assert [(h.artifact, h.label) for h in hits] == [("artifact", "token at-1")]


@pytest.mark.parametrize("before", range(4))
@pytest.mark.parametrize("after", range(3))
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_is_found_at_every_alignment(before, after, encode):
    data = encode(b"\x00\xfb" * before + VALUE.encode() + b"\xff" * after)
    hits = scan_items(SECRETS, [("blob", b"prefix " + data)]).hits
    assert [(h.label, h.form) for h in hits] == [("token at-1", "base64")]


def test_a_value_with_a_trailing_newline_is_found_without_it():
    assert scan_items({"t": VALUE + "\n"}, [("log", f"Invalid header value b'{VALUE}'")]).hits


def test_zip_members_gzip_and_gzip_inside_zip_are_opened(tmp_path: Path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tfplan", json.dumps({"after": VALUE}))
        archive.writestr("log.gz", gzip.compress(f"line {VALUE}".encode()))
    (tmp_path / "plan.zip").write_bytes(buffer.getvalue())
    (tmp_path / "trace.log.gz").write_bytes(gzip.compress(VALUE.encode()))
    (tmp_path / "clean.txt").write_text("nothing here")
    result = scan_paths(SECRETS, [tmp_path])
    assert sorted(h.artifact.removeprefix(str(tmp_path) + "/") for h in result.hits) == [
        "plan.zip!log.gz!gunzip", "plan.zip!tfplan", "trace.log.gz!gunzip"]
    assert result.files == 3 and result.archives == 4  # two members, two gzip streams


def test_clean_data_and_other_values_give_no_hit(tmp_path: Path):
    other = "another-value-that-is-long-enough-0000"
    (tmp_path / "state").write_text(json.dumps({"id": "at-1", "value": other}))
    assert scan_paths(SECRETS, [tmp_path, tmp_path / "missing"]).hits == []
    # ...and the same scanner finds the other value when asked for it
    assert [h.label for h in scan_paths({"other": other}, [tmp_path]).hits] == ["other"]


def test_each_secret_is_reported_once_per_artifact_by_label_never_by_value():
    result = Scanner({"first": VALUE, "second": "s" * 30}).scan("out", VALUE * 3 + json.dumps(VALUE) + "s" * 30)
    assert [h.label for h in result.hits] == ["first", "second"]
    assert VALUE not in repr(result)
