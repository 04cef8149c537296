"""AWS SSM Parameter Store: the AWS settings and the SecureString sink."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import schema
from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import AwsSettings, Setting, Settings, SettingsGroup
from .base import SinkKind, address_scope, missing_setting, parse_regional, regional_address, with_region

if TYPE_CHECKING:
    from ..sinks.base import SinkStatus
    from ..sinks.ssm import SsmSink

REGION = Setting("aws_region", "AWS region of the SSM sinks.", ("AWS_REGION", "AWS_DEFAULT_REGION"))
SETTINGS = SettingsGroup("aws", (
    REGION,
    Setting("aws_profile", "AWS shared-config profile.", ("AWS_PROFILE",)),
    Setting("aws_endpoint_url_ssm", "SSM endpoint override.", ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL")),
    Setting("aws_access_key_id", "AWS access key id (prefer the default credential chain)."),
    Setting("aws_secret_access_key", "AWS secret access key.", sensitive=True),
    Setting("aws_session_token", "AWS session token.", sensitive=True),
), lambda v: AwsSettings(region=v["aws_region"], profile=v["aws_profile"], endpoint_url_ssm=v["aws_endpoint_url_ssm"],
                         access_key_id=v["aws_access_key_id"], secret_access_key=v["aws_secret_access_key"],
                         session_token=v["aws_session_token"]))


def aws_region(aws: AwsSettings) -> str | None:
    """The region boto3 would use: the provider block / environment, else the shared config profile."""
    if aws.region:
        return aws.region
    with IMPORT_LOCK:
        import botocore.session

    try:
        return botocore.session.Session(profile=aws.profile).get_config_variable("region")
    except Exception:  # an unknown profile is reported by the SSM client with its own message
        return None


def _check(settings: Settings, memo: Callable[[object, Callable[[], Any]], Any]) -> ConfigError | None:
    from ..endpoints import check_ssm_endpoint  # not at synth time: the constructs import this module

    try:  # a custom endpoint: https, or http on loopback
        check_ssm_endpoint(settings.aws)
    except ConfigError as problem:
        return problem
    if memo(("aws-region", settings.aws.profile), lambda: aws_region(settings.aws)):
        return None
    return missing_setting("AWS region is not configured", REGION,
                           " (deliver_to.ssm needs a region; a region in your AWS profile does too)")


def _from_config(location: Mapping[str, Any], settings: Settings) -> SsmSink:
    with IMPORT_LOCK:
        from ..sinks.ssm import SsmSink

    return SsmSink(name=str(location["name"]), kms_key_id=location.get("kms_key_id"), tier=location.get("tier"),
                   description=location.get("description"), tags=dict(location.get("tags") or {}),
                   settings=with_region(settings.aws, location), address_region=address_scope(location))


def _statuses(locations: Sequence[Mapping[str, Any]], settings: Settings) -> list[SinkStatus]:
    from ..sinks.ssm import describe_many

    out: list[SinkStatus | None] = [None] * len(locations)
    # one batch per region and role: each is its own endpoint or account
    for where in dict.fromkeys((location.get("region"), location.get("assume_role_arn")) for location in locations):
        indexes = [i for i, location in enumerate(locations)
                   if (location.get("region"), location.get("assume_role_arn")) == where]
        names = [str(locations[i]["name"]) for i in indexes]
        found = describe_many(names, with_region(settings.aws, {"region": where[0], "assume_role_arn": where[1]}))
        for i, name in zip(indexes, names, strict=True):
            out[i] = found[name]
    return [status for status in out if status is not None]


SINK = SinkKind(
    attribute=schema.SSM_SINK, settings=SETTINGS, check=_check, from_config=_from_config,
    address=regional_address,
    parse_address=lambda rest: ({"name": parse_regional(rest)[1], "region": parse_regional(rest)[0], "kms_key_id": None,
                                 "tier": None, "description": None, "tags": None} if rest else None),
    address_format="ssm:<parameter name> (ssm:<region>:<parameter name> for a sink with its own region)",
    address_fields=("name",), statuses=_statuses, libraries=("botocore.session",),
    batch=50,  # DescribeParameters takes at most 50 names per call
)
