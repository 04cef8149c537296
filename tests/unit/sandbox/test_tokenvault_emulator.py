"""The Token Vault emulator against the official CLI's wire (github.com/c-lgrant/tvault; docs/wire.md,
section "Token Vault"): one conformance test per route, each naming the CLI file and function whose
request it sends and whose response shape it checks; then principals, scopes and human-only
operations, the agent side, the sandbox controls and the standalone CLI."""

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

from tokendrop_provider.sandbox.tokenvault import PROVIDER_SCOPES, TokenVaultEmulator


@pytest.fixture
def em(fresh_tokenvault_emulator: TokenVaultEmulator) -> TokenVaultEmulator:
    return fresh_tokenvault_emulator


def call(em: TokenVaultEmulator, method: str, path: str, body=None, key: str | None = None) -> requests.Response:
    """As the CLI sends it (internal/api/client.go attempt): every credential as `Authorization: Bearer`."""
    return requests.request(method, em.url + path, json=body, timeout=10,
                            headers={"Authorization": f"Bearer {key or em.admin_key}"})


def as_agent(em: TokenVaultEmulator, key: str, service: str | None = None, how: str = "bearer") -> requests.Response:
    params = {"service": service} if service else {}
    headers = {}
    if how == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif how == "header":
        headers["X-Agent-Key"] = key  # what CLI versions before scoped keys sent (client.go, older commits)
    else:
        params["key"] = key
    return requests.get(em.url + "/api/agents/credentials", params=params, headers=headers, timeout=10)


def minted_now(em: TokenVaultEmulator, baseline: set[str]) -> list[dict]:
    """Keys minted since `baseline` (the registry outlives resets: the emulator is shared)."""
    return [m for m in em.minted() if m["id"] not in baseline]


