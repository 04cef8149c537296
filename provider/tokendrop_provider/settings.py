"""Connection settings of the issuers and sinks, resolved from the provider block and the environment.

Environment variables follow the official providers so that existing setups just work. Values set in
the provider block win over the environment. Credentials are held as `Secret` and never reach state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .secret import Secret


def batching_enabled() -> bool:
    """Batched refresh (one listing per pool / parameter path) is on unless TOKENDROP_BATCH_READS=0.
    Off, every token is read with its own calls, as other providers do (the benchmark's baseline)."""
    return os.environ.get("TOKENDROP_BATCH_READS", "1").strip().lower() not in ("0", "false", "no", "off")


def _env(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


@dataclass(frozen=True)
class TfeSettings:
    address: str = "https://app.terraform.io"
    token: Secret | None = None


@dataclass(frozen=True)
class BuildkiteSettings:
    rest_url: str = "https://api.buildkite.com"
    api_token: Secret | None = None
    organization: str | None = None


@dataclass(frozen=True)
class TokenVaultSettings:
    api_url: str = "https://api.tokenvault.uk"
    api_key: Secret | None = None


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    endpoint_url_ssm: str | None = None  # AWS_ENDPOINT_URL_SSM, else AWS_ENDPOINT_URL
    access_key_id: str | None = None  # None: boto3's default credential chain decides
    secret_access_key: Secret | None = None
    session_token: Secret | None = None


@dataclass(frozen=True)
class VaultSettings:
    address: str | None = None
    token: Secret | None = None
    namespace: str | None = None
    approle_role_id: str | None = None  # AppRole login when role id and secret id are given
    approle_secret_id: Secret | None = None
    approle_mount: str = "approle"
    ca_cert: str | None = None
    skip_verify: bool = False


@dataclass(frozen=True)
class Settings:
    tfe: TfeSettings
    buildkite: BuildkiteSettings
    tokenvault: TokenVaultSettings
    aws: AwsSettings
    vault: VaultSettings

    @classmethod
    def resolve(cls, block: Mapping[str, object] | None = None,
                env: Mapping[str, str] | None = None) -> Settings:
        """Merge the provider block (attribute name -> value, None when unset) over the environment."""
        block = block or {}
        env = os.environ if env is None else env

        def pick(attr: str, *names: str) -> str | None:
            value = block.get(attr)
            if isinstance(value, str) and value:
                return value
            return _env(env, *names)

        skip_verify = block.get("vault_skip_verify")
        if skip_verify is None:
            skip_verify = (_env(env, "VAULT_SKIP_VERIFY") or "").lower() in ("1", "true", "yes")
        return cls(
            tfe=TfeSettings(
                address=(pick("tfe_address", "TFE_ADDRESS", "TFE_HOSTNAME") or "https://app.terraform.io"),
                token=_secret(pick("tfe_token", "TFE_TOKEN")),
            ),
            buildkite=BuildkiteSettings(
                rest_url=pick("buildkite_rest_url", "BUILDKITE_REST_URL") or "https://api.buildkite.com",
                api_token=_secret(pick("buildkite_api_token", "BUILDKITE_API_TOKEN")),
                organization=pick("buildkite_organization", "BUILDKITE_ORGANIZATION_SLUG",
                                  "BUILDKITE_ORGANIZATION"),
            ),
            tokenvault=TokenVaultSettings(
                api_url=pick("tokenvault_api_url", "TOKENVAULT_API_URL") or "https://api.tokenvault.uk",
                api_key=_secret(pick("tokenvault_api_key", "TOKENVAULT_API_KEY")),
            ),
            aws=AwsSettings(
                region=pick("aws_region", "AWS_REGION", "AWS_DEFAULT_REGION"),
                profile=pick("aws_profile", "AWS_PROFILE"),
                endpoint_url_ssm=pick("aws_endpoint_url_ssm", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"),
                access_key_id=(block.get("aws_access_key_id") or None),  # type: ignore[arg-type]
                secret_access_key=_secret(block.get("aws_secret_access_key") or None),  # type: ignore[arg-type]
                session_token=_secret(block.get("aws_session_token") or None),  # type: ignore[arg-type]
            ),
            vault=VaultSettings(
                address=pick("vault_address", "VAULT_ADDR"),
                token=_secret(pick("vault_token", "VAULT_TOKEN")),
                namespace=pick("vault_namespace", "VAULT_NAMESPACE"),
                approle_role_id=pick("vault_approle_role_id", "VAULT_APPROLE_ROLE_ID"),
                approle_secret_id=_secret(pick("vault_approle_secret_id", "VAULT_APPROLE_SECRET_ID")),
                approle_mount=pick("vault_approle_mount", "VAULT_APPROLE_MOUNT") or "approle",
                ca_cert=pick("vault_ca_cert", "VAULT_CACERT"),
                skip_verify=bool(skip_verify),
            ),
        )
