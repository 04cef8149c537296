"""`tokendrop audit`: reading the three state formats and directories of them, the flags with a fixed
clock, the table and the JSON document, exit codes, and (against the TFE emulator and moto) that a
pool is listed once with all its pages and sinks are described in batches, never read."""

from __future__ import annotations

import argparse
import datetime
import io
import json

import boto3
import pytest

from tokendrop_provider import cli
from tokendrop_provider.audit import command
from tokendrop_provider.audit.collect import Progress, parallel
from tokendrop_provider.audit.evaluate import Report, ScopeListing, SinkCheck, evaluate
from tokendrop_provider.audit.render import table, to_json
from tokendrop_provider.audit.state import (
    ManagedToken,
    StateError,
    StateSink,
    expand_sources,
    load_sources,
    parse_state,
)
from tokendrop_provider.delivery import issuer_description, marker
from tokendrop_provider.issuers.base import IssuedToken
from tokendrop_provider.provider import ProviderCore
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import (
    BuildkiteSettings,
    Settings,
    TfeSettings,
    TokenVaultSettings,
    VaultSettings,
)
from tokendrop_provider.sinks.base import Ownership, SinkStatus
from tokendrop_provider.sinks.ssm_rules import format_description

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)


def ago(**delta: float) -> str:
    return (NOW - datetime.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ahead(**delta: float) -> str:
    return (NOW + datetime.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- state documents ------------------------------------------------------------------------------

TOKEN_ATTRS = {
    "id": "at-runners", "agent_pool_id": "apool-1", "description": "ci runners",
    "deliver_to": {"ssm": {"name": "/ci/runners", "kms_key_id": None, "tier": None, "description": None,
                           "tags": None}, "vault_kv": None},
    "rotate_every": "30d", "rotate_on": None, "keep_previous_for": None, "adopt_existing": False,
    "sink_address": "ssm:/ci/runners", "sink_version": 1, "sink_status": "delivered",
    "created_at": "2025-05-20T00:00:00Z", "expires_at": None, "previous_token_id": None,
    "previous_revoke_after": None,
}


def tfstate(*resources: dict) -> str:
    return json.dumps({"version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": "x",
                       "outputs": {}, "resources": list(resources)})


def resource(rtype: str, name: str, *instances: dict, module: str | None = None, mode: str = "managed") -> dict:
    res = {"mode": mode, "type": rtype, "name": name,
           "provider": 'provider["registry.terraform.io/tokendrop/tokendrop"]', "instances": list(instances)}
    if module:
        res["module"] = module
    return res


def instance(attributes: dict, **extra: object) -> dict:
    return {"schema_version": 0, "attributes": attributes, "sensitive_attributes": [], **extra}


FULL_STATE = tfstate(
    resource("tokendrop_tfe_agent_pool", "ci", instance({"id": "apool-1", "name": "ci-agents"})),
    resource("tokendrop_tfe_agent_token", "runners", instance(TOKEN_ATTRS)),
    resource("tokendrop_tfe_agent_token", "many", instance({**TOKEN_ATTRS, "id": "at-0"}, index_key=0),
             instance({**TOKEN_ATTRS, "id": "at-a"}, index_key="a"), module='module.fleet["eu"]'),
    resource("tokendrop_tfe_agent_token", "old", instance({**TOKEN_ATTRS, "id": "at-old"}, deposed="00aa11bb")),
    resource("aws_db_instance", "db", instance({"id": "db-1", "password": "hunter2-very-secret"})),
    resource("tokendrop_tfe_agent_token", "ghost", instance({**TOKEN_ATTRS, "id": "at-data"}), mode="data"),
    resource("tokendrop_buildkite_cluster", "linux", instance({"id": "c-1", "organization": "acme", "name": "linux"})),
    resource("tokendrop_buildkite_cluster_token", "bk",
             instance({"id": "t-1", "organization": None, "cluster_id": "c-1", "sink_address": "ssm:/bk"})),
    resource("tokendrop_tokenvault_agent", "bot", instance({"id": "agt_1", "name": "triage-bot"})),
    resource("tokendrop_vault_approle_secret_id", "ci", instance({"id": "acc-1", "role_name": "ci", "mount": None})),
)


def test_tfstate_addresses_scopes_and_only_tokendrop_resources():
    loaded = parse_state(FULL_STATE, "s.tfstate", buildkite_organization="fallback-org")
    assert loaded.format == "tfstate"
    assert [(t.address, t.issuer, t.scope, t.token_id) for t in loaded.tokens] == [
        ("tokendrop_tfe_agent_token.runners", "tfe", "apool-1", "at-runners"),
        ('module.fleet["eu"].tokendrop_tfe_agent_token.many[0]', "tfe", "apool-1", "at-0"),
        ('module.fleet["eu"].tokendrop_tfe_agent_token.many["a"]', "tfe", "apool-1", "at-a"),
        ("tokendrop_tfe_agent_token.old (deposed 00aa11bb)", "tfe", "apool-1", "at-old"),
        ("tokendrop_buildkite_cluster_token.bk", "buildkite", "fallback-org/c-1", "t-1"),
        ("tokendrop_tokenvault_agent.bot", "tokenvault", "triage-bot", "agt_1"),
        ("tokendrop_vault_approle_secret_id.ci", "vault-approle", "approle/ci", "acc-1"),
    ]
    runners = loaded.tokens[0]
    assert (runners.sink_address, runners.sink_version, runners.rotate_every, runners.created_at) == (
        "ssm:/ci/runners", 1, "30d", "2025-05-20T00:00:00Z")
    assert [(s.issuer, s.scope, s.name) for s in loaded.scopes] == [("tfe", "apool-1", "ci-agents"),
                                                                    ("buildkite", "acme/c-1", "linux")]
    assert "hunter2" not in repr(loaded)  # other providers' attributes are never even kept


def test_buildkite_token_without_organization_is_skipped_and_reported():
    loaded = parse_state(FULL_STATE, "s.tfstate")
    assert "tokendrop_buildkite_cluster_token.bk" in loaded.skipped
    assert all(t.issuer != "buildkite" for t in loaded.tokens)


def show_json(root: dict) -> str:
    return json.dumps({"format_version": "1.0", "terraform_version": "1.11.4", "values": {"root_module": root}})


def test_show_json_with_child_modules():
    root = {"resources": [
        {"address": "tokendrop_tfe_agent_token.runners", "mode": "managed", "type": "tokendrop_tfe_agent_token",
         "name": "runners", "provider_name": "registry.terraform.io/tokendrop/tokendrop", "values": TOKEN_ATTRS,
         "sensitive_values": {}},
        {"address": "aws_db_instance.db", "mode": "managed", "type": "aws_db_instance", "name": "db",
         "values": {"password": "hunter2-very-secret"}},
    ], "child_modules": [{"address": "module.ci", "resources": [
        {"address": 'module.ci.tokendrop_tfe_agent_token.x["k"]', "mode": "managed",
         "type": "tokendrop_tfe_agent_token", "name": "x", "index": "k", "values": {**TOKEN_ATTRS, "id": "at-k"}},
        {"address": "module.ci.tokendrop_tfe_agent_pool.p", "mode": "managed", "type": "tokendrop_tfe_agent_pool",
         "name": "p", "values": {"id": "apool-2", "name": "other"}},
    ], "child_modules": [{"address": "module.ci.module.deep", "resources": [
        {"address": "module.ci.module.deep.tokendrop_tfe_agent_token.d", "mode": "managed",
         "type": "tokendrop_tfe_agent_token", "name": "d", "values": {**TOKEN_ATTRS, "id": "at-d"},
         "deposed_key": "cafe0001"}]}]}]}
    loaded = parse_state(show_json(root), "-")
    assert loaded.format == "show-json"
    assert [(t.address, t.token_id) for t in loaded.tokens] == [
        ("tokendrop_tfe_agent_token.runners", "at-runners"),
        ('module.ci.tokendrop_tfe_agent_token.x["k"]', "at-k"),
        ("module.ci.module.deep.tokendrop_tfe_agent_token.d (deposed cafe0001)", "at-d"),
    ]
    assert [(s.scope, s.name) for s in loaded.scopes] == [("apool-2", "other")]


def test_plan_json_reads_the_prior_state_and_an_empty_state_has_no_tokens():
    plan = {"format_version": "1.2", "prior_state": {"format_version": "1.0", "values": {"root_module": {
        "resources": [{"address": "tokendrop_tfe_agent_token.r", "mode": "managed",
                       "type": "tokendrop_tfe_agent_token", "name": "r", "values": TOKEN_ATTRS}]}}},
            "planned_values": {"root_module": {}}}
    loaded = parse_state(json.dumps(plan), "plan.json")
    assert loaded.format == "plan-json" and [t.token_id for t in loaded.tokens] == ["at-runners"]
    assert parse_state('{"format_version": "1.0"}', "empty").tokens == ()  # `show -json` of an empty state


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty input"),
    ("{not json", "not JSON"),
    ("[1, 2]", "not a Terraform state"),
    ('{"hello": "world"}', "not a Terraform state"),
    ('{"version": 3, "resources": []}', "version 3 is not supported"),
    ('{"version": 4, "resources": {}}', "`resources` is not a list"),
])
def test_unreadable_states_name_the_source(text, message):
    with pytest.raises(StateError, match=message) as caught:
        parse_state(text, "bad.tfstate")
    assert str(caught.value).startswith("bad.tfstate: ")


