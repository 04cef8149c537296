"""Pure rules for SSM Parameter Store sinks: input validators and the ownership record format.

No boto3 here: the schema module and the CDKTF constructs call these at synth and plan time. Every
validator returns an error message written for the user, or None when the value is acceptable.
Limits come from the PutParameter / AddTagsToResource API reference
(https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from . import aws_rules
from .base import Ownership

TIERS = ("Standard", "Advanced", "Intelligent-Tiering")
# Tiers whose parameters may carry parameter policies (Intelligent-Tiering becomes Advanced when a
# request includes policies, so it is allowed too).
POLICY_TIERS = ("Advanced", "Intelligent-Tiering")

MAX_NAME_LENGTH = 1011  # user-visible limit, *including* the ARN text that precedes the name
MAX_HIERARCHY_LEVELS = 15
MAX_DESCRIPTION_LENGTH = 1024
# Room kept at the end of the description for the ownership suffix we append (see below).
DESCRIPTION_RESERVED = 200
MAX_USER_DESCRIPTION_LENGTH = MAX_DESCRIPTION_LENGTH - DESCRIPTION_RESERVED
MAX_KMS_KEY_ID_LENGTH = 256
MAX_USER_TAGS = aws_rules.MAX_USER_TAGS  # tags (limits shared with Secrets Manager): aws_rules

_NAME_CHARS = re.compile(r"[a-zA-Z0-9_.\-/]+")
# ARN text before a name, for the longest partition and region: without a region we stay conservative.
_WORST_CASE_ARN_PREFIX = "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter"


def _arn_prefix(name: str, region: str | None) -> str:
    if region is None:
        base = _WORST_CASE_ARN_PREFIX
    else:
        partition = "aws-cn" if region.startswith("cn-") else (
            "aws-us-gov" if region.startswith("us-gov-") else "aws")
        base = f"arn:{partition}:ssm:{region}:123456789012:parameter"
    # The ARN of "/a/b" is ".../parameter/a/b"; of "a" it is ".../parameter/a".
    return base if name.startswith("/") else base + "/"


def validate_parameter_name(name: str, region: str | None = None) -> str | None:
    """AWS's parameter naming rules. `region` (when known) makes the length check exact."""
    if not isinstance(name, str) or not name:
        return "a parameter name must be a non-empty string"
    if not _NAME_CHARS.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-/"))})
        return (f"parameter name {name!r} contains characters SSM does not allow ({''.join(bad)!r}); "
                "use only a-z, A-Z, 0-9, '_', '.', '-' and '/' for the hierarchy")
    if "/" in name:
        if not name.startswith("/"):
            return (f"parameter name {name!r} uses a hierarchy, so it must be fully qualified "
                    "and start with '/'")
        if name.endswith("/"):
            return f"parameter name {name!r} must not end with '/'"
        if "//" in name:
            return f"parameter name {name!r} has an empty hierarchy level ('//')"
        if name.count("/") > MAX_HIERARCHY_LEVELS:
            return (f"parameter name {name!r} has {name.count('/')} hierarchy levels; "
                    f"SSM allows at most {MAX_HIERARCHY_LEVELS}")
    if name.lstrip("/").lower().startswith(("aws", "ssm")):
        return (f"parameter name {name!r} is reserved: names (after a leading '/') can't begin "
                "with 'aws' or 'ssm', in any case")
    limit = MAX_NAME_LENGTH - len(_arn_prefix(name, region))
    if len(name) > limit:
        where = f"in {region}" if region else "in every region"
        return (f"parameter name is {len(name)} characters; SSM allows {limit} {where} "
                f"({MAX_NAME_LENGTH} including the ARN prefix)")
    return None


def validate_kms_key_id(key_id: str) -> str | None:
    """A KMS key id, key ARN, alias name ("alias/...") or alias ARN, as PutParameter's KeyId accepts."""
    return aws_rules.validate_kms_key_id(key_id, service="SSM", max_length=MAX_KMS_KEY_ID_LENGTH,
                                         default_key="the account's default key")


