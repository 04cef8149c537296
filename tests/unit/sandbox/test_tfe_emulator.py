"""Conformance of the TFE emulator with docs/wire.md (HCP Terraform / TFE), and its sandbox controls.

Talks raw HTTP (requests) so that status codes, headers and JSON:API shapes are checked as a real
client would see them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tokendrop_provider.sandbox.tfe import JSONAPI, TfeEmulator

ID = {"apool": re.compile(r"^apool-[A-Za-z0-9]{16}$"), "at": re.compile(r"^at-[A-Za-z0-9]{16}$")}
TOKEN_VALUE = re.compile(r"^[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9]{55,70}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RATE_LIMIT_BODY = {"errors": [{"detail": "You have exceeded the API's rate limit.", "status": 429,
                               "title": "Too many requests"}]}


@pytest.fixture
def em(fresh_tfe_emulator: TfeEmulator) -> TfeEmulator:
    return fresh_tfe_emulator


class Api:
    """Raw calls to the emulated API as one token."""

    def __init__(self, em: TfeEmulator, token: str | None) -> None:
        self.em = em
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Content-Type"] = JSONAPI

    def __call__(self, method: str, path: str, body: object = None, **kw) -> requests.Response:
        url = path if path.startswith("http") else f"{self.em.url}/api/v2{path}"
        data = json.dumps(body) if body is not None and not isinstance(body, str) else body
        return self.session.request(method, url, data=data, timeout=10, **kw)


@pytest.fixture
def api(em: TfeEmulator) -> Api:
    return Api(em, em.sandbox_token)


def admin(em: TfeEmulator, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(method, f"{em.url}/_sandbox/{path}", json=body, timeout=10)


def pool_body(name: str, scoped: bool | None = None, **rels: list[str]) -> dict:
    attrs: dict = {"name": name}
    if scoped is not None:
        attrs["organization-scoped"] = scoped
    kinds = {"allowed-workspaces": "workspaces", "excluded-workspaces": "workspaces",
             "allowed-projects": "projects"}
    relationships = {k.replace("_", "-"): {"data": [{"id": i, "type": kinds[k.replace("_", "-")]} for i in v]}
                     for k, v in rels.items()}
    return {"data": {"type": "agent-pools", "attributes": attrs, "relationships": relationships}}


def token_body(description: str = "ci") -> dict:
    return {"data": {"type": "authentication-tokens", "attributes": {"description": description}}}


def make_pool(api: Api, name: str = "ci", **kw) -> dict:
    resp = api("POST", "/organizations/acme/agent-pools", pool_body(name, **kw))
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def assert_jsonapi_error(resp: requests.Response, status: int, pointer: str | None = None) -> dict:
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == JSONAPI
    errors = resp.json()["errors"]
    assert isinstance(errors, list) and errors
    err = errors[0]
    assert str(err["status"]) == str(status)
    assert err["title"]
    if pointer is not None:
        assert err["source"]["pointer"] == pointer
    return err


# -- auth and visibility -----------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "not-a-token", ""])
def test_missing_or_invalid_token_is_401(em, token):
    resp = Api(em, token)("GET", "/organizations/acme/agent-pools")
    err = assert_jsonapi_error(resp, 401)
    assert err["title"] == "unauthorized"


def test_wrong_auth_scheme_is_401(em):
    resp = requests.get(f"{em.url}/api/v2/organizations/acme/agent-pools",
                        headers={"Authorization": f"Basic {em.sandbox_token}"}, timeout=10)
    assert resp.status_code == 401


def test_unknown_objects_are_404_never_403(api):
    for path in ("/organizations/nope/agent-pools", "/agent-pools/apool-AAAAAAAAAAAAAAAA",
                 "/agent-pools/apool-AAAAAAAAAAAAAAAA/authentication-tokens",
                 "/authentication-tokens/at-AAAAAAAAAAAAAAAA"):
        assert_jsonapi_error(api("GET", path), 404)


def test_user_without_access_gets_404_for_existing_objects(em, api):
    pool = make_pool(api)
    token_id = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body()).json()["data"]["id"]
    em.add_organization("other")
    em.add_user("outsider", ["other"])
    outsider = Api(em, em.add_api_token("outsider"))
    for method, path in [("GET", "/organizations/acme/agent-pools"), ("GET", f"/agent-pools/{pool['id']}"),
                         ("PATCH", f"/agent-pools/{pool['id']}"), ("DELETE", f"/agent-pools/{pool['id']}"),
                         ("GET", f"/agent-pools/{pool['id']}/authentication-tokens"),
                         ("POST", f"/agent-pools/{pool['id']}/authentication-tokens"),
                         ("GET", f"/authentication-tokens/{token_id}"),
                         ("DELETE", f"/authentication-tokens/{token_id}")]:
        assert_jsonapi_error(outsider(method, path, token_body()), 404)
    assert api("GET", f"/agent-pools/{pool['id']}").status_code == 200  # nothing changed


def test_organization_without_agents_entitlement_is_404(em, api):
    em.seed({"organizations": [{"name": "free-tier", "agents": False}],
             "users": [{"name": "sandbox", "organizations": ["free-tier"]}]})
    assert_jsonapi_error(api("GET", "/organizations/free-tier/agent-pools"), 404)
    assert_jsonapi_error(api("POST", "/organizations/free-tier/agent-pools", pool_body("x")), 404)


# -- agent pools --------------------------------------------------------------------------------

def test_create_pool_returns_201_and_the_documented_shape(em, api):
    ws = em.workspace_id("acme", "app-prod")
    ex = em.workspace_id("acme", "app-staging")
    prj = em.project_id("acme", "platform")
    resp = api("POST", "/organizations/acme/agent-pools",
               pool_body("ci-agents_1", False, allowed_workspaces=[ws], excluded_workspaces=[ex],
                         allowed_projects=[prj]))
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == JSONAPI
    data = resp.json()["data"]
    assert ID["apool"].match(data["id"])
    assert data["type"] == "agent-pools"
    assert data["attributes"]["name"] == "ci-agents_1"
    assert data["attributes"]["organization-scoped"] is False
    assert TIMESTAMP.match(data["attributes"]["created-at"])
    rels = data["relationships"]
    assert rels["allowed-workspaces"]["data"] == [{"id": ws, "type": "workspaces"}]
    assert rels["excluded-workspaces"]["data"] == [{"id": ex, "type": "workspaces"}]
    assert rels["allowed-projects"]["data"] == [{"id": prj, "type": "projects"}]
    assert rels["organization"]["data"] == {"id": "acme", "type": "organizations"}
    assert rels["authentication-tokens"]["links"]["related"] == \
        f"/api/v2/agent-pools/{data['id']}/authentication-tokens"
    assert rels["agents"]["links"]["related"] == f"/api/v2/agent-pools/{data['id']}/agents"
    assert data["links"]["self"] == f"/api/v2/agent-pools/{data['id']}"


def test_create_pool_defaults_to_organization_scoped(api):
    assert make_pool(api)["attributes"]["organization-scoped"] is True


@pytest.mark.parametrize("name", ["has space", "dot.ted", "", "slash/y", "ümlaut"])
def test_create_pool_rejects_bad_names_with_a_pointer(api, name):
    resp = api("POST", "/organizations/acme/agent-pools", pool_body(name))
    assert_jsonapi_error(resp, 422, "/data/attributes/name")


def test_create_pool_name_must_be_unique_in_the_org(em, api):
    make_pool(api, "dup")
    err = assert_jsonapi_error(api("POST", "/organizations/acme/agent-pools", pool_body("dup")), 422,
                               "/data/attributes/name")
    assert "taken" in err["detail"]
    # ...but only within the organization
    em.add_organization("beta")
    em.users["sandbox"].organizations.add("beta")
    assert api("POST", "/organizations/beta/agent-pools", pool_body("dup")).status_code == 201


@pytest.mark.parametrize("rel", ["allowed_workspaces", "excluded_workspaces", "allowed_projects"])
def test_create_pool_with_unknown_relationship_id_points_at_the_relationship(api, rel):
    prefix = "prj-" if "projects" in rel else "ws-"
    resp = api("POST", "/organizations/acme/agent-pools", pool_body("p", False, **{rel: [prefix + "X" * 16]}))
    assert_jsonapi_error(resp, 422, f"/data/relationships/{rel.replace('_', '-')}")


def test_create_pool_rejects_workspaces_of_another_org(em, api):
    em.add_organization("beta")
    foreign = em.add_workspace("beta", "theirs")
    resp = api("POST", "/organizations/acme/agent-pools", pool_body("p", False, allowed_workspaces=[foreign]))
    assert_jsonapi_error(resp, 422, "/data/relationships/allowed-workspaces")


def test_create_pool_malformed_bodies(api):
    path = "/organizations/acme/agent-pools"
    assert_jsonapi_error(api("POST", path, "{not json"), 400)
    assert_jsonapi_error(api("POST", path, {"nodata": 1}), 422, "/data")
    assert_jsonapi_error(api("POST", path, {"data": {"type": "workspaces", "attributes": {"name": "x"}}}),
                         422, "/data/type")
    assert_jsonapi_error(api("POST", path, {"data": {"type": "agent-pools",
                                                     "attributes": {"name": "x", "organization-scoped": "no"}}}),
                         422, "/data/attributes/organization-scoped")


def test_show_update_delete_pool(em, api):
    pool = make_pool(api, "one", scoped=False)
    shown = api("GET", f"/agent-pools/{pool['id']}")
    assert shown.status_code == 200
    assert shown.json()["data"] == pool

    ws = em.workspace_id("acme", "infra-network")
    patched = api("PATCH", f"/agent-pools/{pool['id']}",
                  pool_body("renamed", False, allowed_workspaces=[ws]))
    assert patched.status_code == 200
    data = patched.json()["data"]
    assert data["attributes"]["name"] == "renamed"
    assert data["attributes"]["organization-scoped"] is False
    assert data["relationships"]["allowed-workspaces"]["data"] == [{"id": ws, "type": "workspaces"}]

    deleted = api("DELETE", f"/agent-pools/{pool['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_jsonapi_error(api("GET", f"/agent-pools/{pool['id']}"), 404)
    assert_jsonapi_error(api("DELETE", f"/agent-pools/{pool['id']}"), 404)


def test_patch_without_organization_scoped_widens_the_pool_as_documented(em, api):
    ws = em.workspace_id("acme", "app-prod")
    pool = make_pool(api, "scoped", scoped=False, allowed_workspaces=[ws])
    resp = api("PATCH", f"/agent-pools/{pool['id']}", {"data": {"type": "agent-pools", "attributes": {}}})
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["attributes"]["organization-scoped"] is True  # the trap apis.md warns about
    assert data["attributes"]["name"] == "scoped"  # name keeps its previous value
    assert data["relationships"]["allowed-workspaces"]["data"] == [{"id": ws, "type": "workspaces"}]


def test_patch_validates_like_create(api):
    a = make_pool(api, "a")
    make_pool(api, "b")
    assert_jsonapi_error(api("PATCH", f"/agent-pools/{a['id']}", pool_body("b")), 422, "/data/attributes/name")
    assert api("PATCH", f"/agent-pools/{a['id']}", pool_body("a", True)).status_code == 200  # own name ok
    assert_jsonapi_error(api("PATCH", f"/agent-pools/{a['id']}",
                             {"data": {"type": "agent-pools", "id": "apool-other"}}), 422, "/data/id")


def test_delete_pool_revokes_its_tokens(em, api):
    pool = make_pool(api)
    created = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body()).json()["data"]
    assert api("DELETE", f"/agent-pools/{pool['id']}").status_code == 204
    assert_jsonapi_error(api("GET", f"/authentication-tokens/{created['id']}"), 404)
    minted = {m["id"]: m for m in em.minted()}
    assert minted[created["id"]]["revoked"] is True


def test_list_pools_search_sort_filter_and_counts(em, api):
    ws = em.workspace_id("acme", "app-prod")
    for name in ("linux-b", "linux-a", "windows"):
        make_pool(api, name, scoped=name != "windows", **({"allowed_workspaces": [ws]} if name == "windows" else {}))
    resp = api("GET", "/organizations/acme/agent-pools", params={"q": "LINUX", "sort": "name"})
    assert resp.status_code == 200
    doc = resp.json()
    assert [p["attributes"]["name"] for p in doc["data"]] == ["linux-a", "linux-b"]
    assert doc["meta"]["status-counts"] == {"total": 3, "matching": 2}
    assert doc["data"][0]["attributes"]["agent-count"] == 0
    names = [p["attributes"]["name"] for p in api("GET", "/organizations/acme/agent-pools",
                                                   params={"sort": "-name"}).json()["data"]]
    assert names == ["windows", "linux-b", "linux-a"]
    filtered = api("GET", "/organizations/acme/agent-pools",
                   params={"filter[allowed_workspaces][name]": "app-prod"}).json()["data"]
    assert [p["attributes"]["name"] for p in filtered] == ["windows"]
    assert_jsonapi_error(api("GET", "/organizations/acme/agent-pools", params={"sort": "size"}), 400)


def test_list_pools_pages_default_to_20(em):
    for i in range(25):
        em.create_agent_pool("acme", f"pool-{i:02d}")
    api = Api(em, em.sandbox_token)
    doc = api("GET", "/organizations/acme/agent-pools").json()
    assert len(doc["data"]) == 20
    assert doc["meta"]["pagination"]["total-count"] == 25
    assert doc["meta"]["pagination"]["next-page"] == 2


# -- agent tokens ----------------------------------------------------------------------------------

def test_create_token_returns_the_value_once(em, api):
    pool = make_pool(api)
    resp = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body("runner 1"))
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == JSONAPI
    data = resp.json()["data"]
    assert ID["at"].match(data["id"])
    assert data["type"] == "authentication-tokens"
    attrs = data["attributes"]
    value = attrs["token"]
    assert TOKEN_VALUE.match(value)
    assert attrs["description"] == "runner 1"
    assert attrs["last-used-at"] is None
    assert TIMESTAMP.match(attrs["created-at"])
    assert data["relationships"]["created-by"]["data"] == {"id": em.users["sandbox"].id, "type": "users"}

    shown = api("GET", f"/authentication-tokens/{data['id']}")
    assert shown.status_code == 200
    assert shown.json()["data"]["attributes"]["token"] is None
    listed = api("GET", f"/agent-pools/{pool['id']}/authentication-tokens")
    assert listed.json()["data"][0]["attributes"]["token"] is None
    for resp in (shown, listed):
        assert value not in resp.text
    assert {"id": data["id"], "value": value, "scope": pool["id"], "revoked": False}.items() <= \
        next(m for m in em.minted() if m["id"] == data["id"]).items()


def test_create_token_validates_the_body(api):
    pool = make_pool(api)
    path = f"/agent-pools/{pool['id']}/authentication-tokens"
    assert_jsonapi_error(api("POST", path, {"data": {"type": "authentication-tokens", "attributes": {}}}),
                         422, "/data/attributes/description")
    assert_jsonapi_error(api("POST", path, {"data": {"type": "agent-pools", "attributes": {"description": "x"}}}),
                         422, "/data/type")


def test_delete_token_is_204_then_404(em, api):
    pool = make_pool(api)
    token_id = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body()).json()["data"]["id"]
    resp = api("DELETE", f"/authentication-tokens/{token_id}")
    assert resp.status_code == 204
    assert resp.content == b""
    assert_jsonapi_error(api("GET", f"/authentication-tokens/{token_id}"), 404)
    assert_jsonapi_error(api("DELETE", f"/authentication-tokens/{token_id}"), 404)
    assert next(m for m in em.minted() if m["id"] == token_id)["revoked"] is True


def test_last_used_at_is_null_until_the_sandbox_is_told(em, api):
    pool = make_pool(api)
    created = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body()).json()["data"]
    assert admin(em, "POST", "use", {"token": created["attributes"]["token"]}).status_code == 204
    used = api("GET", f"/authentication-tokens/{created['id']}").json()["data"]["attributes"]["last-used-at"]
    assert TIMESTAMP.match(used)
    assert admin(em, "POST", "use", {"token": "nope.atlasv1.nope"}).status_code == 404
    assert admin(em, "POST", "use", {}).status_code == 400


def seed_tokens(em: TfeEmulator, count: int) -> tuple[str, list[str]]:
    pool_id = em.create_agent_pool("acme", "big")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    # Pairs share a created-at so that the tie-break by id is exercised.
    ids = [em.create_agent_token(pool_id, f"t{i}", created_at=start + timedelta(seconds=i // 2))[0]
           for i in range(count)]
    return pool_id, ids


def test_token_paging_over_250_tokens(em, api):
    pool_id, ids = seed_tokens(em, 250)
    path = f"/agent-pools/{pool_id}/authentication-tokens"

    default = api("GET", path).json()
    assert len(default["data"]) == 20
    assert default["meta"]["pagination"] == {"current-page": 1, "page-size": 20, "prev-page": None,
                                             "next-page": 2, "total-pages": 13, "total-count": 250}

    # page[size] above 100 is capped to 100; follow links.next to the end.
    resp = api("GET", path, params={"page[size]": 500, "sort": "created-at"})
    seen, calls = [], 0
    while True:
        calls += 1
        doc = resp.json()
        seen += [t["id"] for t in doc["data"]]
        links, pagination = doc["links"], doc["meta"]["pagination"]
        assert pagination["page-size"] == 100
        assert pagination["total-pages"] == 3
        assert set(links) == {"self", "first", "prev", "next", "last"}
        assert "%5B" in links["self"] and "[" not in links["self"]
        assert links["self"].startswith(em.url + "/api/v2/agent-pools/")
        assert "sort=created-at" in links["next" if links["next"] else "self"]
        if pagination["current-page"] == 1:
            assert links["prev"] is None
        if links["next"] is None:
            assert pagination["next-page"] is None
            break
        resp = api("GET", links["next"])
    assert calls == 3
    assert len(seen) == 250 and len(set(seen)) == 250
    expected = sorted(ids, key=lambda i: (em.tokens[i].created_at, i))
    assert seen == expected


def test_token_sort_descending_breaks_ties_by_id_descending(em, api):
    pool_id, ids = seed_tokens(em, 6)
    data = api("GET", f"/agent-pools/{pool_id}/authentication-tokens", params={"sort": "-created-at"}).json()
    got = [t["id"] for t in data["data"]]
    assert got == sorted(ids, key=lambda i: (em.tokens[i].created_at, i), reverse=True)


@pytest.mark.parametrize("sort", ["description", "created_at", "name"])
def test_token_list_invalid_sort_is_400(em, api, sort):
    pool_id, _ = seed_tokens(em, 1)
    err = assert_jsonapi_error(api("GET", f"/agent-pools/{pool_id}/authentication-tokens",
                                   params={"sort": sort}), 400)
    assert err["source"] == {"parameter": "sort"}


@pytest.mark.parametrize("params", [{"page[number]": 0}, {"page[size]": "x"}, {"page[size]": -5}])
def test_invalid_page_parameters_are_400(em, api, params):
    pool_id, _ = seed_tokens(em, 1)
    assert_jsonapi_error(api("GET", f"/agent-pools/{pool_id}/authentication-tokens", params=params), 400)


def test_page_beyond_the_end_is_empty(em, api):
    pool_id, _ = seed_tokens(em, 3)
    doc = api("GET", f"/agent-pools/{pool_id}/authentication-tokens", params={"page[number]": 5}).json()
    assert doc["data"] == []
    assert doc["meta"]["pagination"]["next-page"] is None


# -- rate limit ----------------------------------------------------------------------------------

def test_rate_limit_headers_and_429(em, api):
    em.set_rate_limit(limit=5, window=60)
    remaining = []
    for _ in range(5):
        resp = api("GET", "/organizations/acme/agent-pools")
        assert resp.status_code == 200
        assert resp.headers["x-ratelimit-limit"] == "5"
        remaining.append(int(resp.headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    resp = api("GET", "/organizations/acme/agent-pools")
    assert resp.status_code == 429
    assert resp.json() == RATE_LIMIT_BODY
    assert resp.headers["Content-Type"] == JSONAPI
    assert resp.headers["x-ratelimit-limit"] == "5"
    assert resp.headers["x-ratelimit-remaining"] == "0"
    reset = float(resp.headers["x-ratelimit-reset"])
    assert 0 < reset <= 60
    assert re.match(r"^\d+\.\d{3}$", resp.headers["x-ratelimit-reset"])


def test_rate_limit_is_per_user_not_per_token(em, api):
    em.set_rate_limit(limit=3, window=60)
    second_token = Api(em, em.add_api_token("sandbox"))
    em.add_user("other", ["acme"])
    other_user = Api(em, em.add_api_token("other"))
    for _ in range(3):
        assert api("GET", "/organizations/acme/agent-pools").status_code == 200
    assert second_token("GET", "/organizations/acme/agent-pools").status_code == 429
    assert other_user("GET", "/organizations/acme/agent-pools").status_code == 200


def test_rate_limit_window_slides(em, api):
    em.set_rate_limit(limit=2, window=0.3)
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200
    resp = api("GET", "/organizations/acme/agent-pools")
    if resp.status_code == 429:  # on a slow machine the window may already have moved on
        time.sleep(float(resp.headers["x-ratelimit-reset"]) + 0.05)
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200


def test_rate_limit_can_be_switched_off_and_changed_via_admin(em, api):
    resp = admin(em, "POST", "ratelimit", {"enabled": False})
    assert resp.status_code == 200
    assert resp.json() == {"enabled": False, "limit": 30, "window": 1.0}
    for _ in range(40):
        resp = api("GET", "/organizations/acme/agent-pools")
        assert resp.status_code == 200
    assert "x-ratelimit-limit" not in resp.headers
    assert admin(em, "POST", "ratelimit", {"enabled": True, "limit": 1, "window": 60}).json()["limit"] == 1
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200
    assert api("GET", "/organizations/acme/agent-pools").status_code == 429
    assert admin(em, "POST", "ratelimit", {"limit": 0}).status_code == 400
    assert admin(em, "GET", "ratelimit").json() == {"enabled": True, "limit": 1, "window": 60.0}


def test_unauthenticated_requests_are_limited_per_ip(em):
    em.set_rate_limit(limit=2, window=60)
    anon = Api(em, None)
    assert anon("GET", "/organizations/acme/agent-pools").status_code == 401
    assert anon("GET", "/organizations/acme/agent-pools").status_code == 401
    assert anon("GET", "/organizations/acme/agent-pools").status_code == 429


# -- faults, latency, signals ------------------------------------------------------------------------

def test_fault_fails_the_next_n_matching_calls(em, api):
    pool = make_pool(api)
    resp = admin(em, "POST", "faults", {"method": "GET", "path": r"/agent-pools/apool-\w+$", "status": 503,
                                        "count": 2, "headers": {"Retry-After": "1"}})
    assert resp.status_code == 201
    fault_id = resp.json()["id"]
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200  # not matching
    first = api("GET", f"/agent-pools/{pool['id']}")
    assert_jsonapi_error(first, 503)
    assert first.headers["Retry-After"] == "1"
    assert api("GET", f"/agent-pools/{pool['id']}").status_code == 503
    assert api("GET", f"/agent-pools/{pool['id']}").status_code == 200
    faults = admin(em, "GET", "faults").json()["faults"]
    assert faults[0]["id"] == fault_id and faults[0]["hits"] == 2 and faults[0]["count"] == 0


def test_fault_with_custom_body_and_clearing(em, api):
    em.add_fault("/organizations/", status=502, body="<html>bad gateway</html>", count=5)
    resp = api("GET", "/organizations/acme/agent-pools")
    assert resp.status_code == 502
    assert resp.text == "<html>bad gateway</html>"
    assert admin(em, "DELETE", "faults").status_code == 204
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200


def test_fault_after_the_handler_keeps_the_side_effect(em, api):
    """A create that succeeded at the issuer but whose answer was lost (the double-mint hazard)."""
    pool = make_pool(api)
    em.add_fault("/authentication-tokens$", method="POST", status=500, when="after")
    resp = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body())
    assert resp.status_code == 500
    assert "atlasv1" not in resp.text
    assert len(em.pool_tokens(pool["id"])) == 1


def test_fault_can_drop_the_connection(em, api):
    em.add_fault("/organizations/", action="disconnect")
    with pytest.raises(requests.ConnectionError):
        api("GET", "/organizations/acme/agent-pools")
    assert api("GET", "/organizations/acme/agent-pools").status_code == 200
    statuses = [r["status"] for r in em.requests(path="/organizations/")]
    assert statuses == [None, 200]


def test_bad_fault_definitions_are_400(em):
    assert admin(em, "POST", "faults", {"status": 42}).status_code == 400
    assert admin(em, "POST", "faults", {"when": "during"}).status_code == 400
    assert admin(em, "POST", "faults", {"path": "(unclosed"}).status_code == 400
    assert admin(em, "POST", "faults", [1]).status_code == 400


def test_latency_is_added_to_api_calls_only(em, api):
    assert admin(em, "POST", "latency", {"seconds": 0.2}).status_code == 204
    started = time.monotonic()
    api("GET", "/organizations/acme/agent-pools")
    assert time.monotonic() - started >= 0.2  # a lower bound only: the machine may be slow
    assert admin(em, "POST", "latency", {"seconds": -1}).status_code == 400
    em.reset()
    assert em._latency == 0


def test_signal_is_sent_on_a_named_event(em, api):
    received = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.set())
    try:
        resp = admin(em, "POST", "signals", {"event": "token.created", "pid": os.getpid(), "signal": "SIGUSR1"})
        assert resp.status_code == 201
        pool = make_pool(api)
        assert not received.is_set()  # pool.created is a different event
        assert api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body()).status_code == 201
        assert received.wait(10)
        received.clear()
        api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body())
        assert not received.wait(0.2)  # count defaults to 1
    finally:
        signal.signal(signal.SIGUSR1, previous)
    events = [e["event"] for e in admin(em, "GET", "events").json()["events"]]
    assert events == ["pool.created", "token.created", "token.created"]
    assert admin(em, "POST", "signals", {"event": "x"}).status_code == 400


# -- request log, admin API, reset -------------------------------------------------------------------

def test_request_log_records_api_calls_but_not_admin_calls(em, api):
    api("GET", "/organizations/acme/agent-pools", params={"q": "ci", "page[size]": 5})
    Api(em, "bad")("GET", "/agent-pools/apool-x")
    admin(em, "GET", "minted")
    log = admin(em, "GET", "requests").json()["requests"]
    assert log == em.requests()
    assert [(e["method"], e["path"], e["status"], e["principal"]) for e in log] == [
        ("GET", "/api/v2/organizations/acme/agent-pools", 200, "sandbox"),
        ("GET", "/api/v2/agent-pools/apool-x", 401, None),
    ]
    assert log[0]["query"] == {"q": "ci", "page[size]": "5"}
    assert abs(log[0]["time"] - time.time()) < 600
    filtered = admin(em, "GET", "requests?method=GET&path=apool").json()["requests"]
    assert [e["path"] for e in filtered] == ["/api/v2/agent-pools/apool-x"]


def test_reset_restores_the_default_world(em, api):
    ws = em.workspace_id("acme", "app-prod")
    pool = make_pool(api)
    created = api("POST", f"/agent-pools/{pool['id']}/authentication-tokens", token_body()).json()["data"]
    value = created["attributes"]["token"]
    em.add_fault(".*", status=500, count=100)
    assert admin(em, "POST", "reset").status_code == 204
    assert em.requests() == []
    assert em.faults() == []
    assert api("GET", f"/agent-pools/{pool['id']}").status_code == 404
    assert em.workspace_id("acme", "app-prod") == ws  # seeded ids are stable
    minted = admin(em, "GET", "minted").json()["minted"]
    assert [(m["value"], m["revoked"]) for m in minted if m["value"] == value] == [(value, True)]


def test_seed_endpoint_adds_orgs_workspaces_and_users(em):
    resp = admin(em, "POST", "seed", {
        "organizations": [{"name": "globex", "workspaces": ["web"], "projects": ["core"]}],
        "users": [{"name": "ops", "organizations": ["globex"]}]})
    assert resp.status_code == 200
    world = resp.json()
    assert world["organizations"]["globex"]["workspaces"]["web"].startswith("ws-")
    assert world["organizations"]["globex"]["projects"]["core"].startswith("prj-")
    ops = Api(em, world["users"]["ops"]["tokens"][0])
    assert ops("GET", "/organizations/globex/agent-pools").status_code == 200
    assert ops("GET", "/organizations/acme/agent-pools").status_code == 404
    assert admin(em, "GET", "seed").json() == world
    assert admin(em, "POST", "seed", {"users": [{"name": "x", "organizations": ["nope"]}]}).status_code == 400


def test_unknown_routes_and_methods(em, api):
    assert_jsonapi_error(api("GET", "/nothing-here"), 404)
    resp = api("PUT", "/agent-pools/apool-x")
    assert_jsonapi_error(resp, 405)
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "PATCH", "DELETE"}
    assert admin(em, "GET", "nothing").status_code == 404
    assert admin(em, "GET", "health").json() == {"ok": True, "name": "tfe"}


def test_binds_to_loopback_only(em):
    assert em.url.startswith("http://127.0.0.1:")
    assert em._server is not None and em._server.server_address[0] == "127.0.0.1"


def test_stop_closes_keep_alive_connections():
    own = TfeEmulator().start()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {own.sandbox_token}"}
    url = f"{own.url}/api/v2/organizations/acme/agent-pools"
    assert session.get(url, headers=headers, timeout=10).status_code == 200  # connection now pooled
    own.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers=headers, timeout=10)
    assert not own.running


def test_encoded_slashes_stay_inside_one_path_segment(em, api):
    resp = api("GET", "/agent-pools/..%2Forganizations%2Facme%2Fagent-pools")
    assert_jsonapi_error(resp, 404)
    assert em.requests()[-1]["path"] == "/api/v2/agent-pools/..%2Forganizations%2Facme%2Fagent-pools"


def test_cli_serves_until_sigterm(tmp_path):
    ready = tmp_path / "tfe.json"
    proc = subprocess.Popen([sys.executable, "-m", "tokendrop_provider.sandbox.tfe", "--port", "0",
                             "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "emulator did not become ready"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert oct(ready.stat().st_mode & 0o777) == oct(0o600)
        assert info["pid"] == proc.pid
        assert info["url"] == f"http://127.0.0.1:{info['port']}"
        env = info["env"]
        assert env["TFE_ADDRESS"] == info["url"]
        resp = requests.get(f"{env['TFE_ADDRESS']}/api/v2/organizations/acme/agent-pools",
                            headers={"Authorization": f"Bearer {env['TFE_TOKEN']}"}, timeout=10)
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not ready.exists()


def test_account_details_name_the_user_of_each_token(em, api):
    """The Account API's user object: every token of one user answers the same id (what the client
    keys its rate budget by); another user's token answers another id; no token, 401."""
    em.add_user("other", ["acme"])
    second = Api(em, em.add_api_token("sandbox"))
    stranger = Api(em, em.add_api_token("other"))
    docs = [a("GET", "/account/details") for a in (api, second, stranger)]
    assert [d.status_code for d in docs] == [200, 200, 200]
    assert docs[0].headers["Content-Type"].startswith(JSONAPI)
    data = [d.json()["data"] for d in docs]
    assert data[0]["type"] == "users" and data[0]["id"] == em.users["sandbox"].id == data[1]["id"]
    assert data[2]["id"] == em.users["other"].id != data[0]["id"]
    assert data[0]["attributes"]["username"] == "sandbox" and "email" in data[0]["attributes"]
    assert Api(em, None)("GET", "/account/details").status_code == 401