def test_directories_find_every_tfstate_below_them_once(tmp_path):
    project = tmp_path / "app"
    (project / ".terraform").mkdir(parents=True)
    (project / ".terraform" / "terraform.tfstate").write_text('{"version": 3, "backend": {}}')  # backend config
    (project / "node_modules" / "x").mkdir(parents=True)
    (project / "node_modules" / "x" / "terraform.tfstate").write_text("{}")
    (project / "terraform.ci.tfstate").write_text(FULL_STATE)  # cdktf's per-stack local state
    (project / "terraform.ci.tfstate.backup").write_text("{}")
    (project / "nested").mkdir()
    (project / "nested" / "terraform.tfstate").write_text(tfstate())
    assert expand_sources([str(project), str(project / "terraform.ci.tfstate"), "-"]) == [
        project / "nested" / "terraform.tfstate", project / "terraform.ci.tfstate", None]
    states = load_sources([str(project)], stdin=io.StringIO(""))
    assert len(states.loaded) == 2 and len(states.tokens) == 6


def test_source_errors(tmp_path):
    with pytest.raises(StateError, match="no such file"):
        expand_sources([str(tmp_path / "absent.tfstate")])
    with pytest.raises(StateError, match=r"no \*.tfstate file"):
        expand_sources([str(tmp_path)])
    with pytest.raises(StateError, match="given twice"):
        expand_sources(["-", "-"])


def test_stdin_is_read_for_dash():
    states = load_sources(["-"], stdin=io.StringIO(FULL_STATE), buildkite_organization="acme")
    assert states.loaded[0].source == "-" and len(states.tokens) == 7


# --- flags, with a fixed clock --------------------------------------------------------------------

POOL = "apool-1"


def managed(token_id: str = "at-1", **overrides: object) -> ManagedToken:
    values: dict = {"source": "s.tfstate", "address": f"tokendrop_tfe_agent_token.{token_id}",
                    "resource_type": "tokendrop_tfe_agent_token", "issuer": "tfe", "scope": POOL,
                    "token_id": token_id, "sink_address": f"ssm:/ci/{token_id}", "sink_version": 1,
                    "sink_status": "delivered", "created_at": ago(days=1)}
    values.update(overrides)
    return ManagedToken(**values)


def issued(token_id: str, sink: str | None = None, scope: str = POOL, issuer: str = "tfe",
           **extra: object) -> IssuedToken:
    description = issuer_description("d", marker(issuer, scope, sink)) if sink else "by hand"
    return IssuedToken(id=token_id, scope=scope, description=description, created_at=ago(days=1), **extra)


