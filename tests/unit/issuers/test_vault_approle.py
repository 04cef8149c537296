"""VaultAppRoleIssuer against the real OpenBao server: minting with every option, lookup by accessor
(expired, used up, destroyed), listing, destroying, the capability check, and errors that name the
path, capability or attribute."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import hvac
import pytest

from tokendrop_provider.errors import ConfigError, IssuerAuthError, IssuerNotFound, IssuerValidationError
from tokendrop_provider.issuers.vault_approle import VaultAppRoleIssuer, split_scope, vault_ttl
from tokendrop_provider.sandbox.approle import setup_sample_approle
from tokendrop_provider.sandbox.servers import create_policy_token
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import VaultSettings


@pytest.fixture
def scope(openbao_server) -> str:
    role = f"ci-{uuid.uuid4().hex[:8]}"
    setup_sample_approle(openbao_server, role=role)
    return f"approle/{role}"


@pytest.fixture
def issuer(vault_settings) -> VaultAppRoleIssuer:
    return VaultAppRoleIssuer(vault_settings)


def limited(openbao_server, scope: str, capabilities: dict[str, list[str]]) -> VaultAppRoleIssuer:
    mount, role = split_scope(scope)
    policy = "\n".join(f'path "auth/{mount}/role/{role}/{suffix}" {{ capabilities = {caps!r} }}'.replace("'", '"')
                       for suffix, caps in capabilities.items())
    token = create_policy_token(openbao_server, policy_name=f"p-{uuid.uuid4().hex[:8]}", policy=policy)
    return VaultAppRoleIssuer(VaultSettings(address=openbao_server.url, token=Secret(token)))


def test_scope_and_ttl_helpers():
    assert split_scope("approle/ci") == ("approle", "ci")
    assert split_scope("teams/a/approle/ci") == ("teams/a/approle", "ci")
    with pytest.raises(ConfigError):
        split_scope("ci")
    assert (vault_ttl("24h"), vault_ttl("0"), vault_ttl("1h30m")) == ("86400s", "0", "5400s")


def test_mint_lookup_list_revoke(issuer, scope, openbao_server):
    mount, role = split_scope(scope)
    minted = issuer.mint(scope, "[td:0123456789ab]", ttl="1h", cidr_list=["127.0.0.0/8"],
                         token_bound_cidrs=["127.0.0.1/32"], num_uses=0, metadata={"pipeline": "deploy"})
    token = minted.token
    role_id = openbao_server.api("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
    assert token.extra["role_id"] == role_id and token.description == "[td:0123456789ab]"
    assert token.extra["metadata"] == {"pipeline": "deploy"}
    expires = datetime.fromisoformat(token.expires_at.replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    hvac.Client(url=openbao_server.url).auth.approle.login(role_id=role_id, secret_id=minted.value.reveal())

    found = issuer.lookup(scope, token.id)
    assert (found.id, found.created_at, found.expires_at, found.description) == (
        token.id, token.created_at, token.expires_at, token.description)
    other = issuer.mint(scope, "")
    assert sorted(t.id for t in issuer.list_tokens(scope)) == sorted([token.id, other.token.id])

    assert issuer.revoke(scope, token.id) and not issuer.revoke(scope, token.id)
    assert issuer.lookup(scope, token.id) is None
    assert "secret_id" not in repr(token) and minted.value.reveal() not in repr(minted)


def test_ttl_zero_never_expires_where_the_role_allows_it(issuer, openbao_server):
    role = f"forever-{uuid.uuid4().hex[:8]}"
    setup_sample_approle(openbao_server, role=role, secret_id_ttl="0")
    forever = issuer.mint(f"approle/{role}", "", ttl="0")
    assert forever.token.expires_at is None and forever.token.description == ""
    assert issuer.lookup(f"approle/{role}", forever.token.id).expires_at is None


def test_used_up_and_expired_secret_ids_are_gone(issuer, scope, openbao_server):
    once = issuer.mint(scope, "", num_uses=1)
    hvac.Client(url=openbao_server.url).auth.approle.login(role_id=once.token.extra["role_id"],
                                                           secret_id=once.value.reveal())
    assert issuer.lookup(scope, once.token.id) is None, "used up"
    short = issuer.mint(scope, "", ttl="1s")
    deadline = datetime.fromisoformat(short.token.expires_at.replace("Z", "+00:00"))
    while datetime.now(UTC) <= deadline + timedelta(seconds=1):  # wait out the ttl; no assertion on time
        time.sleep(0.1)
    assert issuer.lookup(scope, short.token.id) is None, "expired"
    assert issuer.list_tokens(scope) == []


def test_errors_name_the_attribute(issuer, scope):
    with pytest.raises(IssuerValidationError) as too_long:
        issuer.mint(scope, "", ttl="800h")  # the sample role allows 720h
    assert too_long.value.attribute == ("ttl",) and "secret_id_ttl" in too_long.value.detail
    with pytest.raises(IssuerNotFound) as no_role:
        issuer.role_id("approle/no-such-role")
    assert no_role.value.attribute == ("role_name",) and no_role.value.summary == "AppRole role not found"
    with pytest.raises(IssuerNotFound) as no_mount:
        issuer.mint("nowhere/ci", "")
    assert no_mount.value.attribute == ("mount",) and "auth/nowhere" in no_mount.value.summary
    with pytest.raises(ConfigError):
        issuer.mint(scope, "", expires_in="1h")


def test_capabilities_are_checked_and_a_forbidden_mint_names_path_and_capability(issuer, scope, openbao_server):
    mount, role = split_scope(scope)
    assert issuer.missing_capabilities(scope) == [], "root may do everything"
    reader = limited(openbao_server, scope, {"role-id": ["read"]})
    missing = reader.missing_capabilities(scope)
    assert (f"auth/{mount}/role/{role}/secret-id", "update") in missing
    assert (f"auth/{mount}/role/{role}/secret-id", "list") in missing
    assert (f"auth/{mount}/role/{role}/role-id", "read") not in missing
    with pytest.raises(IssuerAuthError) as denied:
        reader.mint(scope, "")
    assert denied.value.summary == f"Vault denied update on auth/{mount}/role/{role}/secret-id"
    assert "'update' capability" in denied.value.detail and denied.value.attribute == ("role_name",)
    assert issuer.list_tokens(scope) == [], "nothing was created"

    full = limited(openbao_server, scope, {"role-id": ["read"], "secret-id": ["update", "list"],
                                           "secret-id-accessor/lookup": ["update"],
                                           "secret-id-accessor/destroy": ["update"]})
    assert full.missing_capabilities(scope) == []
    minted = full.mint(scope, "")
    assert full.revoke(scope, minted.token.id)


# --- role limits and destroy of a secret id that is already gone (issue 11) --------------------


@pytest.fixture
def limited_role(openbao_server) -> str:
    role = f"lim-{uuid.uuid4().hex[:8]}"
    setup_sample_approle(openbao_server, role=role, secret_id_ttl="1h")
    openbao_server.api("POST", f"auth/approle/role/{role}", {"secret_id_num_uses": 5})
    return f"approle/{role}"


def test_role_limits_match_what_vault_refuses(issuer, limited_role):
    limits = issuer.role_limits(limited_role)
    assert (limits.ttl_seconds, limits.num_uses) == (3600, 5)
    cases = {("0", None): "ttl", ("2h", None): "ttl", ("30m", 0): "num_uses", ("30m", 6): "num_uses",
             ("30m", 5): None, (None, 1): None, ("1h", None): None}
    for (ttl, num_uses), attribute in cases.items():
        problem = limits.problem(ttl, num_uses)
        assert (problem[0] if problem else None) == attribute, (ttl, num_uses)
        options = {k: v for k, v in (("ttl", ttl), ("num_uses", num_uses)) if v is not None}
        if attribute is None:
            minted = issuer.mint(limited_role, "", **options)
            issuer.revoke(limited_role, minted.token.id)
        else:  # the real Vault agrees: it refuses exactly what problem() flags
            with pytest.raises(IssuerValidationError, match=attribute):
                issuer.mint(limited_role, "", **options)


def test_an_unlimited_role_allows_zero_and_an_unreadable_role_is_not_judged(issuer, openbao_server):
    role = f"free-{uuid.uuid4().hex[:8]}"
    setup_sample_approle(openbao_server, role=role, secret_id_ttl="0")
    assert issuer.role_limits(f"approle/{role}").problem("0", 0) is None
    no_read = limited(openbao_server, f"approle/{role}", {"secret-id": ["update"]})
    assert no_read.role_limits(f"approle/{role}") is None


@pytest.mark.parametrize(("body", "outcome"), [
    (b'{"errors":["invalid secret id accessor"]}', False),
    (b'{"errors":["1 error occurred:\\n\\t* permission denied\\n\\n"]}', IssuerAuthError),
])
def test_destroy_answered_403_invalid_accessor_means_already_gone(body, outcome):
    """Vault (hashicorp/vault#19186) answers a destroy by accessor whose secret id entry is gone with 403
    "invalid secret id accessor": already gone, not a missing capability. A real "permission denied"
    still is one. OpenBao answers 500 instead, so a tiny server stands in for Vault's answer."""
    import http.server
    import threading

    class Vault(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Vault)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stub = VaultAppRoleIssuer(VaultSettings(address=f"http://127.0.0.1:{server.server_address[1]}",
                                                token=Secret("hvs.stub")))
        if outcome is False:
            assert stub.revoke("approle/ci", "0c1d2e3f-0000-4000-8000-000000000001") is False
        else:
            with pytest.raises(outcome, match="permission denied"):
                stub.revoke("approle/ci", "0c1d2e3f-0000-4000-8000-000000000001")
    finally:
        server.shutdown()
        server.server_close()