def create(em: TokenVaultEmulator, name: str = "bot", **extra) -> dict:
    response = call(em, "POST", "/api/agents", {"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def denied_scope(response: requests.Response) -> str:
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail["code"] == "SCOPE_DENIED" and detail["message"]
    return detail["missingScope"]


# -- one conformance test per route -----------------------------------------------------------------

def test_whoami_answers_a_keys_own_scopes(em):
    """internal/api/keys.go Whoami; cmd/scoped_test.go TestWhoami_KeyContext."""
    doc = call(em, "GET", "/api/agents/whoami").json()
    assert set(doc) == {"principal", "userId", "kind", "scopes", "expiresAt"}
    assert doc["principal"]["type"] == "key" and doc["principal"]["id"] and doc["kind"] == "scoped"
    assert sorted(doc["scopes"]) == sorted(PROVIDER_SCOPES) and doc["expiresAt"] is None
    human = call(em, "GET", "/api/agents/whoami", key=em.human_token).json()
    assert human["principal"]["type"] == "user"
    agent = create(em)
    assert call(em, "GET", "/api/agents/whoami", key=agent["apiKey"]).json()["principal"] == {
        "type": "agent", "id": agent["id"], "name": "bot"}


def test_list_agents(em):
    """internal/api/agents.go ListAgents: a bare array; grantCount is a float (looseInt's comment)."""
    created = create(em, "triage")
    call(em, "POST", f"/api/agents/{created['id']}/grants", {"agentId": created["id"], "serviceName": "github"})
    assert call(em, "GET", "/api/agents").json() == [
        {"id": created["id"], "name": "triage", "status": "active", "grantCount": 1.0}]
    assert denied_scope(call(em, "GET", "/api/agents", key=em.mint_key(["grants:write"]))) == "agents:read"


def test_create_agent_returns_the_key_once(em):
    """internal/api/agents.go CreateAgentWithKind: {name, kind?, scopes?} -> {id, name, apiKey}."""
    baseline = {m["id"] for m in em.minted()}
    created = create(em, "triage", description="issue triage")
    assert {"id", "name", "apiKey"} <= set(created) and created["apiKey"].startswith("tvagent_")
    shown = call(em, "GET", f"/api/agents/{created['id']}").json()
    assert created["apiKey"] not in json.dumps(shown) + json.dumps(call(em, "GET", "/api/agents").json())
    assert [m["value"] for m in minted_now(em, baseline)] == [created["apiKey"]]
    scoped = create(em, "child", kind="scoped", scopes=["credentials:read"])
    assert scoped["kind"] == "scoped"
    assert call(em, "GET", "/api/agents/whoami", key=scoped["apiKey"]).json()["scopes"] == ["credentials:read"]
    # FastAPI-shaped validation (agents.go AddGrants' comment: a missing required field is a 422).
    missing = call(em, "POST", "/api/agents", {})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "name"]
    assert call(em, "POST", "/api/agents", {"name": "x", "mcpEnabled": "yes"}).status_code == 422
    assert denied_scope(call(em, "POST", "/api/agents", {"name": "x"}, key=em.mint_key(["agents:read"]))) == \
        "agents:create"


def test_get_agent_embeds_its_grants(em):
    """internal/api/agents.go GetAgent / ListGrants: grants[{serviceName, refreshPolicy, grantExpiresAt}]."""
    created = create(em, "triage", description="issue triage")
    call(em, "POST", f"/api/agents/{created['id']}/grants", {"agentId": created["id"], "serviceName": "github"})
    shown = call(em, "GET", f"/api/agents/{created['id']}").json()
    assert (shown["id"], shown["name"], shown["status"]) == (created["id"], "triage", "active")
    assert [{k: g[k] for k in ("serviceName", "refreshPolicy", "grantExpiresAt")} for g in shown["grants"]] == [
        {"serviceName": "github", "refreshPolicy": "none", "grantExpiresAt": None}]
    assert shown["description"] == "issue triage" and shown["keyCreatedAt"]  # assumed fields (docs/wire.md)
    gone = call(em, "GET", "/api/agents/nope")
    assert gone.status_code == 404 and gone.json()["detail"]["code"] == "AGENT_NOT_FOUND"


def test_suspend_and_resume(em):
    """internal/api/agents.go SetAgentStatus: PATCH {status: active | suspended}."""
    agent = create(em)
    assert call(em, "PATCH", f"/api/agents/{agent['id']}", {"status": "suspended"}).json()["status"] == "suspended"
    assert as_agent(em, agent["apiKey"]).json()["detail"]["code"] == "AGENT_SUSPENDED"
    assert call(em, "PATCH", f"/api/agents/{agent['id']}", {"status": "paused"}).status_code == 422
    call(em, "PATCH", f"/api/agents/{agent['id']}", {"status": "active"})
    assert as_agent(em, agent["apiKey"]).status_code == 200
    assert denied_scope(call(em, "PATCH", f"/api/agents/{agent['id']}", {"status": "active"},
                             key=em.mint_key(["agents:read", "agents:create"]))) == "agents:manage"


def test_delete_one_and_bulk(em):
    """internal/api/agents.go DeleteAgents: DELETE /api/agents/{id}, or /bulk {agentIds}."""
    a, b, c = create(em, "a"), create(em, "b"), create(em, "c")
    assert call(em, "DELETE", f"/api/agents/{a['id']}").status_code == 200
    assert call(em, "DELETE", f"/api/agents/{a['id']}").status_code == 404
    assert as_agent(em, a["apiKey"]).status_code == 401
    bulk = call(em, "DELETE", "/api/agents/bulk", {"agentIds": [b["id"], "nope"]}).json()
    assert bulk == {"deleted": [b["id"]], "notFound": ["nope"]}
    # Left open which scope deletes (explain.go names agents:delete, the README only agents:manage): either.
    assert call(em, "DELETE", f"/api/agents/{c['id']}", key=em.mint_key(["agents:delete"])).status_code == 200
    assert denied_scope(call(em, "DELETE", "/api/agents/x", key=em.mint_key(["agents:read"]))) == "agents:delete"


def test_rotate_agent_key(em):
    """internal/api/keys.go RotateAgentKey: POST /api/agents/{id}/rotate-key -> {id, apiKey}."""
    baseline = {m["id"] for m in em.minted()}
    agent = create(em)
    before = call(em, "GET", f"/api/agents/{agent['id']}").json()["keyCreatedAt"]
    time.sleep(0.002)  # keyCreatedAt has millisecond resolution
    rotated = call(em, "POST", f"/api/agents/{agent['id']}/rotate-key")
    assert rotated.status_code == 200 and set(rotated.json()) == {"id", "apiKey"}
    new_key = rotated.json()["apiKey"]
    assert as_agent(em, agent["apiKey"]).json()["detail"]["code"] == "INVALID_AGENT_KEY"
    assert as_agent(em, new_key).status_code == 200
    assert call(em, "GET", f"/api/agents/{agent['id']}").json()["keyCreatedAt"] != before
    assert [m["revoked"] for m in minted_now(em, baseline)] == [True, False]
    # Left open whether a key may rotate an agent's key: the sandbox can make it human-only.
    requests.post(em.url + "/_sandbox/agent-rotation", json={"humanOnly": True}, timeout=10)
    refused = call(em, "POST", f"/api/agents/{agent['id']}/rotate-key")
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "HUMAN_ONLY"
    assert call(em, "POST", f"/api/agents/{agent['id']}/rotate-key", key=em.human_token).status_code == 200


def test_add_agent_grant_takes_agent_id_and_service_name_only(em):
    """internal/api/agents.go AddGrants: one POST per service, body {agentId, serviceName} (no agentId ->
    422); cmd/scoped_test.go TestAgentsCreate_GrantFailureIsNonZero: SCOPE_DENIED names grants:write."""
    agent = create(em)
    url = f"/api/agents/{agent['id']}/grants"
    assert call(em, "POST", url, {"serviceName": "github"}).json()["detail"][0]["loc"] == ["body", "agentId"]
    assert call(em, "POST", url, {"agentId": agent["id"]}).json()["detail"][0]["loc"] == ["body", "serviceName"]
    assert call(em, "POST", url, {"agentId": agent["id"], "serviceName": "nope"}).json()["detail"]["code"] == \
        "SERVICE_NOT_FOUND"
    # Fields the CLI never sends are ignored, as a pydantic model ignores unknown fields: nothing expires.
    granted = call(em, "POST", url, {"agentId": agent["id"], "serviceName": "github", "expiresInHours": 12,
                                     "refreshPolicy": "auto"})
    assert granted.status_code == 201
    [grant] = call(em, "GET", f"/api/agents/{agent['id']}").json()["grants"]
    assert (grant["grantExpiresAt"], grant["refreshPolicy"]) == (None, "none")
    duplicate = call(em, "POST", url, {"agentId": agent["id"], "serviceName": "github"})
    assert duplicate.status_code == 409 and duplicate.json()["detail"]["code"] == "GRANT_EXISTS"
    assert denied_scope(call(em, "POST", url, {"agentId": agent["id"], "serviceName": "slack"},
                             key=em.mint_key(["agents:read"]))) == "grants:write"


def test_remove_agent_grant(em):
    """internal/api/agents.go RemoveGrants: DELETE /api/agents/{id}/grants/{service_name}, no body."""
    agent = create(em)
    url = f"/api/agents/{agent['id']}/grants"
    call(em, "POST", url, {"agentId": agent["id"], "serviceName": "linear"})
    assert call(em, "DELETE", f"{url}/linear").status_code == 200
    gone = call(em, "DELETE", f"{url}/linear")
    assert gone.status_code == 404 and gone.json()["detail"]["code"] == "NO_GRANT"
    assert call(em, "GET", f"/api/agents/{agent['id']}").json()["grants"] == []


def test_create_key(em):
    """internal/api/keys.go CreateKey: {name, scopes, expiresAt | null} -> {id, key, name, scopes, expiresAt,
    createdAt}; cmd/scoped_test.go TestKeysCreate_KeyOnlyOnStdout."""
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["credentials:read", "tokens:list"],
                                          "expiresAt": expires})
    assert made.status_code == 201
    doc = made.json()
    assert set(doc) == {"id", "key", "name", "scopes", "expiresAt", "createdAt"} and doc["key"].startswith("tvkey_")
    assert call(em, "GET", "/api/agents/whoami", key=doc["key"]).json()["scopes"] == ["credentials:read",
                                                                                      "tokens:list"]
    never = call(em, "POST", "/api/keys", {"name": "n", "scopes": ["tokens:list"], "expiresAt": None}).json()
    assert never["expiresAt"] is None
    past = call(em, "POST", "/api/keys", {"name": "p", "scopes": ["tokens:list"], "expiresAt": "2020-01-01T00:00:00Z"})
    assert past.status_code == 400 and past.json()["detail"]["code"] == "INVALID_EXPIRY"
    unknown = call(em, "POST", "/api/keys", {"name": "u", "scopes": ["everything"], "expiresAt": None})
    assert unknown.status_code == 400 and unknown.json()["detail"]["code"] == "UNKNOWN_SCOPE"
    # explain.go SCOPE_NOT_DELEGABLE: a key cannot hand out grants:write (a human can).
    refused = call(em, "POST", "/api/keys", {"name": "g", "scopes": ["grants:write"], "expiresAt": None})
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "SCOPE_NOT_DELEGABLE"
    assert call(em, "POST", "/api/keys", {"name": "g", "scopes": ["grants:write"], "expiresAt": None},
                key=em.human_token).status_code == 201


