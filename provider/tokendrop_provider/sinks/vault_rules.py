"""Pure rules for Vault KV v2 sinks: validators for mount, path and field.

No HTTP client here: the schema module and the CDKTF constructs call these at synth and plan time. Every
validator returns an error message written for the user, or None when the value is acceptable.

The rules are stricter than Vault's own: they keep to characters that need no URL escaping and carry
no meaning in ACL policy paths ('*' and '+' are globs there), so that the policy a user writes for a
sink matches exactly the path tokendrop writes.
"""

from __future__ import annotations

import re

MAX_MOUNT_LENGTH = 128
MAX_PATH_LENGTH = 512
MAX_FIELD_LENGTH = 128

_SEGMENT = re.compile(r"[A-Za-z0-9_.\-@=:,~]+")
_MOUNT_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")
_FIELD = re.compile(r"[A-Za-z0-9_.\-]+")
# Mount points Vault reserves for itself; a KV engine can never live there.
_RESERVED_MOUNTS = ("sys", "auth", "identity", "cubbyhole")


def _segments_error(what: str, value: str, segment_re: re.Pattern[str], allowed: str) -> str | None:
    if value.startswith("/") or value.endswith("/"):
        return f"{what} {value!r} must not start or end with '/'"
    for segment in value.split("/"):
        if not segment:
            return f"{what} {value!r} has an empty segment ('//')"
        if segment in (".", ".."):
            return f"{what} {value!r} must not contain '.' or '..' segments"
        if "*" in segment or "+" in segment:
            return f"{what} {value!r} must not contain '*' or '+' (they are globs in Vault policies)"
        if not segment_re.fullmatch(segment):
            return f"{what} {value!r} may contain only {allowed}, with '/' between segments"
    return None


def validate_mount(mount: str) -> str | None:
    """The KV v2 mount point, without slashes at either end (e.g. "secret" or "team/kv")."""
    if not isinstance(mount, str) or not mount:
        return "mount must be a non-empty string (e.g. \"secret\")"
    if len(mount) > MAX_MOUNT_LENGTH:
        return f"mount is {len(mount)} characters; at most {MAX_MOUNT_LENGTH} are allowed"
    error = _segments_error("mount", mount, _MOUNT_SEGMENT, "letters, digits, '_', '.' and '-'")
    if error:
        return error
    if mount.split("/", 1)[0].lower() in _RESERVED_MOUNTS:
        return f"mount {mount!r} is reserved by Vault ({', '.join(_RESERVED_MOUNTS)}); use a KV v2 mount"
    return None


def validate_path(path: str) -> str | None:
    """The secret's path inside the mount, without the mount and without `data/` (e.g. "ci/agents/token")."""
    if not isinstance(path, str) or not path:
        return "path must be a non-empty string (e.g. \"ci/agents/token\")"
    if len(path) > MAX_PATH_LENGTH:
        return f"path is {len(path)} characters; at most {MAX_PATH_LENGTH} are allowed"
    error = _segments_error("path", path, _SEGMENT,
                            "letters, digits and the characters _ . - @ = : , ~")
    if error:
        return error
    if path.split("/", 1)[0] in ("data", "metadata"):
        # An easy mistake: the KV v2 API prefixes are added by tokendrop.
        return (f"path {path!r} starts with {path.split('/', 1)[0]!r}/; give the path inside the mount "
                "without the KV v2 API prefix (tokendrop adds data/ and metadata/)")
    return None


def validate_field(field: str) -> str | None:
    """The key inside the secret's data that holds the token (default "token")."""
    if not isinstance(field, str) or not field:
        return "field must be a non-empty string (e.g. \"token\")"
    if len(field) > MAX_FIELD_LENGTH:
        return f"field is {len(field)} characters; at most {MAX_FIELD_LENGTH} are allowed"
    if not _FIELD.fullmatch(field):
        return f"field {field!r} may contain only letters, digits, '_', '.' and '-'"
    return None
