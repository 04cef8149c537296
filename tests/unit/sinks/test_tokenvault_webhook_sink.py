"""The Token Vault Webhook Mode sink against the Token Vault emulator bound to the reference webhook (no
mocks): create-only, status from metadata only, replace, ownership on delete, the webhook pin, lost
answers, scopes, and Token Vault never holding the value (docs/wire.md, "Token Vault" -> "Webhook Mode")."""

from __future__ import annotations

import json
import secrets
import socket

import pytest
import requests

from tokendrop_provider.errors import ConfigError, SinkAccessDenied, SinkConflict, SinkError, SinkWriteUnknown
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import TokenVaultSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.tokenvault_webhook import TokenVaultWebhookSink
from tokendrop_provider.sinks.tokenvault_webhook_rules import validate_service, validate_webhook_url

SERVICE = "buildkite-ci"
OWN = Ownership(token_id="tok-1", issuer="buildkite", owner="1a2b3c4d5e6f")


def canary() -> Secret:
    return Secret("bkua_" + secrets.token_hex(20))


def sink(em, *, key: str | None = None, **kw) -> TokenVaultWebhookSink:
    settings = TokenVaultSettings(api_url=em.url, api_key=Secret(key or em.admin_key))
    return TokenVaultWebhookSink(SERVICE, settings=settings, **kw)


def held(webhook) -> str | None:
    """The value the webhook holds (sandbox-only knowledge)."""
    with webhook.lock:
        doc = webhook.tokens.get(SERVICE)
        return doc["fields"].get("accessToken") if doc else None


def untouched_by(em, value: Secret) -> None:
    seen = json.dumps([em.requests(), em.events(), em.world()])
    assert value.reveal() not in seen, "Token Vault saw the value"


def test_create_status_replace_delete(webhook_mode):
    em, webhook = webhook_mode
    s = sink(em, webhook_url=webhook.url)
    assert s.status().exists is False
    first = canary()
    assert s.create(first, OWN) == 1
    assert held(webhook) == first.reveal()
    status = s.status()
    assert (status.exists, status.version, status.ownership_current) == (True, 1, True)
    assert status.ownership == Ownership("tok-1", "buildkite", OWN.owner, 1)

    second = canary()
    with pytest.raises(SinkConflict):
        s.replace(second, OWN, expected_version=7)
    assert held(webhook) == first.reveal(), "a failed compare sends nothing"
    rotated = Ownership(token_id="tok-2", issuer="buildkite", owner=OWN.owner)
    assert s.replace(second, rotated, expected_version=1) == 2
    assert held(webhook) == second.reveal() and s.status().ownership == Ownership("tok-2", "buildkite", OWN.owner, 2)

    assert s.delete("tok-1") is False and held(webhook) == second.reveal(), "another token's value stays"
    assert s.delete("tok-2") is True and webhook.services() == []
    assert s.delete("tok-2") is False
    for value in (first, second):
        untouched_by(em, value)
    assert len(em.requests("POST", "/api/vault/store-ticket")) == 2


def test_a_credential_tokendrop_did_not_write_is_neither_overwritten_nor_deleted(webhook_mode):
    em, webhook = webhook_mode
    ticket = requests.post(f"{em.url}/api/vault/store-ticket", json={"serviceName": SERVICE}, timeout=10,
                           headers={"Authorization": f"Bearer {em.admin_key}"}).json()
    assert requests.post(f"{webhook.url}/v1/store", timeout=10, json={
        "ticket": ticket["ticket"], "service": SERVICE,
        "tokenData": {"tokenType": "PlainText", "accessToken": "someone-elses"}}).ok
    s = sink(em)
    status = s.status()
    assert status.exists and status.ownership is None and "did not write" in (status.occupant or "")
    with pytest.raises(SinkConflict, match="already exists"):
        s.create(canary(), OWN)
    assert s.delete(None) is False and held(webhook) == "someone-elses"
    assert any("did not write" in w for w in s.warnings)


def test_a_ticket_for_another_webhook_is_refused_before_the_value_leaves(webhook_mode):
    em, webhook = webhook_mode
    s = sink(em, webhook_url="https://hooks.example.com")
    with pytest.raises(SinkError, match="another webhook") as caught:
        s.create(canary(), OWN)
    assert caught.value.attribute == ("webhook_url",)
    assert webhook.requests("POST", "/v1/store") == [] and held(webhook) is None


def test_lost_answers_are_unknown_not_refusals(webhook_mode):
    em, webhook = webhook_mode
    s = sink(em)
    webhook.add_fault("/v1/store", method="POST", when="after", action="disconnect")
    value = canary()
    with pytest.raises(SinkWriteUnknown, match="may or may not"):
        s.create(value, OWN)
    assert held(webhook) == value.reveal(), "it landed"
    assert s.status().ownership == Ownership("tok-1", "buildkite", OWN.owner, 1), "the read-back finds our record"

    webhook.add_fault("/v1/store", method="POST", status=503)
    with pytest.raises(SinkWriteUnknown, match="503"):
        s.replace(canary(), OWN, expected_version=1)
    webhook.add_fault("/v1/store", method="POST", status=401, body={"error": "ticket_invalid", "message": "x"})
    with pytest.raises(SinkAccessDenied, match="ticket_invalid"):
        s.replace(canary(), OWN, expected_version=1)
    assert held(webhook) == value.reveal()


def test_missing_scope_is_named(webhook_mode):
    em, webhook = webhook_mode
    weak = em.mint_key(["tokens:list"])
    with pytest.raises(SinkAccessDenied, match="tokens:create") as caught:
        sink(em, key=weak).create(canary(), OWN)
    assert caught.value.attribute == ("tokenvault_api_key",)
    assert webhook.requests("POST", "/v1/store") == []


def test_platform_mode_vault_refuses_before_anything_is_sent(fresh_tokenvault_emulator):
    with pytest.raises(SinkError, match="webhook mode"):
        sink(fresh_tokenvault_emulator).create(canary(), OWN)


def test_rules():
    assert validate_service("buildkite-ci") is None
    assert "letters" in (validate_service("a/b") or "") and validate_service("") is not None
    assert validate_webhook_url("https://hook.example.com") is None
    assert validate_webhook_url("http://127.0.0.1:9000") is None
    assert "unencrypted" in (validate_webhook_url("http://hook.example.com") or "")
    with pytest.raises(ConfigError) as caught:
        TokenVaultWebhookSink("x y", settings=TokenVaultSettings(api_key=Secret("tvkey_" + "a" * 40)))
    assert caught.value.attribute == ("service",)


def test_a_webhook_that_is_down_fails_the_write_before_the_value_leaves(webhook_mode):
    """The kill switch of Webhook Mode: with the webhook offline Token Vault cannot read its metadata, so
    the sink's status check fails, no ticket is asked for and nothing is sent (a refusal, not an unknown)."""
    em, _ = webhook_mode
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with em.lock:
        em.webhook_url = f"http://127.0.0.1:{closed}"
    with pytest.raises(SinkError, match="502") as caught:
        sink(em).create(canary(), OWN)
    assert not isinstance(caught.value, SinkWriteUnknown)
    assert em.requests("POST", "/api/vault/store-ticket") == []
