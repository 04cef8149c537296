"""The reference Token Vault webhook and the emulator's Webhook Mode, against the protocol as docs/wire.md
("Token Vault" -> "Webhook Mode") records it from docs.tokenvault.uk/webhook-protocol (/endpoints,
/error-codes, /security) and the example webhook of github.com/c-lgrant/tvault
(`examples/webhook-ngrok/src/auth.py`, `routes/registration.py`, `routes/direct_access.py`,
`routes/metadata.py`): binding, signed calls (bad signature, stale timestamp, replayed request id),
tickets (bad signature, replay, expiry, purpose, service), store, credential, storage; then the
emulator's store tickets, metadata and delete through /v1/storage, and the 307 an agent follows."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from tokendrop_provider.sandbox.tokenvault import TokenVaultEmulator
from tokendrop_provider.sandbox.tokenvault_webhook import (
    SIGNATURE_HEADER,
    TokenVaultWebhook,
    make_ticket,
    signed_headers,
    ticket_payload,
)

VALUE = "bk-canary-" + "7" * 24


@pytest.fixture
def webhook(tokenvault_webhook: TokenVaultWebhook):
    tokenvault_webhook.reset()
    yield tokenvault_webhook
    tokenvault_webhook.reset()


def bind(webhook: TokenVaultWebhook) -> bytes:
    """What Token Vault does at binding: the one-time code to /v1/exchange, the HMAC secret back."""
    code = requests.get(f"{webhook.url}/v1/register-url", timeout=10).json()["code"]
    answer = requests.post(f"{webhook.url}/v1/exchange", json={"code": code}, timeout=10)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert set(doc) == {"hmacSecret", "webhookId", "version", "capabilities"}
    assert {"storage", "credential", "store"} <= set(doc["capabilities"])
    secret = base64.b64decode(doc["hmacSecret"])
    assert len(secret) == 32, "a 256-bit secret"
    return secret


def storage(webhook: TokenVaultWebhook, body: dict, headers: dict | None = None, raw: bytes | None = None,
            secret: bytes | None = None) -> requests.Response:
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{webhook.url}/v1/storage", data=data, timeout=10,
                         headers=headers if headers is not None else signed_headers(secret or b"", data))


def ticket(secret: bytes, service: str, purpose: str = "store", *, exp: float | None = None,
           nonce: str | None = None) -> str:
    return make_ticket(secret, {"sub": "u1", "svc": service, "pur": purpose,
                                "exp": int(exp if exp is not None else time.time() + 60),
                                "nonce": nonce or f"n-{time.monotonic_ns()}"})


def store(webhook: TokenVaultWebhook, secret: bytes, service: str = "buildkite-ci", value: str = VALUE,
          the_ticket: str | None = None) -> requests.Response:
    return requests.post(f"{webhook.url}/v1/store", timeout=10, json={
        "ticket": the_ticket or ticket(secret, service), "service": service,
        "tokenData": {"tokenType": "PlainText", "accessToken": value, "tokendrop": "record"}})


def error(resp: requests.Response) -> tuple[int, str]:
    return resp.status_code, resp.json()["error"]


# -- binding (endpoints: POST /v1/exchange; error-codes: code_expired, code_used) ----------------------

def test_exchange_hands_out_the_secret_once_per_code(webhook):
    code = webhook.new_code()
    assert requests.post(f"{webhook.url}/v1/exchange", json={"code": code}, timeout=10).status_code == 200
    assert error(requests.post(f"{webhook.url}/v1/exchange", json={"code": code}, timeout=10)) == (410, "code_used")
    assert error(requests.post(f"{webhook.url}/v1/exchange", json={"code": "nope"}, timeout=10)) == (
        410, "code_expired")
    stale = webhook.new_code()
    webhook.advance(301)
    assert error(requests.post(f"{webhook.url}/v1/exchange", json={"code": stale}, timeout=10)) == (
        410, "code_expired")
    assert error(requests.post(f"{webhook.url}/v1/exchange", json={}, timeout=10)) == (400, "invalid_request")


def test_an_unbound_webhook_answers_setup_required(webhook):
    assert error(storage(webhook, {"operation": "list", "collection": "tokens"})) == (403, "setup_required")
    assert error(store(webhook, b"x" * 32)) == (403, "setup_required")


# -- signed calls (auth.py verify_hmac; error-codes: auth_failed) ---------------------------------------

def test_signed_storage_call_is_accepted_and_lists_metadata_only(webhook):
    secret = bind(webhook)
    assert store(webhook, secret).status_code == 200
    listed = storage(webhook, {"operation": "list", "collection": "tokens"}, secret=secret)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["key"] == "buildkite-ci" and item["meta"]["tokendrop"] == "record"
    got = storage(webhook, {"operation": "get", "collection": "tokens", "key": "buildkite-ci"}, secret=secret)
    assert got.json()["data"]["meta"]["serviceName"] == "buildkite-ci"
    assert VALUE not in listed.text and VALUE not in got.text, "the credential never leaves through /v1/storage"
    setting = storage(webhook, {"operation": "set", "collection": "tokens", "key": "x", "data": {"accessToken": "v"}},
                      secret=secret)
    assert error(setting) == (400, "invalid_request"), "storage set cannot carry a credential"


def test_bad_signature_stale_timestamp_and_replayed_request_id_are_refused(webhook):
    secret = bind(webhook)
    body = json.dumps({"operation": "list", "collection": "tokens"}).encode()

    forged = signed_headers(b"another secret of thirty-two byte", body)
    assert error(storage(webhook, {}, forged, raw=body)) == (401, "auth_failed")
    tampered = signed_headers(secret, body)
    assert error(storage(webhook, {}, tampered, raw=body.replace(b"list", b"get "))) == (401, "auth_failed")
    missing = {k: v for k, v in signed_headers(secret, body).items() if k != SIGNATURE_HEADER}
    assert error(storage(webhook, {}, missing, raw=body)) == (401, "auth_failed")

    stale = signed_headers(secret, body, timestamp=int(time.time()) - 301)
    assert error(storage(webhook, {}, stale, raw=body)) == (401, "auth_failed")
    future = signed_headers(secret, body, timestamp=int(time.time()) + 301)
    assert error(storage(webhook, {}, future, raw=body)) == (401, "auth_failed")
    assert storage(webhook, {}, signed_headers(secret, body, timestamp=int(time.time()) - 200), raw=body).ok

    once = signed_headers(secret, body, request_id="req-1")
    assert storage(webhook, {}, once, raw=body).status_code == 200
    replayed = storage(webhook, {}, once, raw=body)
    assert error(replayed) == (401, "auth_failed") and "Duplicate" in replayed.json()["message"]


# -- tickets (auth.py verify_ticket; direct_access.py store_token, credential) -------------------------

def test_store_then_credential_with_tickets(webhook):
    secret = bind(webhook)
    stored = store(webhook, secret)
    assert stored.status_code == 200 and stored.json()["status"] == "stored"
    assert VALUE not in stored.text, "the answer to a store carries metadata only"
    got = requests.get(f"{webhook.url}/v1/credential", timeout=10,
                       params={"ticket": ticket(secret, "buildkite-ci", "agent_credential"), "service": "buildkite-ci"})
    assert got.status_code == 200 and got.json()["token"]["accessToken"] == VALUE
    assert all(e["query"].get("ticket") in (None, "***") for e in webhook.requests()), "no ticket in the log"
    missing = requests.get(f"{webhook.url}/v1/credential", timeout=10,
                           params={"ticket": ticket(secret, "other", "agent_credential"), "service": "other"})
    assert error(missing) == (404, "token_not_found")


def test_replayed_forged_expired_and_misdirected_tickets_are_refused(webhook):
    secret = bind(webhook)
    used = ticket(secret, "buildkite-ci")
    assert store(webhook, secret, the_ticket=used).status_code == 200
    replay = store(webhook, secret, value="other", the_ticket=used)
    assert error(replay) == (401, "ticket_invalid") and "replay" in replay.json()["message"]
    assert error(store(webhook, secret, the_ticket=ticket(b"f" * 32, "buildkite-ci"))) == (401, "ticket_invalid")
    assert error(store(webhook, secret, the_ticket="no-dot")) == (401, "ticket_invalid")
    expired = ticket(secret, "buildkite-ci", exp=time.time() - 1)
    assert error(store(webhook, secret, the_ticket=expired)) == (401, "ticket_expired")
    assert error(store(webhook, secret, the_ticket=ticket(secret, "buildkite-ci", "agent_credential"))) == (
        401, "ticket_invalid"), "a credential ticket cannot store"
    assert error(store(webhook, secret, the_ticket=ticket(secret, "github"))) == (401, "ticket_invalid")
    reveal = requests.get(f"{webhook.url}/v1/credential", timeout=10,
                          params={"ticket": ticket(secret, "buildkite-ci", "store"), "service": "buildkite-ci"})
    assert error(reveal) == (401, "ticket_invalid"), "a store ticket cannot read"
    assert webhook.metadata("buildkite-ci") is not None
    assert store(webhook, secret).status_code == 200


# -- the emulator in Webhook Mode (internal/api/vault.go, tokens.go) -----------------------------------

def tv(em: TokenVaultEmulator, method: str, path: str, body=None, key: str | None = None, **kw) -> requests.Response:
    return requests.request(method, em.url + path, json=body, timeout=10,
                            headers={"Authorization": f"Bearer {key or em.admin_key}"}, **kw)


def test_platform_mode_has_no_store_tickets(fresh_tokenvault_emulator):
    em = fresh_tokenvault_emulator
    answer = tv(em, "POST", "/api/vault/store-ticket", {"serviceName": "x"})
    assert answer.status_code == 400 and "webhook mode" in answer.json()["detail"]
    assert tv(em, "GET", "/api/vault/status").json()["vaultMode"] == "platform"
    assert tv(em, "GET", "/api/tokens/x").status_code == 404 and tv(em, "DELETE", "/api/tokens/x").status_code == 404
    github = tv(em, "GET", "/api/tokens/github")
    assert github.status_code == 200 and "accessToken" not in github.json()


def test_store_ticket_metadata_delete_and_the_agent_redirect(webhook_mode):
    em, webhook = webhook_mode
    assert tv(em, "GET", "/api/vault/status").json()["vaultMode"] == "webhook"
    answer = tv(em, "POST", "/api/vault/store-ticket", {"serviceName": "buildkite-ci"})
    assert answer.status_code == 200 and set(answer.json()) == {"ticket", "webhookUrl", "expiresIn"}
    doc = answer.json()
    assert doc["webhookUrl"] == webhook.url and doc["expiresIn"] == 60
    assert ticket_payload(doc["ticket"])["pur"] == "store"
    stored = requests.post(f"{doc['webhookUrl']}/v1/store", timeout=10, json={
        "ticket": doc["ticket"], "service": "buildkite-ci",
        "tokenData": {"tokenType": "PlainText", "accessToken": VALUE, "tokendrop": "r"}})
    assert stored.status_code == 200, stored.text

    meta = tv(em, "GET", "/api/tokens/buildkite-ci")
    assert meta.status_code == 200 and meta.json()["tokendrop"] == "r" and "accessToken" not in meta.json()
    assert tv(em, "GET", "/api/tokens/nothing-here").status_code == 404

    # An agent granted the service is redirected with a ticket; following the redirect reads the value.
    agent = tv(em, "POST", "/api/agents", {"name": "reader"}).json()
    assert tv(em, "POST", f"/api/agents/{agent['id']}/grants",
              {"agentId": agent["id"], "serviceName": "buildkite-ci"}).status_code in (200, 201)
    hop = tv(em, "GET", "/api/agents/credentials", key=agent["apiKey"], params={"service": "buildkite-ci"},
             allow_redirects=False)
    assert hop.status_code == 307 and hop.headers["Location"].startswith(f"{webhook.url}/v1/credential?ticket=")
    followed = tv(em, "GET", "/api/agents/credentials", key=agent["apiKey"], params={"service": "buildkite-ci"})
    assert followed.status_code == 200 and followed.json()["token"]["accessToken"] == VALUE
    assert followed.history[0].status_code == 307
    assert "Authorization" not in followed.request.headers, "the agent key stays with Token Vault"

    # Scopes: a key without tokens:create gets SCOPE_DENIED naming it.
    weak = em.mint_key(["agents:read"])
    denied = tv(em, "POST", "/api/vault/store-ticket", {"serviceName": "x"}, key=weak)
    assert denied.status_code == 403 and denied.json()["detail"]["missingScope"] == "tokens:create"

    assert tv(em, "DELETE", "/api/tokens/buildkite-ci").status_code == 200
    assert webhook.services() == [] and tv(em, "DELETE", "/api/tokens/buildkite-ci").status_code == 404

    # Token Vault never held the value: not in its request log, events or world.
    seen = json.dumps([em.requests(), em.events(), em.world()])
    assert VALUE not in seen
