"""The plain-http rule for endpoints that carry credentials or delivered values (endpoints.py): https
anywhere, plain http on loopback only; a custom SSM endpoint is refused at plan time through the gRPC
service, naming the setting, whether it came from the provider block or the environment."""

from __future__ import annotations

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.endpoints import checked_endpoint
from tokendrop_provider.errors import ConfigError
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb

TOKEN = schema.TFE_AGENT_TOKEN


@pytest.mark.parametrize(("url", "expected"), [
    ("https://vault.example.com:8200/", "https://vault.example.com:8200"),
    ("http://127.0.0.1:8200", "http://127.0.0.1:8200"),
    ("http://127.5.0.1:8200", "http://127.5.0.1:8200"),
    ("http://localhost:4566", "http://localhost:4566"),
    ("http://[::1]:8200", "http://[::1]:8200"),
])
def test_https_anywhere_and_http_on_loopback_are_accepted(url, expected):
    assert checked_endpoint(url, label="Vault address", setting="vault_address", carries="x") == expected


@pytest.mark.parametrize(("url", "summary"), [
    ("http://vault.example.com:8200", "Insecure Vault address"),
    ("http://10.1.2.3:8200", "Insecure Vault address"),
    ("http://127.0.0.1.nip.io:8200", "Insecure Vault address"),
    ("http://[::ffff:10.0.0.1]:8200", "Insecure Vault address"),
    ("ftp://vault.example.com", "Invalid Vault address"),
    ("vault.example.com:8200", "Invalid Vault address"),
    ("https://user:pw@vault.example.com", "Invalid Vault address"),
])
def test_other_endpoints_are_refused_naming_the_setting(url, summary):
    with pytest.raises(ConfigError) as caught:
        checked_endpoint(url, label="Vault address", setting="vault_address", carries="the token")
    assert caught.value.summary == summary and caught.value.attribute == ("vault_address",)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://LOCALHOST:8080", "http://127.5.0.1", "http://[::1]:8080/api/v2",
                                 "http://10.1.2.3", "http://127.0.0.1.nip.io", "http://[::ffff:10.0.0.1]",
                                 "https://user:pw@tfe.example.com", "https://tfe.example.com/api/v2/"])
def test_issuer_base_urls_follow_the_same_rule(url):
    # One rule for every URL that carries a credential: an issuer's base URL is accepted or refused
    # exactly as the Vault address or SSM endpoint would be, with the same summary.
    from tokendrop_provider.issuers.http import normalize_base_url

    def outcome(check):
        try:
            return check()
        except ConfigError as err:
            return err.summary, err.attribute

    vault = outcome(lambda: checked_endpoint(url, label="TFE address", setting="tfe_address", carries="x"))
    issuer = outcome(lambda: normalize_base_url(url, label="TFE address", setting="tfe_address",
                                                strip_suffix="/api/v2"))
    expected = vault.removesuffix("/api/v2") if isinstance(vault, str) else vault
    assert issuer == expected


def _plan_ssm_delivery(fresh_tfe_emulator, **provider: str) -> pb.PlanResourceChange.Response:
    svc = configured_service(tfe_address=fresh_tfe_emulator.url, tfe_token=fresh_tfe_emulator.sandbox_token,
                             **provider)
    pool = fresh_tfe_emulator.create_agent_pool("acme", "ssm-endpoint")
    config = full(TOKEN, agent_pool_id=pool, deliver_to={"vault_kv": None, "ssm": {
        "name": "/ci/token", "kms_key_id": None, "tier": None, "description": None, "tags": None}})
    return svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=TOKEN.type_name, prior_state=dynamic(None, TOKEN), proposed_new_state=dynamic(config, TOKEN),
        config=dynamic(config, TOKEN)), None)


def test_plain_http_ssm_endpoint_off_loopback_fails_the_plan(fresh_tfe_emulator):
    response = _plan_ssm_delivery(fresh_tfe_emulator, aws_endpoint_url_ssm="http://ssm.internal.example:4566")
    [diag] = response.diagnostics
    assert diag.summary == "Insecure SSM endpoint" and "unencrypted" in diag.detail
    assert [s.attribute_name for s in diag.attribute.steps] == ["aws_endpoint_url_ssm"]


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"])
def test_plain_http_ssm_endpoint_from_the_environment_fails_the_plan(fresh_tfe_emulator, monkeypatch, variable):
    monkeypatch.delenv("AWS_ENDPOINT_URL_SSM", raising=False)
    monkeypatch.setenv(variable, "http://10.20.30.40:4566")
    response = _plan_ssm_delivery(fresh_tfe_emulator)
    assert [d.summary for d in response.diagnostics] == ["Insecure SSM endpoint"]
    assert variable in response.diagnostics[0].detail


def test_loopback_ssm_endpoint_plans(fresh_tfe_emulator):
    response = _plan_ssm_delivery(fresh_tfe_emulator, aws_endpoint_url_ssm="http://127.0.0.1:4566")
    assert not response.diagnostics


def test_an_insecure_ssm_endpoint_from_the_aws_config_file_is_refused(tmp_path, monkeypatch):
    """botocore also takes an endpoint from the shared config file, which the provider's settings never
    see: the SSM client checks the endpoint botocore actually resolved."""
    from tokendrop_provider.settings import AwsSettings
    from tokendrop_provider.sinks.ssm import clear_client_cache, ssm_client

    config = tmp_path / "config"
    config.write_text("[profile tdtest]\nregion = us-east-1\nservices = tdtest-services\n\n"
                      "[services tdtest-services]\nssm =\n  endpoint_url = http://ssm.internal.example:4566\n")
    for name in ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    clear_client_cache()
    try:
        with pytest.raises(ConfigError, match="Insecure SSM endpoint") as caught:
            ssm_client(AwsSettings(profile="tdtest"))
        assert "ssm.internal.example" in caught.value.detail
    finally:
        clear_client_cache()
