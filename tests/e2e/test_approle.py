"""AppRole secret ids through the real terraform binary against the real OpenBao server (and moto).
Proves: create (the sink holds {role_id, secret_id} that log in; state holds the accessor only;
metadata, CIDRs and the marker are on the secret id); rotation (a changed argument, and
rotate_before_expiry) mints a new one and destroys the old; a secret id destroyed out of band is
re-created; destroy; a Vault token whose policy forbids minting fails the plan naming the path and
capability, with nothing created; and no secret id ever appears in an artifact."""

from __future__ import annotations

import datetime
import json
import uuid

import hvac
import pytest

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.delivery import marker
from tokendrop_provider.sandbox.approle import setup_sample_approle
from tokendrop_provider.sandbox.servers import create_policy_token

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER
ADDRESS = "tokendrop_vault_approle_secret_id.ci"
SSM = '{ ssm = { name = "/ci/vault/secret-id" } }'
VAULT = '{ vault_kv = { path = "ci/vault-login" } }'


def secret_id(role: str, deliver_to: str = SSM, extra: str = "") -> str:
    return HEADER + (f'resource "tokendrop_vault_approle_secret_id" "ci" {{\n  role_name  = "{role}"\n'
                     f"  deliver_to = {deliver_to}\n{extra}}}\n")


@pytest.fixture
def role(sandbox) -> str:
    """A fresh AppRole role (the sandbox's sample setup, under a unique name) on the shared OpenBao."""
    name = f"ci-{uuid.uuid4().hex[:8]}"
    setup_sample_approle(sandbox.bao, role=name)
    return name


def accessors(box, role: str) -> list[str]:
    try:
        return box.bao.api("LIST", f"auth/approle/role/{role}/secret-id")["data"]["keys"]
    except RuntimeError as exc:  # no secret ids: OpenBao answers 404
        if "404" not in str(exc):
            raise
        return []


def lookup(box, role: str, accessor: str) -> dict | None:
    try:
        return box.bao.api("POST", f"auth/approle/role/{role}/secret-id-accessor/lookup",
                           {"secret_id_accessor": accessor})["data"]
    except RuntimeError as exc:  # destroyed, expired or used up
        if "404" not in str(exc):
            raise
        return None


def logs_in(box, delivered: dict) -> bool:
    try:
        hvac.Client(url=box.bao.url).auth.approle.login(role_id=delivered["role_id"],
                                                        secret_id=delivered["secret_id"])
    except hvac.exceptions.InvalidRequest:
        return False
    return True


