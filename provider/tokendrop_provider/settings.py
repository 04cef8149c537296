"""Connection settings of the issuers and sinks, resolved from the provider block and the environment.

Environment variables follow the official providers so that existing setups just work. Values set in
the provider block win over the environment. Credentials are held as `Secret` and never reach state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .secret import Secret

G = TypeVar("G")


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
    # A sink in another account: STS AssumeRole with the credentials above (sinks/aws.py), under this
    # session name (tokendrop and the resource type).
    assume_role_arn: str | None = None
    role_session_name: str = "tokendrop"


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
class EntraSettings:
    """Microsoft Entra (Graph) app-only credentials: a client secret, a certificate, or a federated
    token file, tried in that order (the azuread provider's names, docs/wire.md)."""

    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    client_certificate_path: str | None = None
    client_certificate_password: Secret | None = None
    oidc_token_file_path: str | None = None
    graph_url: str = "https://graph.microsoft.com/v1.0"
    authority_host: str = "https://login.microsoftonline.com"
    ca_cert: str | None = None


@dataclass(frozen=True)
class Setting:
    """One provider-block attribute and the environment variables it falls back to (first set wins).
    Declared once, in the registry module of the issuer or sink that needs it; the provider schema,
    `Settings.resolve` and the reference docs all read this declaration."""

    name: str
    description: str
    env: tuple[str, ...] = ()
    default: str | None = None
    sensitive: bool = False
    boolean: bool = False

    def resolve(self, block: Mapping[str, object], env: Mapping[str, str]) -> object:
        """The block's value, else the environment's, else the default; sensitive values as `Secret`."""
        value = block.get(self.name)
        if self.boolean:
            if value is None:
                return (_env(env, *self.env) or "").lower() in ("1", "true", "yes")
            return bool(value)
        text = value if isinstance(value, str) and value else (_env(env, *self.env) or self.default)
        return _secret(text) if self.sensitive else text

    @property
    def doc(self) -> str:
        """The description with its environment variables and default, for the schema and the docs."""
        parts = [self.description]
        if self.env:
            parts.append("Env: " + " / ".join(f"`{name}`" for name in self.env) + ".")
        if self.default is not None:
            parts.append(f"Default: `{self.default}`.")
        return " ".join(parts)


@dataclass(frozen=True)
class SettingsGroup(Generic[G]):
    """The settings of one issuer or sink (or of a service several share, like Vault): their
    declarations and how the resolved values (attribute name -> value) become its typed settings, a
    hashable value (a frozen dataclass): clients are shared per settings value."""

    name: str
    settings: tuple[Setting, ...]
    build: Callable[[Mapping[str, object]], G]

    def resolve(self, block: Mapping[str, object], env: Mapping[str, str]) -> G:
        return self.build({s.name: s.resolve(block, env) for s in self.settings})


class Settings:
    """Every group's typed settings, by group name. The built-in groups have typed properties; a
    newly registered group is read with `group(name)`."""

    def __init__(self, **groups: object) -> None:
        self._groups = dict(groups)

    def group(self, name: str) -> Any:
        try:
            return self._groups[name]
        except KeyError:
            raise KeyError(f"no settings group {name!r} is registered") from None

    @property
    def tfe(self) -> TfeSettings:
        return self.group("tfe")  # type: ignore[no-any-return]

    @property
    def buildkite(self) -> BuildkiteSettings:
        return self.group("buildkite")  # type: ignore[no-any-return]

    @property
    def tokenvault(self) -> TokenVaultSettings:
        return self.group("tokenvault")  # type: ignore[no-any-return]

    @property
    def aws(self) -> AwsSettings:
        return self.group("aws")  # type: ignore[no-any-return]

    @property
    def vault(self) -> VaultSettings:
        return self.group("vault")  # type: ignore[no-any-return]

    @classmethod
    def resolve(cls, block: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
                groups: Sequence[SettingsGroup[Any]] | None = None) -> Settings:
        """Merge the provider block (attribute name -> value, None when unset) over the environment, for
        every registered group (`groups` defaults to the registry's)."""
        if groups is None:
            # The registry sits above this module (it names resources); read it only when called.
            from .registry import settings_groups

            groups = settings_groups()
        block = block or {}
        env = os.environ if env is None else env
        return cls(**{group.name: group.resolve(block, env) for group in groups})