def validate_tags(tags: Mapping[str, str]) -> str | None:
    """The user's tags; two more (managed-by, tokendrop:issuer) are added by tokendrop."""
    return aws_rules.validate_tags(tags, service="SSM", per="parameter")


def validate_tier(tier: str) -> str | None:
    if tier not in TIERS:
        return f"tier {tier!r} is not one of {', '.join(TIERS)}"
    return None


def validate_description(description: str) -> str | None:
    """The user's part of the Description; tokendrop appends its ownership suffix after it."""
    if not isinstance(description, str):
        return "description must be a string"
    if len(description) > MAX_USER_DESCRIPTION_LENGTH:
        return (f"description is {len(description)} characters; at most {MAX_USER_DESCRIPTION_LENGTH} "
                f"are allowed (SSM's limit is {MAX_DESCRIPTION_LENGTH} and tokendrop keeps "
                f"{DESCRIPTION_RESERVED} for its ownership record)")
    if _MARKER_OPEN in description:
        return f"description must not contain {_MARKER_OPEN!r}: tokendrop writes that record itself"
    return None


def validate_expires_at(expires_at: str) -> str | None:
    """An ISO 8601 timestamp with a time zone (the Expiration policy needs an absolute instant)."""
    try:
        parsed = datetime.fromisoformat(expires_at)
    except (TypeError, ValueError):
        return f"expires_at {expires_at!r} is not an ISO 8601 timestamp"
    if parsed.tzinfo is None:
        return f"expires_at {expires_at!r} needs a time zone (e.g. a trailing 'Z')"
    return None


def expiration_timestamp(expires_at: str) -> str:
    """The Expiration policy's Timestamp: ISO_INSTANT in UTC with milliseconds."""
    parsed = datetime.fromisoformat(expires_at).astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


# --- ownership record -------------------------------------------------------------------------
#
# PutParameter writes Description atomically with the value, so the record lives there, as a
# compact suffix after the user's text:
#     "<user description> [tokendrop issuer=tfe token=at-123 owner=1a2b3c4d5e6f version=2]"
# `version` is the parameter version the write creates. AWS (and moto) keep the old Description when
# someone overwrites the value without one, so a record whose version differs from the parameter's
# Version describes an older value. Values are percent-encoded so spaces and ']' cannot break it.

_MARKER_OPEN = "[tokendrop "
_SAFE = "-._~:@/+="
_RECORD = re.compile(r"(?:^| )\[tokendrop ((?:[a-z_]+=[^\s\]]*)(?: [a-z_]+=[^\s\]]*)*)\]\Z")


def format_description(user_description: str | None, ownership: Ownership, version: int) -> str:
    """The full Description: the user's text (may be empty) followed by the ownership suffix."""
    fields = (("issuer", ownership.issuer), ("token", ownership.token_id),
              ("owner", ownership.owner), ("version", str(version)))
    suffix = _MARKER_OPEN + " ".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in fields) + "]"
    return f"{user_description} {suffix}" if user_description else suffix


def parse_description(description: str | None) -> tuple[str, Ownership | None]:
    """Split a Description into (user text, ownership record or None when there is no valid record)."""
    if not description:
        return "", None
    match = _RECORD.search(description)
    if match is None:
        return description, None
    fields: dict[str, str] = {}
    for item in match.group(1).split(" "):
        key, _, value = item.partition("=")
        fields[key] = unquote(value)
    user = description[: match.start()]
    try:
        version = int(fields["version"]) if "version" in fields else None
        ownership = Ownership(token_id=fields["token"], issuer=fields["issuer"],
                              owner=fields["owner"], version=version)
    except (KeyError, ValueError):
        return description, None
    if not ownership.token_id or not ownership.issuer:
        return description, None
    return user, ownership
