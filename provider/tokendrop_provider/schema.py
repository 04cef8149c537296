"""Every resource's attributes, types, validation and documentation, once, as plain data.

The provider serves these schemas to Terraform and validates plans with them; the CDKTF constructs
import this module (and nothing heavier) to name their attributes and validate at synth time; the
reference docs are generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from .attributes import Attr, Check, ProviderSchema, ResourceSchema, exactly_one_of
from .sinks import ssm_rules, vault_rules
from .types import BOOL, NUMBER, STRING, MapOf, SetOf, Unknown
from .validation import (
    duration,
    each,
    from_function,
    length,
    max_items,
    one_of,
    pattern,
)

PROVIDER_SOURCE = "registry.terraform.io/tokendrop/tokendrop"
PROVIDER_NAME = "tokendrop"

# --- the provider block ---------------------------------------------------------------------------

def _setting(name: str, description: str, *, sensitive: bool = False, type_=STRING) -> Attr:
    return Attr(name, type_, description, optional=True, sensitive=sensitive)


PROVIDER = ProviderSchema(
    description="tokendrop mints CI and agent tokens and delivers them into SSM or Vault; "
    "Terraform state keeps ids, sink addresses and versions only. Every setting falls back to the "
    "environment variable the official provider uses.",
    attributes=(
        _setting("tfe_address", "HCP Terraform / TFE address. Env: `TFE_ADDRESS` (default https://app.terraform.io)."),
        _setting("tfe_token", "HCP Terraform / TFE API token. Env: `TFE_TOKEN`.", sensitive=True),
        _setting("buildkite_rest_url", "Buildkite REST API URL. Env: `BUILDKITE_REST_URL` (default https://api.buildkite.com)."),
        _setting("buildkite_api_token", "Buildkite API access token. Env: `BUILDKITE_API_TOKEN`.", sensitive=True),
        _setting("buildkite_organization", "Buildkite organization slug. Env: `BUILDKITE_ORGANIZATION_SLUG`."),
        _setting("tokenvault_api_url", "Token Vault API URL. Env: `TOKENVAULT_API_URL` (default https://api.tokenvault.uk)."),
        _setting("tokenvault_api_key", "Token Vault admin API key. Env: `TOKENVAULT_API_KEY`.", sensitive=True),
        _setting("aws_region", "AWS region of the SSM sinks. Env: `AWS_REGION` / `AWS_DEFAULT_REGION`."),
        _setting("aws_profile", "AWS shared-config profile. Env: `AWS_PROFILE`."),
        _setting("aws_endpoint_url_ssm", "SSM endpoint override. Env: `AWS_ENDPOINT_URL_SSM`."),
        _setting("aws_access_key_id", "AWS access key id (prefer the default credential chain)."),
        _setting("aws_secret_access_key", "AWS secret access key.", sensitive=True),
        _setting("aws_session_token", "AWS session token.", sensitive=True),
        _setting("vault_address", "Vault address. Env: `VAULT_ADDR`."),
        _setting("vault_token", "Vault token. Env: `VAULT_TOKEN`.", sensitive=True),
        _setting("vault_namespace", "Vault Enterprise namespace. Env: `VAULT_NAMESPACE`."),
        _setting("vault_approle_role_id",
                 "Log in to Vault with this AppRole role id (with `vault_approle_secret_id`)."),
        _setting("vault_approle_secret_id", "AppRole secret id for the Vault login.", sensitive=True),
        _setting("vault_approle_mount", "Mount of the AppRole auth method used to log in (default `approle`)."),
        _setting("vault_ca_cert", "CA bundle to verify Vault's TLS certificate. Env: `VAULT_CACERT`."),
        _setting("vault_skip_verify", "Skip Vault TLS verification (testing only). Env: `VAULT_SKIP_VERIFY`.",
                 type_=BOOL),
    ),
)

# --- sinks: one `deliver_to` shape for every token resource ---------------------------------------

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

DELIVER_TO = Attr(
    "deliver_to",
    description="Where the token value goes. Exactly one of `ssm` or `vault_kv`. Changing the location "
    "replaces the resource; changing how it is stored (KMS key, field) rotates the token.",
    required=True,
    nested=(SSM_SINK, VAULT_KV_SINK),
)

DELIVER_TO_CHECK = exactly_one_of(("deliver_to",), ("ssm", "vault_kv"))

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
)

DELIVERY_STATE = (
    Attr("id", STRING, "The issuer's id of the live token.", computed=True),
    Attr("sink_address", STRING, "Where the value was delivered, e.g. `ssm:/ci/tfc-agent/token`.", computed=True),
    Attr("sink_version", NUMBER, "Version of the sink entry that holds the live token.", computed=True),
    Attr("sink_status", STRING, "`delivered`, or what refresh found wrong with the sink (`missing`, "
         "`overwritten`); anything but `delivered` plans a new token.", computed=True),
    Attr("created_at", STRING, "When the live token was minted (RFC 3339).", computed=True),
    Attr("expires_at", STRING, "When the live token expires at the issuer, if it does.", computed=True),
    Attr("previous_token_id", STRING, "The token replaced by the last rotation while `keep_previous_for` "
         "keeps it valid.", computed=True),
    Attr("previous_revoke_after", STRING, "When the previous token will be revoked (the first apply after).",
         computed=True),
)

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
    checks=(DELIVER_TO_CHECK,),
    import_id="`<agent pool id>/<token id>` (e.g. `apool-123/at-456`) for a token whose sink already holds "
    "it; the sink comes from the configuration.",
    secret_delivered="the agent token (`TFC_AGENT_TOKEN`)",
    in_state=TOKEN_IN_STATE,
)

RESOURCES: dict[str, ResourceSchema] = {
    s.type_name: s for s in (TFE_AGENT_POOL, TFE_AGENT_TOKEN)
}
