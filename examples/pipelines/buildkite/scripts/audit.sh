#!/usr/bin/env bash
# Nightly `tokendrop audit` of one stack: its state (pulled from the backend, piped, never written to
# disk) plus a walk of the Buildkite organization, which also finds orphaned tokens no state knows.
#
# Exit codes are tokendrop audit's: 0 nothing needs attention, 1 something does (the pipeline makes
# that a soft failure: a notification), 2 the audit could not run (a hard failure).
# The audit reads metadata only (token lists, SSM DescribeParameters, Vault KV metadata): no token
# value passes through this step, so its log and its audit.json artifact hold none.
set -euo pipefail
set +x  # a trace would print the credentials credentials.sh puts in the environment

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=credentials.sh
source "$here/credentials.sh"

: "${TOKENDROP_STACK:?set TOKENDROP_STACK to the stack to audit}"
project=${CDKTF_PROJECT:-.}
cdktf=${CDKTF_BIN:-cdktf}
outdir=${CDKTF_OUT:-cdktf.out}
report=${TOKENDROP_AUDIT_REPORT:-audit.json}
command -v tokendrop >/dev/null || die "tokendrop is not on PATH (pip install tokendrop)"

login_all  # with the audit step's read-only role (see pipeline.yml)

# Synthesis only tells Terraform where the state is (the stack's backend block).
(cd "$project" && without_agent_token "$cdktf" synth)
stack_dir="$project/$outdir/stacks/$TOKENDROP_STACK"
[[ -d "$stack_dir" ]] || die "the app has no stack named $TOKENDROP_STACK"
without_agent_token terraform -chdir="$stack_dir" init -input=false -no-color >/dev/null \
  || die "terraform init failed in $stack_dir"

walk=()
if [[ -n "${BUILDKITE_ORGANIZATION_SLUG:-}" ]]; then walk+=(--buildkite-organization "$BUILDKITE_ORGANIZATION_SLUG"); fi
if [[ -n "${TFE_ORGANIZATION:-}" ]]; then walk+=(--tfe-organization "$TFE_ORGANIZATION"); fi

# Held in memory and piped in: a state file on the agent's disk would outlive the step.
state=$(without_agent_token terraform -chdir="$stack_dir" state pull) || die "terraform state pull failed"
status=0
printf '%s\n' "$state" | without_agent_token tokendrop audit --state - "${walk[@]}" --no-progress --json \
  > "$report" || status=$?
if ((status > 1)); then rm -f "$report"; fi  # nothing to upload (artifact_paths) from a failed audit

case "$status" in
  0) printf 'tokendrop audit: nothing needs attention\n' ;;
  1) # The table for people, from the JSON already fetched (no second round of API calls).
     python3 - "$report" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for token in report["tokens"]:
    if token["attention"]:
        where = token.get("address") or f"orphan {token['token_id']} in {token['scope']}"
        print(f"{where}: {', '.join(flag['code'] for flag in token['flags'])}")
print(f"{report['summary']['attention']} of {report['summary']['tokens']} tokens need attention")
EOF
     ;;
  *) printf 'tokendrop audit could not run (exit %s): see the error above\n' "$status" >&2 ;;
esac
exit "$status"
