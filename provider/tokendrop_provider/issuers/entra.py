"""Microsoft Entra Agent ID through Microsoft Graph v1.0: agent identity blueprints (with their
principals), agent identities, federated identity credentials, and blueprint passwords as tokens.

Every wire fact is in docs/wire.md, section "Microsoft Entra (Graph)". What this module promises:

- The Graph access token comes from msal (client secret, certificate, or a federated token read from a
  file on every request), imported on first use; msal caches it for its lifetime. It is a `Secret`,
  sent in one header, never logged.
- Retries: 429 on every call (Graph did nothing), 5xx and broken connections on idempotent calls only;
  a POST that may have reached Graph is never resent (a second `addPassword` would make a password
  nobody holds). A POST that Graph refused with a definite 400/404 because an object it names is not
  replicated yet may be sent again (`retry_refused`).
- Eventual consistency: a read of an object this client just created retries a 404 a few times.
- Errors carry Graph's `code` and `message` and, for a 403, the application permission the call needs.

As an issuer (`TokenIssuer`), a scope is a blueprint's object id and a token is one of its passwords:
`mint` = addPassword (the marker in `displayName`), `lookup` / `list_tokens` read
`passwordCredentials`, `revoke` = removePassword.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import (
    ConfigError,
    IssuerAuthError,
    IssuerError,
    IssuerNotFound,
    IssuerValidationError,
    RateLimitedError,
)
from ..ratelimit import cancellable_sleep
from ..secret import Secret
from ..settings import EntraSettings
from ..timestamps import format_rfc3339, parse_rfc3339
from .base import IssuedToken, MintedToken, TokenIssuer
from .http import HttpResponse, HttpSession, normalize_base_url

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
BLUEPRINT_TYPE = "microsoft.graph.agentIdentityBlueprint"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# The documented least-privileged application permission of each call (docs/wire.md), and the higher
# one that also allows it.
ROLE_CREATE_BLUEPRINT = ("AgentIdentityBlueprint.Create", "AgentIdentityBlueprint.ReadWrite.All")
ROLE_CREATE_PRINCIPAL = ("AgentIdentityBlueprintPrincipal.Create", "AgentIdentityBlueprintPrincipal.ReadWrite.All")
ROLE_CREATE_AGENT = ("AgentIdentity.Create.All", "AgentIdentity.ReadWrite.All")
ROLE_CREDENTIALS = ("AgentIdentityBlueprint.AddRemoveCreds.All", "AgentIdentityBlueprint.ReadWrite.All")
ROLE_BRANDING = ("AgentIdentityBlueprint.UpdateBranding.All", "AgentIdentityBlueprint.ReadWrite.All")
ROLE_SPONSORS = ("Application.ReadWrite.All",)
# Waits before re-reading an object this client just created, while Graph replicates it.
CONSISTENCY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Blueprint:
    id: str  # object id
    app_id: str  # client id
    display_name: str
    passwords: tuple[IssuedToken, ...] = ()


@dataclass(frozen=True)
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    blueprint_app_id: str | None = None


@dataclass(frozen=True)
class FederatedCredential:
    id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    description: str | None = None


class _GraphToken(Secret):
    """The Graph access token: fetched (from msal's cache, or anew) each time a request is sent."""

    __slots__ = ("_fetch",)

    def __init__(self, fetch: Callable[[], str]) -> None:
        super().__init__("pending-graph-token")  # a placeholder: reveal() fetches the real one
        self._fetch = fetch

    def reveal(self) -> str:
        return Secret(self._fetch()).reveal()  # registered with the scrubber as it is handed out


def _role_hint(roles: Sequence[str]) -> str:
    return f" The provider's app registration needs the Microsoft Graph application permission {roles[0]}" + (
        f" (or {roles[1]})" if len(roles) > 1 else "") + ", granted with admin consent."


def graph_error(response: HttpResponse, what: str, roles: Sequence[str] = ()) -> IssuerError:
    """Graph's `{"error": {"code", "message"}}` as a typed error (the message never holds a secret)."""
    body = response.json_or_none()
    error = body.get("error") if isinstance(body, dict) else None
    code = message = ""
    if isinstance(error, dict):
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
    detail = f"{what}: HTTP {response.status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    status = response.status
    if status == 401:
        return IssuerAuthError("Microsoft Graph rejected the access token", detail, status=status)
    if status == 403:
        return IssuerAuthError("Microsoft Graph denied the call", detail + (_role_hint(roles) if roles else ""),
                               status=status)
    if status == 404:
        return IssuerNotFound(f"{what} not found", detail, status=status)
    if status in (400, 409, 422):
        return IssuerValidationError("Microsoft Graph refused the request", detail, status=status)
    if status == 429:
        return RateLimitedError("Microsoft Graph is throttling", detail, status=status)
    return IssuerError("Microsoft Graph failed to handle the request", detail, status=status)


def _time(text: object) -> str | None:
    moment = parse_rfc3339(str(text)) if text else None
    return format_rfc3339(moment) if moment else None


def _password(scope: str, raw: Mapping[str, Any]) -> IssuedToken:
    return IssuedToken(id=str(raw.get("keyId")), scope=scope, description=str(raw.get("displayName") or ""),
                       created_at=_time(raw.get("startDateTime")), expires_at=_time(raw.get("endDateTime")),
                       extra={"hint": raw.get("hint")})


def _blueprint(raw: Mapping[str, Any]) -> Blueprint:
    scope = str(raw.get("id"))
    return Blueprint(scope, str(raw.get("appId")), str(raw.get("displayName") or ""),
                     tuple(_password(scope, c) for c in raw.get("passwordCredentials") or ()))


def _principal(raw: Mapping[str, Any]) -> ServicePrincipal:
    return ServicePrincipal(str(raw.get("id")), str(raw.get("appId") or raw.get("id")),
                            str(raw.get("displayName") or ""), raw.get("agentIdentityBlueprintId"))


def _fic(raw: Mapping[str, Any]) -> FederatedCredential:
    return FederatedCredential(str(raw.get("id")), str(raw.get("name")), str(raw.get("issuer")),
                               str(raw.get("subject")), tuple(raw.get("audiences") or ()), raw.get("description"))


def token_roles(access_token: str) -> set[str]:
    """The `roles` claim of an app-only access token (its granted application permissions). The token
    came from the identity platform over TLS; its claims are read, not trusted for anything else."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return set()
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return {str(r) for r in roles} if isinstance(roles, list) else set()


def _credential(settings: EntraSettings) -> Any:
    """msal's `client_credential`: a secret, a certificate, or a callable returning a federated token."""
    if settings.client_secret is not None:
        return settings.client_secret.reveal()
    if settings.client_certificate_path:
        return _certificate(settings.client_certificate_path, settings.client_certificate_password)
    if settings.oidc_token_file_path:
        path = settings.oidc_token_file_path

        def assertion() -> str:  # read on every token request: the platform rotates the file
            with open(path, encoding="utf-8") as fh:
                return Secret(fh.read().strip()).reveal()

        return {"client_assertion": assertion}
    raise ConfigError("Missing Microsoft Entra credentials",
                      "Set ARM_CLIENT_SECRET, ARM_CLIENT_CERTIFICATE_PATH or ARM_OIDC_TOKEN_FILE_PATH (or the "
                      "entra_client_* settings of the provider block).", ("entra_client_secret",))


def _certificate(path: str, password: Secret | None) -> dict[str, str]:
    """A PEM file (key and certificate) or a PKCS#12 file, as msal's {private_key, public_certificate}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError("Cannot read the Entra client certificate", f"{path}: {exc.strerror}",
                          ("entra_client_certificate_path",)) from None
    secret = password.reveal().encode() if password is not None else None
    try:
        if b"-----BEGIN" in raw:
            key = serialization.load_pem_private_key(raw, secret)
            cert = x509.load_pem_x509_certificate(raw[raw.index(b"-----BEGIN CERTIFICATE"):])
        else:
            key, cert, _ = pkcs12.load_key_and_certificates(raw, secret)  # type: ignore[assignment]
            if key is None or cert is None:
                raise ValueError("no key or certificate")
    except ValueError:
        raise ConfigError("Cannot use the Entra client certificate",
                          f"{path} must hold a private key and its certificate (PEM, or PKCS#12 with "
                          "entra_client_certificate_password).", ("entra_client_certificate_path",)) from None
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    Secret(key_pem)  # registered with the scrubber
    return {"private_key": key_pem, "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode()}


class EntraClient(TokenIssuer):
    kind = "entra"

    def __init__(self, settings: EntraSettings, *, cancel: threading.Event | None = None,
                 consistency_delays: Sequence[float] = CONSISTENCY_DELAYS, **session: Any) -> None:
        self.settings = settings
        self.graph_url = normalize_base_url(settings.graph_url, label="Microsoft Graph URL", setting="entra_graph_url",
                                            credential="Graph access token")
        self.authority_host = normalize_base_url(settings.authority_host, label="Entra authority host",
                                                 setting="entra_authority_host", credential="client credential")
        self._cancel = cancel or threading.Event()
        self._delays = tuple(consistency_delays)
        self._lock = threading.Lock()
        self._msal: Any = None
        self._created: set[str] = set()  # objects made by this process: their 404s may be replication lag
        self._key_locks: dict[str, threading.Lock] = {}  # keyCredentials is replaced whole: one writer per blueprint
        self._session = HttpSession(self.graph_url, issuer="Microsoft Graph", auth=_GraphToken(self.access_token),
                                    cancel=self._cancel, verify=settings.ca_cert or True,
                                    error_mapper=lambda response, what: graph_error(response, what), **session)

    # -- the access token ------------------------------------------------------------------------

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority_host}/{self.settings.tenant_id}/oauth2/v2.0/token"

    def _app(self) -> Any:
        with self._lock:
            if self._msal is None:
                import msal
                import requests

                http = requests.Session()
                if self.settings.ca_cert:
                    # requests lets REQUESTS_CA_BUNDLE override a session's CA unless the environment is
                    # ignored; without the setting, proxies and REQUESTS_CA_BUNDLE apply as for Graph's calls.
                    http.trust_env = False
                    http.verify = self.settings.ca_cert
                self._msal = msal.ConfidentialClientApplication(
                    self.settings.client_id, client_credential=_credential(self.settings), http_client=http,
                    authority=f"{self.authority_host}/{self.settings.tenant_id}", instance_discovery=False)
            return self._msal

    def access_token(self) -> str:
        try:
            result = self._app().acquire_token_for_client([GRAPH_SCOPE])
        except ValueError as exc:  # msal: the authority could not be discovered
            raise IssuerAuthError("Could not reach the Microsoft Entra authority", str(exc).split(". ")[0]) from None
        except OSError as exc:
            raise IssuerError("Could not reach the Microsoft Entra authority", type(exc).__name__) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = result.get("error_description") or result.get("error") if isinstance(result, dict) else None
            raise IssuerAuthError("Microsoft Entra refused the provider's credentials",
                                  (str(error) or "no access token").splitlines()[0])
        return str(Secret(token).reveal())

    def missing_roles(self, *needed: Sequence[str]) -> list[str]:
        """For each alternative set of permissions, its least-privileged name when the access token holds
        none of them (read from the token's `roles` claim; no Graph call)."""
        held = token_roles(self.access_token())
        return [roles[0] for roles in needed if not held & set(roles)]

    # -- calls -----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, roles: Sequence[str] = (), **kw: Any) -> HttpResponse:
        try:
            return self._session.request(method, path, what=what, **kw)
        except IssuerAuthError as exc:
            if exc.status == 403 and roles:
                raise IssuerAuthError(exc.summary, exc.detail + _role_hint(roles), status=403) from None
            raise

    def _read(self, path: str, what: str, object_id: str) -> dict[str, Any]:
        """GET an object, retrying a 404 for an object this process created (replication lag)."""
        delays = self._delays if object_id in self._created else ()
        for attempt in range(len(delays) + 1):
            try:
                return self._call("GET", path, what).json()  # type: ignore[no-any-return]
            except IssuerNotFound:
                if attempt == len(delays):
                    raise
                if cancellable_sleep(delays[attempt], self._cancel):
                    raise
        raise AssertionError("unreachable")

    def _create(self, path: str, body: Mapping[str, Any], what: str, roles: Sequence[str],
                retry_refused: bool = False) -> dict[str, Any]:
        """POST once. With `retry_refused`, a definite 400/404 (an object the body names is not replicated
        yet) is sent again after a pause: Graph created nothing."""
        delays = self._delays if retry_refused else ()
        for attempt in range(len(delays) + 1):
            try:
                created = self._call("POST", path, what, roles, json_body=dict(body), expect=(200, 201)).json()
                break
            except (IssuerValidationError, IssuerNotFound) as refused:
                # 400/404: an object the body names is not replicated yet; a 409 will not change.
                if refused.status not in (400, 404) or attempt == len(delays) \
                        or cancellable_sleep(delays[attempt], self._cancel):
                    raise
        with self._lock:
            self._created.update(str(created[k]) for k in ("id", "appId") if created.get(k))
        return created  # type: ignore[no-any-return]

    # -- blueprints ------------------------------------------------------------------------------

    def create_blueprint(self, display_name: str, sponsors: Sequence[str], owners: Sequence[str] = ()) -> Blueprint:
        body: dict[str, Any] = {"displayName": display_name,
                                "sponsors@odata.bind": [f"{self.graph_url}/{s}" for s in sponsors]}
        if owners:
            body["owners@odata.bind"] = [f"{self.graph_url}/{o}" for o in owners]
        return _blueprint(self._create(f"/applications/{BLUEPRINT_TYPE}", body, "create agent identity blueprint",
                                       ROLE_CREATE_BLUEPRINT))

    def create_blueprint_principal(self, app_id: str) -> ServicePrincipal:
        # Right after the blueprint, Graph may not know its appId yet: a refusal is retried.
        return _principal(self._create("/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal",
                                       {"appId": app_id}, f"create the principal of blueprint {app_id}",
                                       ROLE_CREATE_PRINCIPAL, retry_refused=True))

    def get_blueprint(self, object_id: str) -> Blueprint | None:
        try:
            return _blueprint(self._read(f"/applications/{object_id}", f"agent identity blueprint {object_id}",
                                         object_id))
        except IssuerNotFound:
            return None

    def rename_blueprint(self, object_id: str, display_name: str) -> None:
        self._call("PATCH", f"/applications/{object_id}/{BLUEPRINT_TYPE}", f"rename blueprint {object_id}",
                   ROLE_BRANDING, json_body={"displayName": display_name})

    def delete_blueprint(self, object_id: str) -> bool:
        try:
            self._call("DELETE", f"/applications/{object_id}/{BLUEPRINT_TYPE}", f"delete blueprint {object_id}",
                       ("AgentIdentityBlueprint.ReadWrite.All",))
        except IssuerNotFound:
            return False
        return True

    def sponsors(self, object_id: str, agent_identity: bool = False) -> list[str]:
        """The sponsors of a blueprint or an agent identity, as `users/<id>` / `groups/<id>`."""
        raw = self._read(self._sponsors_path(object_id, agent_identity), f"sponsors of {object_id}", object_id)
        kinds = {"#microsoft.graph.user": "users", "#microsoft.graph.group": "groups"}
        return sorted(f"{kinds.get(str(s.get('@odata.type')), 'users')}/{s.get('id')}" for s in raw.get("value") or ())

    def _sponsors_path(self, object_id: str, agent_identity: bool) -> str:
        return (f"/servicePrincipals/{object_id}/microsoft.graph.agentIdentity/sponsors" if agent_identity
                else f"/applications/{object_id}/{BLUEPRINT_TYPE}/sponsors")

    def add_sponsor(self, object_id: str, sponsor: str, agent_identity: bool = False) -> None:
        """`sponsor` is `users/<id>` or `groups/<id>`. Adding one that is already there is a no-op."""
        try:
            self._call("POST", f"{self._sponsors_path(object_id, agent_identity)}/$ref", f"add sponsor {sponsor}",
                       ROLE_SPONSORS, json_body={"@odata.id": f"{self.graph_url}/{sponsor}"}, idempotent=True)
        except IssuerValidationError:
            if sponsor not in self.sponsors(object_id, agent_identity):
                raise

    def remove_sponsor(self, object_id: str, sponsor: str, agent_identity: bool = False) -> None:
        with contextlib.suppress(IssuerNotFound):  # already gone
            self._call("DELETE", f"{self._sponsors_path(object_id, agent_identity)}/{sponsor.split('/', 1)[1]}/$ref",
                       f"remove sponsor {sponsor}", ROLE_SPONSORS)

    # -- service principals (blueprint principals, agent identities) ------------------------------

    def create_agent_identity(self, display_name: str, blueprint_app_id: str,
                              sponsors: Sequence[str]) -> ServicePrincipal:
        body = {"displayName": display_name, "agentIdentityBlueprintId": blueprint_app_id,
                "sponsors@odata.bind": [f"{self.graph_url}/{s}" for s in sponsors]}
        return _principal(self._create("/servicePrincipals/microsoft.graph.agentIdentity", body,
                                       f"create agent identity {display_name!r}", ROLE_CREATE_AGENT,
                                       retry_refused=blueprint_app_id in self._created))

    def get_service_principal(self, object_id: str) -> ServicePrincipal | None:
        try:
            return _principal(self._read(f"/servicePrincipals/{object_id}", f"service principal {object_id}",
                                         object_id))
        except IssuerNotFound:
            return None

    def rename_service_principal(self, object_id: str, display_name: str) -> None:
        self._call("PATCH", f"/servicePrincipals/{object_id}", f"rename service principal {object_id}",
                   ROLE_CREATE_AGENT, json_body={"displayName": display_name})

    def delete_service_principal(self, object_id: str) -> bool:
        try:
            self._call("DELETE", f"/servicePrincipals/{object_id}", f"delete service principal {object_id}",
                       ROLE_CREATE_AGENT)
        except IssuerNotFound:
            return False
        return True

    # -- federated identity credentials ----------------------------------------------------------

    def create_federated_credential(self, blueprint_id: str, name: str, issuer: str, subject: str,
                                    audiences: Sequence[str], description: str | None = None) -> FederatedCredential:
        body: dict[str, Any] = {"name": name, "issuer": issuer, "subject": subject, "audiences": list(audiences)}
        if description:
            body["description"] = description
        return _fic(self._create(f"/applications/{blueprint_id}/federatedIdentityCredentials", body,
                                 f"create federated identity credential {name!r}", ROLE_CREDENTIALS))

    def list_federated_credentials(self, blueprint_id: str) -> list[FederatedCredential]:
        raw = self._read(f"/applications/{blueprint_id}/federatedIdentityCredentials",
                         f"federated identity credentials of blueprint {blueprint_id}", blueprint_id)
        return [_fic(f) for f in raw.get("value") or ()]

    def get_federated_credential(self, blueprint_id: str, credential_id: str) -> FederatedCredential | None:
        try:
            return _fic(self._read(f"/applications/{blueprint_id}/federatedIdentityCredentials/{credential_id}",
                                   f"federated identity credential {credential_id}", credential_id))
        except IssuerNotFound:
            return None

    def delete_federated_credential(self, blueprint_id: str, credential_id: str) -> bool:
        try:
            self._call("DELETE", f"/applications/{blueprint_id}/federatedIdentityCredentials/{credential_id}",
                       f"delete federated identity credential {credential_id}", ROLE_CREDENTIALS)
        except IssuerNotFound:
            return False
        return True

    # -- passwords: the TokenIssuer side ---------------------------------------------------------

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        credential: dict[str, Any] = {"displayName": description}
        end = options.get("end_date_time")
        if isinstance(end, str) and end:
            credential["endDateTime"] = end
        raw = self._call("POST", f"/applications/{scope}/{BLUEPRINT_TYPE}/addPassword",
                         f"add a password to blueprint {scope}", ROLE_CREDENTIALS,
                         json_body={"passwordCredential": credential}, expect=(200, 201)).json()
        text = raw.get("secretText") if isinstance(raw, dict) else None
        if not isinstance(text, str) or not text:
            raise IssuerError("Microsoft Graph answered addPassword without a secretText",
                              f"blueprint {scope}: the password {raw.get('keyId') if isinstance(raw, dict) else ''} "
                              "must be removed; the next apply does it (it carries the marker)")
        return MintedToken(_password(scope, raw), Secret(text))

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        blueprint = self.get_blueprint(scope)
        if blueprint is None:
            raise IssuerNotFound(f"agent identity blueprint {scope} not found", "it was deleted")
        found = next((p for p in blueprint.passwords if p.id == token_id), None)
        if found is None:
            return None
        expires = parse_rfc3339(found.expires_at)
        return None if expires is not None and expires <= datetime.datetime.now(datetime.UTC) else found

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        blueprint = self.get_blueprint(scope)
        if blueprint is None:
            raise IssuerNotFound(f"agent identity blueprint {scope} not found", "it was deleted")
        return list(blueprint.passwords)

    def revoke(self, scope: str, token_id: str) -> bool:
        try:
            self._call("POST", f"/applications/{scope}/{BLUEPRINT_TYPE}/removePassword",
                       f"remove password {token_id} from blueprint {scope}", ROLE_CREDENTIALS,
                       json_body={"keyId": token_id}, expect=(200, 204), idempotent=True)
        except (IssuerValidationError, IssuerNotFound):
            # Graph's answer to an unknown keyId is not documented: gone if the blueprint no longer lists it.
            blueprint = self.get_blueprint(scope)
            if blueprint is None or all(p.id != token_id for p in blueprint.passwords):
                return False
            raise
        return True


# --- certificates: keyCredentials of a blueprint ---------------------------------------------------


def _certificate_token(scope: str, raw: Mapping[str, Any]) -> IssuedToken:
    return IssuedToken(id=str(raw.get("keyId")), scope=scope, description=str(raw.get("displayName") or ""),
                       created_at=_time(raw.get("startDateTime")), expires_at=_time(raw.get("endDateTime")),
                       extra={"thumbprint": raw.get("customKeyIdentifier")})


def new_certificate(common_name: str, valid_for: datetime.timedelta, rsa_bits: int) -> tuple[Secret, str, bytes]:
    """A fresh RSA key and a self-signed certificate: (the key as PEM, wrapped at once; the certificate as
    PEM; the certificate as DER). msal signs client assertions with PS256 or RS256, so the key is RSA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + valid_for).sign(key, hashes.SHA256()))
    key_pem = Secret(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), cert.public_bytes(
        serialization.Encoding.DER)


class EntraCertificates(TokenIssuer):
    """A blueprint's certificates as tokens (kind `entra_certificate`: its own markers and listings,
    apart from the passwords). The key pair is made here; the public certificate joins the blueprint's
    `keyCredentials` through an update of the whole collection (Graph's addKey needs a proof signed by a
    key tokendrop no longer holds); the private key exists only in memory and in the sink."""

    kind = "entra_certificate"

    def __init__(self, client: EntraClient) -> None:
        self.client = client

    def _lock(self, scope: str) -> threading.Lock:
        with self.client._lock:
            return self.client._key_locks.setdefault(scope, threading.Lock())

    def _credentials(self, scope: str) -> list[dict[str, Any]]:
        raw = self.client._read(f"/applications/{scope}", f"agent identity blueprint {scope}", scope)
        return [dict(c) for c in raw.get("keyCredentials") or ()] if isinstance(raw, dict) else []

    def _credentials_with_keys(self, scope: str) -> list[dict[str, Any]]:
        raw = self.client._call("GET", f"/applications/{scope}", f"agent identity blueprint {scope}",
                                params={"$select": "id,keyCredentials"}).json()
        keep = ("keyId", "type", "usage", "key", "displayName", "startDateTime", "endDateTime", "customKeyIdentifier")
        return [{k: c.get(k) for k in keep if c.get(k) is not None} for c in raw.get("keyCredentials") or ()]

    def _replace(self, scope: str, credentials: list[dict[str, Any]]) -> None:
        self.client._call("PATCH", f"/applications/{scope}/{BLUEPRINT_TYPE}",
                          f"update the certificates of blueprint {scope}", ROLE_CREDENTIALS,
                          json_body={"keyCredentials": credentials})

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        import uuid

        valid_for = options.get("valid_for")
        lifetime = valid_for if isinstance(valid_for, datetime.timedelta) else datetime.timedelta(days=365)
        bits = options.get("rsa_bits")
        key_pem, cert_pem, der = new_certificate(description or "tokendrop", lifetime,
                                                 bits if isinstance(bits, int) else 2048)
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        credential = {"keyId": str(uuid.uuid4()), "type": "AsymmetricX509Cert", "usage": "Verify",
                      "key": base64.b64encode(der).decode(), "displayName": description,
                      "startDateTime": format_rfc3339(cert.not_valid_before_utc),
                      "endDateTime": format_rfc3339(cert.not_valid_after_utc)}
        with self._lock(scope):
            # A definite refusal of this PATCH leaves the collection as it was; a lost answer may have
            # stored it: the marker in displayName lets the next apply find the certificate.
            self._replace(scope, [*self._credentials_with_keys(scope), credential])
        from cryptography.hazmat.primitives import hashes

        thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the x5t thumbprint is SHA-1
        token = _certificate_token(scope, {**credential, "customKeyIdentifier": thumbprint})
        return MintedToken(token, Secret(key_pem.reveal() + cert_pem))

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        found = next((c for c in self.list_tokens(scope) if c.id == token_id), None)
        expires = parse_rfc3339(found.expires_at) if found is not None else None
        if found is None or (expires is not None and expires <= datetime.datetime.now(datetime.UTC)):
            return None
        return found

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        try:
            return [_certificate_token(scope, c) for c in self._credentials(scope)]
        except IssuerNotFound:
            raise IssuerNotFound(f"agent identity blueprint {scope} not found", "it was deleted") from None

    def revoke(self, scope: str, token_id: str) -> bool:
        with self._lock(scope):
            try:
                current = self._credentials_with_keys(scope)
            except IssuerNotFound:
                return False
            kept = [c for c in current if c.get("keyId") != token_id]
            if len(kept) == len(current):
                return False
            self._replace(scope, kept)
        return True
