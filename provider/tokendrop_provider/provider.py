"""The provider core: resource registry, configuration, and the clients shared by all calls.

One process serves one Terraform command (or part of one), possibly many calls at once; clients
and rate limiters are built once, on first use, and shared by every concurrent call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

from . import schema, vault
from .attributes import ProviderSchema, validate_config
from .delivery import Delivery, Listings
from .endpoints import check_ssm_endpoint
from .errors import ConfigError
from .lazy import IMPORT_LOCK
from .resources.base import Resource
from .settings import AwsSettings, Settings
from .types import Unknown

T = TypeVar("T")


def all_resources() -> dict[str, Resource]:
    from .resources.buildkite_cluster import BuildkiteCluster
    from .resources.buildkite_cluster_token import BuildkiteClusterToken
    from .resources.tfe_agent_pool import TfeAgentPool
    from .resources.tfe_agent_token import TfeAgentToken
    from .resources.tokenvault_agent import TokenVaultAgent
    from .resources.vault_approle_secret_id import VaultAppRoleSecretId

    return {r.schema.type_name: r for r in (TfeAgentPool(), TfeAgentToken(), BuildkiteCluster(),
                                             BuildkiteClusterToken(), TokenVaultAgent(), VaultAppRoleSecretId())}


class ProviderCore:
    provider_schema: ProviderSchema = schema.PROVIDER

    def __init__(self, resources: Mapping[str, Resource] | None = None) -> None:
        self.resources = dict(resources) if resources is not None else all_resources()
        self.settings: Settings | None = None
        self.terraform_version = ""
        # Set by StopProvider: waits that have not started yet give up; calls in flight finish.
        self.cancel = threading.Event()
        self._clients: dict[object, object] = {}
        self.delivery = Delivery(Listings())
        self._lock = threading.Lock()

    def validate_config(self, config: Mapping[str, object]) -> list[ConfigError]:
        return validate_config(self.provider_schema.attributes, config)

    def configure(self, config: Mapping[str, object], terraform_version: str = "") -> None:
        self.settings = Settings.resolve(config)
        self.terraform_version = terraform_version

    def require_configured(self) -> Settings:
        if self.settings is None:  # Terraform always configures first; tests and tools may not
            self.settings = Settings.resolve({})
        return self.settings

    def client(self, key: object, build: Callable[[], T]) -> T:
        """The shared client (or memoized value) for `key`, built on first use. Concurrent callers of
        one key wait for a single build; different keys build in parallel (a build may call the API)."""
        with self._lock:
            once = self._clients.get(key)
            if once is None:
                once = self._clients[key] = _Once()
        return once.get(build)  # type: ignore[union-attr,return-value]

    # --- plan-time checks: missing settings fail the plan, before anything is created ----------

    def check_tfe_settings(self) -> None:
        if self.require_configured().tfe.token is None:
            raise ConfigError("Missing TFE token",
                              "Set tfe_token in the provider block or the TFE_TOKEN environment variable.",
                              ("tfe_token",))

    def check_buildkite_settings(self, organization: object = None) -> str | None:
        """The API token is set, and an organization slug is known: `organization` (a resource's
        own), else the provider's. Returns the slug; None while the resource's value is unknown."""
        settings = self.require_configured().buildkite
        if settings.api_token is None:
            raise ConfigError("Missing Buildkite API token",
                              "Set buildkite_api_token in the provider block or the BUILDKITE_API_TOKEN "
                              "environment variable.", ("buildkite_api_token",))
        if isinstance(organization, Unknown):
            return None
        slug = organization if isinstance(organization, str) and organization else settings.organization
        if not slug:
            raise ConfigError("Missing Buildkite organization",
                              "Set organization on the resource, or buildkite_organization in the provider block "
                              "(or the BUILDKITE_ORGANIZATION_SLUG environment variable).", ("organization",))
        problem = schema.BUILDKITE_ORGANIZATION_RULE(slug)
        if problem:
            raise ConfigError("Invalid Buildkite organization", f"organization {slug!r} {problem}.",
                              ("organization",))
        return slug

    def check_tokenvault_settings(self) -> None:
        if self.require_configured().tokenvault.api_key is None:
            raise ConfigError("Missing Token Vault API key",
                              "Set tokenvault_api_key in the provider block or the TOKENVAULT_API_KEY environment "
                              "variable.", ("tokenvault_api_key",))

    def check_vault_settings(self, what: str) -> None:
        """Vault address (https, or http on loopback) and credentials are set; `what` says who needs them."""
        vault.check_settings(self.require_configured().vault, what)

    def check_sink_settings(self, deliver_to: Mapping[str, object]) -> None:
        settings = self.require_configured()
        if isinstance(deliver_to.get("ssm"), Mapping):
            check_ssm_endpoint(settings.aws)
            if not self.memo(("aws-region", settings.aws.profile), lambda: _aws_region(settings.aws)):
                raise ConfigError("AWS region is not configured",
                                  "deliver_to.ssm needs a region: set aws_region in the provider block, or "
                                  "AWS_REGION (or a region in your AWS profile).", ("aws_region",))
        if isinstance(deliver_to.get("vault_kv"), Mapping):
            self.check_vault_settings("deliver_to.vault_kv")

    def memo(self, key: object, compute: Callable[[], T]) -> T:
        """A value computed once per process (e.g. "does this pool exist?" during one plan)."""
        return self.client(("memo", key), compute)

    # --- issuers and sinks ----------------------------------------------------------------------

    def tfe(self):  # type: ignore[no-untyped-def]
        with IMPORT_LOCK:
            from .issuers.tfe import TfeClient

        settings = self.require_configured().tfe
        return self.client(("tfe", settings.address), lambda: TfeClient(settings, cancel=self.cancel))

    def buildkite(self):  # type: ignore[no-untyped-def]
        with IMPORT_LOCK:
            from .issuers.buildkite import BuildkiteClient

        settings = self.require_configured().buildkite
        return self.client(("buildkite", settings.rest_url),
                           lambda: BuildkiteClient(settings, cancel=self.cancel))

    def tokenvault(self):  # type: ignore[no-untyped-def]
        with IMPORT_LOCK:
            from .issuers.tokenvault import TokenVaultClient

        settings = self.require_configured().tokenvault
        return self.client(("tokenvault", settings.api_url), lambda: TokenVaultClient(settings, cancel=self.cancel))

    def vault_approle(self):  # type: ignore[no-untyped-def]
        # Vault calls cannot be cancelled; each is short and bounded by the transport's timeout.
        with IMPORT_LOCK:
            from .issuers.vault_approle import VaultAppRoleIssuer

        settings = self.require_configured().vault
        return self.client(("vault-approle", settings.address), lambda: VaultAppRoleIssuer(settings))

    def sink(self, deliver_to: Mapping[str, object]):  # type: ignore[no-untyped-def]
        """Build the sink a `deliver_to` object names (exactly one kind is set; validation saw to it)."""
        settings = self.require_configured()
        ssm = deliver_to.get("ssm")
        if isinstance(ssm, Mapping):
            with IMPORT_LOCK:
                from .sinks.ssm import SsmSink

            return SsmSink(
                name=str(ssm["name"]),
                kms_key_id=ssm.get("kms_key_id"),  # type: ignore[arg-type]
                tier=ssm.get("tier"),  # type: ignore[arg-type]
                description=ssm.get("description"),  # type: ignore[arg-type]
                tags=dict(ssm.get("tags") or {}),  # type: ignore[arg-type]
                settings=settings.aws,
            )
        vault = deliver_to.get("vault_kv")
        if isinstance(vault, Mapping):
            with IMPORT_LOCK:
                from .sinks.vault_kv import VaultKvSink

            return VaultKvSink(
                mount=str(vault.get("mount") or "secret"),
                path=str(vault["path"]),
                field=str(vault.get("field") or "token"),
                settings=settings.vault,
            )
        raise ConfigError("No sink", "Set deliver_to.ssm or deliver_to.vault_kv.", ("deliver_to",))


class _Once:
    """A value computed by the first caller; a failed build is not kept, so the next caller retries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value: object = None

    def get(self, build: Callable[[], T]) -> T:
        with self._lock:
            if not self._done:
                self._value = build()
                self._done = True
            return self._value  # type: ignore[return-value]


def _aws_region(aws: AwsSettings) -> str | None:
    """The region boto3 would use: the provider block / environment, else the shared config profile."""
    if aws.region:
        return aws.region
    with IMPORT_LOCK:
        import botocore.session

    try:
        return botocore.session.Session(profile=aws.profile).get_config_variable("region")
    except Exception:  # an unknown profile is reported by the SSM client with its own message
        return None
