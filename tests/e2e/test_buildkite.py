"""Buildkite clusters and cluster agent tokens through the real terraform binary: create (one token to
SSM, one to Vault), in-place edits of description and allowed IPs that keep the token and the sink
version, an expiry change that replaces the token and says why, out-of-band revocation and expiry
noticed by refresh (the sink is overwritten by the new token), refresh over 250 tokens (all pages),
429 answers that slow an apply down without failing it, destroy, import, bad input refused at plan
time with no write at Buildkite, and the canary scan over every artifact."""

from __future__ import annotations

import datetime

import pytest
import requests

from fixtures.terraform import PROVIDER_HEADER, scan
from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER

CLUSTER = """
resource "tokendrop_buildkite_cluster" "linux" {
  name        = "linux"
  description = "Linux agents"
  emoji       = ":penguin:"
  color       = "#FF9900"
}
"""

SSM_TOKEN = """
resource "tokendrop_buildkite_cluster_token" "elastic" {{
  cluster_id           = tokendrop_buildkite_cluster.linux.id
  description          = "{description}"
  allowed_ip_addresses = {ips}
  expires_in           = "{expires_in}"
  deliver_to = {{
    ssm = {{ name = "/buildkite/linux/agent-token" }}
  }}
}}
"""

VAULT_TOKEN = """
resource "tokendrop_buildkite_cluster_token" "batch" {
  organization = "acme"
  cluster_id   = tokendrop_buildkite_cluster.linux.id
  description  = "batch agents"
  deliver_to = {
    vault_kv = { path = "ci/buildkite/linux" }
  }
}
"""

ELASTIC = "tokendrop_buildkite_cluster_token.elastic"
BATCH = "tokendrop_buildkite_cluster_token.batch"
TOKEN_STATE_KEYS = {
    "id", "organization", "cluster_id", "description", "allowed_ip_addresses", "expires_in", "expires_at",
    "rotate_before_expiry", "deliver_to", "rotate_every", "rotate_on", "keep_previous_for", "adopt_existing",
    "sink_address", "sink_version", "sink_status", "created_at", "previous_token_id", "previous_revoke_after",
    "revoke_previous_when", "sinks",
}


def config(description: str = "elastic stack", ips: str = '["10.0.0.0/8", "192.0.2.7/32"]',
           expires_in: str = "90d", vault: bool = True) -> str:
    return (HEADER + CLUSTER + SSM_TOKEN.format(description=description, ips=ips, expires_in=expires_in)
            + (VAULT_TOKEN if vault else ""))


class Buildkite:
    """The test's view of the Buildkite emulator, beside the sandbox's sinks."""

    def __init__(self, em: BuildkiteEmulator) -> None:
        self.em = em
        self.baseline = frozenset(m["id"] for m in em.minted())

    def minted(self) -> list[dict]:
        return [m for m in self.em.minted() if m["id"] not in self.baseline]

    def values(self) -> list[str]:
        return [m["value"] for m in self.minted()]

    def value(self, token_id: str) -> str:
        return next(m["value"] for m in self.minted() if m["id"] == token_id)

    def writes(self) -> list[dict]:
        return [r for r in self.em.requests() if r["method"] in ("POST", "PUT", "DELETE")]

    def live(self, cluster_id: str) -> list[str]:
        return self.em.cluster_tokens(cluster_id, include_expired=False)

    def revoke_out_of_band(self, cluster_id: str, token_id: str) -> None:
        """Revoke through the REST API, as someone with a script or the UI would."""
        response = requests.delete(f"{self.em.url}/v2/organizations/acme/clusters/{cluster_id}/tokens/{token_id}",
                                   headers={"Authorization": f"Bearer {self.em.sandbox_token}"}, timeout=10)
        assert response.status_code == 204, response.text


@pytest.fixture
def bk(sandbox, fresh_buildkite_emulator: BuildkiteEmulator) -> Buildkite:
    sandbox.buildkite = fresh_buildkite_emulator  # adds BUILDKITE_* to sandbox.env
    return Buildkite(fresh_buildkite_emulator)


