"""Conformance of the Buildkite emulator with docs/wire.md (Buildkite), and its sandbox controls.

Talks raw HTTP (requests) so that status codes, headers and JSON shapes are checked as a real client
would see them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKEN_VALUE = re.compile(r"^[A-Za-z0-9]{24}$")
TOKEN_KEYS = {"id", "graphql_id", "description", "allowed_ip_addresses", "expires_at", "url", "cluster_url",
              "created_at", "created_by"}
CLUSTER_KEYS = {"id", "graphql_id", "default_queue_id", "name", "description", "emoji", "color", "url", "web_url",
                "queues_url", "default_queue_url", "created_at", "created_by"}


@pytest.fixture
def em(fresh_buildkite_emulator: BuildkiteEmulator) -> BuildkiteEmulator:
    return fresh_buildkite_emulator


class Api:
    """Raw calls to the emulated API as one token."""

    def __init__(self, em: BuildkiteEmulator, token: str | None, scheme: str = "Bearer") -> None:
        self.em = em
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"{scheme} {token}"

    def __call__(self, method: str, path: str, body: object = None, **kw) -> requests.Response:
        url = path if path.startswith("http") else f"{self.em.url}/v2{path}"
        data = json.dumps(body) if body is not None and not isinstance(body, str) else body
        return self.session.request(method, url, data=data, timeout=10, **kw)


@pytest.fixture
def api(em: BuildkiteEmulator) -> Api:
    return Api(em, em.sandbox_token)


def admin(em: BuildkiteEmulator, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(method, f"{em.url}/_sandbox/{path}", json=body, timeout=10)


def in_minutes(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_cluster(api: Api, name: str = "linux", **fields) -> dict:
    resp = api("POST", "/organizations/acme/clusters", {"name": name, **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()


def tokens_path(cluster: dict) -> str:
    return f"/organizations/acme/clusters/{cluster['id']}/tokens"


def make_token(api: Api, cluster: dict, **body) -> dict:
    resp = api("POST", tokens_path(cluster), {"description": "ci", **body})
    assert resp.status_code == 201, resp.text
    return resp.json()


def assert_422(resp: requests.Response, *words: str) -> None:
    assert resp.status_code == 422, resp.text
    message = resp.json()["message"]
    assert message.startswith("Validation failed: ")
    for word in words:
        assert word in message


def links(resp: requests.Response) -> dict[str, str]:
    return {link["rel"]: link["url"] for link in requests.utils.parse_header_links(resp.headers.get("Link", ""))}


# -- auth and visibility -----------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "not-a-token", ""])
def test_missing_or_invalid_token_is_401(em, token):
    resp = Api(em, token)("GET", "/organizations/acme/clusters")
    assert resp.status_code == 401
    assert resp.json()["message"].startswith("Authentication required")


def test_basic_auth_is_not_supported(em):
    resp = Api(em, em.sandbox_token, scheme="Basic")("GET", "/organizations/acme/clusters")
    assert resp.status_code == 401


def test_unknown_or_invisible_objects_are_404(em, api):
    em.add_organization("globex")
    cluster = make_cluster(api)
    assert api("GET", "/organizations/globex/clusters").status_code == 404  # not a member
    assert api("GET", "/organizations/nope/clusters").json() == {"message": "Not Found"}
    assert api("GET", "/organizations/acme/clusters/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api("GET", f"{tokens_path(cluster)}/00000000-0000-0000-0000-000000000000").status_code == 404
    # A cluster of another organization is not reachable through this one.
    other = em.create_cluster("globex", "theirs")
    assert api("GET", f"/organizations/acme/clusters/{other}").status_code == 404


def test_scopes_are_enforced(em, api):
    read_only = Api(em, em.add_api_token("sandbox", scopes=["read_clusters"]))
    assert read_only("GET", "/organizations/acme/clusters").status_code == 200
    resp = read_only("POST", "/organizations/acme/clusters", {"name": "x"})
    assert resp.status_code == 403 and "write_clusters" in resp.json()["message"]
    nothing = Api(em, em.add_api_token("sandbox", scopes=[]))
    assert nothing("GET", "/organizations/acme/clusters").status_code == 403
    assert em.clusters == {}


# -- clusters -------------------------------------------------------------------------------------------

def test_create_cluster_returns_201_and_the_documented_model(em, api):
    resp = api("POST", "/organizations/acme/clusters",
               {"name": "linux", "description": "Linux agents", "emoji": ":penguin:", "color": "#FF9900",
                "maintainers": [{"user": "0189-user"}]})
    assert resp.status_code == 201
    doc = resp.json()
    assert set(doc) == CLUSTER_KEYS
    assert UUID.match(doc["id"]) and doc["graphql_id"]
    assert (doc["name"], doc["description"], doc["emoji"], doc["color"]) == \
        ("linux", "Linux agents", ":penguin:", "#FF9900")
    assert doc["default_queue_id"] is None and doc["default_queue_url"] is None  # none right after create
    assert doc["url"] == f"{em.url}/v2/organizations/acme/clusters/{doc['id']}"
    assert doc["queues_url"] == doc["url"] + "/queues"
    assert TIMESTAMP.match(doc["created_at"])
    assert doc["created_by"]["name"] == "sandbox" and set(doc["created_by"]) == {
        "id", "graphql_id", "name", "email", "avatar_url", "created_at"}


@pytest.mark.parametrize(("body", "words"), [
    ({}, ["Name can't be blank"]),
    ({"name": "  "}, ["Name can't be blank"]),
    ({"name": "x", "color": "orange"}, ["Color"]),
    ({"name": "x", "maintainers": ["bob"]}, ["Maintainers"]),
])
def test_create_cluster_validation_is_422(em, api, body, words):
    assert_422(api("POST", "/organizations/acme/clusters", body), *words)
    assert em.clusters == {}


def test_malformed_bodies_are_400(api):
    assert api("POST", "/organizations/acme/clusters", "{not json").status_code == 400
    assert api("POST", "/organizations/acme/clusters", [1]).status_code == 400


def test_show_update_list_delete_cluster(em, api):
    cluster = make_cluster(api, description="d", emoji=":penguin:")
    path = f"/organizations/acme/clusters/{cluster['id']}"
    assert api("GET", path).json() == cluster
    resp = api("PUT", path, {"name": "linux-2", "description": None, "color": "#00ff00"})
    assert resp.status_code == 200
    updated = resp.json()
    assert (updated["name"], updated["description"], updated["emoji"], updated["color"]) == \
        ("linux-2", None, ":penguin:", "#00ff00")
    assert_422(api("PUT", path, {"name": ""}), "Name")
    assert_422(api("PUT", path, {"default_queue_id": "0189"}), "Default queue")
    assert [c["id"] for c in api("GET", "/organizations/acme/clusters").json()] == [cluster["id"]]
    assert api("DELETE", path).status_code == 204
    assert api("GET", path).status_code == 404
    assert api("DELETE", path).status_code == 404


def test_deleting_a_cluster_deletes_its_tokens(em, api):
    cluster = make_cluster(api)
    token = make_token(api, cluster)
    assert api("DELETE", f"/organizations/acme/clusters/{cluster['id']}").status_code == 204
    assert em.tokens == {}
    assert [m["revoked"] for m in em.minted() if m["id"] == token["id"]] == [True]


# -- cluster agent tokens ---------------------------------------------------------------------------------

def test_create_token_returns_the_value_once(em, api):
    cluster = make_cluster(api)
    resp = api("POST", tokens_path(cluster), {"description": "elastic stack", "expires_at": in_minutes(60),
                                              "allowed_ip_addresses": "202.144.0.0/24 198.51.100.12"})
    assert resp.status_code == 201
    created = resp.json()
    assert set(created) == TOKEN_KEYS | {"token"}
    assert TOKEN_VALUE.match(created["token"])
    assert created["token"] in em.minted_values()
    assert UUID.match(created["id"]) and created["graphql_id"]
    assert created["description"] == "elastic stack"
    assert created["allowed_ip_addresses"] == "202.144.0.0/24 198.51.100.12"  # a string, as sent
    assert TIMESTAMP.match(created["expires_at"]) and TIMESTAMP.match(created["created_at"])
    assert created["cluster_url"] == f"{em.url}/v2/organizations/acme/clusters/{cluster['id']}"
    assert created["url"] == f"{created['cluster_url']}/tokens/{created['id']}"

    shown = api("GET", f"{tokens_path(cluster)}/{created['id']}")
    listed = api("GET", tokens_path(cluster))
    for doc in (shown.json(), listed.json()[0]):
        assert "token" not in doc
        assert doc == {k: v for k, v in created.items() if k != "token"}
    assert created["token"] not in shown.text + listed.text


def test_token_defaults_never_expire_and_allow_any_address(api):
    token = make_token(api, make_cluster(api))
    assert token["expires_at"] is None
    assert token["allowed_ip_addresses"] == "0.0.0.0/0"


@pytest.mark.parametrize(("body", "words"), [
    ({}, ["Description can't be blank"]),
    ({"description": ""}, ["Description can't be blank"]),
    ({"description": "   "}, ["Description can't be blank"]),
    ({"description": "x", "expires_at": "soon"}, ["Expires at"]),
    ({"description": "x", "expires_at": "2001-01-01T00:00:00Z"}, ["Expires at", "10 minutes"]),
    ({"description": "x", "expires_at": "__in_5_minutes__"}, ["Expires at", "10 minutes"]),
    ({"description": "x", "allowed_ip_addresses": "10.0.0.0/8 banana"}, ["Allowed ip addresses", "banana"]),
    ({"description": "x", "allowed_ip_addresses": ["10.0.0.0/8"]}, ["Allowed ip addresses", "string"]),
    ({"description": "x", "allowed_ip_addresses": "   "}, ["Allowed ip addresses"]),
    ({"description": "x", "allowed_ip_addresses": "10.0.0.0/8 2001:db8::/32"}, ["Allowed ip addresses", "2001:db8"]),
])
def test_create_token_validation_is_422_and_mints_nothing(em, api, body, words):
    cluster = make_cluster(api)
    minted_before = len(em.minted())  # the registry outlives resets
    if body.get("expires_at") == "__in_5_minutes__":
        body = {**body, "expires_at": in_minutes(5)}
    assert_422(api("POST", tokens_path(cluster), body), *words)
    assert em.tokens == {} and len(em.minted()) == minted_before


def test_expires_at_at_eleven_minutes_is_accepted(api):
    token = make_token(api, make_cluster(api), expires_at=in_minutes(11))
    assert token["expires_at"] is not None


def test_update_changes_description_and_addresses_only(em, api):
    cluster = make_cluster(api)
    token = make_token(api, cluster, expires_at=in_minutes(60))
    path = f"{tokens_path(cluster)}/{token['id']}"
    resp = api("PUT", path, {"description": "renamed", "allowed_ip_addresses": "10.0.0.0/8"})
    assert resp.status_code == 200
    doc = resp.json()
    assert (doc["description"], doc["allowed_ip_addresses"], doc["expires_at"]) == \
        ("renamed", "10.0.0.0/8", token["expires_at"])
    assert "token" not in doc
    assert api("PUT", path, {"description": "only"}).json()["allowed_ip_addresses"] == "10.0.0.0/8"
    assert_422(api("PUT", path, {"expires_at": in_minutes(120)}), "Expires at")  # immutable
    assert_422(api("PUT", path, {"description": ""}), "Description")
    assert_422(api("PUT", path, {"allowed_ip_addresses": "300.1.1.1"}), "Allowed ip addresses")
    assert api("GET", path).json()["expires_at"] == token["expires_at"]


def test_revoke_is_204_then_404(em, api):
    cluster = make_cluster(api)
    token = make_token(api, cluster)
    path = f"{tokens_path(cluster)}/{token['id']}"
    assert api("DELETE", path).status_code == 204
    assert api("GET", path).status_code == 404
    assert api("DELETE", path).status_code == 404
    assert api("GET", tokens_path(cluster)).json() == []
    assert [m["revoked"] for m in em.minted() if m["id"] == token["id"]] == [True]


def test_expired_tokens_stay_listed_with_their_expiry(em, api):
    cluster = make_cluster(api)
    token = make_token(api, cluster, expires_at=in_minutes(30))
    assert admin(em, "POST", "expire", {"token_id": token["id"]}).status_code == 204
    listed = api("GET", tokens_path(cluster)).json()
    assert [t["id"] for t in listed] == [token["id"]]
    assert datetime.fromisoformat(listed[0]["expires_at"].replace("Z", "+00:00")) <= datetime.now(UTC)
    assert admin(em, "POST", "expire", {"token_id": "nope"}).status_code == 404


# -- pagination ------------------------------------------------------------------------------------------

def test_tokens_page_through_link_headers(em, api):
    cluster = make_cluster(api)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids = [em.create_cluster_token(cluster["id"], f"t{i}", created_at=start + timedelta(seconds=i))[0]
           for i in range(250)]

    first = api("GET", tokens_path(cluster))  # defaults: page 1, 30 per page
    assert [t["id"] for t in first.json()] == ids[:30]
    assert set(links(first)) == {"next", "last"}
    assert "page=9" in links(first)["last"] and "per_page=30" in links(first)["last"]

    seen, url, calls = [], f"{em.url}/v2{tokens_path(cluster)}?per_page=100", 0
    while url:
        resp = api("GET", url)
        calls += 1
        seen += [t["id"] for t in resp.json()]
        url = links(resp).get("next")
    assert seen == ids and calls == 3

    middle = api("GET", tokens_path(cluster), params={"page": 2, "per_page": 100})
    rels = links(middle)
    assert set(rels) == {"first", "prev", "next", "last"}
    assert rels["first"].startswith(em.url + "/v2/") and "page=1&per_page=100" in rels["first"]
    assert "page=1" in rels["prev"] and "page=3" in rels["next"] and "page=3" in rels["last"]
    last = api("GET", tokens_path(cluster), params={"page": 3, "per_page": 100})
    assert set(links(last)) == {"first", "prev"} and len(last.json()) == 50


def test_per_page_is_capped_at_100_and_checked(em, api):
    cluster = make_cluster(api)
    for i in range(120):
        em.create_cluster_token(cluster["id"], f"t{i}")
    assert len(api("GET", tokens_path(cluster), params={"per_page": 500}).json()) == 100
    for params in ({"page": 0}, {"per_page": "x"}, {"page": "-1"}):
        assert api("GET", tokens_path(cluster), params=params).status_code == 400
    beyond = api("GET", tokens_path(cluster), params={"page": 9, "per_page": 100})
    assert beyond.json() == [] and "next" not in links(beyond)


def test_few_items_have_no_link_header(api):
    resp = api("GET", "/organizations/acme/clusters")
    assert resp.json() == [] and "Link" not in resp.headers


# -- rate limits -----------------------------------------------------------------------------------------

def test_every_response_carries_both_budgets(em, api):
    resp = api("GET", "/organizations/acme/clusters")
    h = resp.headers
    assert (h["RateLimit-Scope"], h["RateLimit-Limit"], h["RateLimit-Remaining"]) == ("rest", "200", "199")
    assert (h["RateLimit-User-Scope"], h["RateLimit-User-Limit"], h["RateLimit-User-Remaining"]) == \
        ("rest_user", "50", "49")
    assert 0 < int(h["RateLimit-Reset"]) <= 60 and 0 < int(h["RateLimit-User-Reset"]) <= 60


def test_user_limit_answers_the_documented_429(em, api):
    em.set_rate_limit(user_limit=3)
    for expected in (2, 1, 0):
        assert int(api("GET", "/organizations/acme/clusters").headers["RateLimit-User-Remaining"]) == expected
    resp = api("GET", "/organizations/acme/clusters")
    assert resp.status_code == 429
    body = resp.json()
    assert set(body) == {"message", "scope", "limit", "current", "reset"}
    assert (body["scope"], body["limit"], body["current"]) == ("rest_user", 3, 4)  # rejected calls count
    assert 0 < body["reset"] <= 60
    assert body["message"].startswith(f"You have exceeded your API rate limit. Please wait {body['reset']} seconds")
    assert resp.headers["RateLimit-User-Remaining"] == "0"
    assert resp.headers["RateLimit-User-Reset"] == str(body["reset"])
    assert api("GET", "/organizations/acme/clusters").json()["current"] == 5


def test_organization_limit_is_shared_by_its_users(em, api):
    em.set_rate_limit(org_limit=4)
    em.add_user("ops", ["acme"])
    ops = Api(em, em.add_api_token("ops"))
    for caller in (api, ops, api, ops):
        assert caller("GET", "/organizations/acme/clusters").status_code == 200
    resp = ops("GET", "/organizations/acme/clusters")
    assert resp.status_code == 429
    assert (resp.json()["scope"], resp.json()["limit"]) == ("rest", 4)
    assert resp.headers["RateLimit-Remaining"] == "0" and resp.headers["RateLimit-User-Remaining"] == "47"


def test_user_limit_spans_organizations_and_tokens(em, api):
    em.set_rate_limit(user_limit=2)
    em.add_organization("globex")
    em.users["sandbox"].organizations.add("globex")
    second_token = Api(em, em.add_api_token("sandbox"))
    assert api("GET", "/organizations/acme/clusters").status_code == 200
    assert second_token("GET", "/organizations/globex/clusters").status_code == 200
    assert api("GET", "/organizations/globex/clusters").json()["scope"] == "rest_user"


def test_window_resets(em, api):
    em.set_rate_limit(user_limit=1, window=0.3)
    assert api("GET", "/organizations/acme/clusters").status_code == 200
    resp = api("GET", "/organizations/acme/clusters")
    if resp.status_code == 429:  # on a slow machine the window may already have moved on
        time.sleep(0.35)
    assert api("GET", "/organizations/acme/clusters").status_code == 200


def test_unauthenticated_calls_are_not_counted(em):
    em.set_rate_limit(user_limit=1)
    anon = Api(em, None)
    assert [anon("GET", "/organizations/acme/clusters").status_code for _ in range(3)] == [401, 401, 401]


def test_rate_limits_via_admin(em, api):
    resp = admin(em, "POST", "ratelimit", {"enabled": False})
    assert resp.json() == {"enabled": False, "org_limit": 200, "user_limit": 50, "window": 60.0}
    for _ in range(60):
        resp = api("GET", "/organizations/acme/clusters")
        assert resp.status_code == 200
    assert "RateLimit-Remaining" not in resp.headers
    settings = admin(em, "POST", "ratelimit", {"enabled": True, "user_limit": 1, "window": 30}).json()
    assert settings == {"enabled": True, "org_limit": 200, "user_limit": 1, "window": 30.0}
    assert api("GET", "/organizations/acme/clusters").status_code == 200
    assert api("GET", "/organizations/acme/clusters").status_code == 429
    assert admin(em, "POST", "ratelimit", {"org_limit": 0}).status_code == 400
    em.reset()
    assert admin(em, "GET", "ratelimit").json()["user_limit"] == 50


# -- sandbox controls ------------------------------------------------------------------------------------

def test_fault_can_answer_429_with_rate_limit_reset(em, api):
    cluster = make_cluster(api)
    em.add_fault("/tokens$", method="POST", status=429, headers={"RateLimit-Reset": "2"},
                 body={"message": "You have exceeded your API rate limit.", "scope": "rest", "limit": 200,
                       "current": 201, "reset": 2})
    resp = api("POST", tokens_path(cluster), {"description": "x"})
    assert resp.status_code == 429 and resp.headers["RateLimit-Reset"] == "2"
    assert em.tokens == {}
    assert api("POST", tokens_path(cluster), {"description": "x"}).status_code == 201


def test_events_log_and_minted_registry(em, api):
    cluster = make_cluster(api)
    token = make_token(api, cluster)
    api("PUT", f"{tokens_path(cluster)}/{token['id']}", {"description": "y"})
    api("GET", tokens_path(cluster))
    api("DELETE", f"{tokens_path(cluster)}/{token['id']}")
    events = [e["event"] for e in admin(em, "GET", "events").json()["events"]]
    assert events == ["cluster.created", "token.created", "token.updated", "tokens.listed", "token.revoked"]
    log = admin(em, "GET", "requests").json()["requests"]
    assert [(e["method"], e["status"], e["principal"]) for e in log] == [
        ("POST", 201, "sandbox"), ("POST", 201, "sandbox"), ("PUT", 200, "sandbox"), ("GET", 200, "sandbox"),
        ("DELETE", 204, "sandbox")]
    minted = admin(em, "GET", "minted").json()["minted"]
    assert [(m["revoked"], m["scope"]) for m in minted if m["id"] == token["id"]] == [(True, f"acme/{cluster['id']}")]


def test_reset_restores_the_default_world_and_keeps_minted_values(em, api):
    cluster = make_cluster(api)
    value = make_token(api, cluster)["token"]
    em.add_organization("globex")
    assert admin(em, "POST", "reset").status_code == 204
    assert em.clusters == {} and em.tokens == {} and em.organizations == {"acme"}
    assert api("GET", "/organizations/acme/clusters").status_code == 200  # the sandbox token still works
    assert [m["revoked"] for m in em.minted() if m["value"] == value] == [True]


def test_seed_adds_organizations_users_and_scoped_tokens(em):
    world = admin(em, "POST", "seed", {"organizations": ["globex"],
                                       "users": [{"name": "ops", "organizations": ["globex"],
                                                  "scopes": ["read_clusters"]}]}).json()
    assert world["organizations"] == ["acme", "globex"]
    [ops_token] = world["users"]["ops"]["tokens"]
    assert ops_token["scopes"] == ["read_clusters"]
    ops = Api(em, ops_token["token"])
    assert ops("GET", "/organizations/globex/clusters").status_code == 200
    assert ops("GET", "/organizations/acme/clusters").status_code == 404
    assert admin(em, "POST", "seed", {"users": [{"name": "x", "organizations": ["nope"]}]}).status_code == 400


def test_unknown_routes_and_methods(em, api):
    assert api("GET", "/nothing").json() == {"message": "not found"}
    resp = api("PATCH", "/organizations/acme/clusters/x")
    assert resp.status_code == 405 and set(resp.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    assert admin(em, "GET", "health").json() == {"ok": True, "name": "buildkite"}


def test_ready_info_points_a_client_here(em):
    assert em.ready_info()["env"] == {"BUILDKITE_REST_URL": em.url, "BUILDKITE_API_TOKEN": em.sandbox_token,
                                      "BUILDKITE_ORGANIZATION_SLUG": "acme"}
    assert em.url.startswith("http://127.0.0.1:")


def test_cli_serves_until_sigterm(tmp_path):
    ready = tmp_path / "bk.json"
    proc = subprocess.Popen([sys.executable, "-m", "tokendrop_provider.sandbox.buildkite", "--port", "0",
                             "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "emulator did not become ready"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert oct(ready.stat().st_mode & 0o777) == oct(0o600)
        assert info["pid"] == proc.pid and info["organization"] == "acme"
        env = info["env"]
        assert set(env) == {"BUILDKITE_REST_URL", "BUILDKITE_API_TOKEN", "BUILDKITE_ORGANIZATION_SLUG"}
        assert env["BUILDKITE_REST_URL"] == info["url"]
        resp = requests.get(f"{env['BUILDKITE_REST_URL']}/v2/organizations/{env['BUILDKITE_ORGANIZATION_SLUG']}"
                            "/clusters", headers={"Authorization": f"Bearer {env['BUILDKITE_API_TOKEN']}"},
                            timeout=10)
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not ready.exists()


def test_access_token_names_the_token_and_its_user_without_any_scope(em, api):
    """`GET /v2/access-token` as documented: the token's uuid and scopes, and its user's name and email;
    it needs no scope. Two tokens of one user: two uuids, one user."""
    em.add_user("other", ["acme"])
    unscoped = Api(em, em.add_api_token("sandbox", scopes=()))
    stranger = Api(em, em.add_api_token("other"))
    mine, second, theirs = (a("GET", "/access-token") for a in (api, unscoped, stranger))
    assert [r.status_code for r in (mine, second, theirs)] == [200, 200, 200]
    assert mine.json()["user"] == second.json()["user"] == {"name": "sandbox", "email": em.users["sandbox"].email}
    assert mine.json()["uuid"] != second.json()["uuid"]
    assert sorted(mine.json()["scopes"]) == ["read_clusters", "write_clusters"] and second.json()["scopes"] == []
    assert theirs.json()["user"]["email"] == em.users["other"].email
    assert em.sandbox_token not in mine.text
    assert Api(em, None)("GET", "/access-token").status_code == 401