def listing(*tokens: IssuedToken, scope: str = POOL, issuer: str = "tfe", exists: bool = True) -> dict:
    return {(issuer, scope): ScopeListing(issuer, scope, {t.id: t for t in tokens}, exists=exists)}


def delivered(token_id: str, version: int = 1) -> SinkStatus:
    return SinkStatus(exists=True, version=version, ownership=Ownership(token_id, "tfe", "fp", version),
                      ownership_current=True)


def flags_of(report: Report) -> dict[str, list[str]]:
    return {(r.address or f"orphan {r.token_id}"): r.codes for r in report.rows}


def test_a_healthy_token_has_no_flags():
    report = evaluate([managed()], listing(issued("at-1", "ssm:/ci/at-1")), {"ssm:/ci/at-1": delivered("at-1")}, NOW)
    row = report.rows[0]
    assert row.flags == [] and row.issuer_status == "live" and row.sink.status == "delivered"
    assert row.marker == marker("tfe", POOL, "ssm:/ci/at-1")


@pytest.mark.parametrize(("age_days", "flagged"), [(29.9, False), (30, True), (45, True)])
def test_rotation_overdue_once_rotate_every_has_elapsed(age_days, flagged):
    token = managed(rotate_every="30d", created_at=ago(days=age_days))
    report = evaluate([token], listing(issued("at-1")), {"ssm:/ci/at-1": delivered("at-1")}, NOW)
    assert report.rows[0].codes == (["rotation_overdue"] if flagged else [])
    if flagged:
        assert "rotate_every 30d" in report.rows[0].flags[0].detail


@pytest.mark.parametrize(("expires", "before", "window", "flagged"), [
    (ahead(days=6), None, None, True),  # the default window is 7 days
    (ahead(days=8), None, None, False),
    (ahead(days=8), None, datetime.timedelta(days=10), True),  # --expiring-within 10d
    (ahead(days=3), "2d", None, False),  # rotate_before_expiry wins over the default
    (ahead(hours=36), "2d", None, True),
    (ago(hours=1), None, None, True),  # expired
])
def test_expiring_within_rotate_before_expiry_or_the_default_window(expires, before, window, flagged):
    token = managed(issuer="buildkite", scope="acme/c", expires_at=expires, rotate_before_expiry=before)
    live = IssuedToken("at-1", "acme/c", "x", created_at=ago(days=1), expires_at=expires)
    args = {"expiry_window": window} if window else {}
    report = evaluate([token], listing(live, scope="acme/c", issuer="buildkite"),
                      {"ssm:/ci/at-1": delivered("at-1")}, NOW, **args)
    assert report.rows[0].codes == (["expiring"] if flagged else [])
    if flagged and expires > NOW.strftime("%Y-%m-%dT%H:%M:%SZ"):
        hint = "the plan rotates it" if before else "Set rotate_before_expiry"
        assert hint in report.rows[0].flags[0].detail


def test_the_issuers_expiry_wins_over_states():
    token = managed(expires_at=ahead(days=60))
    live = IssuedToken("at-1", POOL, "x", expires_at=ahead(days=2))
    report = evaluate([token], listing(live), {}, NOW)
    assert report.rows[0].expires_at == ahead(days=2) and report.rows[0].codes == ["expiring"]


def test_an_expired_token_reads_expired_not_revoked():
    listed_expired = IssuedToken("at-1", POOL, "x", expires_at=ago(hours=2))
    row = evaluate([managed()], listing(listed_expired), {}, NOW).rows[0]
    assert row.issuer_status == "expired" and row.codes == ["expiring"] and "expired 2h ago" in row.flags[0].detail
    gone_after_expiry = evaluate([managed(expires_at=ago(days=1))], listing(), {}, NOW).rows[0]
    assert gone_after_expiry.issuer_status == "expired" and gone_after_expiry.codes == ["expiring"]


def test_revoked_when_the_issuer_no_longer_has_it():
    token = managed(rotate_every="30d", created_at=ago(days=90))
    row = evaluate([token], listing(issued("at-other")), {}, NOW).rows[0]
    assert row.issuer_status == "revoked"
    assert row.codes == ["revoked"], "a revoked token is not also overdue for rotation"
    gone_pool = evaluate([managed()], listing(exists=False), {}, NOW).rows[0]
    assert gone_pool.codes == ["revoked"] and f"agent pool {POOL} no longer exists" in gone_pool.flags[0].detail


@pytest.mark.parametrize(("status", "sink_status", "expected", "code"), [
    (SinkStatus(exists=False), "delivered", "missing", ["sink_drift"]),
    (delivered("someone-else", version=2), "delivered", "overwritten", ["sink_drift"]),
    (SinkStatus(exists=True, version=2), "delivered", "overwritten", ["sink_drift"]),  # no record at all
    (delivered("at-9"), "delivered", "foreign", ["sink_drift"]),  # same version, another token's record
    (delivered("at-1"), "overwritten", "drifted", ["sink_drift"]),  # refresh recorded it in state
    (SinkStatus(exists=True, version=1), "delivered", "delivered", []),  # imported sink without a record
])
def test_sink_drift(status, sink_status, expected, code):
    row = evaluate([managed(sink_status=sink_status)], listing(issued("at-1")), {"ssm:/ci/at-1": status}, NOW).rows[0]
    assert (row.sink.status, row.codes) == (expected, code)


def test_overwritten_names_who_holds_the_sink():
    row = evaluate([managed()], listing(issued("at-1")), {"ssm:/ci/at-1": delivered("at-7", version=3)}, NOW).rows[0]
    assert row.sink == SinkCheck("ssm:/ci/at-1", 1, 3, "overwritten", "at-7")
    assert "version 3, not 1" in row.flags[0].detail and "at-7" in row.flags[0].detail


