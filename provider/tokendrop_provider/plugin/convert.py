"""Translate between schema.py's plain data and tfplugin6 protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..attributes import Attr, ProviderSchema, ResourceSchema
from ..errors import TokendropError
from ..secret import scrub
from .gen import tfplugin6_pb2 as pb

_MARKDOWN = pb.StringKind.MARKDOWN


def attribute_pb(attr: Attr) -> pb.Schema.Attribute:
    message = pb.Schema.Attribute(
        name=attr.name,
        description=attr.description,
        description_kind=_MARKDOWN,
        required=attr.required,
        optional=attr.optional,
        computed=attr.computed,
        sensitive=attr.sensitive,
    )
    if attr.nested is not None:
        message.nested_type.CopyFrom(pb.Schema.Object(
            attributes=[attribute_pb(a) for a in attr.nested],
            nesting=(pb.Schema.Object.NestingMode.LIST if attr.nesting == "list"
                     else pb.Schema.Object.NestingMode.SINGLE),
        ))
    else:
        assert attr.type is not None
        message.type = attr.type.json_bytes()
    return message


def schema_pb(schema: ResourceSchema | ProviderSchema) -> pb.Schema:
    version = schema.version if isinstance(schema, ResourceSchema) else 0
    return pb.Schema(
        version=version,
        block=pb.Schema.Block(
            version=version,
            attributes=[attribute_pb(a) for a in schema.attributes],
            description=schema.description,
            description_kind=_MARKDOWN,
        ),
    )


def path_pb(path: Sequence[str | int]) -> pb.AttributePath:
    steps = []
    for step in path:
        if isinstance(step, int):
            steps.append(pb.AttributePath.Step(element_key_int=step))
        elif steps and _is_map_key(step):
            steps.append(pb.AttributePath.Step(element_key_string=step[1:]))
        else:
            steps.append(pb.AttributePath.Step(attribute_name=step))
    return pb.AttributePath(steps=steps)


def _is_map_key(step: str) -> bool:
    # Map keys are written "#key" in our paths so that they are not mistaken for attribute names.
    return step.startswith("#")


def error_pb(error: TokendropError, severity: int = pb.Diagnostic.Severity.ERROR) -> pb.Diagnostic:
    diagnostic = pb.Diagnostic(severity=severity, summary=scrub(error.summary), detail=scrub(error.detail))
    if error.attribute:
        diagnostic.attribute.CopyFrom(path_pb(error.attribute))
    return diagnostic


def warning_pb(error: TokendropError) -> pb.Diagnostic:
    return error_pb(error, pb.Diagnostic.Severity.WARNING)


def unexpected_pb(exc: BaseException) -> pb.Diagnostic:
    return pb.Diagnostic(
        severity=pb.Diagnostic.Severity.ERROR,
        summary="Unexpected error in the tokendrop provider",
        detail=scrub(f"{type(exc).__name__}: {exc}\n\nThis is a bug in tokendrop; please report it. "
                     "Run with TF_LOG=debug to see the traceback."),
    )


def diagnostics(errors: Iterable[TokendropError] = (), warnings: Iterable[TokendropError] = ()) -> list:
    return [error_pb(e) for e in errors] + [warning_pb(w) for w in warnings]
