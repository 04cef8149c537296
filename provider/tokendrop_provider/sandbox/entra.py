"""Emulator of Microsoft Graph (agent identity blueprints, their principals, agent identities,
federated identity credentials, blueprint passwords) and of the Microsoft identity platform's token
endpoint (client secret, certificate assertion, federated assertion and the `fmi_path` exchange).

Every route follows docs/wire.md, section "Microsoft Entra (Graph)", which says which facts are
documented and which are assumed.

- https only, on 127.0.0.1, with a CA of its own (`ca_path`): msal refuses a plain http authority.
- One tenant (`tenant_id`). The provider's app registration (`admin_client_id`, with the client
  secret `admin_secret` and the certificate `admin_cert_path`) holds the application permissions in
  `roles`; a Graph call without the role its documented permission table names answers 403
  `Authorization_RequestDenied`.
- Tokens are RS256 JWTs signed by the emulator's key (published at the tenant's JWKS route), so it
  verifies its own access tokens, the fmi_path token T1 and the "external" workload tokens that
  `workload_token()` mints for federated credentials. Certificate assertions are verified with the
  public key of the registered certificate whose thumbprint the JWT header names.
- `addPassword` returns `secretText` once; it is kept in memory only to check client-secret logins
  and is in the minted registry for canary scans.
- Eventual consistency: with `consistency_reads = n`, an object answers 404 to its first n reads.
- Throttling: `add_fault(..., status=429, headers={"Retry-After": "1"})` answers in Graph's format.

Run standalone: `python -m tokendrop_provider.sandbox.entra --port 0 --ready-file /tmp/entra.json`.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import os
import secrets
import shutil
import ssl
import sys
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from .emulator import HOST, Emulator, HttpError, Request, Response, _RequestHandler, _Server, run_cli

GRAPH = "/v1.0"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SPONSOR_USER = "e64405d7-f156-4ce1-b1f5-b0d801c367f3"  # a user of the sandbox tenant who can sponsor
# The documented least-privileged application permission of each call (docs/wire.md); the
# ReadWrite.All permission above it is accepted too.
CREATE_BLUEPRINT = ("AgentIdentityBlueprint.Create", "AgentIdentityBlueprint.ReadWrite.All")
CREATE_PRINCIPAL = ("AgentIdentityBlueprintPrincipal.Create", "AgentIdentityBlueprintPrincipal.ReadWrite.All")
CREATE_AGENT = ("AgentIdentity.Create.All", "AgentIdentity.ReadWrite.All")
CREDENTIALS = ("AgentIdentityBlueprint.AddRemoveCreds.All", "AgentIdentityBlueprint.ReadWrite.All")
BRANDING = ("AgentIdentityBlueprint.UpdateBranding.All", "AgentIdentityBlueprint.ReadWrite.All")
READ = ("Application.Read.All", "AgentIdentityBlueprint.ReadWrite.All", *CREATE_BLUEPRINT, *CREDENTIALS)
SPONSORS = ("Application.ReadWrite.All",)  # documented for the sponsors collection of both types
PROVIDER_ROLES = frozenset({CREATE_BLUEPRINT[0], CREATE_PRINCIPAL[0], CREATE_AGENT[0], CREDENTIALS[0],
                            BRANDING[0], SPONSORS[0], "Application.Read.All"})
MAX_FICS = 20


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _graph_code(status: int) -> str:
    return {400: "Request_BadRequest", 401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
            404: "Request_ResourceNotFound", 409: "Request_MultipleObjectsWithSameKeyValue",
            429: "TooManyRequests"}.get(status, "generalException" if status < 500 else "serviceNotAvailable")


class _Pki:
    """A CA, the server certificate for 127.0.0.1 and the token-signing key, made at start-up."""

    def __init__(self, directory: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        now = _now()
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokendrop sandbox Entra CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)),
                                                            x509.DNSName("localhost")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca_path = os.path.join(directory, "entra-ca.pem")
        with open(self.ca_path, "wb") as fh:
            fh.write(ca.public_bytes(serialization.Encoding.PEM))
        chain = os.path.join(directory, "entra-server.pem")
        with open(os.open(chain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(chain)
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = _b64url(os.urandom(9))


def make_certificate(common_name: str, directory: str, days: int = 365) -> tuple[str, str]:
    """A self-signed RSA certificate and its key in one PEM file (what ARM_CLIENT_CERTIFICATE_PATH names);
    returns (path, the certificate's PEM) so a test can register it on an app."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    path = os.path.join(directory, f"{common_name}.pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode())
        fh.write(cert_pem)
    return path, cert_pem


def _key_credential(cert_pem: str, display_name: str) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"keyId": str(uuid.uuid4()), "displayName": display_name, "type": "AsymmetricX509Cert",
            "usage": "Verify", "key": base64.b64encode(der).decode(),
            "customKeyIdentifier": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1
            "startDateTime": _iso(cert.not_valid_before_utc), "endDateTime": _iso(cert.not_valid_after_utc),
            "_sha1": _b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303
            "_sha256": _b64url(cert.fingerprint(hashes.SHA256()))}