def test_list_keys_never_shows_a_secret(em):
    """internal/api/keys.go ListKeys: {"keys": [{id, name, scopes, status, expiresAt, createdAt, lastUsedAt,
    createdBy}]}."""
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["tokens:list"], "expiresAt": None}).json()
    listed = call(em, "GET", "/api/keys").json()
    assert set(listed) == {"keys"} and made["key"] not in json.dumps(listed) and em.admin_key not in json.dumps(listed)
    item = next(k for k in listed["keys"] if k["id"] == made["id"])
    assert set(item) == {"id", "name", "scopes", "status", "expiresAt", "createdAt", "lastUsedAt", "createdBy"}
    assert item["createdBy"]["type"] == "key"
    assert denied_scope(call(em, "GET", "/api/keys", key=em.mint_key(["agents:read"]))) == "keys:manage"


def test_get_key_with_grants(em):
    """internal/api/keys.go GetKey: the list item plus grants[{serviceName, refreshPolicy, source, grantedAt,
    grantExpiresAt}]."""
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["tokens:list"], "expiresAt": None}).json()
    call(em, "POST", f"/api/keys/{made['id']}/grants", {"serviceName": "github"})
    shown = call(em, "GET", f"/api/keys/{made['id']}").json()
    assert set(shown["grants"][0]) == {"serviceName", "refreshPolicy", "source", "grantedAt", "grantExpiresAt"}
    assert made["key"] not in json.dumps(shown)
    assert call(em, "GET", "/api/keys/nope").status_code == 404