def test_unread_sinks_rely_on_what_state_recorded():
    assert evaluate([managed()], listing(issued("at-1")), {}, NOW).rows[0].codes == []
    row = evaluate([managed(sink_status="missing")], listing(issued("at-1")), {}, NOW).rows[0]
    assert row.sink.status == "unchecked" and row.codes == ["sink_drift"] and "not read" in row.flags[0].detail


def test_a_token_vault_key_newer_than_the_delivered_one_is_a_dead_key_in_the_sink():
    token = managed("agt_1", issuer="tokenvault", scope="bot", created_at=ago(days=3))
    agent = IssuedToken("agt_1", "bot", "x", created_at=ago(days=1), extra={"status": "active"})
    row = evaluate([token], listing(agent, scope="bot", issuer="tokenvault"),
                   {"ssm:/ci/agt_1": delivered("agt_1")}, NOW).rows[0]
    assert row.sink.status == "stale" and row.codes == ["sink_drift"] and "dead key" in row.flags[0].detail


def test_a_suspended_agent_is_reported_without_a_flag():
    token = managed("agt_1", issuer="tokenvault", scope="bot")
    agent = IssuedToken("agt_1", "bot", "x", created_at=token.created_at, extra={"status": "suspended"})
    row = evaluate([token], listing(agent, scope="bot", issuer="tokenvault"), {}, NOW).rows[0]
    assert row.issuer_status == "suspended" and row.codes == []


@pytest.mark.parametrize(("deadline", "previous_alive", "flagged", "words"), [
    (ahead(minutes=5), True, False, ""),
    (ago(minutes=5), True, True, "still live"),
    (ago(days=2), False, True, "already gone"),
    (None, True, True, "no revoke deadline"),
])
def test_previous_token_overdue(deadline, previous_alive, flagged, words):
    token = managed(previous_token_id="at-0", previous_revoke_after=deadline)
    tokens = [issued("at-1"), *([issued("at-0", "ssm:/ci/at-1")] if previous_alive else [])]
    report = evaluate([token], listing(*tokens), {}, NOW)
    assert flags_of(report) == {"tokendrop_tfe_agent_token.at-1": ["previous_overdue"] if flagged else []}
    assert report.rows[0].previous_live is previous_alive
    if flagged:
        assert words in report.rows[0].flags[0].detail


def test_orphans_are_live_marked_tokens_no_state_knows():
    states = [managed("at-1"), managed("at-2", previous_token_id="at-prev", previous_revoke_after=ahead(hours=1))]
    scope = listing(
        issued("at-1", "ssm:/ci/at-1"), issued("at-2", "ssm:/ci/at-2"),
        issued("at-prev", "ssm:/ci/at-2"),  # known to state as the previous token
        issued("at-crash", "ssm:/ci/at-1"),  # an interrupted run's token for at-1's sink
        issued("at-foreign", "ssm:/other/stack"),  # a marker of a sink no given state has
        issued("at-hand"),  # no marker: not ours
        IssuedToken("at-dead", POOL, issuer_description(None, "td:0123456789ab"), expires_at=ago(days=1)),
    )
    report = evaluate(states, scope, {}, NOW)
    assert flags_of(report) == {
        "tokendrop_tfe_agent_token.at-1": [], "tokendrop_tfe_agent_token.at-2": [],
        "orphan at-crash": ["orphan"], "orphan at-foreign": ["orphan"],
    }
    crash, foreign = report.rows[2:]
    assert crash.belongs_to == "tokendrop_tfe_agent_token.at-1" and "next delivery" in crash.flags[0].detail
    assert foreign.belongs_to is None and "names no sink of the given states" in foreign.flags[0].detail


def test_an_orphan_a_sink_holds_is_taken_into_state_by_the_next_refresh():
    sinks = {"ssm:/ci/at-1": delivered("at-new", version=2)}
    report = evaluate([managed("at-1")], listing(issued("at-1"), issued("at-new", "ssm:/ci/at-1")), sinks, NOW)
    assert flags_of(report) == {"tokendrop_tfe_agent_token.at-1": ["sink_drift"], "orphan at-new": ["orphan"]}
    assert "next refresh" in report.rows[1].flags[0].detail


def test_known_ids_are_per_issuer_and_gone_scopes_have_no_orphans():
    listings = {**listing(issued("at-1", "ssm:/x", scope="acme/c", issuer="buildkite"), scope="acme/c",
                          issuer="buildkite"),
                **listing(issued("at-9", "ssm:/y"), exists=False)}
    report = evaluate([managed("at-1")], listings, {}, NOW)
    assert [r.token_id for r in report.rows if r.address is None] == ["at-1"]  # the Buildkite one


# --- rendering ------------------------------------------------------------------------------------


def sample_report() -> Report:
    tokens = [managed("at-1", rotate_every="30d", created_at=ago(days=40)), managed("at-2"),
              managed("kv-1", issuer="vault-approle", scope="approle/ci", sink_address="vault_kv:secret/ci#token",
                      source="other.tfstate", expires_at=ahead(days=20))]
    listings = {**listing(IssuedToken("at-1", POOL, issuer_description(None, marker("tfe", POOL, "ssm:/ci/at-1")),
                                      created_at=ago(days=40), last_used_at=ago(hours=3)),
                          issued("at-2"), issued("at-x", "ssm:/gone")),
                **listing(IssuedToken("kv-1", "approle/ci", "x", created_at=ago(days=1), expires_at=ahead(days=20)),
                          scope="approle/ci", issuer="vault-approle")}
    sinks = {"ssm:/ci/at-1": delivered("at-1"), "ssm:/ci/at-2": delivered("at-2", version=2),
             "vault_kv:secret/ci#token": delivered("kv-1")}
    return evaluate(tokens, listings, sinks, NOW)


