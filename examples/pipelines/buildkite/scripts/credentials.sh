#!/usr/bin/env bash
# Short-lived credentials for one Buildkite step, sourced by deploy.sh and audit.sh.
#
#   aws_login       Buildkite OIDC token (audience sts.amazonaws.com) -> sts:AssumeRoleWithWebIdentity
#                   -> AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
#   vault_login     Buildkite OIDC token (audience $VAULT_OIDC_AUDIENCE) -> Vault JWT auth -> VAULT_TOKEN
#   fetch_secret    one field of a Vault KV secret -> an exported variable (TFE_TOKEN, BUILDKITE_API_TOKEN)
#
# Every credential lives in this shell's environment and its children's, and nowhere else: never in a
# command's arguments (other users of the agent host can read those), never in a file under the
# checkout or in an artifact, never in the log. Tokens that must pass through a command go on its
# stdin or in a 0700 scratch directory that is removed when the step ends. Each value is also handed
# to the agent's redactor, so that a tool printing it by mistake shows [REDACTED] instead.
set -euo pipefail
set +x  # a trace (bash -x, BUILDKITE_SHELL with -x) would print every credential below

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Scratch space for requests that carry a token (the STS request); removed, with the Vault token
# revoked, when the step's shell exits.
_td_scratch=$(mktemp -d "${TMPDIR:-/tmp}/tokendrop-step.XXXXXX")
chmod 700 "$_td_scratch"

_td_cleanup() {
  rm -rf "$_td_scratch"
  if [[ -n "${VAULT_TOKEN:-}" && "${_td_vault_login:-}" == 1 ]]; then
    vault token revoke -self >/dev/null 2>&1 || true  # short-lived anyway; revoking is tidier
  fi
}
trap _td_cleanup EXIT

redact() {
  # `buildkite-agent redactor add` (recent agents) reads the value on stdin; older agents lack it and
  # only redact the variables they knew when the job started.
  if buildkite-agent redactor add --help >/dev/null 2>&1; then
    printf '%s' "$1" | buildkite-agent redactor add >/dev/null
  fi
}

oidc_token() {  # oidc_token VARIABLE AUDIENCE LIFETIME: a Buildkite OIDC token for this job, into VARIABLE
  local _jwt
  _jwt=$(buildkite-agent oidc request-token --audience "$2" --lifetime "$3") \
    || die "could not get an OIDC token for audience $2"
  # Checked before it is spliced into a JSON request: a JWT is three base64url parts.
  [[ "$_jwt" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || die "the OIDC token for audience $2 is not a JWT"
  printf -v "$1" '%s' "$_jwt"
}

aws_login() {
  : "${AWS_ROLE_ARN:?set AWS_ROLE_ARN to the IAM role this step assumes with its Buildkite OIDC token}"
  [[ "$AWS_ROLE_ARN" =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$ ]] \
    || die "AWS_ROLE_ARN is not an IAM role ARN: $AWS_ROLE_ARN"
  local jwt session request credentials
  oidc_token jwt sts.amazonaws.com 300
  # RoleSessionName shows in CloudTrail: which pipeline and build did what.
  session="buildkite-${BUILDKITE_PIPELINE_SLUG:-pipeline}-${BUILDKITE_BUILD_NUMBER:-0}"
  session=${session//[^A-Za-z0-9+=,.@_-]/-}
  request="$_td_scratch/assume-role.json"
  # The token goes in a request file, not in --web-identity-token: arguments are visible in `ps`.
  (umask 077 && printf '{"RoleArn": "%s", "RoleSessionName": "%s", "WebIdentityToken": "%s", "DurationSeconds": %d}\n' \
    "$AWS_ROLE_ARN" "${session:0:64}" "$jwt" "${AWS_SESSION_DURATION:-3600}" > "$request")
  credentials=$(aws sts assume-role-with-web-identity --cli-input-json "file://$request" \
    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text) \
    || die "could not assume $AWS_ROLE_ARN with the Buildkite OIDC token"
  rm -f "$request"
  read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN <<<"$credentials"
  [[ -n "$AWS_SESSION_TOKEN" ]] || die "sts:AssumeRoleWithWebIdentity returned no credentials"
  redact "$AWS_SECRET_ACCESS_KEY"
  redact "$AWS_SESSION_TOKEN"
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  unset AWS_PROFILE  # the agent's own profile must not win over the step's role
  printf 'AWS: assumed %s as %s\n' "$AWS_ROLE_ARN" "${session:0:64}" >&2
}

vault_login() {
  : "${VAULT_ADDR:?set VAULT_ADDR}"
  : "${VAULT_JWT_ROLE:?set VAULT_JWT_ROLE to the Vault JWT auth role bound to this pipeline}"
  local jwt token
  # Its own token, with Vault's audience: a token minted for AWS must not be accepted by Vault too.
  oidc_token jwt "${VAULT_OIDC_AUDIENCE:-vault}" 60
  # jwt=- : the vault CLI reads the value from stdin, so the token never becomes an argument.
  token=$(printf '%s' "$jwt" | vault write -field=token "auth/${VAULT_JWT_MOUNT:-jwt}/login" \
    role="$VAULT_JWT_ROLE" jwt=-) || die "Vault JWT login as role $VAULT_JWT_ROLE failed"
  [[ -n "$token" ]] || die "Vault JWT login returned no token"
  redact "$token"
  export VAULT_TOKEN=$token
  _td_vault_login=1
  printf 'Vault: logged in at %s as role %s\n' "$VAULT_ADDR" "$VAULT_JWT_ROLE" >&2
}

fetch_secret() {  # fetch_secret VARIABLE KV_PATH [FIELD]: e.g. fetch_secret TFE_TOKEN secret/ci/deployer/tfe
  local name=$1 path=$2 field=${3:-token} secret
  [[ "$name" =~ ^[A-Z][A-Z0-9_]*$ ]] || die "fetch_secret: bad variable name $name"
  secret=$(vault kv get -field="$field" "$path") || die "cannot read field $field of $path from Vault"
  [[ -n "$secret" ]] || die "field $field of $path is empty"
  redact "$secret"
  printf -v "$name" '%s' "$secret"
  export "${name?}"
  printf '%s: read from Vault %s (field %s)\n' "$name" "$path" "$field" >&2
}

login_all() {
  # Every step gets the AWS role (SSM sinks, S3 state) and Vault (API tokens, Vault sinks); the API
  # tokens are fetched only when the pipeline names where they live.
  aws_login
  vault_login
  if [[ -n "${TFE_TOKEN_VAULT_PATH:-}" ]]; then fetch_secret TFE_TOKEN "$TFE_TOKEN_VAULT_PATH"; fi
  if [[ -n "${BUILDKITE_API_TOKEN_VAULT_PATH:-}" ]]; then
    fetch_secret BUILDKITE_API_TOKEN "$BUILDKITE_API_TOKEN_VAULT_PATH"
  fi
}

without_agent_token() {
  # Terraform and the provider need none of the agent's own credentials: run them without the job's
  # agent access token, which could otherwise mint OIDC tokens or upload artifacts.
  env -u BUILDKITE_AGENT_ACCESS_TOKEN "$@"
}
