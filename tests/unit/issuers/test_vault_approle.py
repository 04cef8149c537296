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
