"""The Token Vault emulator against what docs/wire.md (Token Vault) says of the API: admin auth, agents with a
create-only key, grants (required fields, 1h–30d or until revoked, one per service), rotate-key, and the
agent side (revoked/rotated keys, suspended agents, expired grants, a locked vault), plus the sandbox
controls and the standalone CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tokendrop_provider.sandbox.tokenvault import TokenVaultEmulator


@pytest.fixture
def em(fresh_tokenvault_emulator: TokenVaultEmulator) -> TokenVaultEmulator:
    return fresh_tokenvault_emulator


def admin(em: TokenVaultEmulator, method: str, path: str, body=None, key: str | None = None) -> requests.Response:
    return requests.request(method, em.url + path, json=body, timeout=10,
                            headers={"Authorization": f"Bearer {key or em.admin_key}"})


def as_agent(em: TokenVaultEmulator, key: str, service: str | None = None, how: str = "bearer") -> requests.Response:
    params = {"service": service} if service else {}
    headers = {}
    if how == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif how == "header":
        headers["X-Agent-Key"] = key
    else:
        params["key"] = key
    return requests.get(em.url + "/api/agents/credentials", params=params, headers=headers, timeout=10)


def minted_now(em: TokenVaultEmulator, baseline: set[str]) -> list[dict]:
    """Keys minted since `baseline` (the registry outlives resets: the emulator is shared)."""
    return [m for m in em.minted() if m["id"] not in baseline]


def create(em: TokenVaultEmulator, name: str = "bot", **extra) -> dict:
    response = admin(em, "POST", "/api/agents", {"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_admin_calls_need_the_admin_key(em):
    assert admin(em, "GET", "/api/agents").status_code == 200
    for key in ("wrong", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = requests.get(em.url + "/api/agents", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["detail"]["code"] == "UNAUTHORIZED"
    # An agent key is not an admin credential.
    agent = create(em)
    assert admin(em, "GET", "/api/agents", key=agent["apiKey"]).status_code == 401


def test_agents_list_get_create_delete_and_the_key_only_once(em):
    baseline = {m["id"] for m in em.minted()}
    created = create(em, "triage", description="issue triage")
    assert set(created) == {"id", "name", "apiKey"} and created["apiKey"].startswith("tvagent_")
    listed = admin(em, "GET", "/api/agents").json()
    assert listed == [{"id": created["id"], "name": "triage", "status": "active", "grantCount": 0.0}]
    shown = admin(em, "GET", f"/api/agents/{created['id']}").json()
    assert shown["description"] == "issue triage" and shown["grants"] == [] and shown["keyCreatedAt"]
    assert created["apiKey"] not in json.dumps(shown) + json.dumps(listed), "the key is create-only"
    assert [m["value"] for m in minted_now(em, baseline)] == [created["apiKey"]]

    assert admin(em, "DELETE", f"/api/agents/{created['id']}").status_code == 200
    assert admin(em, "GET", f"/api/agents/{created['id']}").status_code == 404
    assert admin(em, "DELETE", f"/api/agents/{created['id']}").status_code == 404
    assert minted_now(em, baseline)[0]["revoked"]
    assert as_agent(em, created["apiKey"]).status_code == 401


def test_create_validation_is_fastapi_shaped(em):
    missing = admin(em, "POST", "/api/agents", {})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "name"]
    assert admin(em, "POST", "/api/agents", {"name": ""}).status_code == 422
    assert admin(em, "POST", "/api/agents", {"name": "x", "mcpEnabled": "yes"}).status_code == 422
    assert admin(em, "GET", "/api/agents").json() == []


def test_status_patch_and_bulk_delete(em):
    a, b = create(em, "a"), create(em, "b")
    assert admin(em, "PATCH", f"/api/agents/{a['id']}", {"status": "suspended"}).json()["status"] == "suspended"
    assert admin(em, "PATCH", f"/api/agents/{a['id']}", {"status": "paused"}).status_code == 422
    refused = as_agent(em, a["apiKey"])
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "AGENT_SUSPENDED"
    admin(em, "PATCH", f"/api/agents/{a['id']}", {"status": "active"})
    assert as_agent(em, a["apiKey"]).status_code == 200
    bulk = admin(em, "DELETE", "/api/agents/bulk", {"agentIds": [a["id"], b["id"], "nope"]}).json()
    assert sorted(bulk["deleted"]) == sorted([a["id"], b["id"]]) and bulk["notFound"] == ["nope"]


def test_grants_need_agent_id_and_service_name(em):
    agent = create(em)
    url = f"/api/agents/{agent['id']}/grants"
    no_agent = admin(em, "POST", url, {"serviceName": "github"})
    assert no_agent.status_code == 422 and no_agent.json()["detail"][0]["loc"] == ["body", "agentId"]
    no_service = admin(em, "POST", url, {"agentId": agent["id"]})
    assert no_service.status_code == 422 and no_service.json()["detail"][0]["loc"] == ["body", "serviceName"]
    assert admin(em, "POST", url, {"agentId": "other", "serviceName": "github"}).status_code == 422
    unknown = admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "nope"})
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "SERVICE_NOT_FOUND"
    for hours in (0, 721, 1.5, "12", True):
        assert admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "github",
                                       "expiresInHours": hours}).status_code == 422, hours
    assert admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "github",
                                   "refreshPolicy": "sometimes"}).status_code == 422
    assert admin(em, "GET", f"/api/agents/{agent['id']}").json()["grants"] == []


def test_grants_expire_or_last_until_revoked_and_one_per_service(em):
    agent = create(em)
    url = f"/api/agents/{agent['id']}/grants"
    timed = admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "github", "expiresInHours": 12,
                                    "refreshPolicy": "auto"})
    assert timed.status_code == 201
    expires = datetime.fromisoformat(timed.json()["grantExpiresAt"].replace("Z", "+00:00"))
    assert timedelta(hours=11, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=12)
    forever = admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "linear"}).json()
    assert forever["grantExpiresAt"] is None and forever["refreshPolicy"] == "none"
    duplicate = admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "github"})
    assert duplicate.status_code == 409 and duplicate.json()["detail"]["code"] == "GRANT_EXISTS"
    assert admin(em, "GET", "/api/agents").json()[0]["grantCount"] == 2.0

    assert admin(em, "DELETE", f"{url}/linear").status_code == 200
    assert admin(em, "DELETE", f"{url}/linear").status_code == 404
    grants = admin(em, "GET", f"/api/agents/{agent['id']}").json()["grants"]
    assert [(g["serviceName"], g["refreshPolicy"]) for g in grants] == [("github", "auto")]


def test_agent_side_authentication_and_grants(em):
    agent = create(em)
    key = agent["apiKey"]
    admin(em, "POST", f"/api/agents/{agent['id']}/grants", {"agentId": agent["id"], "serviceName": "github",
                                                            "expiresInHours": 1})
    for how in ("bearer", "header", "query"):
        assert as_agent(em, key, how=how).json()["grants"][0]["status"] == "active", how
    assert key not in json.dumps(em.requests()), "the key in a query string is not logged"
    single = as_agent(em, key, "github").json()
    assert single["serviceName"] == "github" and single["accessToken"].startswith("svc_github_")
    denied = as_agent(em, key, "slack")
    assert denied.status_code == 403 and denied.json()["detail"]["code"] == "POLICY_DENIED"
    assert as_agent(em, "tvagent_not-a-key").json()["detail"]["code"] == "INVALID_AGENT_KEY"
    assert requests.get(em.url + "/api/agents/credentials", timeout=10).json()["detail"]["code"] == \
        "AGENT_KEY_REQUIRED"

    em.advance(2 * 3600)  # the grant's hour is over
    expired = as_agent(em, key, "github")
    assert expired.status_code == 403 and expired.json()["detail"]["code"] == "GRANT_EXPIRED"
    assert as_agent(em, key).json()["grants"][0]["status"] == "GRANT_EXPIRED"
    # An expired grant no longer blocks granting the service again.
    again = admin(em, "POST", f"/api/agents/{agent['id']}/grants", {"agentId": agent["id"], "serviceName": "github",
                                                                    "refreshPolicy": "auto"})
    assert again.status_code == 201 and as_agent(em, key, "github").status_code == 200


def test_rotate_key_invalidates_the_old_key_at_once(em):
    baseline = {m["id"] for m in em.minted()}
    agent = create(em)
    before = admin(em, "GET", f"/api/agents/{agent['id']}").json()["keyCreatedAt"]
    time.sleep(0.002)  # keyCreatedAt has millisecond resolution
    rotated = admin(em, "POST", f"/api/agents/{agent['id']}/rotate-key")
    assert rotated.status_code == 200 and set(rotated.json()) == {"id", "apiKey"}
    new_key = rotated.json()["apiKey"]
    assert new_key != agent["apiKey"]
    old = as_agent(em, agent["apiKey"])
    assert old.status_code == 401 and old.json()["detail"]["code"] == "INVALID_AGENT_KEY"
    assert as_agent(em, new_key).status_code == 200
    assert admin(em, "GET", f"/api/agents/{agent['id']}").json()["keyCreatedAt"] != before
    minted = minted_now(em, baseline)
    assert [m["value"] for m in minted] == [agent["apiKey"], new_key]
    assert [m["revoked"] for m in minted] == [True, False]
    assert [e["event"] for e in em.events()] == ["agent.created", "agent.key_rotated"]


def test_auto_refresh_and_a_locked_vault(em):
    agent = create(em)
    url = f"/api/agents/{agent['id']}/grants"
    admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "github", "refreshPolicy": "auto"})
    admin(em, "POST", url, {"agentId": agent["id"], "serviceName": "slack"})
    first = as_agent(em, agent["apiKey"], "github").json()["accessToken"]
    em.advance(2 * 3600)  # the services' OAuth tokens ran out
    refreshed = as_agent(em, agent["apiKey"], "github").json()
    assert refreshed["refreshed"] and refreshed["accessToken"] != first
    stale = as_agent(em, agent["apiKey"], "slack")
    assert stale.status_code == 409 and stale.json()["detail"]["code"] == "TOKEN_EXPIRED"

    assert requests.post(em.url + "/_sandbox/lock", json={"locked": True}, timeout=10).status_code == 204
    locked = as_agent(em, agent["apiKey"])
    assert locked.status_code == 423 and locked.json()["detail"]["code"] == "VAULT_LOCKED"


def test_sandbox_controls(em):
    agent = create(em)
    admin(em, "POST", f"/api/agents/{agent['id']}/grants", {"agentId": agent["id"], "serviceName": "github"})
    assert requests.post(em.url + "/_sandbox/services", json={"name": "gitlab"}, timeout=10).status_code == 201
    assert requests.post(em.url + "/_sandbox/expire-grant", json={"agentId": agent["id"], "service": "github"},
                         timeout=10).status_code == 204
    world = requests.get(em.url + "/_sandbox/world", timeout=10).json()
    assert "gitlab" in world["services"] and world["agents"][0]["keyId"] == f"{agent['id']}/key-1"
    assert agent["apiKey"] not in json.dumps(world)
    assert as_agent(em, agent["apiKey"], "github").json()["detail"]["code"] == "GRANT_EXPIRED"
    clock = requests.post(em.url + "/_sandbox/clock", json={"advance": 86400}, timeout=10).json()["now"]
    assert clock > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fault = requests.post(em.url + "/_sandbox/faults", json={"path": "rotate-key", "status": 503}, timeout=10)
    assert fault.status_code == 201
    assert admin(em, "POST", f"/api/agents/{agent['id']}/rotate-key").status_code == 503
    assert admin(em, "POST", f"/api/agents/{agent['id']}/rotate-key").status_code == 200

    em.reset()
    assert em.agent_ids() == [] and "gitlab" not in em.world()["services"]
    assert all(m["revoked"] for m in em.minted()), "minted keys survive a reset, for canary scans"


def test_standalone_cli_writes_its_ready_file(tmp_path: Path):
    ready = tmp_path / "tv.json"
    process = subprocess.Popen([sys.executable, "-m", "tokendrop_provider.sandbox.tokenvault", "--port", "0",
                                "--ready-file", str(ready), "--admin-key", "tvkey_fixed_for_test"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        for _ in range(600):
            if ready.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pid"] == process.pid and info["url"].startswith("http://127.0.0.1:")
        assert info["env"] == {"TOKENVAULT_API_URL": info["url"], "TOKENVAULT_API_KEY": "tvkey_fixed_for_test"}
        assert requests.get(info["url"] + "/_sandbox/health", timeout=10).json()["name"] == "tokenvault"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not ready.exists(), "the ready file is removed on exit"