def test_table_columns_summary_and_details():
    text = table(sample_report())
    lines = text.splitlines()
    header = lines[0]
    starts = [header.index(h) for h in ("ISSUER", "TOKEN", "AGE", "EXPIRES", "LAST USED", "SINK", "VERSION",
                                        "STATUS")]
    rows = lines[1:5]
    for line in rows:  # every column starts where its header does
        for start in starts:
            assert line[start - 2:start] == "  " and line[start] != " "
    assert rows[0].split()[:6] == ["tokendrop_tfe_agent_token.at-1", "tfe", "at-1", "40d", "never", "3h"]
    assert rows[0].rstrip().endswith("1        rotation_overdue")
    assert "1->2" in rows[1] and rows[1].rstrip().endswith("sink_drift")
    assert rows[2].split()[3:6] == ["1d", "in", "20d"] and " n/a " in rows[2]  # AppRole reports no last use
    assert rows[3].startswith(f"(orphan in {POOL})")
    assert "4 tokens, 3 need attention (1 orphan, 1 sink drift, 1 rotation overdue)" in text
    assert "tokendrop_tfe_agent_token.at-2\n  sink_drift: ssm:/ci/at-2 is at version 2, not 1" in text
    assert f"orphan at-x in tfe {POOL}\n  orphan: at-x carries marker" in text


def test_table_with_several_states_names_them():
    text = table(sample_report(), show_state=True)
    assert text.splitlines()[0].startswith("STATE ")
    assert text.splitlines()[3].startswith("other.tfstate ")


def test_empty_report():
    assert table(Report([], NOW)) == "0 tokens, 0 need attention\n"


def test_json_document():
    report = sample_report()
    from tokendrop_provider.audit.render import Source

    doc = json.loads(json.dumps(to_json(report, [Source("state", "s.tfstate", "tfstate", 2),
                                                 Source("tfe_organization", "acme")],
                                        [ScopeListing("tfe", POOL, {}, name="ci", origin="state+walk")])))
    assert list(doc) == ["schema", "generated_at", "summary", "sources", "scopes", "tokens"]
    assert doc["schema"] == "tokendrop-audit/1" and doc["generated_at"] == "2025-06-01T00:00:00Z"
    assert doc["summary"] == {"tokens": 4, "attention": 3, "flags": {
        "orphan": 1, "revoked": 0, "sink_drift": 1, "rotation_overdue": 1, "expiring": 0, "previous_overdue": 0}}
    assert doc["sources"] == [{"type": "state", "name": "s.tfstate", "format": "tfstate", "tokens": 2},
                              {"type": "tfe_organization", "name": "acme"}]
    assert doc["scopes"] == [{"issuer": "tfe", "scope": POOL, "name": "ci", "origin": "state+walk", "exists": True,
                              "tokens": 0}]
    first = doc["tokens"][0]
    assert set(first) == {"address", "state", "resource_type", "issuer", "scope", "scope_name", "token_id",
                          "description", "marker", "created_at", "age_seconds", "expires_at", "last_used_at",
                          "issuer_status", "sink", "sinks", "previous_token", "belongs_to", "flags", "attention"}
    assert first["age_seconds"] == 40 * 86400 and first["last_used_at"] == ago(hours=3)
    assert first["sink"] == {"address": "ssm:/ci/at-1", "state_version": 1, "version": 1, "status": "delivered",
                             "holder": "at-1"}
    assert first["flags"] == [{"code": "rotation_overdue", "detail": first["flags"][0]["detail"]}]
    assert first["attention"] is True and first["previous_token"] is None
    orphan = doc["tokens"][3]
    assert orphan["address"] is None and orphan["sink"] is None and orphan["flags"][0]["code"] == "orphan"


# --- several sinks (deliver_to a list) -------------------------------------------------------------

FANOUT_BLOCKS = [{"ssm": {"name": "/bk/token", "region": "eu-west-1"}},
                 {"ssm": {"name": "/bk/token", "region": "us-east-1"}},
                 {"vault_kv": {"path": "ci/bk"}}]
FANOUT_ADDRESSES = ["ssm:eu-west-1:/bk/token", "ssm:us-east-1:/bk/token", "vault_kv:secret/ci/bk#token"]


def fanout_attrs(token_id: str, pool: str = "apool-1", statuses: tuple[str, ...] = ("delivered",) * 3,
                 **overrides: object) -> dict:
    return {**TOKEN_ATTRS, "id": token_id, "agent_pool_id": pool, "rotate_every": None,
            "deliver_to": {"value": FANOUT_BLOCKS, "type": ["tuple", []]},  # a dynamic value, as state holds it
            "sink_address": FANOUT_ADDRESSES[0], "sink_version": 1, "sink_status": statuses[0],
            "sinks": [{"address": a, "status": st, "version": 1}
                      for a, st in zip(FANOUT_ADDRESSES, statuses, strict=True)], **overrides}


def test_state_gives_every_sink_with_its_own_block():
    loaded = parse_state(tfstate(resource("tokendrop_tfe_agent_token", "bk", instance(fanout_attrs("at-1")))), "s")
    token = loaded.tokens[0]
    assert [s.address for s in token.all_sinks] == FANOUT_ADDRESSES
    assert [s.deliver_to for s in token.all_sinks] == FANOUT_BLOCKS, "each sink keeps its region"
    assert token.deliver_to == FANOUT_BLOCKS[0]
    from tokendrop_provider.audit.collect import sink_refs

    assert [(r.address, r.kind, r.location.get("region")) for r in sink_refs(token)] == [
        (FANOUT_ADDRESSES[0], "ssm", "eu-west-1"), (FANOUT_ADDRESSES[1], "ssm", "us-east-1"),
        (FANOUT_ADDRESSES[2], "vault_kv", None)]
    one = parse_state(tfstate(resource("tokendrop_tfe_agent_token", "x", instance(TOKEN_ATTRS))), "s").tokens[0]
    assert [(s.address, s.version) for s in one.all_sinks] == [("ssm:/ci/runners", 1)], "state before `sinks`"


