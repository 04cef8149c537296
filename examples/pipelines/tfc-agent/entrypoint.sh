#!/usr/bin/env bash
# Entrypoint of the tfc-agent container: reads the agent token tokendrop delivered to SSM Parameter
# Store, puts it in TFC_AGENT_TOKEN, and execs tfc-agent (or the command given).
#
#   TFC_AGENT_TOKEN_PARAMETER   the parameter's name, e.g. /ci/tfc-agent/runners (required)
#   AWS_REGION                  its region; credentials from AWS's default chain (instance profile,
#                               ECS task role, AWS_PROFILE with a mounted ~/.aws, ...)
#
# The token only ever exists in this process's memory and in tfc-agent's environment: not in the
# image, not in docker-compose.yml or `docker inspect` (only the parameter name is configured), not
# in the container's log. Restarting the container reads the current token, so after a rotation a
# restart within `keep_previous_for` moves the agent to the new token without a gap.
set -euo pipefail
set +x  # a trace would print the token

die() {
  printf 'tfc-agent entrypoint: error: %s\n' "$*" >&2
  exit 1
}

: "${TFC_AGENT_TOKEN_PARAMETER:?set TFC_AGENT_TOKEN_PARAMETER to the SSM parameter tokendrop delivers the agent token to}"
if [[ -n "${TFC_AGENT_TOKEN:-}" ]]; then
  # A token in the container's configuration would sit in `docker inspect` and the compose file.
  die "TFC_AGENT_TOKEN is already set; configure only TFC_AGENT_TOKEN_PARAMETER"
fi
command -v aws >/dev/null || die "the aws CLI is not installed in this image"

# --query/--output text: the value alone, straight into the variable (a failed call prints AWS's
# error, which names the parameter, never a value).
token=$(aws ssm get-parameter --name "$TFC_AGENT_TOKEN_PARAMETER" --with-decryption \
  --query Parameter.Value --output text) || die "cannot read SSM parameter $TFC_AGENT_TOKEN_PARAMETER"
[[ -n "$token" && "$token" != "None" ]] || die "SSM parameter $TFC_AGENT_TOKEN_PARAMETER is empty"

export TFC_AGENT_TOKEN=$token
unset token
printf 'tfc-agent entrypoint: TFC_AGENT_TOKEN read from SSM parameter %s\n' "$TFC_AGENT_TOKEN_PARAMETER" >&2

if (($# == 0)); then
  set -- "${TFC_AGENT_BIN:-/home/tfc-agent/bin/tfc-agent}"
fi
exec "$@"
