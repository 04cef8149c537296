"""The known-secrets registry and scrubber (tokendrop_provider.secret): safe while RPC threads register
and scrub at once, and every form a value takes in text is masked, including a cut-off one."""

from __future__ import annotations

import base64
import json
import secrets
import sys
import threading
from urllib.parse import quote, quote_plus

import pytest

from tokendrop_provider.secret import Secret, register, register_environment, scrub


def fresh_value(prefix: str = "tok") -> str:
    return f"{prefix}-{secrets.token_urlsafe(24)}"


def test_registry_is_safe_while_threads_register_and_scrub():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up at once
    errors: list[BaseException] = []
    registered: list[str] = []
    start = threading.Barrier(20)

    def registering() -> None:
        start.wait()
        for _ in range(150):
            value = fresh_value()
            Secret(value)
            registered.append(value)

    def scrubbing() -> None:
        start.wait()
        text = "a log line that holds no secret at all, repeated to take a while " * 20
        try:
            for _ in range(150):
                assert scrub(text) == text
        except BaseException as exc:  # any failure in a thread is the finding
            errors.append(exc)

    threads = [threading.Thread(target=registering) for _ in range(10)]
    threads += [threading.Thread(target=scrubbing) for _ in range(10)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert len(registered) == 1500
    assert scrub(" ".join(registered)) == " ".join(["***"] * 1500)


VALUE = "tD9/k+Qz w\"8\\é-" + "A1b2C3d4E5f6G7h8"


@pytest.mark.parametrize("shown", [
    pytest.param(f"token {VALUE} end", id="raw"),
    pytest.param(repr({"token": VALUE}), id="repr"),
    pytest.param(repr(VALUE.encode()), id="repr-bytes"),
    pytest.param(json.dumps({"token": VALUE}), id="json"),
    pytest.param(json.dumps({"token": VALUE}, ensure_ascii=False), id="json-unicode"),
    pytest.param(f"GET /x?t={quote(VALUE, safe='')}", id="url"),
    pytest.param(f"t={quote_plus(VALUE)}", id="url-form"),
    pytest.param(f"failed: {VALUE}"[:20], id="cut-at-12-chars"),
    pytest.param(f"failed: {VALUE}"[:30], id="cut"),
] + [pytest.param(base64.b64encode(b"\x01" * pad + VALUE.encode()).decode(), id=f"base64-{pad}") for pad in range(3)]
  + [pytest.param(base64.urlsafe_b64encode(b"\x01" * pad + VALUE.encode()).decode(), id=f"base64url-{pad}")
     for pad in range(3)])
def test_every_form_of_a_registered_value_is_masked(shown: str):
    Secret(VALUE)
    scrubbed = scrub(shown)
    assert "***" in scrubbed
    # Nothing of 12 or more characters of any form is left.
    for form in (VALUE, json.dumps(VALUE)[1:-1], repr(VALUE)[1:-1], quote(VALUE, safe="")):
        assert form[:12] not in scrubbed


def test_a_value_with_a_trailing_newline_is_masked_without_it():
    value = fresh_value("file") + "\n"  # what HCL's file() gives
    Secret(value)
    message = f"Invalid header value b'{value.strip()}\\n'"  # as botocore's HTTPClientError words it
    assert scrub(message) == "Invalid header value b'***'"


def test_short_prefixes_and_ordinary_text_are_left_alone():
    value = fresh_value("abc")
    Secret(value)
    assert scrub(f"id {value[:11]} ok") == f"id {value[:11]} ok"
    assert scrub("plain words only") == "plain words only"


def test_credentials_in_the_environment_are_registered():
    env = {"AWS_SESSION_TOKEN": fresh_value("sess"), "AWS_SECRET_ACCESS_KEY": fresh_value("key"),
           "VAULT_APPROLE_SECRET_ID": fresh_value("sid"), "TFE_TOKEN": fresh_value("tfe"), "HOME": "/home/user-x"}
    register_environment(env)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECRET_ACCESS_KEY", "VAULT_APPROLE_SECRET_ID", "TFE_TOKEN"):
        assert scrub(f"{name}={env[name]}") == f"{name}=***"
    assert scrub("HOME=/home/user-x") == "HOME=/home/user-x"


def test_register_ignores_empty_and_short_values():
    register("")
    register("short")
    assert scrub("short") == "short"
