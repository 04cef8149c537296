"""Microsoft Entra Agent ID (Microsoft Graph): blueprints, their passwords, federated credentials and
agent identities. Settings follow the azuread provider's environment variables (ARM_*), then the Azure
SDKs' (AZURE_*)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import EntraSettings, Setting, SettingsGroup
from .base import Issuer, missing_setting, text

if TYPE_CHECKING:
    from ..issuers.entra import EntraCertificates, EntraClient
    from ..resources.base import Resource

TENANT = Setting("entra_tenant_id", "Microsoft Entra tenant id of the provider's app registration.",
                 ("ARM_TENANT_ID", "AZURE_TENANT_ID"))
CLIENT = Setting("entra_client_id", "Client (application) id of the provider's app registration, which holds the "
                 "Microsoft Graph application permissions the configuration needs (docs/wire.md).",
                 ("ARM_CLIENT_ID", "AZURE_CLIENT_ID"))
SECRET = Setting("entra_client_secret", "Client secret of the provider's app registration.",
                 ("ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET"), sensitive=True)
CERTIFICATE = Setting("entra_client_certificate_path", "Path of a PEM (key and certificate) or PKCS#12 file: "
                      "certificate authentication instead of a secret.",
                      ("ARM_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PATH"))
OIDC_FILE = Setting("entra_oidc_token_file_path", "Path of a federated (workload identity) token, read on every "
                    "token request: authentication through a federated credential.",
                    ("ARM_OIDC_TOKEN_FILE_PATH", "AZURE_FEDERATED_TOKEN_FILE"))
SETTINGS = SettingsGroup("entra", (
    TENANT, CLIENT, SECRET, CERTIFICATE,
    Setting("entra_client_certificate_password", "Password of the PKCS#12 certificate file.",
            ("ARM_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD"), sensitive=True),
    OIDC_FILE,
    Setting("entra_graph_url", "Microsoft Graph v1.0 base URL (sovereign clouds, the sandbox).",
            ("TOKENDROP_ENTRA_GRAPH_URL",), default="https://graph.microsoft.com/v1.0"),
    Setting("entra_authority_host", "Microsoft identity platform host (sovereign clouds, the sandbox).",
            ("AZURE_AUTHORITY_HOST",), default="https://login.microsoftonline.com"),
    Setting("entra_ca_cert", "CA bundle (PEM) that Graph's and the authority's TLS certificates are checked "
            "against, instead of the system's.", ("TOKENDROP_ENTRA_CA_CERT",)),
), lambda v: EntraSettings(
    tenant_id=v["entra_tenant_id"], client_id=v["entra_client_id"], client_secret=v["entra_client_secret"],
    client_certificate_path=v["entra_client_certificate_path"],
    client_certificate_password=v["entra_client_certificate_password"],
    oidc_token_file_path=v["entra_oidc_token_file_path"], graph_url=v["entra_graph_url"],
    authority_host=v["entra_authority_host"], ca_cert=v["entra_ca_cert"]))


def _client(settings: EntraSettings, cancel: threading.Event) -> EntraClient:
    with IMPORT_LOCK:
        from ..issuers.entra import EntraClient

    return EntraClient(settings, cancel=cancel)


def check(settings: EntraSettings) -> ConfigError | None:
    from ..endpoints import checked_endpoint

    if not settings.tenant_id:
        return missing_setting("Missing Microsoft Entra tenant id", TENANT)
    if not settings.client_id:
        return missing_setting("Missing Microsoft Entra client id", CLIENT)
    if settings.client_secret is None and not settings.client_certificate_path and not settings.oidc_token_file_path:
        return missing_setting("Missing Microsoft Entra credentials", SECRET,
                               f", or {CERTIFICATE.env[0]} / {OIDC_FILE.env[0]} for a certificate or a federated token")
    try:
        checked_endpoint(settings.graph_url, label="Microsoft Graph URL", setting="entra_graph_url",
                         carries="the Graph access token")
        checked_endpoint(settings.authority_host, label="Entra authority host", setting="entra_authority_host",
                         carries="the provider's client credential")
    except ConfigError as err:
        return err
    return None


def _resources() -> tuple[Resource, ...]:
    from ..resources.entra_agent_blueprint import EntraAgentBlueprint
    from ..resources.entra_agent_identity import EntraAgentIdentity
    from ..resources.entra_blueprint_federated_credential import EntraBlueprintFederatedCredential
    from ..resources.entra_blueprint_password import EntraBlueprintPassword

    return (EntraAgentBlueprint(), EntraAgentIdentity(), EntraBlueprintFederatedCredential(),
            EntraBlueprintPassword())


ISSUER: Issuer[EntraClient] = Issuer(
    name="entra", label="Microsoft Entra Agent ID", scope_label="agent identity blueprint", settings=SETTINGS,
    client=_client, check=check, resources=_resources,
    token_scopes={"tokendrop_entra_blueprint_password": lambda attrs, _: text(attrs.get("blueprint_id"))},
    scope_resources={
        "tokendrop_entra_agent_blueprint": lambda attrs: (
            (str(attrs["id"]), text(attrs.get("display_name"))) if text(attrs.get("id")) else None),
        # They hold no token and name no scope the audit lists: known to the registry, skipped by the audit.
        "tokendrop_entra_agent_identity": lambda _attrs: None,
        "tokendrop_entra_blueprint_federated_credential": lambda _attrs: None,
    },
    list_tokens=lambda client, scope: client.list_tokens(scope),
    libraries=("requests", "msal"),
)


def _certificates_client(settings: EntraSettings, cancel: threading.Event) -> EntraCertificates:
    with IMPORT_LOCK:
        from ..issuers.entra import EntraCertificates

    return EntraCertificates(_client(settings, cancel))


def _certificate_resources() -> tuple[Resource, ...]:
    from ..resources.entra_blueprint_certificate import EntraBlueprintCertificate

    return (EntraBlueprintCertificate(),)


# A blueprint's certificates: their own issuer kind, so that their markers and listings stay apart from the
# passwords' (as Token Vault's keys are apart from its agents).
CERTIFICATES: Issuer[EntraCertificates] = Issuer(
    name="entra_certificate", label="Microsoft Entra Agent ID certificates", scope_label="agent identity blueprint",
    settings=SETTINGS, client=_certificates_client, check=check, resources=_certificate_resources,
    token_scopes={"tokendrop_entra_blueprint_certificate": lambda attrs, _: text(attrs.get("blueprint_id"))},
    list_tokens=lambda client, scope: client.list_tokens(scope),
    libraries=("requests", "msal"),
)
