"""VaultKvSink against a real OpenBao dev server (each test gets a fresh KV v2 mount)."""

from __future__ import annotations

import subprocess
import sys
import traceback

import pytest

from tokendrop_provider.errors import (
    ConfigError,
    SinkAccessDenied,
    SinkConflict,
    SinkError,
    TokendropError,
)
from tokendrop_provider.sandbox.servers import (
    OpenBaoServer,
    create_policy_token,
    disable_mount,
    enable_approle,
    enable_kv,
)
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import VaultSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.vault_kv import VaultKvSink
from tokendrop_provider.vault import vault_connection

OWN = Ownership(token_id="at-111", issuer="tfe", owner="1a2b3c4d5e6f")
NEXT = Ownership(token_id="at-222", issuer="tfe", owner="1a2b3c4d5e6f")
VALUE = "tok-3f1d8a0b9c7e4d21-value"
VALUE2 = "tok-9e8d7c6b5a4f3e21-rotated"
PATH = "ci/agents/linux"


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def metadata(bao: OpenBaoServer, mount: str, path: str = PATH) -> dict:
    return bao.api("GET", f"{mount}/metadata/{path}")["data"]


def data(bao: OpenBaoServer, mount: str, path: str = PATH) -> dict:
    return bao.api("GET", f"{mount}/data/{path}")["data"]["data"]


def token_settings(bao: OpenBaoServer, token: str) -> VaultSettings:
    return VaultSettings(address=bao.url, token=Secret(token))


@pytest.fixture
def kv(vault_settings: VaultSettings, vault_kv_mount: str) -> VaultKvSink:
    return VaultKvSink(vault_kv_mount, PATH, settings=vault_settings)


