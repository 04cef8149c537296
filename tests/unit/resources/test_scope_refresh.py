"""Refresh of agent pools and Buildkite clusters through the tfplugin6 service, as Terraform calls it:
one listing per organization and process answers every pool's (cluster's) ReadResource, out-of-band
changes still show, a pool missing from the listing is looked up on its own before it is called gone,
and TOKENDROP_BATCH_READS=0 falls back to one call per resource."""

from __future__ import annotations

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.plugin.service import ProviderService

POOL = schema.TFE_AGENT_POOL
CLUSTER = schema.BUILDKITE_CLUSTER


def read(svc: ProviderService, resource_schema, state: dict) -> dict | None:
    response = svc.ReadResource(pb.ReadResource.Request(
        type_name=resource_schema.type_name, current_state=dynamic(full(resource_schema, **state), resource_schema)),
        None)
    assert not response.diagnostics, response.diagnostics
    return codec.decode(response.new_state.msgpack)


@pytest.fixture
def tfe(fresh_tfe_emulator, monkeypatch):
    monkeypatch.delenv("TOKENDROP_BATCH_READS", raising=False)
    pool_ids = [fresh_tfe_emulator.create_agent_pool("acme", f"pool-{i}") for i in range(12)]
    fresh_tfe_emulator.clear_requests()
    return fresh_tfe_emulator, pool_ids


def tfe_service(em) -> ProviderService:
    return configured_service(tfe_address=em.url, tfe_token=em.sandbox_token)


def test_twelve_pools_refresh_from_one_listing(tfe):
    em, pool_ids = tfe
    svc = tfe_service(em)
    states = [read(svc, POOL, {"id": pool_id, "organization": "acme"}) for pool_id in pool_ids]
    assert [s["name"] for s in states] == [f"pool-{i}" for i in range(12)]
    assert all(s["organization_scoped"] is True and s["created_at"] for s in states)
    assert len(em.requests(method="GET", path=r"/organizations/acme/agent-pools$")) == 1
    assert em.requests(method="GET", path=r"/agent-pools/apool-") == [], "no per-pool GET"


def test_out_of_band_changes_and_deletions_show_in_the_next_process(tfe):
    em, pool_ids = tfe
    with em.lock:
        em.pools[pool_ids[0]].name = "renamed"
        del em.pools[pool_ids[1]]
    svc = tfe_service(em)
    assert read(svc, POOL, {"id": pool_ids[0], "organization": "acme"})["name"] == "renamed"
    assert read(svc, POOL, {"id": pool_ids[1], "organization": "acme"}) is None
    # The deleted pool was missing from the listing, so it was looked up on its own before being called gone.
    assert [r["status"] for r in em.requests(method="GET", path=r"/agent-pools/apool-")] == [404]


def test_a_pool_in_an_organization_this_token_cannot_list_is_read_on_its_own(tfe):
    em, pool_ids = tfe
    svc = tfe_service(em)
    state = read(svc, POOL, {"id": pool_ids[2], "organization": "not-acme"})
    assert state["name"] == "pool-2" and state["organization"] == "acme"  # as TFE reports it
    assert [r["status"] for r in em.requests(method="GET", path=r"/organizations/not-acme/agent-pools$")] == [404]
    assert len(em.requests(method="GET", path=r"/agent-pools/apool-")) == 1


def test_batching_off_reads_each_pool_with_its_own_call(tfe, monkeypatch):
    em, pool_ids = tfe
    monkeypatch.setenv("TOKENDROP_BATCH_READS", "0")
    svc = tfe_service(em)
    for pool_id in pool_ids:
        read(svc, POOL, {"id": pool_id, "organization": "acme"})
    assert em.requests(method="GET", path=r"/organizations/acme/agent-pools$") == []
    assert len(em.requests(method="GET", path=r"/agent-pools/apool-")) == 12


@pytest.fixture
def buildkite(fresh_buildkite_emulator, monkeypatch):
    monkeypatch.delenv("TOKENDROP_BATCH_READS", raising=False)
    em = fresh_buildkite_emulator
    cluster_ids = [em.create_cluster("acme", f"cluster-{i}", description=f"d{i}") for i in range(12)]
    em.clear_requests()
    svc = configured_service(buildkite_rest_url=em.url, buildkite_api_token=em.sandbox_token,
                             buildkite_organization="acme")
    return em, cluster_ids, svc


def test_twelve_clusters_refresh_from_one_listing(buildkite):
    em, cluster_ids, svc = buildkite
    states = [read(svc, CLUSTER, {"id": cid, "organization": "acme"}) for cid in cluster_ids]
    assert [(s["name"], s["description"]) for s in states] == [(f"cluster-{i}", f"d{i}") for i in range(12)]
    assert len(em.requests(method="GET", path=r"/organizations/acme/clusters$")) == 1
    assert em.requests(method="GET", path=r"/clusters/[0-9a-f-]+$") == [], "no per-cluster GET"


def test_a_deleted_cluster_is_confirmed_before_it_is_called_gone(buildkite):
    em, cluster_ids, svc = buildkite
    with em.lock:
        del em.clusters[cluster_ids[0]]
    assert read(svc, CLUSTER, {"id": cluster_ids[0], "organization": "acme"}) is None
    assert [r["status"] for r in em.requests(method="GET", path=r"/clusters/[0-9a-f-]+$")] == [404]