def test_rotate_key_self_only_unless_human(em):
    """internal/api/keys.go RotateKey -> {id, key}; cmd/keys.go keysRotateCmd: rotating another key needs a
    signed-in human, a key may rotate itself (cmd/scoped_test.go TestKeysRotateSelf_UpdatesContext)."""
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["tokens:list"], "expiresAt": None}).json()
    other = call(em, "POST", f"/api/keys/{made['id']}/rotate")
    assert other.status_code == 403 and other.json()["detail"]["code"] == "HUMAN_ONLY"
    own = call(em, "POST", f"/api/keys/{made['id']}/rotate", key=made["key"])
    assert own.status_code == 200 and set(own.json()) == {"id", "key"}
    stale = call(em, "GET", "/api/agents/whoami", key=made["key"])
    assert stale.status_code == 401 and stale.json()["detail"]["code"] == "INVALID_KEY"
    assert call(em, "POST", f"/api/keys/{made['id']}/rotate", key=em.human_token).status_code == 200


def test_revoke_key(em):
    """internal/api/keys.go RevokeKey: DELETE /api/keys/{id}."""
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["tokens:list"], "expiresAt": None}).json()
    assert made["key"] in em.minted_values(), "a key created through the API is a minted token"
    assert call(em, "DELETE", f"/api/keys/{made['id']}").status_code == 200
    assert [m["revoked"] for m in em.minted() if m["value"] == made["key"]] == [True]
    assert call(em, "GET", "/api/agents/whoami", key=made["key"]).json()["detail"]["code"] == "INVALID_KEY"
    assert call(em, "DELETE", f"/api/keys/{made['id']}").status_code == 404


