"""Every resource's attributes, types, validation and documentation, once, as plain data.

The provider serves these schemas to Terraform and validates plans with them; the CDKTF constructs
import this module (and nothing heavier) to name their attributes and validate at synth time; the
reference docs are generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import overlap
from .attributes import Attr, Check, ResourceSchema, exactly_one_of
from .markers import APPROLE_MARKER_KEY
from .sinks import aws_rules, secrets_manager_rules, ssm_rules, vault_rules
from .types import BOOL, NUMBER, STRING, ListOf, MapOf, ObjectOf, SetOf, Unknown
from .validation import (
    Rule,
    cidr,
    duration,
    each,
    format_duration,
    from_function,
    length,
    max_items,
    one_of,
    parse_duration,
    pattern,
    rfc3339,
    unique,
)

PROVIDER_SOURCE = "registry.terraform.io/tokendrop/tokendrop"
PROVIDER_NAME = "tokendrop"

# The provider block is built from the registered issuers' and sinks' settings: registry/__init__.py.

# --- sinks: one `deliver_to` shape for every token resource ---------------------------------------

_REGION_RULE = from_function(secrets_manager_rules.validate_region, "an AWS region, e.g. `eu-west-1`")
_ROLE_RULE = from_function(aws_rules.validate_role_arn, "an IAM role ARN (`arn:aws:iam::123456789012:role/name`)")


def _assume_role(what: str) -> Attr:
    return Attr("assume_role_arn", STRING, f"An IAM role in the account of this {what}: the provider assumes it "
                "(STS AssumeRole with its own AWS credentials, session name `tokendrop-<resource type>`, once per "
                "role and region per run) to reach it. Changing it replaces the resource.", optional=True,
                on_change="replace", rules=(_ROLE_RULE,))


SSM_SINK = Attr(
    "ssm",
    description="Deliver into an AWS SSM Parameter Store `SecureString` parameter.",
    optional=True,
    nested=(
        Attr("name", STRING, "Parameter name, e.g. `/ci/tfc-agent/token`.", required=True, on_change="replace",
             rules=(from_function(ssm_rules.validate_parameter_name,
                                  "a valid SSM parameter name (a-zA-Z0-9_.-/, fully qualified when hierarchical, "
                                  "at most 15 levels, not starting with aws or ssm)"),)),
        Attr("kms_key_id", STRING, "KMS key id, ARN or alias; the account's `alias/aws/ssm` when unset. "
             "Changing it rotates the token (the value is re-encrypted by writing a new one).",
             optional=True, on_change="rotate",
             rules=(from_function(ssm_rules.validate_kms_key_id, "a KMS key id, ARN or alias"),)),
        Attr("tier", STRING, "Parameter tier. Changing it rotates the token; AWS never moves a parameter "
             "from Advanced back to Standard.", optional=True, on_change="rotate",
             rules=(one_of("Standard", "Advanced", "Intelligent-Tiering"),)),
        Attr("description", STRING, "Parameter description. tokendrop appends its ownership record to it. "
             "Changing it rotates the token (SSM rewrites the value with the description).",
             optional=True, on_change="rotate",
             rules=(from_function(ssm_rules.validate_description,
                                  f"at most {ssm_rules.MAX_USER_DESCRIPTION_LENGTH} characters"),)),
        Attr("tags", MapOf(STRING), "Tags on the parameter (besides tokendrop's own). Updated in place.",
             optional=True, on_change="update",
             rules=(from_function(ssm_rules.validate_tags, f"at most {ssm_rules.MAX_USER_TAGS} tags; keys 1–128, "
                                  "values ≤ 256 characters"),)),
        Attr("region", STRING, "AWS region of this parameter; the provider's `aws_region` when unset. With "
             "several sinks, one token can be delivered to each region that reads it. Changing it replaces the "
             "resource.", optional=True, on_change="replace",
             rules=(_REGION_RULE,)),
        _assume_role("parameter"),
    ),
)

VAULT_KV_SINK = Attr(
    "vault_kv",
    description="Deliver into a HashiCorp Vault (or OpenBao) KV version 2 secret.",
    optional=True,
    nested=(
        Attr("mount", STRING, "KV v2 mount path.", optional=True, computed=True, default="secret",
             on_change="replace",
             rules=(from_function(vault_rules.validate_mount, "a mount path without leading or trailing /"),)),
        Attr("path", STRING, "Secret path inside the mount, e.g. `ci/tfc-agent/batch`.", required=True,
             on_change="replace",
             rules=(from_function(vault_rules.validate_path,
                                  "a relative secret path without `..` or empty segments"),)),
        Attr("field", STRING, "Key of the secret's data that holds the token.", optional=True, computed=True,
             default="token", on_change="rotate",
             rules=(from_function(vault_rules.validate_field, "a non-empty key"),)),
    ),
)

SECRETS_MANAGER_SINK = Attr(
    "secrets_manager",
    description="Deliver into an AWS Secrets Manager secret (created by tokendrop; its Description holds "
    "tokendrop's ownership record).",
    optional=True,
    nested=(
        Attr("name", STRING, "Secret name, e.g. `ci/tfc-agent/token`.", required=True, on_change="replace",
             rules=(from_function(secrets_manager_rules.validate_secret_name,
                                  "1–512 characters: letters, digits and `/_+=.@-`"),)),
        Attr("kms_key_id", STRING, "KMS key id, ARN or alias; the account's `aws/secretsmanager` key when unset. "
             "Changing it rotates the token (new versions are encrypted with the new key).",
             optional=True, on_change="rotate",
             rules=(from_function(secrets_manager_rules.validate_kms_key_id, "a KMS key id, ARN or alias"),)),
        Attr("tags", MapOf(STRING), "Tags on the secret (besides tokendrop's own). Updated in place.",
             optional=True, on_change="update",
             rules=(from_function(secrets_manager_rules.validate_tags,
                                  f"at most {secrets_manager_rules.MAX_USER_TAGS} tags; keys 1–128, values ≤ 256 "
                                  "characters"),)),
        Attr("replica_regions", ListOf(STRING), "Regions the secret is replicated to (Secrets Manager's own "
             "replication). Updated in place.", optional=True, on_change="update",
             rules=(each(from_function(secrets_manager_rules.validate_region, "an AWS region name")), unique())),
        Attr("field", STRING, "Store a JSON object with the token under this key instead of the plain token.",
             optional=True, on_change="rotate",
             rules=(from_function(secrets_manager_rules.validate_field,
                                  f"a non-empty key of at most {secrets_manager_rules.MAX_FIELD_LENGTH} characters"),)),
        Attr("recovery_window_in_days", NUMBER, "Days a destroyed secret can still be restored (7–30); `0` "
             "deletes it at once, without recovery.", optional=True, computed=True,
             default=secrets_manager_rules.DEFAULT_RECOVERY_WINDOW, on_change="update",
             rules=(Rule(secrets_manager_rules.validate_recovery_window, "0, or 7 to 30"),)),
        Attr("region", STRING, "AWS region of this secret (its primary region); the provider's `aws_region` when "
             "unset. With several sinks, one token can be delivered to each region that reads it. Changing it "
             "replaces the resource.", optional=True, on_change="replace",
             rules=(_REGION_RULE,)),
        _assume_role("secret"),
    ),
)

def _registered_sinks() -> tuple[Attr, ...]:
    from .registry import sinks

    return tuple(entry.attribute for entry in sinks.SINKS)


class RegisteredSinkBlocks(Sequence[Attr]):
    """The blocks of `deliver_to`: each registered sink's own attribute (`SinkKind.attribute`, in the
    order of registry/sinks.py), wherever it is declared (above, or in the sink's entry module). Read
    on use, not when this module loads: the sink entries import this module, and a sink registered by
    a test appears here too. So a new sink is one module and one registry line, and no edit here."""

    def __getitem__(self, index: Any) -> Any:
        return _registered_sinks()[index]

    def __len__(self) -> int:
        return len(_registered_sinks())

    def __iter__(self) -> Iterator[Attr]:
        return iter(_registered_sinks())

    def __repr__(self) -> str:
        return f"RegisteredSinkBlocks({[a.name for a in self]})"


DELIVER_TO = Attr(
    "deliver_to",
    description="Where the token value goes: one object setting exactly one of the blocks below, or a list "
    "of such objects (`[{ ssm = {…} }, { vault_kv = {…} }]`): every sink of the list holds the same live token. "
    "Changing a location, or the list of sinks, replaces the resource; changing how a value is stored (KMS "
    "key, field) rotates the token.",
    required=True,
    nested=RegisteredSinkBlocks(),
    nesting="one_or_list",
)


def _sinks_check(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    """Each element of deliver_to sets exactly one sink; a list names at least one, each location once."""
    from .registry.sinks import address_of

    value = config.get("deliver_to")
    names = [a.name for a in DELIVER_TO.nested or ()]
    if not isinstance(value, list | tuple):
        return exactly_one_of(("deliver_to",), names).fn(config) + _own_region_replica(value, ("deliver_to",))
    if not value:
        return [(("deliver_to",), "must name at least one sink (an empty list delivers the token nowhere)")]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    for i, element in enumerate(value):
        found = exactly_one_of(("deliver_to",), names).fn({"deliver_to": element})
        problems += [(("deliver_to", i, *path[1:]), message) for path, message in found]
        problems += _own_region_replica(element, ("deliver_to", i))
        address = address_of(element) if not found else None
        if isinstance(address, str):
            if address in seen:
                problems.append((("deliver_to", i), f"delivers to {address} again (already sink {seen[address]}); "
                                 "each sink of one token is a different location"))
            seen.setdefault(address, i)
    return problems


def _own_region_replica(element: object, at: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """A Secrets Manager sink naming its own region cannot replicate to it (known at synth time; with the
    provider's region, the plan checks it)."""
    block = element.get(SECRETS_MANAGER_SINK.name) if isinstance(element, Mapping) else None
    if not isinstance(block, Mapping) or not isinstance(block.get("region"), str):
        return []
    regions = block.get("replica_regions")
    if isinstance(regions, list | tuple) and block["region"] in regions:
        return [((*at, SECRETS_MANAGER_SINK.name, "replica_regions"),
                 f"replica_regions must not include the secret's own region {block['region']}")]
    return []


DELIVER_TO_CHECK = Check(_sinks_check, "each element of deliver_to sets exactly one sink block; a list names "
                         "at least one sink and each location once")

# --- lifecycle arguments and state of every token resource ----------------------------------------

_MIN_ROTATION = timedelta(hours=1)

LIFECYCLE_ARGUMENTS = (
    Attr("rotate_every", STRING, "Rotate once this long has passed since the token was minted, e.g. `30d`. "
         "The plan shows the rotation and its reason.", optional=True,
         rules=(duration(minimum=_MIN_ROTATION),)),
    Attr("rotate_on", MapOf(STRING), "Arbitrary values; any change rotates the token (like `keepers`).",
         optional=True, on_change="rotate"),
    Attr("keep_previous_for", STRING, "After a rotation, the previous token stays valid this long so running "
         "agents can pick up the new value; the first apply after that revokes it. Default: revoke at once.",
         optional=True, rules=(duration(),)),
    Attr("adopt_existing", BOOL, "Take over a sink that already holds a token written by another "
         "resource or stack, instead of failing.", optional=True, computed=True, default=False),
    Attr("revoke_previous_when", STRING, "When the token kept by `keep_previous_for` is revoked: "
         "`overlap_ended` (unset: once `keep_previous_for` has passed) or `unused` (once the issuer reports it "
         "unused for `previous_unused_for`, and at the latest when `keep_previous_for` has passed; needs "
         "`keep_previous_for`). The plan says why it waits.", optional=True,
         rules=(one_of(*overlap.REVOKE_PREVIOUS_WHEN),)),
    Attr("previous_unused_for", STRING, "With `revoke_previous_when = \"unused\"`: how long the previous token "
         f"must have gone unused before it is revoked. Unset: {format_duration(overlap.DEFAULT_UNUSED_FOR)}; "
         "shorter than `keep_previous_for`.", optional=True, rules=(duration(minimum=timedelta(minutes=1)),)),
)


def _revoke_previous_check(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    when, keep, unused_for = (config.get(n) for n in ("revoke_previous_when", "keep_previous_for",
                                                        "previous_unused_for"))
    if any(isinstance(v, Unknown) for v in (when, keep, unused_for)):
        return []
    if when != overlap.UNUSED:
        if unused_for is not None:
            return [(("previous_unused_for",), 'previous_unused_for only applies with revoke_previous_when = '
                     '"unused"')]
        return []
    try:
        grace = parse_duration(str(keep)) if keep is not None else timedelta(0)
        idle = parse_duration(str(unused_for)) if unused_for is not None else overlap.DEFAULT_UNUSED_FOR
    except ValueError:
        return []  # the duration rules report malformed values
    if grace <= timedelta(0):
        return [(("revoke_previous_when",), 'revoke_previous_when = "unused" needs keep_previous_for: it is the '
                 "longest the previous token is kept while the issuer still reports it in use")]
    if idle >= grace:
        return [(("previous_unused_for",), f"previous_unused_for ({format_duration(idle)}) must be shorter than "
                 f"keep_previous_for ({keep}), or the previous token is always kept for keep_previous_for")]
    return []


REVOKE_PREVIOUS_CHECK = Check(_revoke_previous_check, 'revoke_previous_when = "unused" needs keep_previous_for, '
                              "and previous_unused_for is shorter than it")


def without_last_use(arguments: Sequence[Attr], why: str) -> tuple[Attr, ...]:
    """The lifecycle arguments of a resource whose previous token's use cannot be told (`why`):
    `revoke_previous_when = "unused"` is refused, at synth and at plan time."""
    def refuse(value: object) -> str | None:
        return None if value == overlap.OVERLAP_ENDED else (
            f'"unused" is not supported here: {why}, so tokendrop cannot tell when the previous token is idle. '
            'Use "overlap_ended" (revoked once keep_previous_for has passed)')

    return tuple(Attr(a.name, a.type, a.description.split(":", 1)[0] + f": only `overlap_ended`, as {why}.",
                      optional=True, rules=(Rule(refuse, "`overlap_ended`"),))
                 if a.name == "revoke_previous_when" else a
                 for a in arguments if a.name != "previous_unused_for")  # it applies only to "unused"

# For tokens with an issuer-side expiry (Buildkite `expires_at`, Token Vault grants, AppRole TTLs).
ROTATE_BEFORE_EXPIRY = Attr(
    "rotate_before_expiry", STRING, "Rotate this long before the live token expires at the issuer, e.g. `7d`. "
    "The plan shows the rotation and its reason; the new token gets a fresh expiry.", optional=True,
    rules=(duration(),))

DELIVERY_STATE = (
    Attr("id", STRING, "The issuer's id of the live token.", computed=True),
    Attr("sink_address", STRING, "Where the value was delivered, e.g. `ssm:/ci/tfc-agent/token`.", computed=True),
    Attr("sink_version", NUMBER, "Version of the sink entry that holds the live token.", computed=True),
    Attr("sink_status", STRING, "`delivered`, or what refresh found wrong with the sink (`missing`, "
         "`overwritten`), or `unknown` after an apply that could not tell whether its write landed; anything "
         "but `delivered` plans a new token.", computed=True),
    Attr("created_at", STRING, "When the live token was minted (RFC 3339).", computed=True),
    Attr("expires_at", STRING, "When the live token expires at the issuer, if it does.", computed=True),
    Attr("previous_token_id", STRING, "The token replaced by the last rotation while `keep_previous_for` "
         "keeps it valid.", computed=True),
    Attr("previous_revoke_after", STRING, "When the previous token will be revoked (the first apply after).",
         computed=True),
    Attr("sinks", ListOf(ObjectOf((("address", STRING), ("status", STRING), ("version", NUMBER)))),
         "Every sink of `deliver_to`, in its order: `address`, the `version` that holds the live token, and "
         "`status`: `delivered`, `pending` (not written yet: the next apply writes it), `unknown`, `missing` or "
         "`overwritten`. `sink_address`, `sink_version` and `sink_status` describe the first one.", computed=True),
)

# deliver_to became "one object or a list" (a dynamic attribute) in version 1; version 0 state holds the
# object form, which reads unchanged (resources/base.py `Resource.upgrade`).
DELIVER_TO_VERSION = 1

TOKEN_IN_STATE = ("ids, the sink address and version, timestamps and the previous token's id: never the "
                  "token value, never a hash of it.")

# --- HCP Terraform / TFE --------------------------------------------------------------------------

_TFE_ORG = pattern(r"[A-Za-z0-9_-]+", "must contain only letters, numbers, - and _",
                   "letters, numbers, `-` and `_`")


def _org_scope_check(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    scoped = config.get("organization_scoped")
    if scoped is not True:
        return []
    return [((name,), f"{name} only applies to a pool with organization_scoped = false "
             "(an organization-scoped pool serves every workspace)")
            for name in ("allowed_workspace_ids", "allowed_project_ids")
            if config.get(name) and not isinstance(config.get(name), Unknown)]


TFE_AGENT_POOL = ResourceSchema(
    type_name="tokendrop_tfe_agent_pool",
    description="An HCP Terraform / Terraform Enterprise agent pool and the workspaces and projects "
    "allowed to use it.",
    attributes=(
        Attr("id", STRING, "Agent pool id (`apool-…`).", computed=True),
        Attr("organization", STRING, "Organization name.", required=True, on_change="replace",
             rules=(length(1, 255), _TFE_ORG)),
        Attr("name", STRING, "Pool name, unique in the organization.", required=True,
             rules=(length(1, 255), pattern(r"[A-Za-z0-9_-]+", "must contain only letters, numbers, - and _",
                                            "letters, numbers, `-` and `_`"))),
        Attr("organization_scoped", BOOL, "When true (the API's default) every workspace of the organization "
             "may use the pool; set false to restrict it to the allowed workspaces and projects.",
             optional=True, computed=True, default=True),
        Attr("allowed_workspace_ids", SetOf(STRING), "Workspaces (`ws-…`) allowed to use the pool.",
             optional=True, rules=(each(pattern(r"ws-[A-Za-z0-9]+", "is not a workspace id (ws-…)")),
                                   max_items(1000))),
        Attr("allowed_project_ids", SetOf(STRING), "Projects (`prj-…`) whose workspaces may use the pool.",
             optional=True, rules=(each(pattern(r"prj-[A-Za-z0-9]+", "is not a project id (prj-…)")),)),
        Attr("excluded_workspace_ids", SetOf(STRING), "Workspaces (`ws-…`) excluded from the pool's scope.",
             optional=True, rules=(each(pattern(r"ws-[A-Za-z0-9]+", "is not a workspace id (ws-…)")),)),
        Attr("created_at", STRING, "When the pool was created (RFC 3339).", computed=True),
    ),
    checks=(Check(_org_scope_check, "allowed ids need organization_scoped = false"),),
    import_id="The pool id (`apool-…`), or `<organization>/<pool name>`.",
    in_state="the pool's id, name, scope and timestamps.",
)

TFE_AGENT_TOKEN = ResourceSchema(
    type_name="tokendrop_tfe_agent_token",
    description="An agent token of an HCP Terraform / TFE agent pool, delivered into SSM or Vault. "
    "The value is written to the sink in the same call that mints it and never reaches Terraform.",
    attributes=(
        Attr("agent_pool_id", STRING, "The agent pool (`apool-…`).", required=True, on_change="replace",
             rules=(pattern(r"apool-[A-Za-z0-9]+", "is not an agent pool id (apool-…)",
                            "an agent pool id (`apool-…`)"),)),
        Attr("description", STRING, "Token description. TFE cannot edit a token, so changing it rotates "
             "the token. tokendrop appends a short marker naming the sink.", optional=True, on_change="rotate",
             rules=(length(0, 200),)),
        DELIVER_TO,
        *LIFECYCLE_ARGUMENTS,
        *DELIVERY_STATE,
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK),
    import_id="`<agent pool id>/<sink address>` or `<agent pool id>/<token id>/<sink address>` (e.g. "
    "`apool-123/at-456/ssm:/ci/tfc-agent/token`) for a token whose sink already holds it; the sink comes from "
    "the configuration.",
    import_examples=("apool-123/at-456/ssm:/ci/tfc-agent/token",),
    secret_delivered="the agent token (`TFC_AGENT_TOKEN`)",
    in_state=TOKEN_IN_STATE,
)

# --- Buildkite ------------------------------------------------------------------------------------

BUILDKITE_MIN_EXPIRY = timedelta(minutes=10)  # Buildkite refuses an `expires_at` closer than this

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
BUILDKITE_ORGANIZATION_RULE = pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "is not an organization slug (e.g. `acme-inc`)",
                                      "an organization slug such as `acme-inc`")


def _not_blank(what: str) -> Rule:
    def check(value: object) -> str | None:
        return None if isinstance(value, str) and value.strip() else "must not be empty"

    return Rule(check, f"a non-empty {what}")


_AT_LEAST_ONE_CIDR = Rule(lambda value: None if len(value) else  # type: ignore[arg-type]
                          "must hold at least one CIDR block (leave it unset to allow any address)",
                          "at least one CIDR block")
_EMOJI_SYNTAX = pattern(r"(?::[A-Za-z0-9_+-]+:)+", "is not in the :name: syntax")


def _emoji(value: object) -> str | None:
    # Buildkite's `:name:` syntax (one or more), or literal emoji characters.
    text = value if isinstance(value, str) else ""
    if _EMOJI_SYNTAX(text) is None or (text and all(ord(c) > 0x7F for c in text)):
        return None
    return "is not an emoji: use Buildkite's `:name:` syntax, e.g. `:penguin:`"


def buildkite_organization_fallback(attr_doc: str) -> Attr:
    """`organization` of the Buildkite resources: optional, the provider's organization when unset."""
    return Attr("organization", STRING, f"{attr_doc} The provider's `buildkite_organization` "
                "(`BUILDKITE_ORGANIZATION_SLUG`) when unset. Changing it replaces the resource.",
                optional=True, computed=True, on_change="replace", rules=(BUILDKITE_ORGANIZATION_RULE,))


def buildkite_expiry_problem(expires_at: str, now: datetime) -> str | None:
    """Why a token cannot be minted with this `expires_at` at `now` (Buildkite wants it at least 10
    minutes ahead), or None. The provider checks at plan time; the constructs may at synth time."""
    try:
        moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return None  # the rfc3339 rule reports malformed values
    if moment.tzinfo is None:
        return None
    if moment <= now:
        return f"is in the past ({expires_at}); Buildkite wants an expiry at least 10 minutes ahead"
    if moment - now < BUILDKITE_MIN_EXPIRY:
        left = int((moment - now).total_seconds())
        return (f"is only {left // 60}m{left % 60:02d}s from now; Buildkite wants an expiry at least 10 minutes "
                "ahead (use expires_in for a relative expiry)")
    return None


def _known(value: object) -> bool:
    return value is not None and not isinstance(value, Unknown)


def _buildkite_expiry_check(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    expires_in, expires_at = config.get("expires_in"), config.get("expires_at")
    before = config.get("rotate_before_expiry")
    if _known(expires_in) and _known(expires_at):
        return [(("expires_at",), "set expires_in or expires_at, not both")]
    if not _known(before) or isinstance(expires_in, Unknown) or isinstance(expires_at, Unknown):
        return []
    if _known(expires_at):
        return [(("rotate_before_expiry",), "rotate_before_expiry needs expires_in: with a fixed expires_at "
                 "every new token would expire at the same moment")]
    if expires_in is None:
        return [(("rotate_before_expiry",), "rotate_before_expiry needs expires_in (without an expiry the "
                 "token never expires)")]
    try:
        if parse_duration(str(before)) >= parse_duration(str(expires_in)):
            return [(("rotate_before_expiry",), f"rotate_before_expiry ({before}) must be shorter than "
                     f"expires_in ({expires_in}), or every plan would rotate the token")]
    except ValueError:
        return []  # the duration rules report malformed values
    return []


BUILDKITE_CLUSTER = ResourceSchema(
    type_name="tokendrop_buildkite_cluster",
    description="A Buildkite cluster: the home of agent queues and cluster agent tokens.",
    attributes=(
        Attr("id", STRING, "Cluster UUID, the `cluster_id` of its tokens.", computed=True),
        buildkite_organization_fallback("Organization slug."),
        Attr("name", STRING, "Cluster name.", required=True, rules=(_not_blank("name"),)),
        Attr("description", STRING, "Cluster description.", optional=True),
        Attr("emoji", STRING, "Emoji shown with the cluster, in Buildkite's syntax, e.g. `:penguin:`.",
             optional=True, rules=(Rule(_emoji, "Buildkite's `:name:` emoji syntax, e.g. `:penguin:`"),)),
        Attr("color", STRING, "Color shown with the cluster, as hex `#RRGGBB`.", optional=True,
             rules=(pattern(r"#[0-9A-Fa-f]{6}", "is not a hex color (#RRGGBB, e.g. #FF9900)",
                            "a hex color `#RRGGBB`"),)),
        Attr("graphql_id", STRING, "The cluster's GraphQL id.", computed=True),
        Attr("default_queue_id", STRING, "The cluster's default queue, once one is set (managed outside "
             "this resource).", computed=True),
        Attr("created_at", STRING, "When the cluster was created (RFC 3339).", computed=True),
    ),
    import_id="The cluster UUID (organization from the provider), or `<organization>/<cluster uuid>`.",
    in_state="the cluster's ids, name, description, emoji, color and timestamps.",
)

BUILDKITE_CLUSTER_TOKEN = ResourceSchema(
    type_name="tokendrop_buildkite_cluster_token",
    description="A Buildkite cluster agent token, delivered into SSM or Vault (the Elastic CI Stack reads it "
    "from `BuildkiteAgentTokenParameterStorePath`). The value is written to the sink in the call that mints "
    "it and never reaches Terraform. Description and allowed IPs are edited in place, keeping the token; "
    "Buildkite cannot change a token's expiry, so changing it replaces the token.",
    attributes=(
        buildkite_organization_fallback("Organization slug of the cluster."),
        Attr("cluster_id", STRING, "The cluster's UUID (`tokendrop_buildkite_cluster.<name>.id`).", required=True,
             on_change="replace", rules=(pattern(_UUID, "is not a cluster UUID", "a cluster UUID"),)),
        Attr("description", STRING, "Token description (Buildkite requires one). Edited in place: the token is "
             "kept. tokendrop appends a short marker naming the sink.", required=True, on_change="update",
             rules=(_not_blank("description"),)),
        Attr("allowed_ip_addresses", ListOf(STRING), "IPv4 CIDR blocks agents may connect from with this token "
             "(Buildkite takes no IPv6), "
             "e.g. `[\"10.0.0.0/8\", \"192.0.2.7/32\"]`. Unset: any address (Buildkite's `0.0.0.0/0`). Edited in "
             "place: the token is kept.", optional=True, on_change="update",
             rules=(_AT_LEAST_ONE_CIDR, each(cidr(ipv4_only=True)), unique())),
        Attr("expires_in", STRING, "The token expires this long after it is minted, e.g. `90d` (at least 10m; "
             "under 11m it is minted as 11m, as Buildkite checks the minimum on its own clock). Each rotation "
             "mints a token with a fresh expiry. Changing it replaces the token.", optional=True,
             on_change="replace", rules=(duration(minimum=BUILDKITE_MIN_EXPIRY),)),
        Attr("expires_at", STRING, "A fixed expiry (RFC 3339, at least 10 minutes ahead when the token is "
             "minted); with `expires_in`, the computed expiry of the live token. Buildkite cannot change an "
             "expiry, so changing it replaces the token.", optional=True, computed=True, on_change="replace",
             rules=(rfc3339(),)),
        ROTATE_BEFORE_EXPIRY,
        DELIVER_TO,
        *without_last_use(LIFECYCLE_ARGUMENTS, "Buildkite does not report when a cluster agent token was last "
                           "used"),
        *(a for a in DELIVERY_STATE if a.name != "expires_at"),  # expires_at is an argument here
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK,
            Check(_buildkite_expiry_check, "expires_in and expires_at are mutually exclusive; "
                                    f"rotate_before_expiry needs expires_in and must be shorter than it "
                                    f"(minimum expiry {format_duration(BUILDKITE_MIN_EXPIRY)})")),
    import_id="`<cluster uuid>/<sink address>` or `<cluster uuid>/<token uuid>/<sink address>`, optionally "
    "prefixed with `<organization>/` (e.g. `acme/0189a3c5-7b1e-4c1a-9f0e-5d2c8b7a6e41/ssm:/buildkite/agent-token`), "
    "for a token whose sink "
    "already holds it; the sink comes from the configuration. Set `expires_at` to the token's expiry, if it "
    "has one, or the plan replaces it.",
    import_examples=("acme/0189a3c5-7b1e-4c1a-9f0e-5d2c8b7a6e41/ssm:/buildkite/agent-token",),
    secret_delivered="the cluster agent token (`BUILDKITE_AGENT_TOKEN`)",
    in_state=TOKEN_IN_STATE,
)

# --- Token Vault (tokenvault.uk) agents -----------------------------------------------------------

# An agent grant is POST /api/agents/{id}/grants {agentId, serviceName} (docs/wire.md, "Token Vault"):
# the route takes no expiry and no refresh policy, so tokendrop refuses them rather than report a setting
# Token Vault never applied.
_AGENT_GRANT_ROUTE = ("Token Vault's agent grant route takes only the agent and the service (see the Token Vault "
                      "section of docs/wire.md)")


def _text(what: str) -> Rule:
    def check(value: object) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return "must not be empty"
        return None if value == value.strip() else "must not start or end with whitespace"

    return Rule(check, f"a non-empty {what} without surrounding whitespace")


def _expiry_not_applied(value: object) -> str | None:
    return (f"is not applied to an agent grant: {_AGENT_GRANT_ROUTE}, so no expiry would reach the server. "
            "Remove expires_in (the grant lasts until revoked)")


def _refresh_not_applied(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    grants = config.get("grants")
    if not isinstance(grants, list):
        return []
    return [(("grants", i, "auto_refresh"), f"grants[{i}].auto_refresh: true is not applied: {_AGENT_GRANT_ROUTE}, "
             "so Token Vault would keep its own refresh policy while state said otherwise. Remove auto_refresh "
             "(state shows the policy Token Vault reports)")
            for i, grant in enumerate(grants) if isinstance(grant, Mapping) and grant.get("auto_refresh") is True]


AGENT_ROTATIONS = ("rotate_key", "successor")


def _previous_key_needs_successor(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    if not isinstance(config.get("keep_previous_for"), str) or config.get("rotation") == "successor":
        return []
    return [(("keep_previous_for",), "keep_previous_for needs rotation = \"successor\": rotate-key invalidates the "
             "previous key at once, so no previous key can stay valid. Set rotation = \"successor\" or remove "
             "keep_previous_for")]


def _unique_services(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    grants = config.get("grants")
    if not isinstance(grants, list):
        return []
    first: dict[str, int] = {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, grant in enumerate(grants):
        service = grant.get("service") if isinstance(grant, Mapping) else None
        if not isinstance(service, str):
            continue  # unknown until apply, or missing (reported as required)
        if service in first:
            problems.append((("grants", i, "service"), f"grants[{i}].service: {service!r} is already granted by "
                             f"grants[{first[service]}]; an agent holds one grant per service, so list each "
                             "service once"))
        else:
            first[service] = i
    return problems


TOKENVAULT_GRANT = (
    Attr("service", STRING, "The vault token (service) the agent may use, e.g. `github`.", required=True,
         rules=(_text("service name"), length(1, 200),
                pattern(r"[^/]+", "must not contain / (it is a path segment of Token Vault's API)"))),
    Attr("expires_in", STRING, "Must be left unset: Token Vault's agent grant route takes no expiry, so an agent "
         "grant lasts until revoked (a grant that ends anyway, e.g. set to expire in the dashboard, is granted again "
         "by the next apply).", optional=True,
         rules=(Rule(_expiry_not_applied, "left unset"),)),
    Attr("auto_refresh", BOOL, "The grant's refresh policy as Token Vault reports it (`true` for `auto`). Read "
         "only in effect: setting it to true is a plan error, as the agent grant route cannot set it.",
         optional=True, computed=True, default=False),
    Attr("expires_at", STRING, "When the grant expires at Token Vault (RFC 3339), as the agent's record says; "
         "null while it lasts until revoked.", computed=True),
)

_AGENT_STATE = {a.name: a for a in (
    Attr("created_at", STRING, "When the agent's live key was issued (RFC 3339), as Token Vault reports it; "
         "refresh compares it with the agent to notice a key that was rotated but never delivered.", computed=True),
    Attr("sink_status", STRING, "`delivered`, or what refresh found wrong: the sink is `missing` or `overwritten`, "
         "or `stale` (the agent's key is newer than the one delivered, so the sink holds a dead key); anything but "
         "`delivered` plans a rotation.", computed=True),
)}

TOKENVAULT_AGENT = ResourceSchema(
    type_name="tokendrop_tokenvault_agent",
    description="A Token Vault (tokenvault.uk) agent with its per-service grants. The agent's API key "
    "(`tvagent_…`, shown by Token Vault once) is written to the sink in the call that creates it and never "
    "reaches Terraform. Grants change in place without touching the key; a rotation calls rotate-key, which "
    "keeps the agent (and its id and grants) and invalidates the old key at once, and writes the new key as the "
    "next sink version.",
    attributes=(
        Attr("id", STRING, "The agent id. Rotating the key with rotate-key keeps the agent, so the id does not "
             "change; a `successor` rotation gives a new agent (and id).", computed=True),
        Attr("name", STRING, "Agent name, as shown in the dashboard. Token Vault cannot rename an agent, so "
             "changing it replaces the agent (new id, new key).", required=True, on_change="replace",
             rules=(_text("agent name"), length(1, 100))),
        Attr("description", STRING, "Agent description. Token Vault cannot edit it, so changing it replaces the "
             "agent. tokendrop appends a short marker naming the sink.", optional=True, on_change="replace",
             rules=(length(0, 500),)),
        Attr("grants", description="The services the agent may use. Added, removed and changed in place; the "
             "key is kept. Each service may appear once.", optional=True, nested=TOKENVAULT_GRANT,
             nesting="list"),
        DELIVER_TO,
        *(Attr("keep_previous_for", STRING, "With `rotation = \"successor\"` only: the predecessor agent (and its "
               "key) stays for this long after a rotation; the first apply after that deletes it. rotate-key "
               "invalidates the previous key at once.", optional=True, rules=(duration(),))
          if a.name == "keep_previous_for" else a for a in without_last_use(
              LIFECYCLE_ARGUMENTS, "Token Vault reports no last use of an agent's key")),
        Attr("rotation", STRING, "How a rotation replaces the key. `rotate_key` (unset): Token Vault's rotate-key, "
             "which keeps the agent, its id and grants. `successor`: a new agent with the same name, description "
             "and grants gets the new key and the predecessor is deleted (after `keep_previous_for`); for a "
             "provider key that may not rotate an agent's key (Token Vault answers HUMAN_ONLY). The agent id "
             "changes with each rotation, so grant resources move to the successor in the same apply.",
             optional=True, rules=(one_of(*AGENT_ROTATIONS),)),
        Attr("status", STRING, "`active`, or `suspended` when someone suspended the agent in the dashboard "
             "(its key is refused until it is resumed).", computed=True),
        *(_AGENT_STATE.get(a.name, a) for a in DELIVERY_STATE if a.name != "id"),
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK, Check(_unique_services, "each service is granted once"),
            Check(_refresh_not_applied, "no refresh policy on agent grants"),
            Check(_previous_key_needs_successor, "keep_previous_for only with rotation = \"successor\"")),
    import_examples=("agt_123/ssm:/agents/triage/key",),
    import_id="`<agent id>/<sink address>` (e.g. `agt_123/ssm:/agents/triage/key`) for an agent whose key the "
    "sink already holds; the sink comes from the configuration and the grants are read from the agent.",
    secret_delivered="the agent's API key (`tvagent_…`)",
    in_state="the agent id, name, description, grants with their expiry timestamps, the sink address and "
    "version, and timestamps: never the key, never a hash of it.",
)

TOKENVAULT_AGENT_GRANT = ResourceSchema(
    type_name="tokendrop_tokenvault_agent_grant",
    description="One service granted to a Token Vault agent (POST /api/agents/{id}/grants with exactly "
    "`{agentId, serviceName}`, as the official CLI sends it). State holds what the agent's record reports; "
    "destroy revokes the grant. Use it with a `tokendrop_tokenvault_agent` that leaves `grants` unset: an agent "
    "whose `grants` is set holds exactly those services and revokes any other grant, these included.",
    attributes=(
        Attr("id", STRING, "`<agent id>/<service>`.", computed=True),
        Attr("agent_id", STRING, "The agent (`tokendrop_tokenvault_agent.<name>.id`). Changing it replaces the "
             "grant.", required=True, on_change="replace",
             rules=(_text("agent id"), pattern(r"[^/]+", "must not contain / (it is a path segment of Token "
                                               "Vault's API)"))),
        Attr("service", STRING, "The vault token (service) the agent may use, e.g. `github`. Changing it "
             "replaces the grant.", required=True, on_change="replace", rules=TOKENVAULT_GRANT[0].rules),
        Attr("auto_refresh", BOOL, "Whether Token Vault refreshes the service's OAuth token for this grant "
             "(its refresh policy is `auto`), as the agent's record reports it.", computed=True),
        Attr("expires_at", STRING, "When the grant expires at Token Vault (RFC 3339), as the agent's record "
             "says; null while it lasts until revoked. A grant that ended is granted again by the next apply.",
             computed=True),
    ),
    import_id="`<agent id>/<service>`, e.g. `agt_123/github`, for a grant the agent already holds.",
    import_examples=("agt_123/github",),
    in_state="the agent id, the service, the refresh policy and expiry Token Vault reports: no secret.",
)

# Scoped keys (POST /api/keys). Scope names: the CLI's README list plus the two `explain` names; only a
# signed-in human may put the second group on a key (SCOPE_NOT_DELEGABLE), so the provider's key never can.
TOKENVAULT_SCOPES = (
    "credentials:read", "mcp:use", "tokens:list", "tokens:create", "tokens:create-read", "tokens:update",
    "tokens:delete", "agents:read", "agents:create", "agents:manage", "agents:delete", "grants:write",
    "proxies:read", "proxies:write", "policies:read", "policies:write", "keys:manage", "keys:revoke")
TOKENVAULT_HUMAN_ONLY_SCOPES = ("keys:manage", "keys:revoke", "agents:manage", "agents:delete", "policies:write",
                                "grants:write", "tokens:update", "tokens:delete", "proxies:write")
KEY_GRANT_MIN = timedelta(hours=1)  # the CLI's --expires-in-hours: 1 to 720 whole hours
KEY_GRANT_MAX = timedelta(days=30)


def _delegable(value: object) -> str | None:
    if value in TOKENVAULT_HUMAN_ONLY_SCOPES:
        return (f"{value!r} cannot be given to a key by tokendrop: only a signed-in human may delegate it "
                "(Token Vault answers SCOPE_NOT_DELEGABLE). Create such a key in the dashboard")
    return None


def _whole_hours(value: object) -> str | None:
    try:
        delta = parse_duration(str(value))
    except ValueError:
        return None  # the duration rule reports it
    return None if delta.total_seconds() % 3600 == 0 else (
        f"must be a whole number of hours: Token Vault takes expiresInHours (got {value})")


TOKENVAULT_KEY = ResourceSchema(
    type_name="tokendrop_tokenvault_key",
    description="A Token Vault scoped API key (`tvkey_…`, shown by Token Vault once) written to the sink in the "
    "call that creates it; it never reaches Terraform. Token Vault cannot change a key's scopes, so changing "
    "them rotates: a new key with the new scopes is minted and delivered as the next sink version, then the old "
    "one is revoked (or kept for `keep_previous_for`). Rotation never uses the key rotate route: rotating another "
    "principal's key is human-only there.",
    attributes=(
        Attr("id", STRING, "The key id. A rotation mints a new key, so the id changes.", computed=True),
        Attr("name", STRING, "Key name, as shown in the dashboard; tokendrop appends a short marker naming the "
             "sink. Changing it replaces the key.", required=True, on_change="replace",
             rules=(_text("key name"), length(1, 100))),
        Attr("scopes", SetOf(STRING), "What the key may do, e.g. `[\"agents:read\", \"tokens:list\"]`. Scopes "
             "only a human may delegate (`keys:manage`, `grants:write`, `agents:manage`, …) are refused at plan. "
             "Changing them rotates the key.", required=True, on_change="rotate",
             rules=(Rule(lambda v: None if len(v) else "must name at least one scope",  # type: ignore[arg-type]
                         "at least one scope"),
                    each(one_of(*TOKENVAULT_SCOPES)), each(Rule(_delegable, "a scope a key may delegate")))),
        Attr("expires_at", STRING, "When the key expires (RFC 3339, in the future when a key is minted); unset: "
             "never. Token Vault cannot change a key's expiry, so changing it replaces the key.", optional=True,
             computed=True, on_change="replace", rules=(rfc3339(),)),
        DELIVER_TO,
        *LIFECYCLE_ARGUMENTS,
        *(a for a in DELIVERY_STATE if a.name not in ("id", "expires_at")),
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK),
    import_id="`<key name>/<sink address>` for a key whose sink carries tokendrop's record, or "
    "`<key name>/<key id>/<sink address>` (e.g. `ci-reader/key_123/ssm:/ci/tokenvault/key`).",
    import_examples=("ci-reader/key_123/ssm:/ci/tokenvault/key",),
    secret_delivered="the scoped API key (`tvkey_…`)",
    in_state=TOKEN_IN_STATE,
)

TOKENVAULT_KEY_GRANT = ResourceSchema(
    type_name="tokendrop_tokenvault_key_grant",
    description="One service granted to a scoped key, for a limited time or until revoked "
    "(POST /api/keys/{id}/grants `{serviceName, expiresInHours}`, the route where a grant expiry exists). State "
    "is what Token Vault answers and the key's record reports; destroy revokes the grant. A grant that expired is "
    "granted again, for `expires_in` from then, by the next apply: remove the resource to let it lapse.",
    attributes=(
        Attr("id", STRING, "`<key id>/<service>`.", computed=True),
        Attr("key_id", STRING, "The key (`tokendrop_tokenvault_key.<name>.id`). A rotation mints a new key, so "
             "the grant is replaced with it.", required=True, on_change="replace",
             rules=(_text("key id"), pattern(r"[^/]+", "must not contain / (it is a path segment of Token "
                                             "Vault's API)"))),
        Attr("service", STRING, "The vault token (service) the key may use, e.g. `github`.", required=True,
             on_change="replace", rules=TOKENVAULT_GRANT[0].rules),
        Attr("expires_in", STRING, f"How long the grant lasts, from {format_duration(KEY_GRANT_MIN)} to "
             f"{format_duration(KEY_GRANT_MAX)} in whole hours, e.g. `7d`; unset: until revoked. Changing it "
             "replaces the grant.", optional=True, on_change="replace",
             rules=(duration(minimum=KEY_GRANT_MIN, maximum=KEY_GRANT_MAX),
                    Rule(_whole_hours, "a whole number of hours"))),
        Attr("expires_at", STRING, "When the grant expires (RFC 3339), as Token Vault reports it; null: until "
             "revoked.", computed=True),
        Attr("auto_refresh", BOOL, "Whether Token Vault refreshes the service's OAuth token for this grant "
             "(refresh policy `auto`), as reported.", computed=True),
    ),
    import_id="`<key id>/<service>`, e.g. `key_123/github`, for a grant the key holds (`expires_in` is then "
    "taken as unset).",
    import_examples=("key_123/github",),
    in_state="the key id, the service, the expiry and refresh policy Token Vault reports: no secret.",
)

# --- HashiCorp Vault / OpenBao AppRole secret ids -------------------------------------------------



def _ttl(value: object) -> str | None:
    text = str(value).strip()
    if text.startswith("-"):
        return "must not be negative (use \"0\" for a secret id that never expires)"
    if text == "0":
        return None
    try:
        parse_duration(text)
    except ValueError as err:
        return f"{err}; or \"0\" for no expiry"
    return None


def _count(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if value < 0:
        return "must not be negative (0 means unlimited uses)"
    return None if float(value).is_integer() else "must be a whole number"


def _approle_metadata(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return None
    for key in value:
        if not str(key).strip():
            return "has an empty key"
        if key == APPROLE_MARKER_KEY:
            return f"must not use the key {APPROLE_MARKER_KEY!r}: tokendrop keeps its marker there"
    return None


def _approle_expiry_check(config: Mapping[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    ttl, before = config.get("ttl"), config.get("rotate_before_expiry")
    if before is None or isinstance(before, Unknown) or isinstance(ttl, Unknown):
        return []
    if ttl is None or str(ttl).strip() == "0":
        return [(("rotate_before_expiry",), "rotate_before_expiry needs a ttl: without one the secret id never "
                 "expires (the role's secret_id_ttl is not known at plan time)")]
    try:
        if parse_duration(str(before)) >= parse_duration(str(ttl)):
            return [(("rotate_before_expiry",), f"rotate_before_expiry ({before}) must be shorter than ttl "
                     f"({ttl}), or every plan would rotate the secret id")]
    except ValueError:
        return []  # the duration rules report malformed values
    return []


_CIDRS = (each(cidr()), unique())

VAULT_APPROLE_SECRET_ID = ResourceSchema(
    type_name="tokendrop_vault_approle_secret_id",
    description="A HashiCorp Vault (or OpenBao) AppRole secret id, minted through the provider's Vault "
    "settings and delivered with its role id: as the keys `role_id` and `secret_id` of a Vault KV secret (the "
    "`field` setting does not apply), or as the JSON object `{\"role_id\": …, \"secret_id\": …}` in an SSM "
    "parameter. State keeps the secret id's accessor, never the secret id. Changing the ttl, CIDRs, use count or "
    "metadata mints a new secret id (a rotation).",
    attributes=(
        Attr("id", STRING, "The secret id's accessor (not the secret id: the accessor cannot log in).",
             computed=True),
        Attr("role_name", STRING, "The AppRole role, e.g. `ci`. Changing it replaces the secret id.",
             required=True, on_change="replace",
             rules=(pattern(r"[\w][\w.@-]*", "is not an AppRole role name (letters, digits, _ . @ -)",
                            "letters, digits and `_ . @ -`"), length(1, 128))),
        Attr("mount", STRING, "Mount path of the AppRole auth method (under `auth/`).", optional=True,
             computed=True, default="approle", on_change="replace",
             rules=(from_function(vault_rules.validate_mount, "a mount path without leading or trailing /"),)),
        Attr("ttl", STRING, "Lifetime of the secret id, e.g. `24h`; at most the role's `secret_id_ttl`. "
             "`\"0\"`: no expiry (only for a role whose `secret_id_ttl` is 0). Unset: the role's `secret_id_ttl`.",
             optional=True, on_change="rotate",
             rules=(Rule(_ttl, "a duration such as `24h`, or `\"0\"` for no expiry"),)),
        Attr("cidr_list", ListOf(STRING), "CIDR blocks that may log in with this secret id.", optional=True,
             on_change="rotate", rules=_CIDRS),
        Attr("token_bound_cidrs", ListOf(STRING), "CIDR blocks the tokens issued by a login with this secret id "
             "may be used from.", optional=True, on_change="rotate", rules=_CIDRS),
        Attr("num_uses", NUMBER, "How many logins the secret id allows; 0 (the default) means unlimited. A "
             "used-up secret id is gone, and the next plan mints a new one.", optional=True, on_change="rotate",
             rules=(Rule(_count, "a whole number, 0 or more"),)),
        Attr("metadata", MapOf(STRING), "Metadata attached to the secret id and to the tokens its logins get. "
             "Vault stores it in plaintext, returns it on lookup and writes it unhashed into audit logs: never "
             "put a secret here.", optional=True, on_change="rotate",
             rules=(Rule(_approle_metadata, f"string values; the key `{APPROLE_MARKER_KEY}` is reserved"),)),
        ROTATE_BEFORE_EXPIRY,
        DELIVER_TO,
        *without_last_use(LIFECYCLE_ARGUMENTS, "Vault reports a secret id's last use only when it is "
                           "use-limited (last_updated_time moves as num_uses counts down)"),
        *(a for a in DELIVERY_STATE if a.name != "id"),
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK,
            Check(_approle_expiry_check, "rotate_before_expiry needs a ttl and must be "
                                    "shorter than it")),
    import_id="`<mount>/<role name>/<sink address>` for a secret id whose sink carries tokendrop's record, or "
    "`<mount>/<role name>/<accessor>/<sink address>` (e.g. "
    "`approle/ci/9f1c2b7e-3d4a-4e5f-8a6b-7c8d9e0f1a2b/ssm:/ci/vault/secret-id`); the sink "
    "comes from the configuration.",
    import_examples=("approle/ci/9f1c2b7e-3d4a-4e5f-8a6b-7c8d9e0f1a2b/ssm:/ci/vault/secret-id",),
    secret_delivered="the secret id, with the role id (`role_id`, `secret_id`)",
    in_state="the accessor, role and mount, the sink address and version, and timestamps: never the secret id "
    "or the role id, never a hash of them.",
)


# --- Microsoft Entra Agent ID (Graph) -------------------------------------------------------------

ENTRA_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
ENTRA_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
ENTRA_FIC_NAME_MAX = 120  # Graph: at most 120 characters, URL friendly, immutable
_ENTRA_ID = pattern(ENTRA_GUID, "is not an object id (a GUID)", "a GUID")


def _sponsor(value: object) -> str | None:
    if not re.fullmatch(rf"(users|groups)/{ENTRA_GUID}", str(value)):
        return f"{value!r} is not users/<object id> or groups/<object id>"
    return None


def _sponsor_groups(value: object) -> str | None:
    groups = [v for v in value if str(v).startswith("groups/")]  # type: ignore[attr-defined]
    return "may name at most 5 groups" if len(groups) > 5 else None


_SPONSORS = (length(1, 100), each(Rule(_sponsor, "`users/<object id>` or `groups/<object id>`")),
             Rule(_sponsor_groups, "at most 5 groups"))
_SPONSORS_DOC = ("Sponsors: users or groups accountable for it, as `users/<object id>` or `groups/<object id>` "
                 "(1 to 100, at most 5 groups). Graph requires at least one. Updated in place (new ones are added "
                 "before old ones are removed), which needs the Graph permission Application.ReadWrite.All.")
_DISPLAY_NAME = (length(1, 256),)

ENTRA_AGENT_BLUEPRINT = ResourceSchema(
    type_name="tokendrop_entra_agent_blueprint",
    description="A Microsoft Entra agent identity blueprint (an application) and its blueprint principal (a service "
    "principal), created together. Agent identities are created from it; its credentials are federated "
    "identity credentials (recommended), certificates or passwords.",
    attributes=(
        Attr("id", STRING, "Object id of the blueprint.", computed=True),
        Attr("display_name", STRING, "Display name. Updated in place.", required=True, rules=_DISPLAY_NAME),
        Attr("sponsors", SetOf(STRING), _SPONSORS_DOC, required=True, rules=_SPONSORS),
        Attr("owners", SetOf(STRING), "Owners besides the provider's app (which Graph makes owner), as "
             "`users/<object id>` or `servicePrincipals/<object id>`. Changing them replaces the blueprint.",
             optional=True, on_change="replace",
             rules=(each(pattern(rf"(users|servicePrincipals)/{ENTRA_GUID}",
                                 "is not users/<id> or servicePrincipals/<id>",
                                 "`users/<object id>` or `servicePrincipals/<object id>`")),)),
        Attr("app_id", STRING, "Client (application) id of the blueprint: the `client_id` of its token requests.",
             computed=True),
        Attr("principal_id", STRING, "Object id of the blueprint principal.", computed=True),
    ),
    import_id="The blueprint's object id, e.g. `03ef14b0-ca33-4840-8f4f-d6e91916010e` (the principal's id is then "
    "left unset: destroy deletes the blueprint only).",
    import_examples=("03ef14b0-ca33-4840-8f4f-d6e91916010e",),
    in_state="the object ids, the app id and the display name: no credential.",
)

ENTRA_AGENT_IDENTITY = ResourceSchema(
    type_name="tokendrop_entra_agent_identity",
    description="A Microsoft Entra agent identity (a service principal) created from a blueprint; the blueprint "
    "obtains tokens for it with the `fmi_path` exchange. It holds no credential of its own.",
    attributes=(
        Attr("id", STRING, "Object id of the agent identity.", computed=True),
        Attr("blueprint_app_id", STRING, "App id of the blueprint (`tokendrop_entra_agent_blueprint.app_id`).",
             required=True, on_change="replace", rules=(_ENTRA_ID,)),
        Attr("display_name", STRING, "Display name. Updated in place.", required=True, rules=_DISPLAY_NAME),
        Attr("sponsors", SetOf(STRING), _SPONSORS_DOC, required=True, rules=_SPONSORS),
        Attr("app_id", STRING, "Client id of the agent identity: the `fmi_path` of the blueprint's token request "
             "and the `client_id` of the agent's own.", computed=True),
    ),
    import_id="The agent identity's object id, e.g. `59e617e5-e447-4adc-8b88-00af644d7c92`.",
    import_examples=("59e617e5-e447-4adc-8b88-00af644d7c92",),
    in_state="the object id, app id, blueprint app id and display name: no credential.",
)


def _fic_name(value: object) -> str | None:
    text = str(value)
    if len(text) > ENTRA_FIC_NAME_MAX:
        return f"is {len(text)} characters long; Graph allows at most {ENTRA_FIC_NAME_MAX}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.~-]*", text):
        return "must be URL friendly: letters, digits and `- _ . ~`, starting with a letter or digit"
    return None


ENTRA_BLUEPRINT_FEDERATED_CREDENTIAL = ResourceSchema(
    type_name="tokendrop_entra_blueprint_federated_credential",
    description="A federated identity credential on an agent identity blueprint: tokens of an external issuer "
    "(a managed identity, GitHub Actions, Buildkite, HCP Terraform) with this issuer and subject may act as the "
    "blueprint. The production path: no secret exists anywhere.",
    attributes=(
        Attr("id", STRING, "Id of the federated identity credential.", computed=True),
        Attr("blueprint_id", STRING, "Object id of the blueprint (`tokendrop_entra_agent_blueprint.id`).",
             required=True, on_change="replace", rules=(_ENTRA_ID,)),
        Attr("name", STRING, f"Name, unique on the blueprint: at most {ENTRA_FIC_NAME_MAX} URL-friendly characters. "
             "Graph cannot rename it: changing it replaces the credential.", required=True, on_change="replace",
             rules=(Rule(_fic_name, f"at most {ENTRA_FIC_NAME_MAX} URL-friendly characters"),)),
        Attr("issuer", STRING, "Issuer URL of the external tokens (their `iss`). Issuer and subject together are "
             "unique on the blueprint.", required=True, on_change="replace",
             rules=(length(1, 600), pattern(r"https://\S+", "must be an https URL", "an https URL"))),
        Attr("subject", STRING, "Subject of the external tokens (their `sub`).", required=True, on_change="replace",
             rules=(length(1, 600),)),
        Attr("audiences", ListOf(STRING), f"The audience the external tokens carry; Graph takes exactly one. "
             f"Default `{ENTRA_EXCHANGE_AUDIENCE}`.", optional=True, computed=True,
             default=[ENTRA_EXCHANGE_AUDIENCE], on_change="replace",
             rules=(length(1, 1), each(Rule(lambda v: None if 0 < len(str(v)) <= 600 else "must be 1-600 "
                                            "characters", "1–600 characters")))),
        Attr("description", STRING, "Description.", optional=True, on_change="replace", rules=(length(0, 600),)),
    ),
    import_id="`<blueprint object id>/<credential id or name>`, e.g. "
    "`03ef14b0-ca33-4840-8f4f-d6e91916010e/github-main`.",
    import_examples=("03ef14b0-ca33-4840-8f4f-d6e91916010e/github-main",),
    in_state="the ids, name, issuer, subject and audiences: nothing secret exists.",
)

ENTRA_BLUEPRINT_PASSWORD = ResourceSchema(
    type_name="tokendrop_entra_blueprint_password",
    description="A client secret of an agent identity blueprint (Graph `addPassword`), delivered to a sink with what "
    "an agent needs beside it (`client_id`, `tenant_id`, `token_endpoint`, `client_secret`). Graph returns the "
    "secret once; it never reaches Terraform. Microsoft recommends federated identity credentials or "
    "certificates for production; the plan says so.",
    attributes=(
        Attr("blueprint_id", STRING, "Object id of the blueprint (`tokendrop_entra_agent_blueprint.id`). Changing "
             "it replaces the password.", required=True, on_change="replace", rules=(_ENTRA_ID,)),
        Attr("description", STRING, "The password's display name. tokendrop appends a short marker naming the "
             "sink. Graph cannot edit it, so changing it rotates the password.", optional=True, on_change="rotate",
             rules=(length(0, 200),)),
        Attr("valid_for", STRING, "Lifetime of each password, e.g. `90d`; Graph's default is two years. Changing "
             "it rotates the password.", optional=True, on_change="rotate",
             rules=(duration(minimum=timedelta(hours=1)),)),
        ROTATE_BEFORE_EXPIRY,
        DELIVER_TO,
        *without_last_use(LIFECYCLE_ARGUMENTS, "Graph v1.0 reports no last use of a password "
                                                "credential"),
        *DELIVERY_STATE,
        Attr("hint", STRING, "The first characters of the live password, as Graph shows them.", computed=True),
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK),
    import_id="`<blueprint object id>/<sink address>` or `<blueprint object id>/<key id>/<sink address>` (e.g. "
    "`03ef14b0-ca33-4840-8f4f-d6e91916010e/f0b0b335-1d71-4883-8f98-567911bfdca6/ssm:/agents/bp`); the sink comes "
    "from the configuration.",
    import_examples=("03ef14b0-ca33-4840-8f4f-d6e91916010e/f0b0b335-1d71-4883-8f98-567911bfdca6/ssm:/agents/bp",),
    secret_delivered="the client secret, with the blueprint's client id, the tenant id and the token endpoint "
    "(`client_id`, `client_secret`, `tenant_id`, `token_endpoint`)",
    in_state="the key id, hint, dates, sink address and version: never the secret, never a hash of it.",
)

def _rsa_bits(value: object) -> str | None:
    return None if value in (2048, 3072, 4096) else "must be 2048, 3072 or 4096"


ENTRA_BLUEPRINT_CERTIFICATE = ResourceSchema(
    type_name="tokendrop_entra_blueprint_certificate",
    description="A certificate credential of an agent identity blueprint: tokendrop makes an RSA key pair and a "
    "self-signed certificate, adds the public certificate to the blueprint's `keyCredentials`, and delivers the "
    "private key and the certificate (PEM, `private_key` + `certificate`) with `client_id`, `tenant_id` and "
    "`token_endpoint`. The private key never reaches Terraform or disk. Rotation adds the new certificate "
    "before the old one goes; `keep_previous_for` keeps the old one valid for an overlap.",
    attributes=(
        Attr("blueprint_id", STRING, "Object id of the blueprint (`tokendrop_entra_agent_blueprint.id`). Changing "
             "it replaces the certificate.", required=True, on_change="replace", rules=(_ENTRA_ID,)),
        Attr("description", STRING, "The key credential's display name (and the certificate's common name). "
             "tokendrop appends a short marker naming the sink. Changing it rotates the certificate.",
             optional=True, on_change="rotate", rules=(length(0, 200),)),
        Attr("valid_for", STRING, "Validity of each certificate, e.g. `90d`. Changing it rotates the certificate.",
             optional=True, computed=True, default="365d", on_change="rotate",
             rules=(duration(minimum=timedelta(hours=1)),)),
        Attr("rsa_bits", NUMBER, "RSA key size: 2048, 3072 or 4096 (msal signs client assertions with RSA). An "
             "SSM Standard parameter (4 KB) holds a 2048-bit key with its certificate; larger keys need the "
             "Advanced tier or Vault. Changing it rotates the certificate.", optional=True, computed=True,
             default=2048, on_change="rotate", rules=(Rule(_rsa_bits, "2048, 3072 or 4096"),)),
        ROTATE_BEFORE_EXPIRY,
        DELIVER_TO,
        *without_last_use(LIFECYCLE_ARGUMENTS, "Graph v1.0 reports no last use of a certificate "
                                                "credential"),
        *DELIVERY_STATE,
        Attr("thumbprint", STRING, "SHA-1 thumbprint of the live certificate, as Graph shows it.", computed=True),
    ),
    version=DELIVER_TO_VERSION,
    checks=(DELIVER_TO_CHECK, REVOKE_PREVIOUS_CHECK),
    import_id="`<blueprint object id>/<sink address>` or `<blueprint object id>/<key id>/<sink address>` (e.g. "
    "`03ef14b0-ca33-4840-8f4f-d6e91916010e/6c0d9e3f-2b1a-4c5d-8e7f-9a0b1c2d3e4f/vault_kv:secret/agents/bp#token`); "
    "the sink comes from the configuration.",
    import_examples=("03ef14b0-ca33-4840-8f4f-d6e91916010e/6c0d9e3f-2b1a-4c5d-8e7f-9a0b1c2d3e4f/"
                     "vault_kv:secret/agents/bp#token",),
    secret_delivered="the private key and its certificate (PEM), with the blueprint's client id, the tenant id and "
    "the token endpoint (`private_key`, `certificate`, `client_id`, `tenant_id`, `token_endpoint`)",
    in_state="the key id, thumbprint, dates, sink address and version: never the private key.",
)

RESOURCES: dict[str, ResourceSchema] = {
    s.type_name: s for s in (TFE_AGENT_POOL, TFE_AGENT_TOKEN, BUILDKITE_CLUSTER, BUILDKITE_CLUSTER_TOKEN,
                             TOKENVAULT_AGENT, TOKENVAULT_AGENT_GRANT, TOKENVAULT_KEY,
                             TOKENVAULT_KEY_GRANT, VAULT_APPROLE_SECRET_ID, ENTRA_AGENT_BLUEPRINT,
                             ENTRA_AGENT_IDENTITY, ENTRA_BLUEPRINT_FEDERATED_CREDENTIAL, ENTRA_BLUEPRINT_PASSWORD,
                             ENTRA_BLUEPRINT_CERTIFICATE)
}