def when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def days_from_now(text: str) -> float:
    return (when(text) - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400


def test_cluster_and_tokens_lifecycle(sandbox, bk, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(config())
    ws.init()
    plan = ws.plan("-out=tfplan")
    assert "3 to add, 0 to change, 0 to destroy" in plan.stdout
    assert bk.writes() == [], "plan must not write at Buildkite"

    ws.apply("tfplan")
    res = ws.resources()
    cluster, elastic, batch = res["tokendrop_buildkite_cluster.linux"], res[ELASTIC], res[BATCH]
    assert cluster["organization"] == "acme"  # from BUILDKITE_ORGANIZATION_SLUG
    em_cluster = bk.em.clusters[cluster["id"]]
    assert (em_cluster.name, em_cluster.emoji, em_cluster.color) == ("linux", ":penguin:", "#FF9900")
    assert sorted(bk.live(cluster["id"])) == sorted([elastic["id"], batch["id"]])
    assert sandbox.ssm_value("/buildkite/linux/agent-token") == (bk.value(elastic["id"]), 1)
    assert sandbox.vault_value("ci/buildkite/linux") == ({"token": bk.value(batch["id"])}, 1)
    issued = bk.em.tokens[elastic["id"]]
    assert issued.allowed_ip_addresses == "10.0.0.0/8 192.0.2.7/32"
    assert issued.description.startswith("elastic stack [td:")
    assert 89.9 < days_from_now(elastic["expires_at"]) <= 90.01  # computed at mint: now + 90d
    assert batch["expires_at"] is None and bk.em.tokens[batch["id"]].expires_at is None
    for attrs in (elastic, batch):
        assert set(attrs) <= TOKEN_STATE_KEYS and attrs["sink_status"] == "delivered"
    assert ws.plan_exitcode().returncode == 0

    # Description and allowed IPs change in place: same token, no new sink version, no mint.
    bk.em.clear_requests()
    ws.write(config(description="elastic stack (eu)", ips='["10.0.0.0/8"]'))
    plan = ws.plan()
    assert f"{ELASTIC} will be updated in-place" in plan.stdout and "will rotate" not in plan.output
    ws.apply()
    after = ws.resources()[ELASTIC]
    assert after["id"] == elastic["id"] and after["sink_version"] == 1
    assert after["expires_at"] == elastic["expires_at"]
    issued = bk.em.tokens[elastic["id"]]
    assert issued.description.startswith("elastic stack (eu) [td:") and issued.allowed_ip_addresses == "10.0.0.0/8"
    assert [(w["method"], w["status"]) for w in bk.writes()] == [("PUT", 200)]
    assert sandbox.ssm_value("/buildkite/linux/agent-token") == (bk.value(elastic["id"]), 1)
    assert ws.plan_exitcode().returncode == 0

    # An edit made in Buildkite's UI is drift: the plan puts it back, in place.
    bk.em.tokens[elastic["id"]].allowed_ip_addresses = "0.0.0.0/0"
    plan = ws.plan()
    assert f"{ELASTIC} will be updated in-place" in plan.stdout and "allowed_ip_addresses" in plan.stdout
    ws.apply()
    assert bk.em.tokens[elastic["id"]].allowed_ip_addresses == "10.0.0.0/8"

    # The expiry is immutable at Buildkite: a new one replaces the token, and the plan says why.
    ws.write(config(description="elastic stack (eu)", ips='["10.0.0.0/8"]', expires_in="30d"))
    plan = ws.plan()
    assert f"{ELASTIC} must be replaced" in plan.stdout and "# forces replacement" in plan.stdout
    reason = " ".join(plan.output.split())
    assert f"{ELASTIC.split('.')[0]} {elastic['id']} must be replaced: its expiry changes" in reason
    assert "Buildkite cannot change the expiry of a token (expires_in 90d -> 30d)" in reason
    ws.apply()
    replaced = ws.resources()[ELASTIC]
    assert replaced["id"] != elastic["id"] and 29.9 < days_from_now(replaced["expires_at"]) <= 30.01
    assert sorted(bk.live(cluster["id"])) == sorted([replaced["id"], batch["id"]])
    assert sandbox.ssm_value("/buildkite/linux/agent-token")[0] == bk.value(replaced["id"])
    assert ws.plan_exitcode().returncode == 0

    # Import adopts the Vault token from its sink (organization from the provider).
    ws.run("state", "rm", BATCH)
    ws.run("import", "-no-color", BATCH, f"{cluster['id']}/vault_kv:secret/ci/buildkite/linux#token")
    imported = ws.resources()[BATCH]
    assert imported["id"] == batch["id"] and imported["organization"] == "acme" and imported["sink_version"] == 1
    assert ws.plan_exitcode().returncode == 0, ws.results[-1]
    ws.show_json()

    ws.destroy()
    assert bk.em.clusters == {} and bk.em.tokens == {}
    assert sandbox.ssm_value("/buildkite/linux/agent-token") is None
    assert sandbox.vault_value("ci/buildkite/linux") is None
    revoked = {m["id"] for m in bk.minted() if m["revoked"]}
    assert {elastic["id"], replaced["id"], batch["id"]} <= revoked
    token_deletes = [w for w in bk.writes() if w["method"] == "DELETE" and "/tokens/" in w["path"]]
    assert {w["path"].rsplit("/", 1)[1] for w in token_deletes} >= {replaced["id"], batch["id"]}, \
        "destroy revokes each token before the cluster goes"

    values = bk.values()
    assert len(values) == 3
    assert scan(values, ws.artifacts()) == []
    planted = ("planted.txt", f"leaked: {values[-1]}")
    assert [name for name, _ in scan(values, [*ws.artifacts(), planted])] == ["planted.txt"]


def test_revoked_or_expired_tokens_are_minted_again_and_overwrite_their_sinks(sandbox, bk, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(config())
    ws.init()
    ws.apply()
    res = ws.resources()
    cluster_id, elastic, batch = res["tokendrop_buildkite_cluster.linux"]["id"], res[ELASTIC], res[BATCH]

    bk.revoke_out_of_band(cluster_id, elastic["id"])
    bk.em.expire_token(batch["id"])  # as if 90 days had passed
    plan = ws.plan_exitcode()
    assert plan.returncode == 2
    assert f"{ELASTIC} will be created" in plan.stdout and f"{BATCH} will be created" in plan.stdout

    ws.apply()
    after = ws.resources()
    new_elastic, new_batch = after[ELASTIC], after[BATCH]
    assert new_elastic["id"] != elastic["id"] and new_batch["id"] != batch["id"]
    # Our own sinks are overwritten (a new version), not refused as someone else's.
    assert sandbox.ssm_value("/buildkite/linux/agent-token") == (bk.value(new_elastic["id"]), 2)
    assert sandbox.vault_value("ci/buildkite/linux") == ({"token": bk.value(new_batch["id"])}, 2)
    assert sorted(bk.live(cluster_id)) == sorted([new_elastic["id"], new_batch["id"]])
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(bk.values(), ws.artifacts()) == []


def test_rotation_before_expiry_mints_a_token_with_a_fresh_expiry(sandbox, bk, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + CLUSTER + SSM_TOKEN.format(description="elastic stack", ips="null", expires_in="30d")
             .replace('expires_in           = "30d"', 'expires_in           = "30d"\n  rotate_before_expiry = "7d"'))
    ws.init()
    ws.apply()
    first = ws.resources()[ELASTIC]
    assert ws.plan_exitcode().returncode == 0

    # 25 days later (Buildkite reports the expiry; refresh reads it): 5 days left, less than 7.
    bk.em.tokens[first["id"]].expires_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=5)
    plan = ws.plan()
    assert f"{ELASTIC} will be updated in-place" in plan.stdout
    assert "expiry near: expires in 4d, rotate_before_expiry 7d" in " ".join(plan.output.split())
    ws.apply()
    second = ws.resources()[ELASTIC]
    assert second["id"] != first["id"] and 29.9 < days_from_now(second["expires_at"]) <= 30.01
    assert sandbox.ssm_value("/buildkite/linux/agent-token") == (bk.value(second["id"]), 2)
    assert bk.live(ws.resources()["tokendrop_buildkite_cluster.linux"]["id"]) == [second["id"]]
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(bk.values(), ws.artifacts()) == []


def test_refresh_reads_every_page_of_a_cluster_with_250_tokens(sandbox, bk, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + CLUSTER)
    ws.init()
    ws.apply()
    cluster_id = ws.resources()["tokendrop_buildkite_cluster.linux"]["id"]
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    for i in range(249):  # older than ours: our token is the 250th, on the third page
        bk.em.create_cluster_token(cluster_id, f"someone else's {i}", created_at=start + datetime.timedelta(seconds=i))
    ws.write(config(vault=False))
    ws.apply()
    token_id = ws.resources()[ELASTIC]["id"]
    assert bk.em.cluster_tokens(cluster_id).index(token_id) == 249

    bk.em.clear_requests()
    assert ws.plan_exitcode().returncode == 0, "refresh found the token on the last page"
    lists = bk.em.requests(method="GET", path=r"/tokens$")
    assert [(r["query"]["page"], r["query"]["per_page"]) for r in lists] == [("1", "100"), ("2", "100"),
                                                                              ("3", "100")]
    assert bk.em.requests(method="GET", path=r"/tokens/") == [], "one listing answers every token: no per-token GET"

    bk.revoke_out_of_band(cluster_id, token_id)
    plan = ws.plan_exitcode()
    assert plan.returncode == 2 and f"{ELASTIC} will be created" in plan.stdout
    ws.destroy()


def test_429_answers_slow_the_apply_down_and_it_still_succeeds(sandbox, bk, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(config())
    ws.init()
    # Buildkite refuses the first two mints with the documented 429 body and a RateLimit-Reset.
    bk.em.add_fault("/tokens$", method="POST", status=429, count=2, headers={"RateLimit-Reset": "2"}, body={
        "message": "You have exceeded your API rate limit. Please wait 2 seconds before making more requests.",
        "scope": "rest_user", "limit": 50, "current": 51, "reset": 2})
    ws.apply()
    res = ws.resources()
    posts = [r["status"] for r in bk.em.requests(method="POST", path=r"/tokens$")]
    assert posts.count(429) == 2 and posts.count(201) == 2
    cluster_id = res["tokendrop_buildkite_cluster.linux"]["id"]
    assert sorted(bk.live(cluster_id)) == sorted([res[ELASTIC]["id"], res[BATCH]["id"]])

    # The real limit, made small: five requests per user per 3-second window, and four more tokens
    # to mint at terraform's parallelism. The provider reads the RateLimit-User-* headers (and any
    # 429) and waits for the window instead of failing.
    bk.em.set_rate_limit(user_limit=5, window=3)
    bk.em.clear_requests()
    ws.write(config(description="paced", ips='["10.1.0.0/16"]') + MORE_TOKENS)
    ws.apply()
    statuses = [r["status"] for r in bk.em.requests()]
    assert len(statuses) > 5 and set(statuses) <= {200, 201, 204, 429}
    res = ws.resources()
    assert bk.em.tokens[res[ELASTIC]["id"]].description.startswith("paced")
    for i in range(4):
        state = ws.state()
        more = next(r for r in state["resources"] if r["name"] == "more")["instances"][i]["attributes"]
        assert sandbox.ssm_value(f"/buildkite/more/{i}") == (bk.value(more["id"]), 1)
    ws.destroy()
    assert scan(bk.values(), ws.artifacts()) == []


MORE_TOKENS = """
resource "tokendrop_buildkite_cluster_token" "more" {
  count       = 4
  cluster_id  = tokendrop_buildkite_cluster.linux.id
  description = "more ${count.index}"
  deliver_to  = { ssm = { name = "/buildkite/more/${count.index}" } }
}
"""


# -- bad input --------------------------------------------------------------------------------------------

TOKEN_FOR = """
resource "tokendrop_buildkite_cluster_token" "t" {{
  cluster_id  = "{cluster_id}"
  description = "ci"
  deliver_to  = {{ ssm = {{ name = "/buildkite/t" }} }}
{extra}}}
"""


def _in(minutes: int) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


BAD = {
    "invalid CIDR": ('  allowed_ip_addresses = ["10.0.0.0/8", "10.0.0.1/33"]\n', "allowed_ip_addresses"),
    "CIDR with host bits": ('  allowed_ip_addresses = ["10.0.0.1/8"]\n', "allowed_ip_addresses"),
    "IPv6 CIDR": ('  allowed_ip_addresses = ["10.0.0.0/8", "2001:db8::/32"]\n', "allowed_ip_addresses"),
    "expires_in under 10 minutes": ('  expires_in = "5m"\n', "expires_in"),
    "expires_at in the past": ('  expires_at = "2020-01-01T00:00:00Z"\n', "expires_at"),
    "expires_at in 5 minutes": ('  expires_at = "__IN_5__"\n', "expires_at"),
    "expires_in and expires_at": ('  expires_in = "1d"\n  expires_at = "2099-01-01T00:00:00Z"\n', "expires_at"),
    "empty description": ("", "description"),
    "unknown cluster": ("", "cluster_id"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_the_plan_naming_the_attribute(case, sandbox, bk, make_workspace):
    extra, attribute = BAD[case]
    cluster_id = bk.em.create_cluster("acme", "existing")
    if case == "unknown cluster":
        cluster_id = "00000000-0000-0000-0000-000000000000"
    body = TOKEN_FOR.format(cluster_id=cluster_id, extra=extra.replace("__IN_5__", _in(5)))
    if case == "empty description":
        body = body.replace('description = "ci"', 'description = ""')
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + body)
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1, result
    assert "Error:" in result.stderr and attribute in result.stderr, (attribute, result.stderr)
    assert bk.writes() == [], "nothing may be written at Buildkite"
    assert bk.em.tokens == {}


def test_missing_organization_slug_fails_the_plan(sandbox, bk, make_workspace):
    env = {k: v for k, v in sandbox.env.items() if k != "BUILDKITE_ORGANIZATION_SLUG"}
    ws = make_workspace(env)
    ws.write(HEADER + CLUSTER)
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "Missing Buildkite organization" in result.stderr and "BUILDKITE_ORGANIZATION_SLUG" in result.stderr
    assert "organization" in result.stderr
    assert bk.em.requests() == []


def test_missing_api_token_fails_the_plan(sandbox, bk, make_workspace):
    env = {k: v for k, v in sandbox.env.items() if k != "BUILDKITE_API_TOKEN"}
    ws = make_workspace(env)
    ws.write(HEADER + TOKEN_FOR.format(cluster_id=bk.em.create_cluster("acme", "x"), extra=""))
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "Missing Buildkite API token" in result.stderr
    assert "buildkite_api_token" in result.stderr and "BUILDKITE_API_TOKEN" in result.stderr
    assert bk.em.requests() == []


def test_unknown_organization_fails_the_plan(sandbox, bk, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + CLUSTER.replace('name        = "linux"', 'organization = "nope"\n  name = "linux"'))
    ws.init()
    result = ws.plan(check=False)
    assert result.returncode == 1
    assert "Organization not found" in result.stderr and "organization" in result.stderr
    assert bk.writes() == []


def test_an_expiring_token_gives_its_advanced_ssm_parameter_an_expiration_policy(sandbox, bk, make_workspace):
    """The parameter should not outlive the token it holds: with a tier that allows policies, the token's
    expiry becomes the parameter's Expiration policy (and is replaced at each rotation)."""
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + CLUSTER + SSM_TOKEN.format(description="elastic stack", ips="null", expires_in="2h")
             .replace('name = "/buildkite/linux/agent-token"',
                      'name = "/buildkite/linux/agent-token", tier = "Advanced"'))
    ws.init()
    ws.apply()
    token = ws.resources()[ELASTIC]
    [meta] = sandbox.ssm().describe_parameters(ParameterFilters=[
        {"Key": "Name", "Option": "Equals", "Values": ["/buildkite/linux/agent-token"]}])["Parameters"]
    policies = " ".join(p.get("PolicyText", "") + p.get("PolicyType", "") for p in meta.get("Policies", []))
    assert "Expiration" in policies
    assert token["expires_at"][:16] in policies, (token["expires_at"], policies)
    ws.destroy()


def test_destroy_never_revokes_the_token_a_replacement_delivered_to_the_same_sink(sandbox, bk, make_workspace):
    """With create_before_destroy, the replacement delivers to the sink before the old object is
    destroyed; the old object's clean-up must leave the replacement's token (and the sink) alone."""
    ws = make_workspace(sandbox.env)
    body = HEADER + CLUSTER + SSM_TOKEN.format(description="elastic stack", ips="null", expires_in="90d").replace(
        "  deliver_to = {", "  lifecycle {\n    create_before_destroy = true\n  }\n  deliver_to = {")
    ws.write(body)
    ws.init()
    ws.apply()
    first = ws.resources()[ELASTIC]
    ws.write(body.replace('expires_in           = "90d"', 'expires_in           = "30d"'))
    ws.apply()
    second = ws.resources()[ELASTIC]
    cluster = ws.resources()["tokendrop_buildkite_cluster.linux"]["id"]
    assert second["id"] != first["id"]
    assert bk.live(cluster) == [second["id"]], "the old token is revoked, the new one lives"
    assert sandbox.ssm_value("/buildkite/linux/agent-token")[0] == bk.value(second["id"])
    assert ws.plan_exitcode().returncode == 0
    ws.destroy()
    assert scan(bk.values(), ws.artifacts()) == []