def test_key_grant_with_expiry(em):
    """internal/api/keys.go GrantKey: {serviceName, expiresInHours?} -> {success, serviceName, grantExpiresAt,
    refreshPolicy, source}; cmd/keys.go --expires-in-hours."""
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["tokens:list"], "expiresAt": None}).json()
    url = f"/api/keys/{made['id']}/grants"
    week = call(em, "POST", url, {"serviceName": "github", "expiresInHours": 168})
    assert week.status_code == 201
    assert set(week.json()) == {"success", "serviceName", "grantExpiresAt", "refreshPolicy", "source"}
    expires = datetime.fromisoformat(week.json()["grantExpiresAt"].replace("Z", "+00:00"))
    assert timedelta(hours=167, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=168)
    assert call(em, "POST", url, {"serviceName": "linear"}).json()["grantExpiresAt"] is None
    for hours in (0, 721, 1.5, "12", True):
        assert call(em, "POST", url, {"serviceName": "slack", "expiresInHours": hours}).status_code == 422, hours


def test_remove_key_grant(em):
    """internal/api/keys.go UngrantKey: DELETE /api/keys/{id}/grants/{service}."""
    made = call(em, "POST", "/api/keys", {"name": "ci", "scopes": ["tokens:list"], "expiresAt": None}).json()
    call(em, "POST", f"/api/keys/{made['id']}/grants", {"serviceName": "github"})
    assert call(em, "DELETE", f"/api/keys/{made['id']}/grants/github").status_code == 200
    assert call(em, "DELETE", f"/api/keys/{made['id']}/grants/github").status_code == 404


def test_agent_credentials(em):
    """internal/api/agents.go AgentIdentity: GET /api/agents/credentials -> {"grants": [...]} for an agent key."""
    agent = create(em)
    call(em, "POST", f"/api/agents/{agent['id']}/grants", {"agentId": agent["id"], "serviceName": "github"})
    for how in ("bearer", "header", "query"):
        assert as_agent(em, agent["apiKey"], how=how).json()["grants"][0]["serviceName"] == "github", how
    assert agent["apiKey"] not in json.dumps(em.requests()), "the key in a query string is not logged"
    single = as_agent(em, agent["apiKey"], "github").json()
    assert single["serviceName"] == "github" and single["accessToken"].startswith("svc_github_")
    assert as_agent(em, agent["apiKey"], "slack").json()["detail"]["code"] == "POLICY_DENIED"
    assert as_agent(em, "tvagent_not-a-key").json()["detail"]["code"] == "INVALID_AGENT_KEY"


# -- principals and errors (internal/api/client.go parseErrorBody / kindForError, internal/clierr) ----

