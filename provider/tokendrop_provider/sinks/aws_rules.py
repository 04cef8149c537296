"""Pure rules shared by the AWS sinks (SSM, Secrets Manager): the tags tokendrop sets, the user-tag
validator, how desired and current tags are compared, and the KMS key id rule. Each sink module keeps
its own limits and wording and calls these.

No boto3 here (stdlib only): the schema module and the CDKTF constructs call these at synth and plan time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# Tags tokendrop sets itself; users may not set these keys.
MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "tokendrop"
ISSUER_TAG = "tokendrop:issuer"
RESERVED_TAG_PREFIX = "tokendrop:"

MAX_TAGS_PER_RESOURCE = 50  # a parameter, or a secret
MAX_USER_TAGS = MAX_TAGS_PER_RESOURCE - 2  # tokendrop sets managed-by and tokendrop:issuer itself
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

_KMS_KEY_CHARS = re.compile(r"[a-zA-Z0-9:/_-]+")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_TAG_CHARACTERS = "letters, numbers, spaces and the characters _ . : / = + - @"


def tag_text_ok(text: str) -> bool:
    """AWS's tag pattern ^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$ (letters, separators, numbers, a few symbols)."""
    return all(unicodedata.category(c)[0] in "LZN" or c in _TAG_PUNCTUATION for c in text)


def validate_tags(tags: Mapping[str, str], *, service: str, per: str, text_ok: Callable[[str], bool] = tag_text_ok,
                  name_the_part: bool = True, reserved_note: str = " itself") -> str | None:
    """The user's tags, for `service` (named in the messages) whose resources are `per` ("parameter").

    `name_the_part`: a character error says whether the key or the value is at fault ("tag key 'k'",
    "the value of tag 'k'"), else "tag 'k'" for both. `reserved_note` ends the reserved-key message.
    """
    if not isinstance(tags, Mapping):
        return "tags must be a map of strings"
    if len(tags) > MAX_USER_TAGS:
        return (f"{len(tags)} tags given; {service} allows {MAX_TAGS_PER_RESOURCE} per {per} and "
                f"tokendrop sets 2 itself, so at most {MAX_USER_TAGS}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return "tag keys and values must be strings"
        if not 1 <= len(key) <= MAX_TAG_KEY_LENGTH:
            return f"tag key {key!r} must be 1 to {MAX_TAG_KEY_LENGTH} characters"
        if len(value) > MAX_TAG_VALUE_LENGTH:
            return f"the value of tag {key!r} is longer than {MAX_TAG_VALUE_LENGTH} characters"
        for text, part in ((key, f"tag key {key!r}"), (value, f"the value of tag {key!r}")):
            if not text_ok(text):
                return f"{part if name_the_part else f'tag {key!r}'} may contain only {_TAG_CHARACTERS}"
        if key.lower().startswith("aws:"):
            return f"tag key {key!r} is reserved: keys starting with 'aws:' belong to AWS"
        if key == MANAGED_BY_TAG or key.startswith(RESERVED_TAG_PREFIX):
            return (f"tag key {key!r} is reserved: tokendrop sets '{MANAGED_BY_TAG}' and "
                    f"'{RESERVED_TAG_PREFIX}*'{reserved_note}")
    return None


def desired_tags(user_tags: Mapping[str, str], issuer: str | None) -> dict[str, str]:
    """The tags a parameter or secret should carry: tokendrop's own, then the user's."""
    tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE}
    if issuer:
        tags[ISSUER_TAG] = issuer
    tags.update(user_tags)
    return tags


def tag_changes(current: Mapping[str, str], desired: Mapping[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    """(tags to add or change, as AWS's Key/Value list; keys to remove). Tags are authoritative, except
    AWS's own and tokendrop's (which we only ever set)."""
    to_add = [{"Key": k, "Value": v} for k, v in desired.items() if current.get(k) != v]
    to_remove = [k for k in current if k not in desired and not k.startswith(("aws:", RESERVED_TAG_PREFIX))]
    return to_add, to_remove


def tag_map(tag_list: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """AWS's Key/Value tag list as a mapping."""
    return {t["Key"]: t.get("Value", "") for t in tag_list}


def user_tags(tag_list: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The user's tags in AWS's Key/Value tag list: without AWS's own and tokendrop's."""
    return {t["Key"]: t.get("Value", "") for t in tag_list
            if t["Key"] != MANAGED_BY_TAG and not t["Key"].startswith(("aws:", RESERVED_TAG_PREFIX))}


def validate_kms_key_id(key_id: str, *, service: str, max_length: int, default_key: str,
                        shape_checked_up_to: int | None = None) -> str | None:
    """A KMS key id, key ARN, alias name ("alias/...") or alias ARN, at most `max_length` characters
    (`service`'s limit). `default_key` names what an unset kms_key_id means. The shape is checked for
    ids of at most `shape_checked_up_to` characters (all, when None)."""
    if not isinstance(key_id, str) or not key_id:
        return f"kms_key_id must be a non-empty string (leave it unset for {default_key})"
    if len(key_id) > max_length:
        return f"kms_key_id is {len(key_id)} characters; {service} allows at most {max_length}"
    if shape_checked_up_to is not None and len(key_id) > shape_checked_up_to:
        return None
    if not _KMS_KEY_CHARS.fullmatch(key_id):
        return f"kms_key_id {key_id!r} may contain only a-z, A-Z, 0-9, ':', '/', '_' and '-'"
    if key_id.startswith("arn:"):
        parts = key_id.split(":", 5)
        if (len(parts) != 6 or parts[2] != "kms" or not parts[5].startswith(("key/", "alias/"))
                or parts[5] in ("key/", "alias/")):
            return (f"kms_key_id {key_id!r} is not a KMS key or alias ARN "
                    "(arn:<partition>:kms:<region>:<account>:key/<id> or ...:alias/<name>)")
    elif key_id == "alias/":
        return "kms_key_id 'alias/' needs an alias name after the slash"
    return None


_ROLE_ARN = re.compile(r"arn:aws(?:-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}")


def validate_role_arn(arn: str) -> str | None:
    """An IAM role ARN, as STS AssumeRole takes it: arn:<partition>:iam::<12-digit account>:role/<name>."""
    if not isinstance(arn, str) or not _ROLE_ARN.fullmatch(arn):
        return f"{arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"
    return None


def role_account(arn: str) -> str:
    """The 12-digit account of a valid role ARN."""
    return arn.split(":")[4]
