"""Translate between schema.py's plain data and tfplugin6 protobuf messages."""

from __future__ import annotations

import re
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
    if attr.nested is not None and attr.nesting == "one_or_list":
        message.type = attr.cty_type.json_bytes()  # "dynamic": one object or a list, checked by the provider
    elif attr.nested is not None:
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


# A failure of a client library on the way to a service, by (module, class) anywhere in its class
# hierarchy; matched by name so that boto3 and requests need not be imported to check.
_UNREACHABLE = {
    ("builtins", "ConnectionError"), ("builtins", "TimeoutError"), ("socket", "gaierror"), ("ssl", "SSLError"),
    ("requests.exceptions", "RequestException"), ("urllib3.exceptions", "HTTPError"),
    ("botocore.exceptions", "HTTPClientError"), ("botocore.exceptions", "ConnectionError"),
    ("botocore.exceptions", "NoCredentialsError"),
    ("botocore.exceptions", "PartialCredentialsError"), ("botocore.exceptions", "CredentialRetrievalError"),
    ("botocore.exceptions", "TokenRetrievalError"), ("botocore.exceptions", "NoRegionError"),
}
# Where the failed call went: a URL in the message, or urllib3's "host='…', port=…".
_WHERE = (re.compile(r"""https?://([^/\s'"]+)"""), re.compile(r"""host='([^']+)', port=(\d+)"""))
UNDESCRIBABLE = pb.Diagnostic(
    severity=pb.Diagnostic.Severity.ERROR, summary="Unexpected error in the tokendrop provider",
    detail="The error could not be described safely; run with TF_LOG=debug and see the provider log.")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_unreachable(exc: BaseException) -> bool:
    return any((cls.__module__, cls.__name__) in _UNREACHABLE for cls in type(exc).__mro__)


def unreachable_pb(exc: BaseException) -> pb.Diagnostic | None:
    """A "could not reach ..." diagnostic if a client library failed to reach a service (connection,
    DNS, TLS, proxy, timeout, credential retrieval); None for anything else."""
    causes = [e for e in _chain(exc) if _is_unreachable(e)]
    if not causes:
        return None
    described = [scrub(f"{type(e).__name__}: {e}") for e in causes]
    host = next((":".join(m.groups()) for pattern in _WHERE for text in described if (m := pattern.search(text))),
                None)
    where = host or "a service the provider uses (an issuer, SSM, Vault or a credential source)"
    return pb.Diagnostic(
        severity=pb.Diagnostic.Severity.ERROR,
        summary=f"Could not reach {where}",
        detail=(described[0] + "\n\nCheck the address, the network and proxy settings (HTTPS_PROXY, NO_PROXY), "
                "the CA certificate, and that the credentials are available to the provider."),
    )


def diagnostics(errors: Iterable[TokendropError] = (), warnings: Iterable[TokendropError] = ()) -> list:
    return [error_pb(e) for e in errors] + [warning_pb(w) for w in warnings]
