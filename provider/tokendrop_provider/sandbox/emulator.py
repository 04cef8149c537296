"""Base of the local HTTP API emulators (TFE, Buildkite and Token Vault).

An emulator is a `ThreadingHTTPServer` on 127.0.0.1 with a small router, plus what tests need
around the emulated API:

- a thread-safe request log (method, path, query, status, principal, time);
- fault hooks: fail the next N matching calls (before or after the real handler ran, or by
  dropping the connection), add latency to every call, send a signal to a pid on a named event;
- a registry of every token value ever minted, for canary scans of logs and state;
- an admin API under `/_sandbox/` (not part of the emulated API, never logged, never faulted).

Use it in-process (`start()` / `stop()` / `url`) or as a long-running server (`run_cli`).
Sandbox only: nothing here is for production use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("tokendrop.sandbox")

HOST = "127.0.0.1"  # never anything else: the sandbox must not be reachable from the network
ADMIN_PREFIX = "/_sandbox/"


# -- requests and responses ------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str  # as sent (still percent-encoded), no query; route groups are decoded
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client: str
    host: str  # Host header, for absolute links
    params: dict[str, str] = field(default_factory=dict)  # named groups of the matched route
    principal: str | None = None  # who the emulator authenticated, if anyone
    state: dict[str, Any] = field(default_factory=dict)  # per-request scratch for hooks

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON, or an `HttpError` 400 if it is not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise HttpError(Response.json(400, {"error": "request body is not valid JSON"})) from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(),
                   {"Content-Type": content_type, **(headers or {})})

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))

    def payload(self) -> Any:
        return json.loads(self.body) if self.body else None


class HttpError(Exception):
    """Raised by a handler to answer with `response` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Disconnect:
    """Marker answer: close the connection without a response."""


DISCONNECT = _Disconnect()

Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def compile_path(pattern: str) -> re.Pattern[str]:
    """"/agent-pools/{pool_id}" -> a full-match regex with named groups; a pattern starting with
    "^" is taken as a regex as is."""
    if pattern.startswith("^"):
        return re.compile(pattern)
    parts = re.split(r"\{(\w+)\}", pattern)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


# -- fault injection -------------------------------------------------------------------------------

@dataclass
class Fault:
    """Answer the next `count` calls matching method + path regex with `status`/`body`/`headers`.

    when="before": the real handler does not run (the call never happened).
    when="after": the real handler runs, then its answer is replaced (it happened, the client
    cannot know). action="disconnect" closes the connection instead of answering."""

    id: int
    method: str | None
    path: re.Pattern[str]
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 1
    when: str = "before"
    action: str = "respond"
    hits: int = 0

    def matches(self, req: Request, when: str) -> bool:
        return (self.count > 0 and self.when == when and self.path.search(req.path) is not None
                and (self.method is None or self.method == req.method))

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "path": self.path.pattern, "status": self.status,
                "count": self.count, "when": self.when, "action": self.action, "hits": self.hits}


@dataclass
class SignalHook:
    event: str
    pid: int
    signum: int
    count: int = 1
    # In-process tests may run a function instead (e.g. find and kill the provider process, or write
    # to a sink behind the provider's back); it receives the event's data.
    callback: Callable[[dict[str, Any]], None] | None = None


@dataclass
class MintedRecord:
    id: str
    value: str
    scope: str
    created_at: float
    revoked: bool = False

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "value": self.value, "scope": self.scope, "revoked": self.revoked,
                "created_at": self.created_at}


# -- the emulator ---------------------------------------------------------------------------------

