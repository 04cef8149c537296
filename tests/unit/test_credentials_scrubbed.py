"""Every credential the provider holds is scrubbed, also those it never wraps itself: AWS credentials
boto3 reads from a profile (secret key and session token), and the Vault token an AppRole login
returns. Against real moto and OpenBao."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tokendrop_provider.sandbox.servers import MotoServer, OpenBaoServer, enable_approle
from tokendrop_provider.secret import Secret, scrub
from tokendrop_provider.settings import AwsSettings, VaultSettings
from tokendrop_provider.sinks.ssm import SsmSink
from tokendrop_provider.sinks.vault_kv import VaultKvSink
from tokendrop_provider.vault import vault_connection


def test_aws_credentials_from_a_profile_are_scrubbed(clean_moto: MotoServer, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    secret_key, session_token = secrets.token_urlsafe(30), "FwoG" + secrets.token_urlsafe(90)
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[canary]\naws_access_key_id = AKIDCANARY\naws_secret_access_key = {secret_key}\n"
                           f"aws_session_token = {session_token}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    settings = AwsSettings(region="us-east-1", profile="canary", endpoint_url_ssm=clean_moto.url)

    assert SsmSink("/canary/p", settings=settings).status().exists is False

    assert scrub(f"key={secret_key} token={session_token[:40]}") == "key=*** token=***"


def test_the_token_of_an_approle_login_is_scrubbed(openbao_server: OpenBaoServer, vault_kv_mount: str):
    policy = f"reader-{vault_kv_mount}"
    openbao_server.api("PUT", f"sys/policies/acl/{policy}",
                       {"policy": f'path "{vault_kv_mount}/*" {{ capabilities = ["read", "list"] }}'})
    role_id, secret_id = enable_approle(openbao_server, role=f"scrub-{vault_kv_mount}", policies=[policy])
    settings = VaultSettings(address=openbao_server.url, approle_role_id=role_id,
                             approle_secret_id=Secret(secret_id))
    VaultKvSink(vault_kv_mount, "x", settings=settings).status()  # logs in
    held = vault_connection(settings)._token  # the shared, logged-in connection the sink used
    token = held.reveal() if held is not None else ""
    assert token and token != openbao_server.root_token
    assert scrub(f"X-Vault-Token: {token}") == "X-Vault-Token: ***"