def test_a_sink_of_another_account_without_its_block_is_left_unchecked():
    from tokendrop_provider.audit.collect import sink_refs

    token = managed(sinks=(StateSink("ssm:111111111111:/x", 1, "delivered"), StateSink("ssm:eu-west-1:/x", 1)))
    assert [r.address for r in sink_refs(token)] == ["ssm:eu-west-1:/x"], "the role is not in the address"
    row = evaluate([token], listing(issued("at-1")), {"ssm:eu-west-1:/x": delivered("at-1")}, NOW).rows[0]
    assert [(c.address, c.status) for c in row.sinks] == [("ssm:111111111111:/x", "unchecked"),
                                                          ("ssm:eu-west-1:/x", "delivered")]


def fanout_token(statuses: tuple[str, ...] = ("delivered",) * 3, **overrides: object) -> ManagedToken:
    return managed(sink_address=FANOUT_ADDRESSES[0], sinks=tuple(
        StateSink(a, 1, st) for a, st in zip(FANOUT_ADDRESSES, statuses, strict=True)), **overrides)


def test_drift_is_reported_per_sink_naming_each():
    sinks = {FANOUT_ADDRESSES[0]: delivered("at-1"), FANOUT_ADDRESSES[1]: SinkStatus(exists=False),
             FANOUT_ADDRESSES[2]: delivered("at-9", version=2)}
    row = evaluate([fanout_token()], listing(issued("at-1")), sinks, NOW).rows[0]
    assert [(c.address, c.status) for c in row.sinks] == [
        (FANOUT_ADDRESSES[0], "delivered"), (FANOUT_ADDRESSES[1], "missing"), (FANOUT_ADDRESSES[2], "overwritten")]
    assert row.sink == row.sinks[0]
    assert row.codes == ["sink_drift", "sink_drift"]
    assert row.flags[0].detail.startswith("ssm:us-east-1:/bk/token no longer exists")
    assert row.flags[1].detail.startswith("vault_kv:secret/ci/bk#token is at version 2, not 1")
    clean = evaluate([fanout_token()], listing(issued("at-1")), {a: delivered("at-1") for a in FANOUT_ADDRESSES},
                     NOW).rows[0]
    assert clean.codes == [] and {c.status for c in clean.sinks} == {"delivered"}


def test_a_pending_sink_is_drift_and_the_previous_token_it_holds_is_not_overdue():
    token = fanout_token(("delivered", "pending", "delivered"), previous_token_id="at-0")
    previous = issued("at-0")
    read = {FANOUT_ADDRESSES[0]: delivered("at-1"), FANOUT_ADDRESSES[1]: delivered("at-0", version=1),
            FANOUT_ADDRESSES[2]: delivered("at-1")}
    row = evaluate([token], listing(issued("at-1"), previous), read, NOW).rows[0]
    assert row.codes == ["sink_drift"] and row.sinks[1].status == "drifted"
    assert "ssm:us-east-1:/bk/token as pending" in row.flags[0].detail
    unread = evaluate([token], listing(issued("at-1"), previous), {}, NOW).rows[0]
    assert unread.codes == ["sink_drift"] and "not read" in unread.flags[0].detail
    # once every sink is written the overlap has a deadline; past it, no apply has run: overdue
    late = fanout_token(previous_token_id="at-0", previous_revoke_after=ago(hours=2))
    row = evaluate([late], listing(issued("at-1"), previous), {}, NOW).rows[0]
    assert row.codes == ["previous_overdue"] and "No apply has run since" in row.flags[0].detail


def test_table_has_a_line_per_further_sink_and_json_lists_every_sink():
    sinks = {FANOUT_ADDRESSES[0]: delivered("at-1"), FANOUT_ADDRESSES[1]: SinkStatus(exists=False)}
    report = evaluate([fanout_token()], listing(issued("at-1")), sinks, NOW)
    lines = table(report).splitlines()
    header = lines[0]
    assert lines[1].startswith("tokendrop_tfe_agent_token.at-1") and FANOUT_ADDRESSES[0] in lines[1]
    for line, address, version, status in ((lines[2], FANOUT_ADDRESSES[1], "1->none", "missing"),
                                           (lines[3], FANOUT_ADDRESSES[2], "1", "unchecked")):
        assert line[:header.index("SINK")].strip() == "" and line.split() == [address, version, status]
    document = to_json(report, [], [])
    assert [(s["address"], s["status"]) for s in document["tokens"][0]["sinks"]] == [
        (FANOUT_ADDRESSES[0], "delivered"), (FANOUT_ADDRESSES[1], "missing"), (FANOUT_ADDRESSES[2], "unchecked")]


# --- progress -------------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_on_a_terminal_and_erases_itself():
    stream = Tty()
    progress = Progress(stream, enabled=True)
    progress.stage("listing scopes", 3)
    assert parallel([1, 2, 3], lambda n: n * 2, 2, progress, describe=str) == [2, 4, 6]
    progress.finish()
    out = stream.getvalue()
    assert "\r\x1b[Ktokendrop audit: listing scopes 3/3" in out and out.endswith("\r\x1b[K") and "\n" not in out


def test_progress_on_a_pipe_prints_lines_only_when_asked():
    quiet = io.StringIO()
    Progress(quiet, enabled=False).stage("x", 2)
    assert quiet.getvalue() == ""
    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    progress.stage("listing scopes", 2)
    parallel(["a", "b"], str.upper, 1, progress, describe=lambda s: f"tfe {s}")
    progress.finish()
    assert stream.getvalue() == "tokendrop audit: listing scopes 1/2 tfe a\ntokendrop audit: listing scopes 2/2 tfe b\n"


