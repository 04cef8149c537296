"""The shared Vault transport (tokendrop_provider/vault.py), through the provider's gRPC service where it
concerns the provider: a redirect to another origin is refused before the token goes there, a redirect
to the same origin is followed, and a plain-http Vault address off loopback fails the plan naming the
setting. Real OpenBao behind small http.server proxies on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fixtures.service import configured_service, dynamic, full
from tokendrop_provider import schema
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import VaultSettings
from tokendrop_provider.sinks.base import Ownership
from tokendrop_provider.sinks.vault_kv import VaultKvSink
from tokendrop_provider.vault import clear_connections

TOKEN = schema.TFE_AGENT_TOKEN
CANARY_VALUE = "tok-5c0ffee5-redirect-canary"


@dataclass
class Recorder:
    """What a server saw: (method, path, X-Vault-Token header or None, body)."""

    seen: list[tuple[str, str, str | None, bytes]] = field(default_factory=list)


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _handler(answer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, out = answer(self.command, self.path, self.headers.get("X-Vault-Token"), body,
                                          dict(self.headers))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _any

    return Handler


@pytest.fixture
def elsewhere() -> Iterator[tuple[Recorder, str]]:
    """A server on another port that records everything sent to it."""
    record = Recorder()

    def answer(method, path, token, body, headers):
        record.seen.append((method, path, token, body))
        return 200, {"Content-Type": "application/json"}, b'{"data": {}}'

    server, url = _serve(_handler(answer))
    yield record, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def redirector(elsewhere) -> Iterator[str]:
    """Answers every request with a 307 to the same path on the `elsewhere` server."""
    _, target = elsewhere

    def answer(method, path, token, body, headers):
        return 307, {"Location": target + path}, b""

    server, url = _serve(_handler(answer))
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def same_origin_proxy(openbao_server) -> Iterator[tuple[Recorder, str]]:
    """Redirects /v1/... to /moved/v1/... on itself (307), and forwards /moved/v1/... to OpenBao."""
    record = Recorder()

    def answer(method, path, token, body, headers):
        record.seen.append((method, path, token, body))
        if not path.startswith("/moved/"):
            return 307, {"Location": "/moved" + path}, b""
        forward = {k: v for k, v in headers.items() if k.lower().startswith("x-vault") or k == "Content-Type"}
        request = urllib.request.Request(openbao_server.url + path.removeprefix("/moved"), data=body or None,
                                         headers=forward, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, {"Content-Type": "application/json"}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {"Content-Type": "application/json"}, error.read()

    server, url = _serve(_handler(answer))
    yield record, url
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fresh_connections() -> Iterator[None]:
    clear_connections()
    yield
    clear_connections()


def _plan_vault_delivery(fresh_tfe_emulator, **provider: str) -> pb.PlanResourceChange.Response:
    svc = configured_service(tfe_address=fresh_tfe_emulator.url, tfe_token=fresh_tfe_emulator.sandbox_token,
                             **provider)
    pool = fresh_tfe_emulator.create_agent_pool("acme", "vault-transport")
    config = full(TOKEN, agent_pool_id=pool, deliver_to={
        "ssm": None, "vault_kv": {"mount": "secret", "path": "ci/redirected", "field": "token"}})
    return svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=TOKEN.type_name, prior_state=dynamic(None, TOKEN), proposed_new_state=dynamic(config, TOKEN),
        config=dynamic(config, TOKEN)), None)


def test_a_redirect_to_another_origin_is_refused_and_the_token_never_leaves(fresh_tfe_emulator, redirector,
                                                                            elsewhere):
    record, target = elsewhere
    response = _plan_vault_delivery(fresh_tfe_emulator, vault_address=redirector,
                                    vault_token="hvs.canary-vault-token-0451")
    [diag] = response.diagnostics
    assert diag.severity == pb.Diagnostic.Severity.ERROR
    assert "redirected to another address" in diag.summary
    assert target.removeprefix("http://") in diag.detail and "did not follow it" in diag.detail
    assert record.seen == [], "nothing, and in particular no X-Vault-Token, reaches the other origin"


def test_a_redirect_to_another_origin_is_refused_on_a_write(redirector, elsewhere):
    record, _ = elsewhere
    sink = VaultKvSink("secret", "ci/redirected", settings=VaultSettings(address=redirector,
                                                                         token=Secret("hvs.canary-2")))
    with pytest.raises(Exception, match="redirected to another address"):
        sink.create(Secret(CANARY_VALUE), Ownership(token_id="at-1", issuer="tfe", owner="0" * 12))
    assert record.seen == []


def test_a_same_origin_redirect_is_followed_with_method_token_and_body(same_origin_proxy, openbao_server,
                                                                       vault_kv_mount):
    record, url = same_origin_proxy
    sink = VaultKvSink(vault_kv_mount, "ci/moved", settings=VaultSettings(
        address=url, token=Secret(openbao_server.root_token)))
    assert sink.create(Secret(CANARY_VALUE), Ownership(token_id="at-1", issuer="tfe", owner="0" * 12)) == 1
    written = openbao_server.api("GET", f"{vault_kv_mount}/data/ci/moved")
    assert written["data"]["data"]["token"] == CANARY_VALUE
    redirected_posts = [p for m, p, _, b in record.seen if m == "POST" and p.startswith("/moved/") and b]
    assert f"/moved/v1/{vault_kv_mount}/data/ci/moved" in redirected_posts


@pytest.mark.parametrize("address", ["http://vault.invalid:8200", "http://10.0.0.7:8200"])
def test_plain_http_vault_address_off_loopback_fails_the_plan_naming_it(fresh_tfe_emulator, address):
    response = _plan_vault_delivery(fresh_tfe_emulator, vault_address=address, vault_token="hvs.canary-0452")
    [diag] = response.diagnostics
    assert diag.summary == "Insecure Vault address"
    assert "unencrypted" in diag.detail and "vault_address (or VAULT_ADDR)" in diag.detail
    assert [s.attribute_name for s in diag.attribute.steps] == ["vault_address"]


def test_plain_http_vault_address_fails_the_approle_plan_too(openbao_server):
    resource = schema.VAULT_APPROLE_SECRET_ID
    svc = configured_service(vault_address="http://vault.example.com:8200", vault_token="hvs.canary-0453")
    config = full(resource, role_name="ci", mount="approle", deliver_to={
        "ssm": {"name": "/ci/secret-id", "kms_key_id": None, "tier": None, "description": None, "tags": None},
        "vault_kv": None})
    response = svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=resource.type_name, prior_state=dynamic(None, resource),
        proposed_new_state=dynamic(config, resource), config=dynamic(config, resource)), None)
    assert [d.summary for d in response.diagnostics] == ["Insecure Vault address"]
    assert [s.attribute_name for s in response.diagnostics[0].attribute.steps] == ["vault_address"]


def test_an_approle_login_token_is_known_to_the_scrubber(openbao_server):
    """The Vault token an AppRole login returns is a credential like any other: it is held as a Secret,
    so the scrubber replaces it in any log line or diagnostic."""
    from tokendrop_provider.sandbox.servers import enable_approle
    from tokendrop_provider.secret import scrub
    from tokendrop_provider.vault import vault_connection

    role_id, secret_id = enable_approle(openbao_server, role="scrubbed-login", policies=["default"])
    connection = vault_connection(VaultSettings(address=openbao_server.url, approle_role_id=role_id,
                                                approle_secret_id=Secret(secret_id)))
    reply = connection.request("GET", "auth/token/lookup-self")
    assert reply.ok
    client_token = reply.data["id"]
    assert scrub(f"token {client_token} leaked") == "token *** leaked"