class Emulator:
    """Subclasses set `name`, register routes in `register_routes()` and may override the hooks
    `identify`, `before`, `after`, `error_response`, `reset_state` and `ready_info`."""

    name = "emulator"
    content_type = "application/json"

    def __init__(self, port: int = 0) -> None:
        self.lock = threading.RLock()  # guards all state, the subclass's included
        self._port = port
        self._routes: list[Route] = []
        self._admin_routes: list[Route] = []
        self._log: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._fault_ids = 0
        self._latency = 0.0
        self._minted: dict[str, MintedRecord] = {}
        self._signals: list[SignalHook] = []
        self._events: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._register_admin_routes()
        self.register_routes()

    # -- hooks for subclasses ---------------------------------------------------------------------

    def register_routes(self) -> None:
        """Add the emulated API's routes with `self.route(...)`."""

    def identify(self, req: Request) -> str | None:
        """The principal the request authenticates as (no side effects); None if anonymous."""
        return None

    def before(self, req: Request) -> Response | None:
        """Runs before routing (auth, rate limits); a Response short-circuits the call."""
        return None

    def after(self, req: Request, resp: Response) -> None:
        """Runs on every emulated-API answer (e.g. to add rate-limit headers)."""

    def error_response(self, status: int, title: str, detail: str | None = None,
                       headers: Mapping[str, str] | None = None) -> Response:
        """An error in the emulated API's own format."""
        body: dict[str, Any] = {"message": title}
        if detail:
            body["detail"] = detail
        return Response.json(status, body, self.content_type, headers)

    def reset_state(self) -> None:
        """Drop the emulated objects (called by `reset()` under the lock)."""

    def ready_info(self) -> dict[str, Any]:
        """Extra facts for the CLI's ready file (e.g. the environment to point a client here)."""
        return {}

    # -- routing ----------------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append(Route(method.upper(), compile_path(pattern), handler))

    def admin_route(self, method: str, pattern: str, handler: Handler) -> None:
        if not pattern.startswith(ADMIN_PREFIX):
            raise ValueError(f"admin routes live under {ADMIN_PREFIX}")
        self._admin_routes.append(Route(method.upper(), compile_path(pattern), handler))

    def error(self, status: int, title: str, detail: str | None = None) -> HttpError:
        return HttpError(self.error_response(status, title, detail))

    def _dispatch(self, routes: Sequence[Route], req: Request, admin: bool) -> Response:
        allowed = []
        for r in routes:
            m = r.pattern.match(req.path)
            if not m:
                continue
            if r.method != req.method:
                allowed.append(r.method)
                continue
            req.params = {k: unquote(v) for k, v in m.groupdict().items()}
            try:
                return r.handler(req)
            except HttpError as exc:
                return exc.response
        if allowed:
            headers = {"Allow": ", ".join(sorted(set(allowed)))}
            if admin:
                return Response.json(405, {"error": "method not allowed"}, headers=headers)
            return self.error_response(405, "method not allowed", headers=headers)
        if admin:
            return Response.json(404, {"error": f"no sandbox endpoint {req.method} {req.path}"})
        return self.error_response(404, "not found")

    def handle(self, req: Request) -> Response | _Disconnect:
        """Answer one request (called by the server threads; usable directly in tests)."""
        if req.path.startswith(ADMIN_PREFIX) or req.path == ADMIN_PREFIX.rstrip("/"):
            try:
                return self._dispatch(self._admin_routes, req, admin=True)
            except Exception:
                log.exception("sandbox admin handler failed")
                return Response.json(500, {"error": "internal error"})
        started = time.time()
        with self.lock:
            latency = self._latency
        if latency > 0:
            time.sleep(latency)
        result: Response | _Disconnect
        try:
            req.principal = self.identify(req)
            fault = self._take_fault(req, "before")
            if fault is not None:
                result = self._fault_answer(fault)
            else:
                result = self.before(req) or self._dispatch(self._routes, req, admin=False)
                fault = self._take_fault(req, "after")
                if fault is not None:
                    result = self._fault_answer(fault)
        except Exception:
            log.exception("%s emulator handler failed: %s %s", self.name, req.method, req.path)
            result = self.error_response(500, "internal error")
        if isinstance(result, Response):
            self.after(req, result)
        self._record(req, result, started)
        return result

    # -- request log ------------------------------------------------------------------------------

    def _record(self, req: Request, result: Response | _Disconnect, started: float) -> None:
        entry = {
            "method": req.method,
            "path": req.path,
            "query": {k: v[0] if len(v) == 1 else list(v) for k, v in req.query.items()},
            "status": result.status if isinstance(result, Response) else None,  # None: dropped
            "principal": req.principal,
            "time": started,
        }
        with self.lock:
            self._log.append(entry)

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Logged calls to the emulated API, oldest first; `path` is a regex searched in the path."""
        with self.lock:
            entries = [dict(e) for e in self._log]
        if method:
            entries = [e for e in entries if e["method"] == method.upper()]
        if path:
            rx = re.compile(path)
            entries = [e for e in entries if rx.search(e["path"])]
        return entries

    def clear_requests(self) -> None:
        with self.lock:
            self._log.clear()

    # -- faults, latency, signals -----------------------------------------------------------------

    def add_fault(self, path: str = ".*", *, method: str | None = None, status: int = 500,
                  body: Any = None, headers: Mapping[str, str] | None = None, count: int = 1,
                  when: str = "before", action: str = "respond") -> int:
        """Fail the next `count` calls whose path matches the regex `path` (and `method`). See
        `Fault`. `body` None = the API's own error format for `status`. Returns the fault id."""
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        if action not in ("respond", "disconnect"):
            raise ValueError("action must be 'respond' or 'disconnect'")
        if count < 1:
            raise ValueError("count must be at least 1")
        if action == "respond" and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        with self.lock:
            self._fault_ids += 1
            self._faults.append(Fault(self._fault_ids, method.upper() if method else None, re.compile(path),
                                      status, body, dict(headers or {}), count, when, action))
            return self._fault_ids

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.describe() for f in self._faults]

    def _take_fault(self, req: Request, when: str) -> Fault | None:
        with self.lock:
            for f in self._faults:
                if f.matches(req, when):
                    f.count -= 1
                    f.hits += 1
                    return f
        return None

    def _fault_answer(self, fault: Fault) -> Response | _Disconnect:
        if fault.action == "disconnect":
            return DISCONNECT
        if fault.body is None:
            resp = self.error_response(fault.status, _phrase(fault.status), "injected by the sandbox")
        elif isinstance(fault.body, (bytes, str)):
            raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
            resp = Response(fault.status, raw, {"Content-Type": "text/plain"})
        else:
            resp = Response.json(fault.status, fault.body, self.content_type)
        resp.headers.update(fault.headers)
        return resp

    def set_latency(self, seconds: float) -> None:
        """Delay every emulated-API call by `seconds` (benchmarks)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self.lock:
            self._latency = float(seconds)

    def on_event(self, event: str, pid: int, signum: int = signal.SIGKILL, count: int = 1) -> None:
        """When `event` next happens (`count` times), send `signum` to `pid` (crash tests). The
        signal goes out after the state change and before the response is written."""
        with self.lock:
            self._signals.append(SignalHook(event, pid, int(signum), count))

    def on_event_call(self, event: str, callback: Callable[[dict[str, Any]], None], count: int = 1) -> None:
        """When `event` next happens (`count` times), call `callback(event data)` in the request
        thread, after the state change and before the response is written (in-process tests)."""
        with self.lock:
            self._signals.append(SignalHook(event, 0, 0, count, callback))

    def clear_signals(self) -> None:
        with self.lock:
            self._signals.clear()

    def emit(self, event: str, **data: Any) -> None:
        """Record a named event (e.g. "token.created") and fire the signal hooks waiting for it."""
        fire: list[SignalHook] = []
        with self.lock:
            self._events.append({"event": event, "time": time.time(), **data})
            for hook in self._signals:
                if hook.event == event and hook.count > 0:
                    hook.count -= 1
                    fire.append(hook)
        for hook in fire:
            if hook.callback is not None:
                hook.callback({"event": event, **data})
                continue
            try:
                os.kill(hook.pid, hook.signum)
            except OSError as exc:
                log.warning("sandbox could not signal pid %s: %s", hook.pid, exc)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._events]

    # -- minted values ----------------------------------------------------------------------------

    def record_minted(self, token_id: str, value: str, scope: str) -> None:
        with self.lock:
            self._minted[token_id] = MintedRecord(token_id, value, scope, time.time())

    def mark_revoked(self, token_id: str) -> None:
        with self.lock:
            record = self._minted.get(token_id)
            if record is not None:
                record.revoked = True

    def minted(self) -> list[dict[str, Any]]:
        """Every token value this emulator ever minted (across resets), with id and revoked flag."""
        with self.lock:
            return [r.describe() for r in self._minted.values()]

    def minted_values(self) -> list[str]:
        with self.lock:
            return [r.value for r in self._minted.values()]

    # -- reset ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state: objects, log, faults, latency, signals and events. Minted
        values are kept (as revoked, their objects are gone) so canary scans still see them."""
        with self.lock:
            self._log.clear()
            self._faults.clear()
            self._latency = 0.0
            self._signals.clear()
            self._events.clear()
            for record in self._minted.values():
                record.revoked = True
            self.reset_state()

    # -- admin API --------------------------------------------------------------------------------

    def _register_admin_routes(self) -> None:
        a = self.admin_route
        a("GET", "/_sandbox/health", lambda req: Response.json(200, {"ok": True, "name": self.name}))
        a("GET", "/_sandbox/requests", lambda req: Response.json(
            200, {"requests": self.requests(req.arg("method"), req.arg("path"))}))
        a("DELETE", "/_sandbox/requests", _then_204(self.clear_requests))
        a("POST", "/_sandbox/reset", _then_204(self.reset))
        a("GET", "/_sandbox/faults", lambda req: Response.json(200, {"faults": self.faults()}))
        a("POST", "/_sandbox/faults", self._admin_add_fault)
        a("DELETE", "/_sandbox/faults", _then_204(self.clear_faults))
        a("POST", "/_sandbox/latency", self._admin_latency)
        a("GET", "/_sandbox/minted", lambda req: Response.json(200, {"minted": self.minted()}))
        a("GET", "/_sandbox/events", lambda req: Response.json(200, {"events": self.events()}))
        a("POST", "/_sandbox/signals", self._admin_signal)
        a("DELETE", "/_sandbox/signals", _then_204(self.clear_signals))

    @staticmethod
    def admin_body(req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except HttpError:
            raise HttpError(bad_request("body is not valid JSON")) from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise HttpError(bad_request("body must be a JSON object"))
        return body

    def _admin_add_fault(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            fault_id = self.add_fault(
                str(body.get("path", ".*")), method=body.get("method"), status=int(body.get("status", 500)),
                body=body.get("body"), headers=body.get("headers"), count=int(body.get("count", 1)),
                when=str(body.get("when", "before")), action=str(body.get("action", "respond")))
        except (ValueError, TypeError, re.error) as exc:
            return bad_request(str(exc))
        return Response.json(201, {"id": fault_id})

    def _admin_latency(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            self.set_latency(float(body.get("seconds", 0)))
        except (ValueError, TypeError) as exc:
            return bad_request(str(exc))
        return Response.empty()

    def _admin_signal(self, req: Request) -> Response:
        body = self.admin_body(req)
        try:
            sig = body.get("signal", "SIGKILL")
            signum = int(sig) if isinstance(sig, int) else int(signal.Signals[str(sig).upper()])
            self.on_event(str(body["event"]), int(body["pid"]), signum, int(body.get("count", 1)))
        except (KeyError, ValueError, TypeError) as exc:
            return bad_request(f"need event, pid and a valid signal: {exc}")
        return Response.json(201, {"event": body["event"], "pid": int(body["pid"]), "signal": signum})

    # -- server lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} emulator is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Bind 127.0.0.1:<port> (0 = any free port) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError(f"{self.name} emulator already started")
        self._server = _Server((HOST, self._port), _RequestHandler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        log.info("%s emulator listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()  # keep-alive clients must not reach a stopped emulator
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(self, ready_file: str | None = None) -> None:
        """Serve until SIGTERM or SIGINT (the CLI sandbox). Writes `ready_file` (JSON: url, port,
        pid and `ready_info()`) once the port is bound, and removes it on exit."""
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.start()
        try:
            if ready_file:
                write_ready_file(ready_file, {"name": self.name, "url": self.url, "port": self.port,
                                              "pid": os.getpid(), **self.ready_info()})
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if ready_file:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(ready_file)


def _then_204(action: Callable[[], None]) -> Handler:
    def handler(req: Request) -> Response:
        action()
        return Response.empty()

    return handler


def bad_request(message: str) -> Response:
    return Response.json(400, {"error": message})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def write_ready_file(path: str, info: Mapping[str, Any]) -> None:
    """Write atomically with mode 0600 (it may carry the sandbox's API token)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def run_cli(factory: Callable[[argparse.Namespace], Emulator], argv: Sequence[str] | None = None,
            description: str = "", configure: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """`python -m tokendrop_provider.sandbox.<api> --port N --ready-file PATH [...]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--ready-file", help="write url/port/pid (JSON) here once listening")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--log-level", default="WARNING")
    if configure is not None:
        configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    emulator = factory(args)
    if args.latency:
        emulator.set_latency(args.latency)
    emulator.serve(args.ready_file)
    return 0


# -- HTTP plumbing ----------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 emulator: Emulator) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts, dropped-connection faults) are normal here.
        log.debug("%s emulator: connection from %s ended abruptly", self.emulator.name, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs; every answer has Content-Length
    server_version = "tokendrop-sandbox"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection does not hold a thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._write(Response.json(411, {"error": "chunked request bodies are not supported"}))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._write(Response.json(400, {"error": "bad Content-Length"}))
            return
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        req = Request(
            method=self.command.upper(),
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,  # type: ignore[arg-type]  # email.message.Message: case-insensitive
            body=body,
            client=self.client_address[0],
            host=self.headers.get("Host") or f"{HOST}:{self.server.server_address[1]}",
        )
        result = self.server.emulator.handle(req)
        if isinstance(result, _Disconnect):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(result, head=req.method == "HEAD")

    def _write(self, resp: Response, head: bool = False) -> None:
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        if resp.status >= 200 and resp.status not in (204, 304):  # those never carry a length
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if resp.body and not head and resp.status not in (204, 304):
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s emulator: " + format, self.server.emulator.name, *args)