def test_parallel_raises_the_first_failure():
    def work(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    with pytest.raises(ValueError, match="three"):
        parallel(list(range(10)), work, 4, Progress())


# --- the command, against the TFE emulator and moto ------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["audit", *argv])


def make_core(em, aws) -> ProviderCore:
    core = ProviderCore(resources={})
    core.settings = Settings(tfe=TfeSettings(em.url, Secret(em.sandbox_token)), buildkite=BuildkiteSettings(),
                             tokenvault=TokenVaultSettings(), aws=aws, vault=VaultSettings())
    return core


def run(core: ProviderCore, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = command.run(parse(*argv), stdin=io.StringIO(stdin), stdout=out, stderr=err, now=NOW, core=core)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fleet(fresh_tfe_emulator, ssm_settings, clean_moto, tmp_path):
    """Two pools: 120 tokens in one (two pages), 3 in the other, each delivered to its own SSM parameter
    with tokendrop's ownership record, and a state naming them all."""
    em = fresh_tfe_emulator
    ssm = boto3.client("ssm", endpoint_url=ssm_settings.endpoint_url_ssm, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    created = NOW - datetime.timedelta(days=1)
    instances = []
    for pool_name, count in (("big", 120), ("small", 3)):
        pool = em.create_agent_pool("acme", pool_name)
        for i in range(count):
            name = f"/fleet/{pool_name}/t{i:03d}"
            token_id, _ = em.create_agent_token(pool, issuer_description(None, marker("tfe", pool, f"ssm:{name}")),
                                                created_at=created)
            ssm.put_parameter(Name=name, Value=f"value-{pool_name}-{i}", Type="SecureString",
                              Description=format_description(None, Ownership(token_id, "tfe", "fp"), 1))
            instances.append(instance({**TOKEN_ATTRS, "id": token_id, "agent_pool_id": pool, "sink_address":
                                       f"ssm:{name}", "deliver_to": {"ssm": {"name": name}, "vault_kv": None},
                                       "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ")}, index_key=len(instances)))
    path = tmp_path / "terraform.tfstate"
    path.write_text(tfstate(resource("tokendrop_tfe_agent_token", "fleet", *instances)))
    em.clear_requests()
    clean_moto.reset_counters()
    return em, make_core(em, ssm_settings), path, ssm


def test_clean_fleet_exits_0_with_one_listing_per_pool_and_batched_sinks(fleet, clean_moto):
    em, core, path, _ = fleet
    code, out, err = run(core, "--state", str(path))
    assert (code, err) == (0, "")
    assert "123 tokens, 0 need attention" in out
    # Besides the listings, at most the one account lookup per token and process (whose rate budget).
    gets = [r for r in em.requests("GET") if r["path"] != "/api/v2/account/details"]
    listings = [r for r in gets if r["path"].endswith("/authentication-tokens")]
    assert len(listings) == 3 == len(gets), "two pages for 120 tokens, one for 3; no per-token lookups"
    assert len(em.requests(path="/api/v2/account/details")) <= 1
    calls = clean_moto.calls()
    assert calls["DescribeParameters"] == 3  # 123 parameters, 50 per call
    assert calls.get("GetParameter", 0) == 0 and calls.get("GetParameters", 0) == 0  # never a value


def test_problems_exit_1_and_json_on_stdout_only(fleet):
    _, core, path, ssm = fleet
    state = json.loads(path.read_text())
    first, second = (i["attributes"] for i in state["resources"][0]["instances"][:2])
    from tokendrop_provider.issuers.tfe import TfeClient

    with TfeClient(core.settings.tfe) as client:  # revoked at the issuer, as someone in the UI would
        assert client.revoke(first["agent_pool_id"], first["id"])
    ssm.put_parameter(Name=second["deliver_to"]["ssm"]["name"], Value="someone", Type="SecureString", Overwrite=True)
    code, out, err = run(core, "--state", "-", "--json", "--progress", stdin=path.read_text())
    assert code == 1
    doc = json.loads(out)  # progress went to stderr: stdout is the document alone
    assert "tokendrop audit: reading sinks" in err
    assert doc["summary"]["attention"] == 2 and doc["summary"]["flags"]["revoked"] == 1
    flagged = {t["token_id"]: [f["code"] for f in t["flags"]] for t in doc["tokens"] if t["flags"]}
    assert flagged == {first["id"]: ["revoked"], second["id"]: ["sink_drift"]}
    assert "value-" not in out + err


def test_walking_an_organization_finds_orphans_in_pools_no_state_names(fleet):
    em, core, path, _ = fleet
    stray_pool = em.create_agent_pool("acme", "stray")
    stray, _ = em.create_agent_token(stray_pool, issuer_description(None, marker("tfe", stray_pool, "ssm:/x")))
    assert run(core, "--state", str(path))[0] == 0
    code, out, _ = run(core, "--state", str(path), "--tfe-organization", "acme", "--json")
    assert code == 1
    doc = json.loads(out)
    assert [(t["token_id"], t["scope_name"]) for t in doc["tokens"] if t["address"] is None] == [(stray, "stray")]
    assert {s["name"]: s["origin"] for s in doc["scopes"]} == {"big": "state+walk", "small": "state+walk",
                                                               "stray": "walk"}


def test_an_organization_walk_alone_needs_no_state(fresh_tfe_emulator, ssm_settings):
    em = fresh_tfe_emulator
    pool = em.create_agent_pool("acme", "ci")
    em.create_agent_token(pool, "by hand")
    assert run(make_core(em, ssm_settings), "--tfe-organization", "acme") == (0, "0 tokens, 0 need attention\n", "")


@pytest.mark.parametrize(("argv", "message"), [
    ((), "nothing to audit"),
    (("--state", "-", "--expiring-within", "soon"), "--expiring-within"),
    (("--state", "-", "--concurrency", "0"), "--concurrency must be at least 1"),
    (("--state", "/nonexistent/terraform.tfstate"), "no such file or directory"),
    (("--tfe-organization", "nope"), "TFE organization 'nope' not found"),
    (("--approle-role", "ci"), "<mount>/<role name>"),
])
def test_usage_errors_exit_2(argv, message, fresh_tfe_emulator, ssm_settings):
    code, out, err = run(make_core(fresh_tfe_emulator, ssm_settings), *argv, stdin=tfstate())
    assert code == 2 and out == ""
    assert err.startswith("tokendrop audit: ") and message in err


@pytest.mark.parametrize(("settings", "needs"), [
    ({"tfe": TfeSettings()}, "TFE_TOKEN"),
    ({"aws": None, "vault": VaultSettings(address="http://127.0.0.1:1", token=Secret("root-token-x"))}, "AWS_REGION"),
    ({"vault": VaultSettings(address="http://127.0.0.1:1")}, "VAULT_TOKEN"),
])
def test_missing_credentials_exit_2_before_any_call(settings, needs, fresh_tfe_emulator, ssm_settings, monkeypatch):
    from tokendrop_provider.settings import AwsSettings

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    core = make_core(fresh_tfe_emulator, ssm_settings)
    values = {"tfe": core.settings.tfe, "buildkite": BuildkiteSettings(), "tokenvault": TokenVaultSettings(),
              "aws": core.settings.aws, "vault": VaultSettings(), **settings}
    if values["aws"] is None:
        values["aws"] = AwsSettings()
    core.settings = Settings(**values)
    vault_token = {**TOKEN_ATTRS, "id": "at-v", "sink_address": "vault_kv:secret/ci#token",
                   "deliver_to": {"ssm": None, "vault_kv": {"mount": "secret", "path": "ci", "field": "token"}}}
    state = tfstate(resource("tokendrop_tfe_agent_token", "a", instance(TOKEN_ATTRS), instance(vault_token)))
    code, out, err = run(core, "--state", "-", stdin=state)
    assert code == 2 and out == "" and needs in err
    assert fresh_tfe_emulator.requests() == []


def test_skip_sinks_needs_no_sink_credentials(fresh_tfe_emulator, monkeypatch):
    from tokendrop_provider.settings import AwsSettings

    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    em = fresh_tfe_emulator
    pool = em.create_agent_pool("acme", "ci")
    token_id, _ = em.create_agent_token(pool, "x")
    core = make_core(em, AwsSettings())
    state = tfstate(resource("tokendrop_tfe_agent_token", "a", instance({**TOKEN_ATTRS, "id": token_id,
                                                                          "agent_pool_id": pool})))
    code, out, _ = run(core, "--state", "-", "--skip-sinks", "--json", stdin=state)
    assert code == 0
    assert json.loads(out)["tokens"][0]["sink"]["status"] == "unchecked"


def test_a_deleted_pool_means_its_tokens_are_revoked(fresh_tfe_emulator, ssm_settings):
    state = tfstate(resource("tokendrop_tfe_agent_token", "a", instance({**TOKEN_ATTRS,
                                                                          "agent_pool_id": "apool-gone"})))
    code, out, _ = run(make_core(fresh_tfe_emulator, ssm_settings), "--state", "-", "--skip-sinks", stdin=state)
    assert code == 1 and "agent pool apool-gone no longer exists" in out


def test_an_unexpected_failure_exits_2_not_1(fresh_tfe_emulator, ssm_settings, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("tokendrop_provider.audit.collect.list_scopes", broken)
    state = tfstate(resource("tokendrop_tfe_agent_token", "a", instance(TOKEN_ATTRS)))
    code, out, err = run(make_core(fresh_tfe_emulator, ssm_settings), "--state", "-", "--skip-sinks", stdin=state)
    assert (code, out) == (2, "") and "RuntimeError: boom" in err


def test_the_cli_entry_point(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit) as usage:
        cli.main(["audit", "--no-such-flag"])
    assert usage.value.code == 2
    monkeypatch.setattr("sys.stdin", io.StringIO(tfstate()))
    assert cli.main(["audit", "--state", "-"]) == 0
    assert capsys.readouterr().out == "0 tokens, 0 need attention\n"



def test_every_region_of_a_fanout_is_read_in_its_own_region(fresh_tfe_emulator, ssm_settings, clean_moto, tmp_path):
    """Two SSM sinks of one token, in eu-west-1 and us-east-1 (moto keeps regions apart): the audit
    describes each in its own region; one region's parameter deleted is one finding naming it."""
    em = fresh_tfe_emulator
    pool = em.create_agent_pool("acme", "bk")
    token_id, _ = em.create_agent_token(pool, issuer_description(None, marker("tfe", pool, FANOUT_ADDRESSES[0])))
    clients = {region: boto3.client("ssm", endpoint_url=ssm_settings.endpoint_url_ssm, region_name=region,
                                    aws_access_key_id="test", aws_secret_access_key="test")
               for region in ("eu-west-1", "us-east-1")}
    for client in clients.values():
        client.put_parameter(Name="/bk/token", Value="value-of-bk", Type="SecureString",
                             Description=format_description(None, Ownership(token_id, "tfe", "fp"), 1))
    attrs = fanout_attrs(token_id, pool, created_at=ago(days=1))
    attrs["deliver_to"] = {"value": FANOUT_BLOCKS[:2], "type": ["tuple", []]}
    attrs["sinks"] = attrs["sinks"][:2]
    path = tmp_path / "terraform.tfstate"
    path.write_text(tfstate(resource("tokendrop_tfe_agent_token", "bk", instance(attrs))))
    core = make_core(em, ssm_settings)
    clean_moto.reset_counters()
    code, out, err = run(core, "--state", str(path), "--json")
    assert (code, err) == (0, ""), out
    calls = clean_moto.calls()
    assert calls["DescribeParameters"] == 2, "one batch per region"
    assert calls.get("GetParameter", 0) == 0 and calls.get("GetParameters", 0) == 0  # never a value
    assert [(s["address"], s["status"]) for s in json.loads(out)["tokens"][0]["sinks"]] == [
        (FANOUT_ADDRESSES[0], "delivered"), (FANOUT_ADDRESSES[1], "delivered")]

    clients["us-east-1"].delete_parameter(Name="/bk/token")
    code, out, _ = run(core, "--state", str(path))
    assert code == 1
    assert f"sink_drift: {FANOUT_ADDRESSES[1]} no longer exists" in out
    assert f"sink_drift: {FANOUT_ADDRESSES[0]}" not in out, "the other region still holds it"
    assert "value-of-bk" not in out
