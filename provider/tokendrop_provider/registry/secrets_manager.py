"""AWS Secrets Manager: its endpoint setting and the secret sink. Credentials and region are the
shared AWS settings (the `aws` group, declared with the SSM sink)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import schema
from ..errors import ConfigError
from ..lazy import IMPORT_LOCK
from ..settings import Setting, Settings, SettingsGroup
from ..sinks.secrets_manager_rules import DEFAULT_RECOVERY_WINDOW, SecretsManagerSettings, validate_replica_regions
from .base import SinkKind, address_scope, missing_setting, parse_regional, regional_address, with_region
from .ssm import REGION, aws_region

if TYPE_CHECKING:
    from ..sinks.base import SinkStatus
    from ..sinks.secrets_manager import SecretsManagerSink

SETTINGS = SettingsGroup("secretsmanager", (
    # The SDKs' variable is AWS_ENDPOINT_URL_SECRETS_MANAGER (service id "Secrets Manager"); the spelling
    # without the underscore is accepted too, as some tools document it.
    Setting("aws_endpoint_url_secretsmanager", "Secrets Manager endpoint override.",
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SECRETSMANAGER", "AWS_ENDPOINT_URL")),
), lambda v: SecretsManagerSettings(endpoint_url=v["aws_endpoint_url_secretsmanager"]))


def _check(settings: Settings, memo: Callable[[object, Callable[[], Any]], Any]) -> ConfigError | None:
    from ..sinks.secrets_manager import check_endpoint  # boto3 stays unloaded: it is imported lazily

    try:  # a custom endpoint: https, or http on loopback
        check_endpoint(settings.group(SETTINGS.name))
    except ConfigError as problem:
        return problem
    if memo(("aws-region", settings.aws.profile), lambda: aws_region(settings.aws)):
        return None
    return missing_setting("AWS region is not configured", REGION,
                           " (deliver_to.secrets_manager needs a region; a region in your AWS profile does too)")


def _check_location(location: Mapping[str, Any], settings: Settings) -> ConfigError | None:
    """A replica in the secret's own region (known only with the provider's region)."""
    from ..types import Unknown

    regions = location.get("replica_regions")
    if not isinstance(regions, Sequence) or any(isinstance(r, Unknown) for r in regions):
        return None  # unset, or not known until apply
    error = validate_replica_regions([str(r) for r in regions], aws_region(with_region(settings.aws, location)))
    if error:
        return ConfigError("Invalid Secrets Manager setting", error,
                           ("deliver_to", SINK.name, "replica_regions"))
    return None


def _from_config(location: Mapping[str, Any], settings: Settings) -> SecretsManagerSink:
    with IMPORT_LOCK:
        from ..sinks.secrets_manager import SecretsManagerSink

    window = location.get("recovery_window_in_days")
    return SecretsManagerSink(
        name=str(location["name"]), settings=with_region(settings.aws, location),
        address_region=address_scope(location), endpoint=settings.group(SETTINGS.name),
        kms_key_id=location.get("kms_key_id"), tags=dict(location.get("tags") or {}),
        replica_regions=list(location.get("replica_regions") or ()), field=location.get("field"),
        recovery_window_in_days=DEFAULT_RECOVERY_WINDOW if window is None else int(window))


def _statuses(locations: Sequence[Mapping[str, Any]], settings: Settings) -> list[SinkStatus]:
    # DescribeSecret takes one secret; ListSecrets would page through the whole account instead.
    return [_from_config(location, settings).status() for location in locations]


SINK = SinkKind(
    attribute=schema.SECRETS_MANAGER_SINK, settings=SETTINGS, check=_check, from_config=_from_config,
    address=regional_address,
    # The recovery window is not stored with the secret: an import takes the default.
    parse_address=lambda rest: ({"name": parse_regional(rest)[1], "region": parse_regional(rest)[0],
                                 "kms_key_id": None, "tags": None, "replica_regions": None,
                                 "field": None, "recovery_window_in_days": DEFAULT_RECOVERY_WINDOW}
                                if rest else None),
    address_format="secrets_manager:<secret name> (secrets_manager:<region>:<secret name> with its own region)",
    address_fields=("name",), statuses=_statuses,
    libraries=("botocore.session",), check_location=_check_location,
)