class EntraEmulator(Emulator):
    name = "entra"

    def __init__(self, port: int = 0, tenant_id: str | None = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="tokendrop-entra-")
        self._pki = _Pki(self._dir)
        self.tenant_id = tenant_id or "7f3c1a2e-5b6d-4e8f-9a0b-1c2d3e4f5a6b"
        self.admin_client_id = str(uuid.uuid4())
        self.admin_secret = "sbx~" + secrets.token_urlsafe(30)
        self.admin_cert_path, self._admin_cert_pem = make_certificate("tokendrop-admin", self._dir)
        self.ca_path = self._pki.ca_path
        self.roles: set[str] = set(PROVIDER_ROLES)
        self.consistency_reads = 0
        self.apps: dict[str, dict[str, Any]] = {}
        self.principals: dict[str, dict[str, Any]] = {}
        self._passwords: dict[str, tuple[str, str]] = {}  # keyId -> (app object id, secretText)
        self._fresh: dict[str, int] = {}
        super().__init__(port)
        self.reset_state()

    # -- https ------------------------------------------------------------------------------------

    def start(self) -> EntraEmulator:
        if self._server is not None:
            raise RuntimeError("entra emulator already started")
        server = _Server((HOST, self._port), _RequestHandler, self)
        server.socket = self._pki.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="entra-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)  # the CA, the server key, the admin certificate

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def graph_url(self) -> str:
        return self.url + GRAPH

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{self.tenant_id}/oauth2/v2.0/token"

    def ready_info(self) -> dict[str, Any]:
        return {"env": {"ARM_TENANT_ID": self.tenant_id, "ARM_CLIENT_ID": self.admin_client_id,
                        "ARM_CLIENT_SECRET": self.admin_secret, "AZURE_AUTHORITY_HOST": self.url,
                        "TOKENDROP_ENTRA_GRAPH_URL": self.graph_url, "TOKENDROP_ENTRA_CA_CERT": self.ca_path},
                "sponsor": SPONSOR_USER}

    # -- state ------------------------------------------------------------------------------------

    def reset_state(self) -> None:
        self.roles = set(PROVIDER_ROLES)
        self.consistency_reads = 0
        self.apps = {}
        self.principals = {}
        self._passwords = {}
        self._fresh = {}
        admin = self._new_app(self.admin_client_id, "tokendrop-admin", "#microsoft.graph.application", owner=None)
        admin["keyCredentials"].append(_key_credential(self._admin_cert_pem, "tokendrop-admin"))
        self._fresh.clear()

    def _new_app(self, app_id: str, name: str, odata_type: str, owner: str | None) -> dict[str, Any]:
        obj = {"id": str(uuid.uuid4()), "appId": app_id, "displayName": name, "@odata.type": odata_type,
               "createdDateTime": _iso(_now()), "signInAudience": "AzureADMyOrg", "passwordCredentials": [],
               "keyCredentials": [], "identifierUris": [], "_fics": {}, "_owners": [owner] if owner else [],
               "_sponsors": []}
        self.apps[obj["id"]] = obj
        self._fresh[obj["id"]] = self.consistency_reads
        return obj

    def settle(self) -> None:
        """Replication is done: every object answers reads from now on."""
        with self.lock:
            self._fresh.clear()

    def app_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        return next((a for a in self.apps.values() if a["appId"] == app_id), None)

    def workload_token(self, issuer: str, subject: str, audience: str = EXCHANGE_AUDIENCE) -> str:
        """A token of an external workload issuer (GitHub Actions, a managed identity, ...), signed by the
        emulator, to present through a federated identity credential."""
        return self._sign({"iss": issuer, "sub": subject, "aud": audience}, 600)

    def world(self) -> dict[str, Any]:
        """Objects without any secret (for tests and `/_sandbox/world`)."""
        with self.lock:
            return {"applications": [self._public(a) for a in self.apps.values()],
                    "servicePrincipals": [dict(p) for p in self.principals.values()]}

    # -- tokens -----------------------------------------------------------------------------------

    def _sign(self, claims: Mapping[str, Any], lifetime: int) -> str:
        import jwt

        now = int(_now().timestamp())
        body = {"iat": now, "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4()), "tid": self.tenant_id,
                **claims}
        token = jwt.encode(body, self._pki.signing_key, algorithm="RS256", headers={"kid": self._pki.kid})
        # In the minted registry as a canary for leak scans. An access token cannot be revoked (it expires
        # within the hour), so it is listed as revoked: "live" stays what tokendrop manages.
        self.record_minted(f"jwt-{body['jti']}", token, str(claims.get("aud")))
        self.mark_revoked(f"jwt-{body['jti']}")
        return token

    def _verify_own(self, token: str, audience: str | None) -> dict[str, Any] | None:
        import jwt

        try:
            return jwt.decode(token, self._pki.signing_key.public_key(), algorithms=["RS256"],
                              audience=audience, options={"verify_aud": audience is not None})
        except jwt.PyJWTError:
            return None

    def _jwks(self) -> dict[str, Any]:
        numbers = self._pki.signing_key.public_key().public_numbers()

        def enc(n: int) -> str:
            return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self._pki.kid, "n": enc(numbers.n), "e": enc(numbers.e)}]}

    # -- framework hooks --------------------------------------------------------------------------

    def error_response(self, status: int, title: str, detail: str | None = None,
                       headers: Mapping[str, str] | None = None) -> Response:
        body = {"error": {"code": _graph_code(status), "message": detail or title,
                          "innerError": {"date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                                         "request-id": str(uuid.uuid4())}}}
        return Response.json(status, body, headers=headers)

    def graph_error(self, status: int, message: str, code: str | None = None) -> HttpError:
        response = self.error_response(status, message, message)
        if code:
            payload = response.payload()
            payload["error"]["code"] = code
            response = Response.json(status, payload)
        return HttpError(response)

    def identify(self, req: Request) -> str | None:
        header = req.headers.get("Authorization") or ""
        if not req.path.startswith(GRAPH + "/") or not header.startswith("Bearer "):
            return None
        claims = self._verify_own(header[7:], GRAPH_AUDIENCE)
        if claims is None:
            return None
        req.state["roles"] = set(claims.get("roles") or ())
        return str(claims.get("appid"))

    def before(self, req: Request) -> Response | None:
        if req.path.startswith(GRAPH + "/") and req.principal is None:
            return self.graph_error(401, "Access token is empty or invalid.").response
        return None

    def _require(self, req: Request, roles: Sequence[str]) -> None:
        if not req.state.get("roles", set()) & set(roles):
            raise self.graph_error(403, f"Insufficient privileges to complete the operation. (needs {roles[0]})")

    def _read(self, table: Mapping[str, dict[str, Any]], object_id: str, what: str) -> dict[str, Any]:
        obj = table.get(object_id)
        if obj is not None and self._fresh.get(object_id, 0) > 0:
            self._fresh[object_id] -= 1  # not replicated yet
            obj = None
        if obj is None:
            raise self.graph_error(404, f"Resource '{object_id}' does not exist or one of its queried reference-"
                                        f"property objects are not present. ({what})")
        return obj

    def _app(self, object_id: str) -> dict[str, Any]:
        obj = self.apps.get(object_id)
        if obj is None:
            raise self.graph_error(404, f"Resource '{object_id}' does not exist or one of its queried reference-"
                                        "property objects are not present.")
        return obj

    def _sponsors(self, body: Mapping[str, Any]) -> list[str]:
        binds = body.get("sponsors@odata.bind")
        if not isinstance(binds, list) or not binds:
            raise self.graph_error(400, "The sponsors property is required: at least one user or group.")
        if len(binds) > 100:
            raise self.graph_error(400, "At most 100 sponsors are allowed.")
        ids = []
        for bind in binds:
            tail = str(bind).rstrip("/").rsplit("/", 2)
            if len(tail) < 3 or tail[-2] not in ("users", "groups"):
                raise self.graph_error(400, f"Invalid sponsor reference {bind!r}: users or groups only.")
            ids.append(f"{tail[-2]}/{tail[-1]}")
        return ids

    def _name_and_sponsors(self, body: Mapping[str, Any]) -> tuple[str, list[str]]:
        """The displayName and sponsors of a blueprint or agent identity creation, both required."""
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise self.graph_error(400, "Property 'displayName' is required.")
        return name, self._sponsors(body)

    def _sponsor_owner(self, req: Request) -> dict[str, Any]:
        table = self.apps if req.params["kind"] == "applications" else self.principals
        obj = table.get(req.params["id"])
        if obj is None:
            raise self.graph_error(404, f"Resource '{req.params['id']}' does not exist.")
        return obj

    def _add_sponsor(self, req: Request) -> Response:
        self._require(req, SPONSORS)
        body = self._body(req)
        (sponsor,) = self._sponsors({"sponsors@odata.bind": [body.get("@odata.id")]})
        with self.lock:
            obj = self._sponsor_owner(req)
            if sponsor in obj["_sponsors"]:
                raise self.graph_error(400, "One or more added object references already exist.")
            if len(obj["_sponsors"]) >= 100:
                raise self.graph_error(400, "At most 100 sponsors are allowed.")
            obj["_sponsors"].append(sponsor)
            return Response.empty()

    def _remove_sponsor(self, req: Request) -> Response:
        self._require(req, SPONSORS)
        with self.lock:
            obj = self._sponsor_owner(req)
            kept = [s for s in obj["_sponsors"] if s.split("/", 1)[1] != req.params["sponsor"]]
            if len(kept) == len(obj["_sponsors"]):
                raise self.graph_error(404, f"Sponsor '{req.params['sponsor']}' does not exist.")
            if not kept:
                raise self.graph_error(400, "The last sponsor cannot be removed: add another one first.")
            obj["_sponsors"] = kept
            return Response.empty()

    def _list_sponsors(self, req: Request) -> Response:
        self._require(req, READ + CREATE_AGENT)
        with self.lock:
            table = self.apps if req.params["kind"] == "applications" else self.principals
            obj = self._read(table, req.params["id"], req.params["kind"])
            return Response.json(200, {"value": [
                {"@odata.type": "#microsoft.graph.user" if s.startswith("users/") else "#microsoft.graph.group",
                 "id": s.split("/", 1)[1]} for s in obj.get("_sponsors", ())]})

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(Response.json(400, {"error": {"code": "BadRequest", "message": "Empty Payload. JSON "
                                                                                           "content expected."}}))
        return body

    @staticmethod
    def _public(obj: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        out["keyCredentials"] = [{k: v for k, v in c.items() if not k.startswith("_")}
                                 for c in obj.get("keyCredentials", ())]
        return out

    # -- routes -----------------------------------------------------------------------------------

    def register_routes(self) -> None:
        r = self.route
        r("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration)
        r("GET", "/{tenant}/discovery/v2.0/keys", lambda req: Response.json(200, self._jwks()))
        r("POST", "/{tenant}/oauth2/v2.0/token", self._token)
        r("POST", f"{GRAPH}/applications/microsoft.graph.agentIdentityBlueprint", self._create_blueprint)
        r("GET", f"{GRAPH}/applications/{{id}}", self._get_app)
        r("PATCH", f"{GRAPH}/applications/{{id}}/microsoft.graph.agentIdentityBlueprint", self._patch_app)
        r("DELETE", f"{GRAPH}/applications/{{id}}", self._delete_app)
        r("DELETE", f"{GRAPH}/applications/{{id}}/microsoft.graph.agentIdentityBlueprint", self._delete_app)
        r("POST", f"{GRAPH}/applications/{{id}}/microsoft.graph.agentIdentityBlueprint/addPassword", self._add_password)
        r("POST", f"{GRAPH}/applications/{{id}}/microsoft.graph.agentIdentityBlueprint/removePassword",
          self._remove_password)
        r("GET", f"{GRAPH}/applications/{{id}}/federatedIdentityCredentials", self._list_fics)
        r("POST", f"{GRAPH}/applications/{{id}}/federatedIdentityCredentials", self._create_fic)
        r("GET", f"{GRAPH}/applications/{{id}}/federatedIdentityCredentials/{{fic}}", self._get_fic)
        r("DELETE", f"{GRAPH}/applications/{{id}}/federatedIdentityCredentials/{{fic}}", self._delete_fic)
        r("POST", f"{GRAPH}/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal", self._create_principal)
        r("POST", f"{GRAPH}/servicePrincipals/microsoft.graph.agentIdentity", self._create_agent)
        r("GET", f"{GRAPH}/servicePrincipals/{{id}}", self._get_sp)
        r("PATCH", f"{GRAPH}/servicePrincipals/{{id}}", self._patch_sp)
        r("DELETE", f"{GRAPH}/servicePrincipals/{{id}}", self._delete_sp)
        sponsors = (f"^{GRAPH}/(?P<kind>applications|servicePrincipals)/(?P<id>[^/]+)/microsoft\\.graph\\."
                    "(agentIdentityBlueprint|agentIdentity)/sponsors")
        r("GET", sponsors + "$", self._list_sponsors)
        r("POST", sponsors + "/\\$ref$", self._add_sponsor)
        r("DELETE", sponsors + "/(?P<sponsor>[^/]+)/\\$ref$", self._remove_sponsor)
        self.admin_route("GET", "/_sandbox/world", lambda req: Response.json(200, self.world()))

    def _openid_configuration(self, req: Request) -> Response:
        if req.params["tenant"] != self.tenant_id:
            return Response.json(400, {"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant "
                                       f"'{req.params['tenant']}' not found."})
        base = f"{self.url}/{self.tenant_id}"
        return Response.json(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                                   "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                   "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys",
                                   "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                                             "private_key_jwt"]})

    # applications -------------------------------------------------------------------------------

    def _create_blueprint(self, req: Request) -> Response:
        self._require(req, CREATE_BLUEPRINT)
        name, sponsors = self._name_and_sponsors(self._body(req))
        with self.lock:
            app = self._new_app(str(uuid.uuid4()), name, "#microsoft.graph.agentIdentityBlueprint", req.principal)
            app["_sponsors"] = sponsors
            self.emit("blueprint.created", id=app["id"])
            return Response.json(201, {"@odata.context": f"{self.graph_url}/$metadata#applications/"
                                       "microsoft.graph.agentIdentityBlueprint/$entity", **self._public(app)})

    def _get_app(self, req: Request) -> Response:
        self._require(req, READ)
        with self.lock:
            public = self._public(self._read(self.apps, req.params["id"], "application"))
            if "keyCredentials" not in (req.arg("$select") or ""):
                for cred in public["keyCredentials"]:  # Graph returns `key` only when it is selected
                    cred["key"] = None
            return Response.json(200, public)

    def _patch_app(self, req: Request) -> Response:
        body = self._body(req)
        if "displayName" in body:
            self._require(req, BRANDING)
        if "keyCredentials" in body:
            self._require(req, CREDENTIALS)
        with self.lock:
            app = self._app(req.params["id"])
            creds = [self._key_credential_in(c) for c in body.get("keyCredentials") or ()] \
                if "keyCredentials" in body else app["keyCredentials"]
            if len({c["keyId"] for c in creds}) != len(creds):
                raise self.graph_error(400, "keyCredentials holds the same keyId twice.")
            app["keyCredentials"] = creds
            if "keyCredentials" in body:
                self.emit("keys.updated", app=app["id"], keyIds=[c["keyId"] for c in creds])
            if "displayName" in body:
                app["displayName"] = str(body["displayName"])
            return Response.empty()

    def _key_credential_in(self, raw: object) -> dict[str, Any]:
        """One entry of a keyCredentials update: a public X.509 certificate (never a private key)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        if not isinstance(raw, dict) or raw.get("type") != "AsymmetricX509Cert" or raw.get("usage") != "Verify":
            raise self.graph_error(400, "A key credential needs type AsymmetricX509Cert and usage Verify.")
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(str(raw.get("key"))))
        except ValueError:
            raise self.graph_error(400, "Key credential 'key' must be a base64 DER X.509 certificate.") from None
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        cred = _key_credential(pem, str(raw.get("displayName") or ""))
        cred["keyId"] = str(raw.get("keyId") or cred["keyId"])
        return cred

    def _delete_app(self, req: Request) -> Response:
        with self.lock:
            app = self._app(req.params["id"])
            if req.principal not in app["_owners"]:
                self._require(req, ("AgentIdentityBlueprint.ReadWrite.All",))
            del self.apps[app["id"]]
            for key_id in [k for k, (owner, _) in self._passwords.items() if owner == app["id"]]:
                self.mark_revoked(key_id)
                del self._passwords[key_id]
            return Response.empty()

    def _add_password(self, req: Request) -> Response:
        self._require(req, CREDENTIALS)
        body = req.json() or {}
        cred_in = body.get("passwordCredential") or {} if isinstance(body, dict) else {}
        with self.lock:
            app = self._app(req.params["id"])
            start = _now()
            end = start + datetime.timedelta(days=730)
            if cred_in.get("endDateTime"):
                try:
                    end = datetime.datetime.fromisoformat(str(cred_in["endDateTime"]).replace("Z", "+00:00"))
                except ValueError:
                    raise self.graph_error(400, "Invalid value for endDateTime.") from None
                if end <= start:
                    raise self.graph_error(400, "endDateTime must be later than startDateTime.")
            text = secrets.token_urlsafe(30)[:40]
            cred = {"customKeyIdentifier": None, "displayName": cred_in.get("displayName"),
                    "endDateTime": _iso(end), "hint": text[:3], "keyId": str(uuid.uuid4()),
                    "secretText": None, "startDateTime": _iso(start)}
            app["passwordCredentials"].append(cred)
            self._passwords[cred["keyId"]] = (app["id"], text)
            self.record_minted(cred["keyId"], text, app["id"])
            self.emit("password.added", app=app["id"], keyId=cred["keyId"])
            return Response.json(200, {**cred, "secretText": text})

    def _remove_password(self, req: Request) -> Response:
        self._require(req, CREDENTIALS)
        body = self._body(req)
        with self.lock:
            app = self._app(req.params["id"])
            key_id = str(body.get("keyId"))
            before = len(app["passwordCredentials"])
            app["passwordCredentials"] = [c for c in app["passwordCredentials"] if c["keyId"] != key_id]
            if len(app["passwordCredentials"]) == before:
                raise self.graph_error(400, f"No password credential found with keyId {key_id}.")
            self._passwords.pop(key_id, None)
            self.mark_revoked(key_id)
            return Response.empty()

    # federated identity credentials -------------------------------------------------------------

    def _list_fics(self, req: Request) -> Response:
        self._require(req, READ)
        with self.lock:
            app = self._read(self.apps, req.params["id"], "application")
            return Response.json(200, {"value": list(app["_fics"].values())})

    def _create_fic(self, req: Request) -> Response:
        self._require(req, CREDENTIALS)
        body = self._body(req)
        name, issuer, subject = body.get("name"), body.get("issuer"), body.get("subject")
        audiences = body.get("audiences")
        for key, value in (("name", name), ("issuer", issuer), ("subject", subject)):
            if not isinstance(value, str) or not value:
                raise self.graph_error(400, f"Property '{key}' is required.")
        if len(name) > 120:  # type: ignore[arg-type]
            raise self.graph_error(400, "Property 'name' is too long: at most 120 characters.")
        if len(issuer) > 600 or len(subject) > 600:  # type: ignore[arg-type]
            raise self.graph_error(400, "Properties 'issuer' and 'subject' allow at most 600 characters.")
        if not isinstance(audiences, list) or len(audiences) != 1 or len(str(audiences[0])) > 600:
            raise self.graph_error(400, "Property 'audiences' must hold exactly one value.")
        with self.lock:
            app = self._app(req.params["id"])
            fics = app["_fics"]
            if len(fics) >= MAX_FICS:
                raise self.graph_error(400, f"An application can have at most {MAX_FICS} federated identity "
                                            "credentials.")
            if any(f["name"] == name for f in fics.values()):
                raise self.graph_error(409, f"FederatedIdentityCredential with name {name} already exists.")
            if any(f["issuer"] == issuer and f["subject"] == subject for f in fics.values()):
                raise self.graph_error(400, "FederatedIdentityCredential with the same issuer and subject already "
                                            "exists.")
            fic = {"id": str(uuid.uuid4()), "name": name, "issuer": issuer, "subject": subject,
                   "audiences": audiences, "description": body.get("description")}
            fics[fic["id"]] = fic
            self._fresh[fic["id"]] = self.consistency_reads
            return Response.json(201, fic)

    def _fic(self, req: Request, reading: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        app = self._read(self.apps, req.params["id"], "application") if reading else self._app(req.params["id"])
        wanted = req.params["fic"]
        fic = next((f for f in app["_fics"].values() if wanted in (f["id"], f["name"])), None)
        if fic is not None and reading and self._fresh.get(fic["id"], 0) > 0:
            self._fresh[fic["id"]] -= 1
            fic = None
        if fic is None:
            raise self.graph_error(404, f"Resource '{wanted}' does not exist.")
        return app, fic

    def _get_fic(self, req: Request) -> Response:
        self._require(req, READ)
        with self.lock:
            return Response.json(200, self._fic(req, reading=True)[1])

    def _delete_fic(self, req: Request) -> Response:
        self._require(req, CREDENTIALS)
        with self.lock:
            app, fic = self._fic(req, reading=False)
            del app["_fics"][fic["id"]]
            return Response.empty()

    # service principals -------------------------------------------------------------------------

    def _create_principal(self, req: Request) -> Response:
        self._require(req, CREATE_PRINCIPAL)
        body = self._body(req)
        with self.lock:
            app = self.app_by_app_id(str(body.get("appId")))
            if app is None or app["@odata.type"] != "#microsoft.graph.agentIdentityBlueprint":
                raise self.graph_error(400, f"No agent identity blueprint with appId {body.get('appId')}.")
            if any(p["appId"] == app["appId"] for p in self.principals.values()):
                raise self.graph_error(409, "A service principal for this appId already exists.")
            sp = {"@odata.type": "#microsoft.graph.agentIdentityBlueprintPrincipal", "id": str(uuid.uuid4()),
                  "appId": app["appId"], "displayName": app["displayName"], "accountEnabled": True,
                  "servicePrincipalType": "Application", "servicePrincipalNames": [app["appId"]],
                  "createdByAppId": req.principal, "tags": []}
            self.principals[sp["id"]] = sp
            self._fresh[sp["id"]] = self.consistency_reads
            return Response.json(201, sp)

    def _create_agent(self, req: Request) -> Response:
        self._require(req, CREATE_AGENT)
        body = self._body(req)
        name, sponsors = self._name_and_sponsors(body)
        with self.lock:
            blueprint = self.app_by_app_id(str(body.get("agentIdentityBlueprintId")))
            if blueprint is None or blueprint["@odata.type"] != "#microsoft.graph.agentIdentityBlueprint":
                raise self.graph_error(400, f"No agent identity blueprint {body.get('agentIdentityBlueprintId')}.")
            if not any(p["appId"] == blueprint["appId"] for p in self.principals.values()):
                raise self.graph_error(400, "The agent identity blueprint has no blueprint principal in this tenant.")
            object_id = str(uuid.uuid4())
            sp = {"@odata.type": "#microsoft.graph.agentIdentity", "id": object_id, "appId": object_id,
                  "displayName": name, "servicePrincipalType": "ServiceIdentity", "createdByAppId": req.principal,
                  "agentIdentityBlueprintId": blueprint["appId"], "accountEnabled": True, "tags": [],
                  "_sponsors": sponsors}
            self.principals[object_id] = sp
            self._fresh[object_id] = self.consistency_reads
            return Response.json(201, self._public(sp) | {"keyCredentials": []})

    def _get_sp(self, req: Request) -> Response:
        self._require(req, READ + CREATE_AGENT + CREATE_PRINCIPAL)
        with self.lock:
            sp = self._read(self.principals, req.params["id"], "servicePrincipal")
            return Response.json(200, {k: v for k, v in sp.items() if not k.startswith("_")})

    def _patch_sp(self, req: Request) -> Response:
        self._require(req, CREATE_AGENT + CREATE_PRINCIPAL)
        body = self._body(req)
        with self.lock:
            sp = self.principals.get(req.params["id"])
            if sp is None:
                raise self.graph_error(404, f"Resource '{req.params['id']}' does not exist.")
            if "displayName" in body:
                sp["displayName"] = str(body["displayName"])
            return Response.empty()

    def _delete_sp(self, req: Request) -> Response:
        self._require(req, CREATE_AGENT + CREATE_PRINCIPAL)
        with self.lock:
            if self.principals.pop(req.params["id"], None) is None:
                raise self.graph_error(404, f"Resource '{req.params['id']}' does not exist.")
            return Response.empty()

    # the token endpoint -------------------------------------------------------------------------

    @staticmethod
    def _oauth_error(status: int, error: str, code: int, message: str) -> HttpError:
        return HttpError(Response.json(status, {"error": error, "error_description": f"AADSTS{code}: {message}",
                                                "error_codes": [code]}))

    def _token(self, req: Request) -> Response:
        if req.params["tenant"] != self.tenant_id:
            raise self._oauth_error(400, "invalid_request", 90002, f"Tenant '{req.params['tenant']}' not found.")
        form = {k: v[0] for k, v in parse_qs(req.body.decode(errors="replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise self._oauth_error(400, "unsupported_grant_type", 70003, "The grant type is not supported.")
        client_id, scope = form.get("client_id", ""), form.get("scope", "")
        with self.lock:
            app = self.app_by_app_id(client_id)
            agent = self.principals.get(client_id)
            if app is None and (agent is None or agent["@odata.type"] != "#microsoft.graph.agentIdentity"):
                raise self._oauth_error(400, "unauthorized_client", 700016,
                                        f"Application with identifier '{client_id}' was not found in the directory.")
            via = self._authenticate(form, client_id, app, agent)
            if scope == f"{EXCHANGE_AUDIENCE}/.default":
                return self._exchange_token(form, app, via)
            if scope != f"{GRAPH_AUDIENCE}/.default":
                raise self._oauth_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is "
                                        "not valid. Client credential flows must have a scope value with /.default.")
            roles = sorted(self.roles) if client_id == self.admin_client_id else []
            claims = {"aud": GRAPH_AUDIENCE, "iss": f"https://sts.windows.net/{self.tenant_id}/", "appid": client_id,
                      "azp": client_id, "sub": client_id, "roles": roles, "idtyp": "app", "tokendrop_auth": via}
            if agent is not None:
                claims["xms_par_app_azp"] = agent["agentIdentityBlueprintId"]  # the impersonating blueprint
            token = self._sign(claims, 3600)
            return Response.json(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                       "access_token": token})

    def _exchange_token(self, form: Mapping[str, str], app: dict[str, Any] | None, via: str) -> Response:
        fmi_path = form.get("fmi_path")
        if app is None or app["@odata.type"] != "#microsoft.graph.agentIdentityBlueprint" or not fmi_path:
            raise self._oauth_error(400, "invalid_request", 82001, "Only an agent identity blueprint may request "
                                    "a token exchange token, with fmi_path naming one of its agent identities.")
        agent = self.principals.get(fmi_path)
        if agent is None or agent.get("agentIdentityBlueprintId") != app["appId"]:
            raise self._oauth_error(400, "invalid_request", 82001, f"fmi_path '{fmi_path}' is not an agent identity "
                                    "of this blueprint.")
        token = self._sign({"aud": EXCHANGE_AUDIENCE, "iss": f"{self.url}/{self.tenant_id}/v2.0",
                            "sub": fmi_path, "azp": app["appId"], "fmi_path": fmi_path, "tokendrop_auth": via}, 3600)
        return Response.json(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                   "access_token": token})

    def _authenticate(self, form: Mapping[str, str], client_id: str, app: dict[str, Any] | None,
                      agent: dict[str, Any] | None) -> str:
        """How the client proved itself: "secret", "certificate", "federated" or "fmi"; else an error."""
        if "client_secret" in form:
            secret = form["client_secret"]
            if app is None:
                raise self._oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
            if client_id == self.admin_client_id and secrets.compare_digest(secret, self.admin_secret):
                return "secret"
            now = _now()
            for cred in app["passwordCredentials"]:
                held = self._passwords.get(cred["keyId"])
                end = datetime.datetime.fromisoformat(cred["endDateTime"].replace("Z", "+00:00"))
                if held is not None and end > now and secrets.compare_digest(secret, held[1]):
                    return "secret"
            raise self._oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the "
                                    "secret being sent in the request is the client secret value, not the client "
                                    "secret ID, for a secret added to app '" + client_id + "'.")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise self._oauth_error(401, "invalid_client", 7000218, "The request body must contain the following "
                                    "parameter: 'client_assertion' or 'client_secret'.")
        return self._check_assertion(form["client_assertion"], client_id, app, agent)

    def _check_assertion(self, assertion: str, client_id: str, app: dict[str, Any] | None,
                         agent: dict[str, Any] | None) -> str:
        import jwt

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise self._oauth_error(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        thumbprint = header.get("x5t#S256") or header.get("x5t")
        if thumbprint:
            if app is None:
                raise self._oauth_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
            field = "_sha256" if header.get("x5t#S256") else "_sha1"
            cred = next((c for c in app["keyCredentials"] if c[field] == thumbprint.rstrip("=")), None)
            if cred is None:
                raise self._oauth_error(401, "invalid_client", 700027, "Client assertion failed signature validation: "
                                        "the certificate with this thumbprint is not registered for the app.")
            from cryptography import x509

            public_key = x509.load_der_x509_certificate(base64.b64decode(cred["key"])).public_key()
            try:
                claims = jwt.decode(assertion, public_key, algorithms=["PS256", "RS256", "ES256"],  # type: ignore[arg-type]
                                    audience=self.token_endpoint, options={"require": ["exp", "aud", "iss", "sub"]})
            except jwt.PyJWTError as exc:
                why = f"Client assertion failed signature validation ({type(exc).__name__})."
                raise self._oauth_error(401, "invalid_client", 700027, why) from None
            if claims.get("iss") != client_id or claims.get("sub") != client_id:
                raise self._oauth_error(401, "invalid_client", 700023, "The client assertion's iss and sub must be "
                                        "the client id.")
            return "certificate"
        claims = self._verify_own(assertion, None)
        if claims is None:
            raise self._oauth_error(401, "invalid_client", 700024, "Client assertion is not within its valid time "
                                    "range or its signature is invalid.")
        if agent is not None:  # step 2 of the agent flow: T1 from this agent's blueprint
            if claims.get("aud") != EXCHANGE_AUDIENCE or claims.get("fmi_path") != client_id \
                    or claims.get("azp") != agent["agentIdentityBlueprintId"]:
                raise self._oauth_error(401, "invalid_client", 700211, "The assertion is not a token exchange token "
                                        "of this agent identity's blueprint.")
            return "fmi"
        assert app is not None
        audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        for fic in app["_fics"].values():
            if fic["issuer"] == claims.get("iss") and fic["subject"] == claims.get("sub") \
                    and set(audiences) & set(fic["audiences"]):
                return "federated"
        raise self._oauth_error(401, "invalid_client", 700213, f"No matching federated identity record found for "
                                f"presented assertion subject '{claims.get('sub')}'.")


def main(argv: Sequence[str] | None = None) -> int:
    def factory(args: argparse.Namespace) -> Emulator:
        emulator = EntraEmulator(args.port)
        emulator.consistency_reads = args.consistency_reads
        return emulator

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--consistency-reads", type=int, default=0,
                            help="a new object answers 404 to its first N reads (eventual consistency)")

    return run_cli(factory, argv, "Local emulator of Microsoft Graph agent identities and the Entra token endpoint",
                   configure)


if __name__ == "__main__":
    sys.exit(main())

