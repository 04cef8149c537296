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

from .base import Ownership
from .ssm_rules import MANAGED_BY_TAG, RESERVED_TAG_PREFIX
from .ssm_rules import validate_kms_key_id as _ssm_kms_key_rule

MAX_NAME_LENGTH = 512
MAX_DESCRIPTION_LENGTH = 2048
MAX_TAGS_PER_SECRET = 50
MAX_USER_TAGS = MAX_TAGS_PER_SECRET - 2  # tokendrop sets managed-by and tokendrop:issuer itself
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
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
    if not isinstance(key_id, str) or not key_id:
        return "kms_key_id must be a non-empty string (leave it unset for the aws/secretsmanager key)"
    if len(key_id) > MAX_KMS_KEY_ID_LENGTH:
        return f"kms_key_id is {len(key_id)} characters; Secrets Manager allows at most {MAX_KMS_KEY_ID_LENGTH}"
    # The accepted shapes are SSM's (id, key ARN, alias, alias ARN); SSM's shorter limit does not apply.
    return _ssm_kms_key_rule(key_id) if len(key_id) <= 256 else None


def validate_tags(tags: Mapping[str, str]) -> str | None:
    """The user's tags; tokendrop adds `managed-by` and `tokendrop:issuer` itself."""
    if not isinstance(tags, Mapping):
        return "tags must be a map of strings"
    if len(tags) > MAX_USER_TAGS:
        return (f"{len(tags)} tags given; Secrets Manager allows {MAX_TAGS_PER_SECRET} per secret and "
                f"tokendrop sets 2 itself, so at most {MAX_USER_TAGS}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return "tag keys and values must be strings"
        if not 1 <= len(key) <= MAX_TAG_KEY_LENGTH:
            return f"tag key {key!r} must be 1 to {MAX_TAG_KEY_LENGTH} characters"
        if len(value) > MAX_TAG_VALUE_LENGTH:
            return f"the value of tag {key!r} is longer than {MAX_TAG_VALUE_LENGTH} characters"
        if not _TAG_TEXT.fullmatch(key) or not _TAG_TEXT.fullmatch(value):
            return (f"tag {key!r} may contain only letters, numbers, spaces and the characters _ . : / = + - @")
        if key.lower().startswith("aws:"):
            return f"tag key {key!r} is reserved: keys starting with 'aws:' belong to AWS"
        if key == MANAGED_BY_TAG or key.startswith(RESERVED_TAG_PREFIX):
            return f"tag key {key!r} is reserved: tokendrop sets '{MANAGED_BY_TAG}' and '{RESERVED_TAG_PREFIX}*'"
    return None


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
