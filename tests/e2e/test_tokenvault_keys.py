"""tokendrop_tokenvault_key and tokendrop_tokenvault_key_grant through the real terraform binary against
the Token Vault emulator and moto. Proves: create (the `tvkey_` key in the sink, its name carrying the
marker, the scopes asked for, the key works as itself); a 7-day key grant sent as `expiresInHours: 168`
on the key grant route and read back; refresh is clean; drift (a grant revoked outside, the sink
overwritten); rotation by a scope change (a successor key delivered as the next version, the old key
revoked, the grant replaced onto the new key, the rotate route never called); keep_previous_for; an
orphan of an interrupted create is swept; state lost after delivery adopts key and grant; destroy
revokes every key; `tokendrop audit` lists keys and flags their orphans; a provider key without
keys:manage fails the plan naming it; no key value in any artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from fixtures.terraform import PROVIDER_HEADER, scan

pytestmark = pytest.mark.e2e

KEY = "tokendrop_tokenvault_key.reader"
GRANT = "tokendrop_tokenvault_key_grant.github"
PARAMETER = "/ci/tokenvault/reader-key"


def config(scopes: str = '["agents:read", "tokens:list"]', extra: str = "", grant: bool = True) -> str:
    text = PROVIDER_HEADER + (f'resource "tokendrop_tokenvault_key" "reader" {{\n  name   = "ci-reader"\n'
                              f'  scopes = {scopes}\n  deliver_to = {{ ssm = {{ name = "{PARAMETER}" }} }}\n'
                              f'{extra}}}\n')
    if grant:
        text += ('resource "tokendrop_tokenvault_key_grant" "github" {\n'
                 '  key_id     = tokendrop_tokenvault_key.reader.id\n  service    = "github"\n'
                 '  expires_in = "7d"\n}\n')
    return text


@pytest.fixture
def box(sandbox, fresh_tokenvault_emulator):
    sandbox.tokenvault = fresh_tokenvault_emulator
    return sandbox


def keys(em) -> dict[str, dict]:
    """Keys tokendrop minted (the sandbox's own credentials left out), by id."""
    return {k["id"]: k for k in em.world()["keys"] if k["name"].startswith("ci-reader")}


def whoami(em, secret: str) -> requests.Response:
    return requests.get(f"{em.url}/api/agents/whoami", headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def test_key_with_a_grant_create_drift_rotate_destroy(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config())
    ws.init()
    assert "2 to add, 0 to change, 0 to destroy" in ws.plan().stdout
    assert [r for r in em.requests() if r["method"] != "GET"] == [], "plan writes nothing"
    ws.apply()

    state = ws.resources()
    key = state[KEY]
    [record] = keys(em).values()
    assert record["id"] == key["id"] and record["name"].startswith("ci-reader [td:")
    assert sorted(record["scopes"]) == ["agents:read", "tokens:list"]
    secret, version = box.ssm_value(PARAMETER)
    assert secret.startswith("tvkey_") and version == 1 and key["sink_version"] == 1
    assert key["expires_at"] is None and key["sink_status"] == "delivered"
    me = whoami(em, secret)
    assert me.status_code == 200 and me.json()["principal"]["id"] == key["id"], "the delivered key works"

    # The key grant: 168 hours on the route where an expiry exists, state as Token Vault answered.
    [sent] = [e for e in em.events() if e["event"] == "key_grant.created"]
    assert sent["fields"] == ["expiresInHours", "serviceName"]
    [held] = record["grants"]
    grant = state[GRANT]
    assert grant["id"] == f"{key['id']}/github" and grant["expires_at"] == held["grantExpiresAt"]
    assert held["grantExpiresAt"] is not None and grant["expires_in"] == "7d"
    assert ws.plan_exitcode().returncode == 0, "refresh reads back everything state holds"

    # Drift: the grant is revoked outside Terraform; the plan grants it again.
    admin = {"Authorization": f"Bearer {em.admin_key}"}
    assert requests.delete(f"{em.url}/api/keys/{key['id']}/grants/github", headers=admin, timeout=10).ok
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and f"{GRANT} will be created" in plan.stdout
    assert "Grant 'github' of Token Vault key" in plan.output
    ws.apply()
    assert [g["serviceName"] for g in keys(em)[key["id"]]["grants"]] == ["github"]

    # Rotation by a scope change: a successor key, delivered as version 2; the old key is revoked and
    # the grant follows the new key. Token Vault's rotate route is never called.
    ws.write(config('["agents:read", "tokens:list", "credentials:read"]'))
    plan = ws.plan()
    assert f"{KEY} will be updated in-place" in plan.stdout and "will rotate" in plan.output
    assert f"{GRANT} must be replaced" in plan.stdout
    ws.apply()
    rotated = ws.resources()[KEY]
    assert rotated["id"] != key["id"] and rotated["sink_version"] == 2
    assert list(keys(em)) == [rotated["id"]], "the old key is revoked"
    new_secret = box.ssm_value(PARAMETER)[0]
    assert whoami(em, new_secret).status_code == 200 and whoami(em, secret).status_code == 401
    assert [g["serviceName"] for g in keys(em)[rotated["id"]]["grants"]] == ["github"]
    assert ws.resources()[GRANT]["key_id"] == rotated["id"]
    assert not [r for r in em.requests() if r["path"].endswith("/rotate")]
    assert ws.plan_exitcode().returncode == 0

    # Someone overwrites the parameter: refresh sees it, the plan rotates, the sink holds a live key again.
    box.ssm().put_parameter(Name=PARAMETER, Value="not-a-key", Type="SecureString", Overwrite=True)
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and "overwritten" in plan.output
    ws.apply()
    repaired = ws.resources()[KEY]
    assert list(keys(em)) == [repaired["id"]] and box.ssm_value(PARAMETER)[1] == 4
    assert whoami(em, box.ssm_value(PARAMETER)[0]).status_code == 200

    ws.destroy()
    assert keys(em) == {}, "destroy revokes the key"
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_keep_previous_for_keeps_the_old_key_until_the_grace_ends(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config(extra='  keep_previous_for = "1h"\n  rotate_on = { n = "1" }\n', grant=False))
    ws.init()
    ws.apply()
    first = ws.resources()[KEY]
    ws.write(config(extra='  keep_previous_for = "1h"\n  rotate_on = { n = "2" }\n', grant=False))
    ws.apply()
    second = ws.resources()[KEY]
    assert second["previous_token_id"] == first["id"] and set(keys(em)) == {first["id"], second["id"]}
    ws.destroy()
    assert keys(em) == {}, "destroy revokes the current and the previous key"
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_an_orphan_key_of_an_interrupted_create_is_swept(box, make_workspace):
    """A key minted with this sink's marker but never delivered (a crash between the POST and the sink
    write) is revoked by the next create to that sink."""
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config(grant=False))
    ws.init()
    ws.apply()
    name = keys(em)[ws.resources()[KEY]["id"]]["name"]  # "ci-reader [td:…]": the marker of this sink
    ws.destroy()
    orphan = requests.post(f"{em.url}/api/keys", json={"name": name, "scopes": ["agents:read"], "expiresAt": None},
                           headers={"Authorization": f"Bearer {em.admin_key}"}, timeout=10).json()["id"]
    ws.apply()
    assert list(keys(em)) == [ws.resources()[KEY]["id"]] and orphan not in keys(em)
    ws.destroy()
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_a_provider_key_without_keys_manage_fails_the_plan_naming_it(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace({**box.env, "TOKENVAULT_API_KEY": em.mint_key(["agents:read", "grants:write"])})
    ws.write(config())
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "lacks the scope keys:manage" in text and "tokenvault_api_key" in text
    assert [r for r in em.requests() if r["method"] != "GET"] == [] and keys(em) == {}


def test_state_lost_after_delivery_adopts_the_key_and_the_grant(box, make_workspace):
    """A crash after the sink write and the grant POST, before Terraform saved state (simulated by
    `state rm`): the next apply adopts the delivered key (its ownership record names it) instead of
    minting another, and the grant Token Vault already holds (409) instead of granting twice. A grant
    whose expiry does not fit expires_in is revoked and granted as configured."""
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config())
    ws.init()
    ws.apply()
    key = ws.resources()[KEY]
    ws.run("state", "rm", KEY, GRANT)
    result = ws.apply()
    assert "Adopted a token delivered by an interrupted run" in result.output
    assert " ".join(result.output.split()).count("already held a grant for 'github'") == 1
    assert ws.resources()[KEY]["id"] == key["id"] and list(keys(em)) == [key["id"]], "no second key"
    assert box.ssm_value(PARAMETER)[1] == 1, "the sink was not written again"
    assert len([e for e in em.events() if e["event"] == "key_grant.created"]) == 1, "not granted twice"

    # Someone re-grants github without an expiry, and state forgets the grant: 7 days are restored.
    admin = {"Authorization": f"Bearer {em.admin_key}"}
    assert requests.delete(f"{em.url}/api/keys/{key['id']}/grants/github", headers=admin, timeout=10).ok
    assert requests.post(f"{em.url}/api/keys/{key['id']}/grants", json={"serviceName": "github"}, headers=admin,
                         timeout=10).status_code == 201
    ws.run("state", "rm", GRANT)
    ws.apply()
    [held] = keys(em)[key["id"]]["grants"]
    assert held["grantExpiresAt"] is not None and ws.resources()[GRANT]["expires_at"] == held["grantExpiresAt"]
    ws.destroy()
    assert keys(em) == {}
    assert scan([m["value"] for m in em.minted()], ws.artifacts()) == []


def test_the_audit_lists_keys_by_name_and_finds_their_orphans(box, make_workspace):
    """`tokendrop audit` over a state holding a key: the key is listed (one GET /api/keys per name), not
    mistaken for an agent; a key carrying this sink's marker that no state knows is flagged an orphan
    belonging to the resource; no value in the audit's output."""
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config(grant=False))
    ws.init()
    ws.apply()
    key = ws.resources()[KEY]
    name = keys(em)[key["id"]]["name"]
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}

    def audit() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).with_name("tokendrop")), "audit", "--state",
                               str(ws.directory / "terraform.tfstate"), "--json"], capture_output=True, text=True,
                              env={**keep, **box.env}, timeout=120, check=False)

    clean = audit()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    [row] = json.loads(clean.stdout)["tokens"]
    assert (row["address"], row["issuer"], row["token_id"], row["flags"]) == (KEY, "tokenvault_key", key["id"], [])
    assert row["sink"]["status"] == "delivered"

    orphan = requests.post(f"{em.url}/api/keys", json={"name": name, "scopes": ["agents:read"], "expiresAt": None},
                           headers={"Authorization": f"Bearer {em.admin_key}"}, timeout=10).json()["id"]
    flagged = audit()
    assert flagged.returncode == 1
    found = {r["token_id"]: r for r in json.loads(flagged.stdout)["tokens"] if r["address"] is None}
    assert list(found) == [orphan] and [f["code"] for f in found[orphan]["flags"]] == ["orphan"]
    assert found[orphan]["belongs_to"] == KEY
    values = [m["value"] for m in em.minted()]
    assert scan(values, [("audit", clean.stdout + clean.stderr + flagged.stdout + flagged.stderr)]) == []
    ws.destroy()
    assert keys(em) == {}