class Seen:
    """Every secret id the sinks ever held, for the canary scan."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def __call__(self, delivered: dict) -> dict:
        self.values.append(delivered["secret_id"])
        return delivered


def test_create_rotate_drift_destroy(sandbox, role, make_workspace):
    seen = Seen()
    ws = make_workspace(sandbox.env)
    extra = ('  ttl = "24h"\n  cidr_list = ["127.0.0.0/8"]\n  token_bound_cidrs = ["127.0.0.1/32"]\n'
             '  num_uses = 0\n  metadata = { pipeline = "deploy" }\n')
    ws.write(secret_id(role, extra=extra))
    ws.init()
    plan = ws.plan("-out=tfplan")
    assert "1 to add" in plan.stdout and accessors(sandbox, role) == [], "plan mints nothing"
    ws.apply("tfplan")

    state = ws.resources()[ADDRESS]
    raw, version = sandbox.ssm_value("/ci/vault/secret-id")
    delivered = seen(json.loads(raw))
    role_id = sandbox.bao.api("GET", f"auth/approle/role/{role}/role-id")["data"]["role_id"]
    assert set(delivered) == {"role_id", "secret_id"} and delivered["role_id"] == role_id and version == 1
    assert accessors(sandbox, role) == [state["id"]], "state keeps the accessor of the one secret id"
    assert delivered["secret_id"] not in json.dumps(state) and role_id not in json.dumps(state)
    info = lookup(sandbox, role, state["id"])
    assert info["metadata"]["pipeline"] == "deploy" and info["metadata"]["tokendrop_marker"].startswith("td:")
    assert info["cidr_list"] == ["127.0.0.0/8"] and info["token_bound_cidrs"] == ["127.0.0.1/32"]
    expires = datetime.datetime.fromisoformat(state["expires_at"].replace("Z", "+00:00"))
    left = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=23) < left <= datetime.timedelta(hours=24)
    assert logs_in(sandbox, delivered), "the delivered pair logs in"
    assert ws.plan_exitcode().returncode == 0

    # Any change of the secret id's arguments mints a new one and destroys the old one.
    ws.write(secret_id(role, extra=extra.replace('"deploy"', '"release"')))
    plan = ws.plan()
    assert "will rotate" in plan.output and "metadata changed" in plan.output
    ws.apply()
    rotated = ws.resources()[ADDRESS]
    raw, version = sandbox.ssm_value("/ci/vault/secret-id")
    new = seen(json.loads(raw))
    assert rotated["id"] != state["id"] and version == 2 and rotated["sink_version"] == 2
    assert accessors(sandbox, role) == [rotated["id"]] and lookup(sandbox, role, state["id"]) is None
    assert logs_in(sandbox, new) and not logs_in(sandbox, delivered)
    assert ws.plan_exitcode().returncode == 0

    # Destroyed outside Terraform: refresh drops it, the plan creates a new one.
    sandbox.bao.api("POST", f"auth/approle/role/{role}/secret-id-accessor/destroy",
                    {"secret_id_accessor": rotated["id"]})
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and f"{ADDRESS} will be created" in plan.stdout
    ws.apply()
    recreated = ws.resources()[ADDRESS]
    raw, version = sandbox.ssm_value("/ci/vault/secret-id")
    assert version == 3 and logs_in(sandbox, seen(json.loads(raw)))
    assert accessors(sandbox, role) == [recreated["id"]]
    assert ws.plan_exitcode().returncode == 0

    ws.destroy()
    assert accessors(sandbox, role) == [] and sandbox.ssm_value("/ci/vault/secret-id") is None

    assert len(set(seen.values)) == 3
    assert scan(seen.values, ws.artifacts()) == []
    planted = ("planted.txt", f"leaked: {seen.values[0]}")
    assert [name for name, _ in scan(seen.values, [*ws.artifacts(), planted])] == ["planted.txt"]


def test_vault_sink_and_rotate_before_expiry(sandbox, role, make_workspace):
    seen = Seen()
    ws = make_workspace(sandbox.env)
    ws.write(secret_id(role, VAULT, '  ttl = "2h"\n  rotate_before_expiry = "1h"\n  keep_previous_for = "1h"\n'))
    ws.init()
    ws.apply()
    first = ws.resources()[ADDRESS]
    data, version = sandbox.vault_value("ci/vault-login")
    assert version == 1 and set(data) == {"role_id", "secret_id"} and logs_in(sandbox, seen(data))
    assert ws.plan_exitcode().returncode == 0

    # As if the secret id were 90 minutes older: within rotate_before_expiry of its expiry. (A refresh
    # would read the real expiry back, so this plan and apply skip it.)
    ws.shift_state_time(ADDRESS, "expires_at", datetime.timedelta(minutes=90))
    plan = ws.plan("-refresh=false")
    assert "expiry near" in plan.output and "rotate_before_expiry 1h" in plan.output
    ws.apply("-refresh=false")
    second = ws.resources()[ADDRESS]
    data, version = sandbox.vault_value("ci/vault-login")
    assert version == 2 and second["id"] != first["id"] and logs_in(sandbox, seen(data))
    assert second["previous_token_id"] == first["id"], "kept for keep_previous_for"
    assert sorted(accessors(sandbox, role)) == sorted([first["id"], second["id"]])
    ws.destroy()
    assert accessors(sandbox, role) == [] and sandbox.vault_value("ci/vault-login") is None
    assert scan(seen.values, ws.artifacts()) == []


def test_a_token_that_may_not_mint_fails_the_plan(sandbox, role, make_workspace):
    # May read the role id, but not generate, list, look up or destroy secret ids.
    token = create_policy_token(sandbox.bao, policy_name=f"read-role-{role}",
                                policy=f'path "auth/approle/role/{role}/role-id" {{ capabilities = ["read"] }}')
    ws = make_workspace({**sandbox.env, "VAULT_TOKEN": token})
    ws.write(secret_id(role))
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "may not manage this role's secret ids" in text and "role_name" in text
    assert f'path "auth/approle/role/{role}/secret-id": needs "update"' in text
    assert accessors(sandbox, role) == [], "nothing was created"
    assert sandbox.ssm_value("/ci/vault/secret-id") is None


def test_an_unknown_role_fails_the_plan(sandbox, role, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(secret_id("no-such-role"))
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "AppRole role not found" in result.stderr and "role_name" in result.stderr


BAD = {
    "negative ttl": ('  ttl = "-1h"\n', "ttl"),
    "malformed ttl": ('  ttl = "soon"\n', "ttl"),
    "negative num_uses": ("  num_uses = -1\n", "num_uses"),
    "fractional num_uses": ("  num_uses = 1.5\n", "num_uses"),
    "malformed cidr": ('  cidr_list = ["10.0.0.1/8x"]\n', "cidr_list"),
    "host bits in cidr": ('  token_bound_cidrs = ["10.0.0.1/8"]\n', "token_bound_cidrs"),
    "reserved metadata key": ('  metadata = { tokendrop_marker = "x" }\n', "metadata"),
    "rotate_before_expiry without ttl": ('  rotate_before_expiry = "1h"\n', "rotate_before_expiry"),
    "bad role name": (None, "role_name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_the_plan_naming_the_attribute(case, sandbox, role, make_workspace):
    extra, attribute = BAD[case]
    ws = make_workspace(sandbox.env)
    ws.write(secret_id("has space", extra="") if extra is None else secret_id(role, extra=extra))
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1, result
    assert "Error:" in result.stderr and attribute in result.stderr, result.stderr
    assert accessors(sandbox, role) == []


def test_orphans_are_swept_and_import_adopts_from_the_sink(sandbox, role, make_workspace):
    """A secret id left by an interrupted run (it carries this sink's marker in its metadata) is destroyed
    by the next delivery; one without the marker is left alone. Then import adopts the delivered one."""
    seen = Seen()
    mark = marker("vault-approle", f"approle/{role}", "ssm:/ci/vault/secret-id")
    orphan = sandbox.bao.api("POST", f"auth/approle/role/{role}/secret-id",
                             {"metadata": json.dumps({"tokendrop_marker": mark})})["data"]
    stranger = sandbox.bao.api("POST", f"auth/approle/role/{role}/secret-id", {})["data"]
    seen.values += [orphan["secret_id"], stranger["secret_id"]]
    ws = make_workspace(sandbox.env)
    ws.write(secret_id(role, extra='  metadata = { pipeline = "deploy" }\n'))
    ws.init()
    result = ws.apply()
    state = ws.resources()[ADDRESS]
    assert "Revoked orphaned tokens" in result.output and orphan["secret_id_accessor"] in result.output
    assert sorted(accessors(sandbox, role)) == sorted([state["id"], stranger["secret_id_accessor"]])
    seen(json.loads(sandbox.ssm_value("/ci/vault/secret-id")[0]))

    ws.run("state", "rm", ADDRESS)
    ws.run("import", "-no-color", ADDRESS, f"approle/{role}/ssm:/ci/vault/secret-id")
    imported = ws.resources()[ADDRESS]
    assert imported["id"] == state["id"] and imported["role_name"] == role and imported["mount"] == "approle"
    assert imported["metadata"] == {"pipeline": "deploy"} and imported["sink_version"] == 1
    assert imported["expires_at"] == state["expires_at"]
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.destroy()
    assert accessors(sandbox, role) == [stranger["secret_id_accessor"]], "only ours are destroyed"
    assert scan(seen.values, ws.artifacts()) == []
