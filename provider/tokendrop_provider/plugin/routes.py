"""Which code answers each RPC, with the provider loaded by the first call that needs it.

Terraform launches the provider three to five times per command, and the first launch only asks for
the schema. Before the handshake a launch imports grpc and nothing of protobuf, the generated modules or
the provider core. It then answers, as raw bytes:
- GetProviderSchema from the answer `tokendrop provider install` stored (plugin/schema_cache.py), when
  that answer matches these sources;
- go-plugin's Shutdown, broker stream and health check, whose messages are fixed (below).
The first other call imports plugin/service.py and builds the ProviderCore in a worker thread (under
lazy.IMPORT_LOCK); from then on each call is decoded, answered and encoded by the generated handlers
exactly as before. A launch that answers only the schema thus costs the interpreter, grpc and the
certificate; see docs/performance.md for the measurements.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from .. import lazy
from . import schema_cache

if TYPE_CHECKING:
    from .server import PluginServer

PROVIDER_PREFIX = "/tfplugin6.Provider/"
GET_PROVIDER_SCHEMA = PROVIDER_PREFIX + "GetProviderSchema"
SHUTDOWN = "/plugin.GRPCController/Shutdown"
BROKER_STREAM = "/plugin.GRPCBroker/StartStream"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

# Fixed answers, in protobuf's wire format: go_plugin.Empty has no fields (zero bytes), and
# HealthCheckResponse{status: SERVING} is field 1 (varint) = 1 (plugin/proto/health.proto).
EMPTY = b""
HEALTH_SERVING = b"\x08\x01"


class Routes(grpc.GenericRpcHandler):
    """The server's only handler: fixed answers at once, the provider service once it is needed."""

    def __init__(self, plugin: PluginServer, schema: bytes | None) -> None:
        self._plugin = plugin
        self._provider: list[grpc.GenericRpcHandler] | None = None
        self._loading = threading.Lock()
        self._fixed: dict[str, grpc.RpcMethodHandler] = {
            SHUTDOWN: grpc.unary_unary_rpc_method_handler(self._shutdown),
            BROKER_STREAM: grpc.stream_stream_rpc_method_handler(self._broker_stream),
            HEALTH_CHECK: grpc.unary_unary_rpc_method_handler(lambda request, context: HEALTH_SERVING),
        }
        if schema is not None:
            self._fixed[GET_PROVIDER_SCHEMA] = grpc.unary_unary_rpc_method_handler(lambda request, context: schema)
        # Before the service is loaded: one stand-in per Provider method (every one is unary). Its bytes
        # are decoded in the worker thread, after the service is loaded there: `service` runs on grpc's
        # polling thread, which must not wait for imports.
        self._stand_ins: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        fixed = self._fixed.get(method)
        if fixed is not None:
            return fixed
        if self._provider is not None:
            return _find(self._provider, handler_call_details)
        if not method.startswith(PROVIDER_PREFIX):
            return None
        stand_in = self._stand_ins.get(method)
        if stand_in is None:
            stand_in = self._stand_ins[method] = grpc.unary_unary_rpc_method_handler(
                lambda request, context: self._call_provider(handler_call_details, request, context))
        return stand_in

    def _call_provider(self, details: grpc.HandlerCallDetails, request: bytes, context: grpc.ServicerContext) -> bytes:
        # The statuses and texts grpc itself gives when a method is missing or a message does not parse.
        handler = _find(self._load(), details)
        if handler is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        try:
            message = handler.request_deserializer(request)
        except Exception:  # any parse failure: the caller sent a bad message
            context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        return handler.response_serializer(handler.unary_unary(message, context))

    def _load(self) -> list[grpc.GenericRpcHandler]:
        with self._loading:
            if self._provider is None:
                with lazy.IMPORT_LOCK:
                    from ..provider import ProviderCore
                    from .service import provider_handlers

                    self._provider = provider_handlers(ProviderCore())
            return self._provider

    def _shutdown(self, request: bytes, context: grpc.ServicerContext | None) -> bytes:
        # Stop once this call's answer is out: the process exits without teardown right after the
        # server stops, which could otherwise cut the answer off (Terraform would log an error).
        if context is None or not context.add_callback(self._plugin.request_shutdown):
            self._plugin.request_shutdown()
        return EMPTY

    @staticmethod
    def _broker_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        # No brokered services are offered: hold the stream open until Terraform closes it.
        for _ in requests:
            pass
        return iter(())


def _find(handlers: list[grpc.GenericRpcHandler], details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
    return next((found for handler in handlers if (found := handler.service(details)) is not None), None)


def register(server: grpc.Server, plugin: PluginServer) -> None:
    server.add_generic_rpc_handlers((Routes(plugin, schema_cache.load()),))