def test_import_a_key_by_its_sink_and_a_key_grant(box, make_workspace):
    em = box.tokenvault
    ws = make_workspace(box.env)
    ws.write(config(extra='  expires_at = "2031-01-01T00:00:00Z"\n'))
    ws.init()
    ws.apply()
    key = ws.resources()[KEY]
    ws.run("state", "rm", KEY, GRANT)
    ws.run("import", "-no-color", KEY, f"ci-reader/ssm:{PARAMETER}")  # the sink's record names the key
    ws.run("import", "-no-color", GRANT, f"{key['id']}/github")
    imported = ws.resources()
    assert imported[KEY]["id"] == key["id"] and imported[KEY]["sink_version"] == 1
    assert sorted(imported[KEY]["scopes"]) == ["agents:read", "tokens:list"]
    assert imported[KEY]["expires_at"] == "2031-01-01T00:00:00.000Z"  # Token Vault's spelling of the moment
    assert imported[GRANT]["id"] == f"{key['id']}/github" and imported[GRANT]["expires_at"] is not None
    # expires_in is configuration only: an imported grant takes it as unset, so the plan replaces it once.
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and f"{GRANT} must be replaced" in plan.stdout
    assert f"{KEY} must be replaced" not in plan.stdout and "will rotate" not in plan.output, \
        "the same expiry spelled otherwise is not a new key"
    ws.apply()
    assert ws.resources()[KEY]["id"] == key["id"] and ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert keys(em) == {}
