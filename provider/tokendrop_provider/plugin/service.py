"""The tfplugin6 Provider service: decode requests, call the provider core, encode answers.

Every expected failure arrives here as a TokendropError and leaves as a diagnostic with a summary,
a detail and an attribute path. Anything else becomes one "unexpected error" diagnostic; its
traceback goes to the provider log only (visible with TF_LOG=debug), never to the user.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar

from ..errors import ConfigError, TokendropError
from ..resources.base import ApplyFailed, Context
from ..types import is_known
from . import codec, convert
from .gen import tfplugin6_pb2 as pb
from .gen import tfplugin6_pb2_grpc

if TYPE_CHECKING:
    import grpc

    from ..provider import ProviderCore

log = logging.getLogger("tokendrop.rpc")
Response = TypeVar("Response")

# get_provider_schema_optional: the schema is the same in every launch, so Terraform answers the later
# launches of one command (validate, plan, apply) from the schema it cached in the first instead of
# asking each new process for it again. See docs/wire.md.
SERVER_CAPABILITIES = pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=True)


def _decode(dv: pb.DynamicValue, resource=None) -> object:  # type: ignore[no-untyped-def]
    """A DynamicValue; with `resource`, its dynamic attributes carry the type Terraform sent them with."""
    if dv.msgpack:
        value = codec.decode(dv.msgpack)
        return value if resource is None else codec.attach_dynamic(value, resource.schema.cty_type)
    if dv.json:
        value = codec.decode_json(dv.json)
        return value if resource is None else codec.attach_dynamic_json(value, resource.schema.cty_type)
    return None


def _diagnostic_for(name: str, exc: BaseException) -> pb.Diagnostic:
    """The diagnostic for a failed RPC. Expected errors carry their own words; a network, TLS, proxy or
    credential failure of a client library says what could not be reached; anything else is a bug,
    whose traceback goes to the (scrubbed) log only. If even that fails, a fixed text: the exception
    must not escape to grpc, which would log it unscrubbed."""
    try:
        if isinstance(exc, TokendropError):
            return convert.error_pb(exc)
        unreachable = convert.unreachable_pb(exc)
        if unreachable is not None:
            log.warning("%s failed: %s", name, unreachable.detail)
            return unreachable
        log.error("%s failed", name, exc_info=exc)
        return convert.unexpected_pb(exc)
    except BaseException:  # e.g. a scrub that fails: say nothing rather than leak
        return convert.UNDESCRIBABLE


class ProviderService(tfplugin6_pb2_grpc.ProviderServicer):
    def __init__(self, core: ProviderCore) -> None:
        self.core = core
        self._schema_response: pb.GetProviderSchema.Response | None = None
        self._encoders: dict[str, codec.Encoder] = {}

    # --- helpers --------------------------------------------------------------------------------

    def _guard(self, name: str, make: Callable[[list], Response], body: Callable[[list], Response]) -> Response:
        """Run `body`; turn failures into diagnostics on the response `make` builds."""
        started = time.monotonic()
        diagnostics: list = []
        try:
            return body(diagnostics)
        except BaseException as exc:  # nothing may leave an RPC for grpc's own logger
            diagnostics.append(_diagnostic_for(name, exc))
            return make(diagnostics)
        finally:
            log.debug("%s took %.1f ms", name, (time.monotonic() - started) * 1000)

    def _dynamic(self, value: object, resource) -> pb.DynamicValue:  # type: ignore[no-untyped-def]
        """A resource's state as a DynamicValue; the encoder for its type is built once per process."""
        encoder = self._encoders.get(resource.schema.type_name)
        if encoder is None:
            encoder = self._encoders[resource.schema.type_name] = codec.Encoder(resource.schema.cty_type)
        return pb.DynamicValue(msgpack=encoder(value))

    def _resource(self, type_name: str):  # type: ignore[no-untyped-def]
        resource = self.core.resources.get(type_name)
        if resource is None:
            raise TokendropError("Unknown resource type", f"tokendrop has no resource type {type_name!r}.")
        return resource

    # --- schema and configuration ---------------------------------------------------------------

    def GetProviderSchema(self, request, context):
        if self._schema_response is None:  # built once per process
            self._schema_response = pb.GetProviderSchema.Response(
                provider=convert.schema_pb(self.core.provider_schema),
                resource_schemas={name: convert.schema_pb(r.schema) for name, r in self.core.resources.items()},
                server_capabilities=SERVER_CAPABILITIES,
            )
        return self._schema_response

    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(
            server_capabilities=SERVER_CAPABILITIES,
            resources=[pb.GetMetadata.ResourceMetadata(type_name=name) for name in self.core.resources],
        )

    def GetFunctions(self, request, context):
        return pb.GetFunctions.Response()

    def ValidateProviderConfig(self, request, context):
        def body(diags: list) -> pb.ValidateProviderConfig.Response:
            config = _decode(request.config) or {}
            errors = self.core.validate_config(config)  # type: ignore[arg-type]
            diags.extend(convert.diagnostics(errors))
            return pb.ValidateProviderConfig.Response(diagnostics=diags)

        return self._guard("ValidateProviderConfig",
                           lambda d: pb.ValidateProviderConfig.Response(diagnostics=d), body)

    def ConfigureProvider(self, request, context):
        def body(diags: list) -> pb.ConfigureProvider.Response:
            config = _decode(request.config) or {}
            if not is_known(config):
                raise ConfigError("Provider configuration is not known yet",
                                  "The tokendrop provider block uses values that are only known after apply. "
                                  "Set its settings from variables or environment variables instead.")
            self.core.configure(config, terraform_version=request.terraform_version)  # type: ignore[arg-type]
            return pb.ConfigureProvider.Response(diagnostics=diags)

        return self._guard("ConfigureProvider", lambda d: pb.ConfigureProvider.Response(diagnostics=d), body)

    def ValidateResourceConfig(self, request, context):
        def body(diags: list) -> pb.ValidateResourceConfig.Response:
            resource = self._resource(request.type_name)
            errors = resource.validate(_decode(request.config, resource) or {})
            diags.extend(convert.diagnostics(errors))
            return pb.ValidateResourceConfig.Response(diagnostics=diags)

        return self._guard("ValidateResourceConfig",
                           lambda d: pb.ValidateResourceConfig.Response(diagnostics=d), body)

    def ValidateDataResourceConfig(self, request, context):
        return pb.ValidateDataResourceConfig.Response(diagnostics=[convert.error_pb(TokendropError(
            "Unknown data source", f"tokendrop has no data source {request.type_name!r}."))])

    def ReadDataSource(self, request, context):
        return pb.ReadDataSource.Response(diagnostics=[convert.error_pb(TokendropError(
            "Unknown data source", f"tokendrop has no data source {request.type_name!r}."))])

    # --- managed resources ----------------------------------------------------------------------

    def UpgradeResourceState(self, request, context):
        def body(diags: list) -> pb.UpgradeResourceState.Response:
            resource = self._resource(request.type_name)
            if request.raw_state.json:
                raw = codec.attach_dynamic_json(json.loads(request.raw_state.json), resource.schema.cty_type) \
                    if request.version == resource.schema.version else json.loads(request.raw_state.json)
            else:  # legacy flatmap state was never written by this provider
                raise TokendropError("Unsupported state format",
                                     "This state was not written by the tokendrop provider (flatmap format).")
            upgraded = resource.upgrade(request.version, raw)
            known = {a.name for a in resource.schema.attributes}
            upgraded = {k: v for k, v in upgraded.items() if k in known}
            return pb.UpgradeResourceState.Response(
                upgraded_state=self._dynamic(upgraded, resource), diagnostics=diags)

        return self._guard("UpgradeResourceState",
                           lambda d: pb.UpgradeResourceState.Response(diagnostics=d), body)

    def ReadResource(self, request, context):
        def body(diags: list) -> pb.ReadResource.Response:
            resource = self._resource(request.type_name)
            state = _decode(request.current_state, resource)
            if state is None:
                return pb.ReadResource.Response(new_state=request.current_state, private=request.private)
            ctx = Context(self.core)
            self.core.require_configured()
            new_state = resource.read(ctx, state)
            diags.extend(convert.diagnostics(warnings=ctx.warnings))
            return pb.ReadResource.Response(new_state=self._dynamic(new_state, resource),
                                            private=request.private, diagnostics=diags)

        return self._guard("ReadResource", lambda d: pb.ReadResource.Response(
            new_state=request.current_state, private=request.private, diagnostics=d), body)

    def PlanResourceChange(self, request, context):
        def body(diags: list) -> pb.PlanResourceChange.Response:
            resource = self._resource(request.type_name)
            prior = _decode(request.prior_state, resource)
            proposed = _decode(request.proposed_new_state, resource)
            config = _decode(request.config, resource)
            ctx = Context(self.core)
            plan = resource.plan(ctx, prior, proposed, config)
            diags.extend(convert.diagnostics(warnings=ctx.warnings))
            return pb.PlanResourceChange.Response(
                planned_state=self._dynamic(plan.planned, resource),
                requires_replace=[convert.path_pb(p) for p in plan.requires_replace],
                planned_private=request.prior_private,
                diagnostics=diags,
            )

        return self._guard("PlanResourceChange",
                           lambda d: pb.PlanResourceChange.Response(diagnostics=d), body)

    def ApplyResourceChange(self, request, context):
        def body(diags: list) -> pb.ApplyResourceChange.Response:
            resource = self._resource(request.type_name)
            prior = _decode(request.prior_state, resource)
            planned = _decode(request.planned_state, resource)
            ctx = Context(self.core)
            self.core.require_configured()
            try:
                new_state = resource.apply(ctx, prior, planned)
            except ApplyFailed as failed:
                diags.extend(convert.diagnostics([failed], ctx.warnings))
                return pb.ApplyResourceChange.Response(
                    new_state=self._dynamic(failed.state, resource), diagnostics=diags)
            except TokendropError as err:
                diags.extend(convert.diagnostics([err], ctx.warnings))
                # Nothing changed: Terraform keeps the prior state (null for a failed create).
                return pb.ApplyResourceChange.Response(new_state=request.prior_state, diagnostics=diags)
            diags.extend(convert.diagnostics(warnings=ctx.warnings))
            return pb.ApplyResourceChange.Response(
                new_state=self._dynamic(new_state, resource),
                private=request.planned_private, diagnostics=diags)

        return self._guard("ApplyResourceChange", lambda d: pb.ApplyResourceChange.Response(
            new_state=request.prior_state, diagnostics=d), body)

    def ImportResourceState(self, request, context):
        def body(diags: list) -> pb.ImportResourceState.Response:
            resource = self._resource(request.type_name)
            ctx = Context(self.core)
            self.core.require_configured()
            state = resource.import_state(ctx, request.id)
            diags.extend(convert.diagnostics(warnings=ctx.warnings))
            return pb.ImportResourceState.Response(
                imported_resources=[pb.ImportResourceState.ImportedResource(
                    type_name=request.type_name, state=self._dynamic(state, resource))],
                diagnostics=diags)

        return self._guard("ImportResourceState",
                           lambda d: pb.ImportResourceState.Response(diagnostics=d), body)

    def StopProvider(self, request, context):
        # A cancel request: calls in flight finish (a minted token must reach its sink and state);
        # waits that have not started yet give up.
        log.info("stop requested; letting calls in flight finish")
        self.core.cancel.set()
        return pb.StopProvider.Response()


def provider_handlers(core: ProviderCore) -> list[grpc.GenericRpcHandler]:
    """The generated handlers of the tfplugin6 Provider service over `core` (plugin/routes.py serves them;
    go-plugin's controller, broker and health services are answered there)."""
    generic: list[grpc.GenericRpcHandler] = []
    # What the generated registration needs of a server: the generic handlers are kept, the same methods
    # registered by name are not needed by routes.py.
    registrar = SimpleNamespace(add_generic_rpc_handlers=generic.extend,
                                add_registered_method_handlers=lambda service, handlers: None)
    tfplugin6_pb2_grpc.add_ProviderServicer_to_server(ProviderService(core), registrar)
    return generic
