"""Pure rules for AWS Secrets Manager sinks: input validators, the ownership record and version ids.

No boto3 here: the schema module and the CDKTF constructs call these at synth and plan time. Every
validator returns an error message written for the user, or None when the value is acceptable.
Limits come from the Secrets Manager API reference (docs/wire.md, section "AWS Secrets Manager").
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from . import aws_rules
from .base import Ownership

MAX_NAME_LENGTH = 512
MAX_DESCRIPTION_LENGTH = 2048
MAX_USER_TAGS = aws_rules.MAX_USER_TAGS  # tags (limits shared with SSM): aws_rules
MAX_KMS_KEY_ID_LENGTH = 2048
RECOVERY_WINDOWS = range(7, 31)  # DeleteSecret: 7 to 30 days; 0 here means ForceDeleteWithoutRecovery
DEFAULT_RECOVERY_WINDOW = 7

_NAME_CHARS = re.compile(r"[A-Za-z0-9/_+=.@-]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_TAG_TEXT = re.compile(r"[\w\s_.:/=+\-@]*")


@dataclass(frozen=True)
class SecretsManagerSettings:
    """The Secrets Manager endpoint override; credentials and region are the shared AWS settings."""

    endpoint_url: str | None = None  # AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL


def validate_secret_name(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "a secret name must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"secret name is {len(name)} characters; Secrets Manager allows at most {MAX_NAME_LENGTH}"
    if not _NAME_CHARS.fullmatch(name):
        bad = sorted({c for c in name if not _NAME_CHARS.fullmatch(c)})
        return (f"secret name {name!r} contains characters Secrets Manager does not allow ({''.join(bad)!r}); "
                "use only letters, digits and / _ + = . @ -")
    return None


def validate_kms_key_id(key_id: str) -> str | None:
    """A KMS key id, key ARN, alias name or alias ARN (the forms CreateSecret's KmsKeyId takes)."""
    # The accepted shapes are SSM's; a key id longer than SSM's 256 characters is not shape-checked.
    return aws_rules.validate_kms_key_id(key_id, service="Secrets Manager", max_length=MAX_KMS_KEY_ID_LENGTH,
                                         default_key="the aws/secretsmanager key", shape_checked_up_to=256)


def _tag_text_ok(text: str) -> bool:
    return _TAG_TEXT.fullmatch(text) is not None


def validate_tags(tags: Mapping[str, str]) -> str | None:
    """The user's tags; tokendrop adds `managed-by` and `tokendrop:issuer` itself."""
    return aws_rules.validate_tags(tags, service="Secrets Manager", per="secret", text_ok=_tag_text_ok,
                                   name_the_part=False, reserved_note="")


def validate_region(region: str) -> str | None:
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        return f"{region!r} is not an AWS region name (e.g. eu-west-1)"
    return None


def validate_replica_regions(regions: Sequence[str], primary: str | None = None) -> str | None:
    for region in regions:
        error = validate_region(region)
        if error:
            return error
    if len(set(regions)) != len(regions):
        return "replica_regions lists a region twice"
    if primary is not None and primary in regions:
        return f"replica_regions names {primary}, the secret's own region; a secret cannot replicate to it"
    return None


MAX_FIELD_LENGTH = 256  # the record in the Description (at most 2048 characters) carries it too


def validate_field(field: str) -> str | None:
    if not isinstance(field, str) or not field.strip():
        return "field must be a non-empty JSON key"
    if len(field) > MAX_FIELD_LENGTH:
        return f"field is {len(field)} characters; at most {MAX_FIELD_LENGTH} are allowed"
    return None


def validate_recovery_window(days: object) -> str | None:
    if isinstance(days, bool) or not isinstance(days, int | float) or int(days) != days:
        return "recovery_window_in_days must be a whole number of days"
    if days != 0 and int(days) not in RECOVERY_WINDOWS:
        return (f"recovery_window_in_days is {days:g}; Secrets Manager takes 7 to 30 days "
                "(or 0 here: delete at once, without recovery)")
    return None


# --- version ids ----------------------------------------------------------------------------------
#
# Secrets Manager has no version numbers; a version id is the ClientRequestToken of the write that
# made it (32-64 characters, chosen by the caller). tokendrop's ids carry a counter, so a version
# tokendrop wrote is told apart from one somebody else wrote (the CLI and console use UUIDs) and
# the sink can report the increasing version numbers the delivery algorithm compares.

VERSION_ID_PREFIX = "tokendrop-"
_VERSION_ID = re.compile(r"tokendrop-(\d{8})-[0-9a-f]{32}")


def new_version_id(number: int) -> str:
    """A fresh ClientRequestToken for tokendrop's version `number` (51 characters)."""
    return f"{VERSION_ID_PREFIX}{number:08d}-{uuid.uuid4().hex}"


def version_number(version_id: str | None) -> int | None:
    """The counter in a version id tokendrop wrote, or None for anyone else's."""
    match = _VERSION_ID.fullmatch(version_id or "")
    return int(match.group(1)) if match else None


# --- ownership record -----------------------------------------------------------------------------
#
# The record lives in the secret's Description:
#     "[tokendrop issuer=tfe token=at-123 owner=1a2b3c4d5e6f version=2 version_id=tokendrop-00000002-... field=T]"
# It names the version id it describes: it is current only while AWSCURRENT is on that version.
# `field` (only with a JSON value) lets an import restore the configuration without reading the value.
# Values are percent-encoded, so a space or "]" in a field name cannot break the record.

_MARKER_OPEN = "[tokendrop "
_SAFE = "-._~:@/+="
_RECORD = re.compile(r"\[tokendrop ((?:[a-z_]+=[^\s\]]*)(?: [a-z_]+=[^\s\]]*)*)\]")


@dataclass(frozen=True)
class Record:
    ownership: Ownership
    version_id: str
    field: str | None = None  # the JSON key holding the token, None for a plain string (read by import)


def format_record(ownership: Ownership, version: int, version_id: str, field: str | None = None) -> str:
    fields = [("issuer", ownership.issuer), ("token", ownership.token_id), ("owner", ownership.owner),
              ("version", str(version)), ("version_id", version_id)]
    if field is not None:
        fields.append(("field", field))
    return _MARKER_OPEN + " ".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in fields) + "]"


def parse_record(description: str | None) -> Record | None:
    match = _RECORD.search(description or "")
    if match is None:
        return None
    fields = dict(item.partition("=")[::2] for item in match.group(1).split(" "))
    fields = {k: unquote(v) for k, v in fields.items()}
    try:
        ownership = Ownership(token_id=fields["token"], issuer=fields["issuer"], owner=fields["owner"],
                              version=int(fields["version"]))
        version_id = fields["version_id"]
    except (KeyError, ValueError):
        return None
    if not ownership.token_id or not ownership.issuer or version_number(version_id) is None:
        return None
    return Record(ownership, version_id, fields.get("field"))