def test_importing_the_sink_module_loads_no_http_client():
    # requests loads with the first Vault connection (vault.py), never with the module; hvac never.
    code = ("import sys, tokendrop_provider.sinks.vault_kv, tokendrop_provider.sinks.vault_rules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hvac', 'requests', 'urllib3')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- create / status --------------------------------------------------------------------------


def test_create_writes_data_and_ownership_record(kv, openbao_server, vault_kv_mount):
    assert kv.status().exists is False
    assert kv.create(Secret(VALUE), OWN) == 1

    assert data(openbao_server, vault_kv_mount) == {"token": VALUE}
    meta = metadata(openbao_server, vault_kv_mount)
    assert meta["custom_metadata"] == {"tokendrop_token_id": "at-111", "tokendrop_issuer": "tfe",
                                       "tokendrop_owner": "1a2b3c4d5e6f", "tokendrop_version": "1",
                                       "tokendrop_created": "true"}
    status = kv.status()
    assert (status.exists, status.version, status.ownership_current) == (True, 1, True)
    assert status.ownership == Ownership("at-111", "tfe", "1a2b3c4d5e6f", version=1)
    assert kv.address == f"vault_kv:{vault_kv_mount}/{PATH}#token"


def test_custom_field_and_mapping_payload(vault_settings, vault_kv_mount, openbao_server):
    VaultKvSink(vault_kv_mount, "a", settings=vault_settings, field="agent_token").create(Secret(VALUE), OWN)
    assert data(openbao_server, vault_kv_mount, "a") == {"agent_token": VALUE}
    VaultKvSink(vault_kv_mount, "b", settings=vault_settings).create(
        {"role_id": "r-1", "secret_id": Secret(VALUE)}, OWN)
    assert data(openbao_server, vault_kv_mount, "b") == {"role_id": "r-1", "secret_id": VALUE}


def test_create_conflicts_with_a_secret_written_by_someone_else(kv, openbao_server, vault_kv_mount):
    openbao_server.api("POST", f"{vault_kv_mount}/metadata/{PATH}", {"custom_metadata": {"team": "x"}})
    openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": "theirs"}})
    with pytest.raises(SinkConflict) as caught:
        kv.create(Secret(VALUE), OWN)
    assert "already exists" in str(caught.value)
    assert "no tokendrop ownership record" in str(caught.value)
    assert caught.value.attribute == ("path",)
    # Their metadata and value are untouched (the existence check runs before our record is written).
    assert metadata(openbao_server, vault_kv_mount)["custom_metadata"] == {"team": "x"}
    assert data(openbao_server, vault_kv_mount) == {"token": "theirs"}


def test_create_conflict_names_the_current_owner(kv, vault_settings, vault_kv_mount):
    kv.create(Secret(VALUE), Ownership("bk-uuid-1", "buildkite", "ffff0000ffff"))
    with pytest.raises(SinkConflict) as caught:
        VaultKvSink(vault_kv_mount, PATH, settings=vault_settings).create(Secret(VALUE2), OWN)
    assert "buildkite token bk-uuid-1" in str(caught.value)
    assert "ffff0000ffff" in str(caught.value)


def test_create_is_idempotent_when_our_own_write_already_landed(kv):
    assert kv.create(Secret(VALUE), OWN) == 1
    assert kv.create(Secret(VALUE), OWN) == 1
    with pytest.raises(SinkConflict):
        kv.create(Secret(VALUE), Ownership("at-other", "tfe", OWN.owner))


def test_create_after_a_crash_between_record_and_data(kv, openbao_server, vault_kv_mount):
    """A crash after the metadata write leaves a record naming version 1 and no data. status() must
    not call that ours-and-current, and a new create (cas=0) must still succeed: OpenBao keeps
    current_version at 0 after a metadata-only write."""
    openbao_server.api("POST", f"{vault_kv_mount}/metadata/{PATH}", {
        "max_versions": 3, "delete_version_after": "48h",
        "custom_metadata": {"tokendrop_token_id": "at-crashed", "tokendrop_issuer": "tfe",
                            "tokendrop_owner": OWN.owner, "tokendrop_version": "1", "team": "keep"}})
    status = kv.status()
    assert status.exists is False
    assert status.ownership.token_id == "at-crashed"
    assert status.ownership_current is False

    assert kv.create(Secret(VALUE), OWN) == 1

    meta = metadata(openbao_server, vault_kv_mount)
    assert meta["custom_metadata"]["tokendrop_token_id"] == "at-111"
    assert meta["custom_metadata"]["team"] == "keep"  # other people's keys survive
    assert meta["max_versions"] == 3
    assert meta["delete_version_after"] == "48h0m0s"
    assert kv.status().ownership_current


def test_metadata_only_key_of_another_resource_is_a_conflict(kv, openbao_server, vault_kv_mount):
    openbao_server.api("POST", f"{vault_kv_mount}/metadata/{PATH}", {"custom_metadata": {
        "tokendrop_token_id": "at-x", "tokendrop_issuer": "tfe", "tokendrop_owner": "other-resource",
        "tokendrop_version": "1"}})
    with pytest.raises(SinkConflict, match="reserved by another tokendrop resource"):
        kv.create(Secret(VALUE), OWN)


def test_failed_data_write_removes_the_record_it_created(openbao_server, vault_kv_mount):
    token = create_policy_token(openbao_server, policy_name=f"meta-only-{vault_kv_mount}", policy=(
        f'path "{vault_kv_mount}/metadata/*" {{ capabilities = ["create", "read", "update", "delete"] }}\n'
        f'path "{vault_kv_mount}/data/*" {{ capabilities = ["read"] }}\n'))
    sink = VaultKvSink(vault_kv_mount, PATH, settings=token_settings(openbao_server, token))
    with pytest.raises(SinkAccessDenied) as caught:
        sink.create(Secret(VALUE), OWN)
    assert f'"{vault_kv_mount}/data/{PATH}"' in str(caught.value)
    assert "'create'" in str(caught.value)
    with pytest.raises(RuntimeError, match="404"):
        metadata(openbao_server, vault_kv_mount)


def test_soft_deleted_or_destroyed_current_version_does_not_exist(kv, openbao_server, vault_kv_mount):
    kv.create(Secret(VALUE), OWN)
    openbao_server.api("DELETE", f"{vault_kv_mount}/data/{PATH}")
    status = kv.status()
    assert status.exists is False
    assert status.version == 1
    with pytest.raises(SinkConflict, match="deleted or destroyed version 1"):
        kv.create(Secret(VALUE), NEXT)

    openbao_server.api("POST", f"{vault_kv_mount}/undelete/{PATH}", {"versions": [1]})
    assert kv.status().exists
    openbao_server.api("PUT", f"{vault_kv_mount}/destroy/{PATH}", {"versions": [1]})
    assert kv.status().exists is False


def test_future_deletion_time_from_delete_version_after_still_exists(kv, openbao_server, vault_kv_mount):
    openbao_server.api("POST", f"{vault_kv_mount}/metadata/{PATH}", {"delete_version_after": "1h"})
    kv.create(Secret(VALUE), OWN)
    assert metadata(openbao_server, vault_kv_mount)["versions"]["1"]["deletion_time"]
    assert kv.status().exists


# --- replace ----------------------------------------------------------------------------------


def test_replace_with_cas(kv, openbao_server, vault_kv_mount):
    kv.create(Secret(VALUE), OWN)
    assert kv.replace(Secret(VALUE2), NEXT, expected_version=1) == 2
    assert data(openbao_server, vault_kv_mount) == {"token": VALUE2}
    status = kv.status()
    assert (status.version, status.ownership.token_id, status.ownership_current) == (2, "at-222", True)


def test_replace_refuses_when_the_version_moved(kv, openbao_server, vault_kv_mount):
    kv.create(Secret(VALUE), OWN)
    openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": "someone-else"}})
    with pytest.raises(SinkConflict) as caught:
        kv.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert "expected version 1, found 2" in str(caught.value)
    assert data(openbao_server, vault_kv_mount) == {"token": "someone-else"}
    # Our old record stays (not overwritten by the refused write), and it is now stale.
    status = kv.status()
    assert status.ownership.token_id == "at-111"
    assert not status.ownership_current


def test_replace_cas_mismatch_at_write_time_restores_the_record(kv, openbao_server, vault_kv_mount,
                                                                monkeypatch):
    """A writer that slips in between our version check and our data write: the data CAS fails,
    the error is a SinkConflict and our record is taken back."""
    kv.create(Secret(VALUE), OWN)
    original = kv._write_data

    def racing_write(data, cas, capability, connection):
        openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": "racer"}})
        return original(data, cas, capability, connection)

    monkeypatch.setattr(kv, "_write_data", racing_write)
    with pytest.raises(SinkConflict, match="check-and-set"):
        kv.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert metadata(openbao_server, vault_kv_mount)["custom_metadata"]["tokendrop_token_id"] == "at-111"
    assert data(openbao_server, vault_kv_mount) == {"token": "racer"}


def test_replace_of_a_missing_secret_is_a_conflict(kv):
    with pytest.raises(SinkConflict, match="does not exist"):
        kv.replace(Secret(VALUE2), NEXT, expected_version=1)


# --- delete -----------------------------------------------------------------------------------


def test_delete_only_what_names_our_token(kv, openbao_server, vault_kv_mount):
    assert kv.delete("at-111") is False  # nothing there (Vault itself answers 204 either way)
    kv.create(Secret(VALUE), OWN)
    kv.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert kv.delete("at-111") is False
    assert kv.status().exists
    assert kv.delete("at-222") is True
    with pytest.raises(RuntimeError, match="404"):
        metadata(openbao_server, vault_kv_mount)  # all versions gone
    assert kv.delete("at-222") is False


def test_delete_refuses_after_someone_wrote_a_newer_version(kv, openbao_server, vault_kv_mount):
    kv.create(Secret(VALUE), OWN)
    openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": "someone-else"}})
    assert kv.delete("at-111") is False
    assert data(openbao_server, vault_kv_mount) == {"token": "someone-else"}


def test_delete_without_expected_token(kv, openbao_server, vault_kv_mount):
    openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": "x"}})
    assert kv.delete(None) is True
    assert kv.status().exists is False


def test_written_versions_are_kept_as_ranges():
    from tokendrop_provider.sinks.vault_kv import _parse_ranges, _ranges_text

    assert _ranges_text({1, 2, 3, 5, 7, 8}) == "1-3,5,7-8"
    assert _parse_ranges("1-3,5,7-8") == {1, 2, 3, 5, 7, 8}
    assert _parse_ranges("x,4") == {4}, "what we cannot read is not counted as ours"
    many = set(range(1, 2000, 2))
    assert len(_ranges_text(many)) <= 500 and max(_parse_ranges(_ranges_text(many))) == 1999


@pytest.mark.parametrize("latest", ["deleted", "destroyed"])
def test_versions_someone_else_wrote_are_an_occupant_even_when_the_latest_is_gone(kv, openbao_server,
                                                                                   vault_kv_mount, latest):
    for value in ("theirs-1", "theirs-2"):
        openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": value}})
    if latest == "deleted":
        openbao_server.api("DELETE", f"{vault_kv_mount}/data/{PATH}")
    else:
        openbao_server.api("PUT", f"{vault_kv_mount}/destroy/{PATH}", {"versions": [2]})
    status = kv.status()
    assert status.exists is False
    assert status.occupant == f"2 versions (2 not written by tokendrop; the latest, 2, is {latest})"


def test_custom_metadata_alone_is_an_occupant_and_our_own_writes_are_not(kv, openbao_server, vault_kv_mount):
    kv.create(Secret(VALUE), OWN)
    kv.replace(Secret(VALUE2), NEXT, expected_version=1)
    assert kv.status().occupant is None
    openbao_server.api("POST", f"{vault_kv_mount}/metadata/other", {"custom_metadata": {"team": "payments"}})
    other = VaultKvSink(vault_kv_mount, "other", settings=kv.settings)
    assert other.status().occupant == "metadata without versions and custom_metadata team"


def test_delete_of_an_adopted_secret_destroys_only_our_versions(kv, openbao_server, vault_kv_mount):
    openbao_server.api("POST", f"{vault_kv_mount}/metadata/{PATH}", {"custom_metadata": {"team": "payments"}})
    openbao_server.api("POST", f"{vault_kv_mount}/data/{PATH}", {"data": {"token": "theirs"}})
    kv.replace(Secret(VALUE), OWN, expected_version=1)  # what delivery does with adopt_existing
    kv.replace(Secret(VALUE2), NEXT, expected_version=2)
    assert metadata(openbao_server, vault_kv_mount)["custom_metadata"]["tokendrop_versions"] == "2"
    assert kv.delete("at-222") is True
    meta = metadata(openbao_server, vault_kv_mount)
    assert meta["custom_metadata"] == {"team": "payments"}
    assert [meta["versions"][v]["destroyed"] for v in ("1", "2", "3")] == [False, True, True]
    assert "destroyed only the versions tokendrop wrote (2, 3)" in kv.warnings[0]
    assert openbao_server.api("GET", f"{vault_kv_mount}/data/{PATH}?version=1")["data"]["data"] == {
        "token": "theirs"}


# --- access and mounts ------------------------------------------------------------------------


def test_restricted_token_gets_access_denied_naming_path_and_capability(openbao_server, vault_kv_mount):
    token = create_policy_token(openbao_server, policy_name=f"ro-{vault_kv_mount}",
                                policy=f'path "{vault_kv_mount}/data/app/*" {{ capabilities = ["read"] }}')
    sink = VaultKvSink(vault_kv_mount, "other/thing", settings=token_settings(openbao_server, token))
    for call in (sink.status, lambda: sink.create(Secret(VALUE), OWN), lambda: sink.delete("at-1")):
        with pytest.raises(SinkAccessDenied) as caught:
            call()
        message = str(caught.value)
        assert f'"{vault_kv_mount}/metadata/other/thing"' in message
        assert "'read'" in message
        assert sink.address in message
        assert VALUE not in full_text(caught.value)


def test_kv_v1_and_non_kv_mounts_are_refused(openbao_server, vault_settings, vault_kv_mount):
    enable_kv(openbao_server, f"{vault_kv_mount}-v1", version=1)
    openbao_server.api("POST", f"sys/mounts/{vault_kv_mount}-transit", {"type": "transit"})
    try:
        with pytest.raises(ConfigError, match="KV version 1 mount") as caught:
            VaultKvSink(f"{vault_kv_mount}-v1", "x", settings=vault_settings).status()
        assert caught.value.attribute == ("mount",)
        with pytest.raises(ConfigError, match="'transit' mount"):
            VaultKvSink(f"{vault_kv_mount}-transit", "x", settings=vault_settings).create(Secret(VALUE), OWN)
    finally:
        disable_mount(openbao_server, f"{vault_kv_mount}-v1")
        disable_mount(openbao_server, f"{vault_kv_mount}-transit")


def test_mount_given_with_part_of_the_path(vault_settings, vault_kv_mount):
    with pytest.raises(ConfigError, match=f"set mount = '{vault_kv_mount}'"):
        VaultKvSink(f"{vault_kv_mount}/ci", "x", settings=vault_settings).status()


def test_missing_mount(vault_settings):
    with pytest.raises(SinkAccessDenied, match="does not exist or the token cannot use it"):
        VaultKvSink("no-such-mount", "x", settings=vault_settings).status()


@pytest.mark.parametrize("scenario", ["conflict", "cas", "denied"])
def test_payload_never_appears_in_errors(openbao_server, vault_settings, vault_kv_mount, scenario):
    sink = VaultKvSink(vault_kv_mount, "secrecy", settings=vault_settings)
    if scenario == "denied":
        token = create_policy_token(openbao_server, policy_name=f"md-{vault_kv_mount}", policy=(
            f'path "{vault_kv_mount}/metadata/*" {{ capabilities = ["create", "read", "update"] }}'))
        sink = VaultKvSink(vault_kv_mount, "secrecy", settings=token_settings(openbao_server, token))
        call = lambda: sink.create({"role_id": "r", "secret_id": Secret(VALUE2)}, OWN)  # noqa: E731
    else:
        sink.create(Secret(VALUE), OWN)
        if scenario == "conflict":
            call = lambda: sink.create(Secret(VALUE2), NEXT)  # noqa: E731
        else:
            call = lambda: sink.replace(Secret(VALUE2), NEXT, expected_version=5)  # noqa: E731
    with pytest.raises(TokendropError) as caught:
        call()
    text = full_text(caught.value)
    assert VALUE not in text
    assert VALUE2 not in text
    assert "secrecy" in str(caught.value)


# --- configuration and login ------------------------------------------------------------------


def test_missing_address_and_credentials_are_config_errors(vault_kv_mount):
    with pytest.raises(ConfigError) as caught:
        VaultKvSink(vault_kv_mount, "x", settings=VaultSettings(token=Secret("t"))).status()
    assert caught.value.attribute == ("vault_address",)
    with pytest.raises(ConfigError) as caught:
        VaultKvSink(vault_kv_mount, "x", settings=VaultSettings(address="http://127.0.0.1:9")).status()
    assert caught.value.attribute == ("vault_token",)
    assert "vault_token" in str(caught.value)
    assert "vault_approle_role_id" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        VaultKvSink(vault_kv_mount, "x", settings=VaultSettings(address="http://127.0.0.1:9",
                                                                 approle_role_id="r")).status()
    assert caught.value.attribute == ("vault_approle_secret_id",)


def test_approle_login(openbao_server, vault_kv_mount):
    policy = f"writer-{vault_kv_mount}"
    # what the provider's token needs for one sink (docs/wire.md, Vault KV v2)
    writer = (f'path "{vault_kv_mount}/data/{PATH}" {{ capabilities = ["create", "update"] }}\n'
              f'path "{vault_kv_mount}/metadata/{PATH}" {{ capabilities = ["create", "read", "update", "delete"] }}\n')
    openbao_server.api("PUT", f"sys/policies/acl/{policy}", {"policy": writer})
    role_id, secret_id = enable_approle(openbao_server, role=f"r-{vault_kv_mount}", policies=[policy])
    settings = VaultSettings(address=openbao_server.url, approle_role_id=role_id,
                             approle_secret_id=Secret(secret_id))
    sink = VaultKvSink(vault_kv_mount, PATH, settings=settings)
    assert sink.create(Secret(VALUE), OWN) == 1
    assert sink.replace(Secret(VALUE2), NEXT, 1) == 2
    assert sink.status().ownership_current
    assert sink.delete("at-222") is True

    bad = VaultSettings(address=openbao_server.url, approle_role_id=role_id,
                        approle_secret_id=Secret("wrong-secret-id"))
    with pytest.raises(SinkAccessDenied, match="AppRole login failed") as caught:
        VaultKvSink(vault_kv_mount, PATH, settings=bad).status()
    assert "wrong-secret-id" not in full_text(caught.value)


def test_one_cached_client_per_settings(vault_settings, openbao_server):
    assert vault_connection(vault_settings) is vault_connection(vault_settings)
    other = VaultSettings(address=openbao_server.url, token=Secret(openbao_server.root_token),
                          namespace=None, approle_mount="other")
    assert vault_connection(other) is not vault_connection(vault_settings)


def test_unreachable_vault_is_a_sink_error(vault_kv_mount):
    sink = VaultKvSink(vault_kv_mount, "x", settings=VaultSettings(address="http://127.0.0.1:9",
                                                                    token=Secret("t")))
    with pytest.raises(SinkError, match="Cannot reach Vault"):
        sink.status()


@pytest.mark.parametrize(("args", "attribute"), [
    (("secret/", "x"), "mount"), (("sys", "x"), "mount"), (("secret", "a/../b"), "path"),
    (("secret", "a//b"), "path"), (("secret", "a/*"), "path"), (("secret", "/a"), "path"),
])
def test_bad_settings_are_rejected_before_any_call(args, attribute):
    with pytest.raises(ConfigError) as caught:
        VaultKvSink(*args, settings=VaultSettings())
    assert caught.value.attribute == (attribute,)
    with pytest.raises(ConfigError) as caught:
        VaultKvSink("secret", "x", settings=VaultSettings(), field="has space")
    assert caught.value.attribute == ("field",)


# --- the sandbox launcher ---------------------------------------------------------------------


def test_openbao_launcher_env_and_stop(tmp_path):
    import os

    from tokendrop_provider.sandbox.servers import start_openbao

    server = start_openbao(tmp_path)
    try:
        env = server.env()
        assert env["VAULT_ADDR"] == server.url
        assert env["VAULT_TOKEN"] == server.root_token
        assert os.getpgid(server.pid) == server.pid  # its own process group
        assert server.api("GET", "sys/mounts/secret/tune")["options"] == {"version": "2"}
    finally:
        server.stop()
    assert not server.running
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)  # terminated and reaped