def test_keys_are_refused_by_prefix_and_state(em):
    unknown = call(em, "GET", "/api/agents", key="tvkey_" + "x" * 40)
    assert unknown.status_code == 401 and unknown.json()["detail"]["code"] == "INVALID_KEY"
    expiring = em.mint_key(["agents:read"], expires_in=timedelta(hours=1))
    assert call(em, "GET", "/api/agents", key=expiring).status_code == 200
    em.advance(2 * 3600)
    expired = call(em, "GET", "/api/agents", key=expiring)
    assert expired.status_code == 401 and expired.json()["detail"]["code"] == "KEY_EXPIRED"
    assert call(em, "GET", "/api/agents", key="not-a-known-credential").json()["detail"]["code"] == "UNAUTHORIZED"
    assert requests.get(em.url + "/api/agents", timeout=10).status_code == 401
    # A classic agent's key holds no admin scope.
    agent = create(em)
    assert denied_scope(call(em, "GET", "/api/agents", key=agent["apiKey"])) == "agents:read"


def test_grants_expire_and_refresh_on_the_agent_side(em):
    """What only the dashboard sets on agent grants (an expiry, auto refresh) is a sandbox control here."""
    agent = create(em)
    em.grant(agent["id"], "github", expires_in=timedelta(hours=1), refresh_policy="auto")
    em.grant(agent["id"], "slack")
    first = as_agent(em, agent["apiKey"], "slack").json()["accessToken"]
    assert first.startswith("svc_slack_")
    em.advance(2 * 3600)
    expired = as_agent(em, agent["apiKey"], "github")
    assert expired.status_code == 403 and expired.json()["detail"]["code"] == "GRANT_EXPIRED"
    stale = as_agent(em, agent["apiKey"], "slack")
    assert stale.status_code == 409 and stale.json()["detail"]["code"] == "TOKEN_EXPIRED"
    again = call(em, "POST", f"/api/agents/{agent['id']}/grants", {"agentId": agent["id"], "serviceName": "github"})
    assert again.status_code == 201, "an expired grant no longer blocks granting the service again"
    assert requests.post(em.url + "/_sandbox/lock", json={"locked": True}, timeout=10).status_code == 204
    assert as_agent(em, agent["apiKey"]).json()["detail"]["code"] == "VAULT_LOCKED"


def test_sandbox_controls(em):
    agent = create(em)
    call(em, "POST", f"/api/agents/{agent['id']}/grants", {"agentId": agent["id"], "serviceName": "github"})
    assert requests.post(em.url + "/_sandbox/services", json={"name": "gitlab"}, timeout=10).status_code == 201
    assert requests.post(em.url + "/_sandbox/expire-grant", json={"agentId": agent["id"], "service": "github"},
                         timeout=10).status_code == 204
    minted = requests.post(em.url + "/_sandbox/keys", json={"scopes": ["agents:read"]}, timeout=10).json()["key"]
    assert call(em, "GET", "/api/agents", key=minted).status_code == 200
    world = requests.get(em.url + "/_sandbox/world", timeout=10).json()
    assert "gitlab" in world["services"] and world["agents"][0]["keyId"] == f"{agent['id']}/key-1"
    assert agent["apiKey"] not in json.dumps(world) and minted not in json.dumps(world)
    assert em.admin_key not in json.dumps(world)
    assert as_agent(em, agent["apiKey"], "github").json()["detail"]["code"] == "GRANT_EXPIRED"
    clock = requests.post(em.url + "/_sandbox/clock", json={"advance": 86400}, timeout=10).json()["now"]
    assert clock > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fault = requests.post(em.url + "/_sandbox/faults", json={"path": "rotate-key", "status": 503}, timeout=10)
    assert fault.status_code == 201
    assert call(em, "POST", f"/api/agents/{agent['id']}/rotate-key").status_code == 503
    assert call(em, "POST", f"/api/agents/{agent['id']}/rotate-key").status_code == 200

    em.reset()
    assert em.agent_ids() == [] and "gitlab" not in em.world()["services"]
    assert call(em, "GET", "/api/agents").status_code == 200, "the provider key survives a reset"
    assert call(em, "GET", "/api/agents", key=minted).status_code == 401
    assert all(m["revoked"] for m in em.minted()), "minted keys survive a reset, for canary scans"
    # The sandbox's own credentials are not tokens anyone minted: a destroyed stack leaves none valid.
    assert {em.admin_key, minted} & set(em.minted_values()) == set()


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
