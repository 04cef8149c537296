#!/usr/bin/env bash
# Plan or apply one stack of a cdktf (or cdktn) project from a Buildkite step.
#
#   deploy.sh plan    synthesize once, plan that synthesis (`diff --skip-synth`), and upload the
#                     synthesized configuration (cdktf.out without .terraform/ and saved plans) into
#                     $TOKENDROP_PLAN_ARTIFACT, the step's artifact, for review and for the apply step
#   deploy.sh apply   download that artifact and deploy exactly it (`deploy --skip-synth`): what was
#                     reviewed at the block step is what gets applied, whatever merged since
#
# Settings (pipeline env): TOKENDROP_STACK (required), CDKTF_PROJECT (default .), CDKTF_BIN (default
# cdktf; `cdktn` for CDK Terrain), CDKTF_OUT (default cdktf.out), TOKENDROP_PLAN_ARTIFACT (default
# cdktf-out.tgz), and the credential settings of credentials.sh.
#
# The synthesized configuration holds no credential: TokendropProvider refuses literal credentials,
# so the provider block stays empty and takes everything from the environment credentials.sh sets.
set -euo pipefail
set +x  # a trace would print the credentials credentials.sh puts in the environment

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=credentials.sh
source "$here/credentials.sh"

: "${TOKENDROP_STACK:?set TOKENDROP_STACK to the stack to deploy (a stack name of the cdktf app)}"
project=${CDKTF_PROJECT:-.}
cdktf=${CDKTF_BIN:-cdktf}
outdir=${CDKTF_OUT:-cdktf.out}
artifact=${TOKENDROP_PLAN_ARTIFACT:-cdktf-out.tgz}

[[ -f "$project/cdktf.json" ]] || die "no cdktf.json in $project (set CDKTF_PROJECT)"
command -v "$cdktf" >/dev/null || die "$cdktf is not on PATH (npm ci, or set CDKTF_BIN)"

check_launchers() {
  # The synthesis put the provider's launcher into the stack's implied mirror; it execs the tokendrop
  # installation of the agent that synthesized. The apply agent must have the same one (an agent
  # image with tokendrop at a fixed path, e.g. /opt/tokendrop), or Terraform cannot start the provider.
  local launcher target found=0
  while IFS= read -r -d '' launcher; do
    found=1
    target=$(sed -n 's/^exec \(.*\) "\$@"$/\1/p' "$launcher")
    target=${target#\'}
    target=${target%\'}
    [[ -x "$target" ]] || die "the reviewed configuration starts the tokendrop provider with $target, which this agent" \
      "does not have: give plan and apply agents the same image (tokendrop installed at the same path)"
  done < <(find "$project/$outdir/stacks/$TOKENDROP_STACK" -path '*/terraform.d/plugins/*' \
             -name 'terraform-provider-tokendrop_v*' -type f -print0)
  ((found)) || die "$outdir/stacks/$TOKENDROP_STACK has no tokendrop provider launcher: was it synthesized with tokendrop?"
}

plan() {
  login_all
  (cd "$project" && without_agent_token "$cdktf" synth)
  [[ -f "$project/$outdir/stacks/$TOKENDROP_STACK/cdk.tf.json" ]] \
    || die "the app has no stack named $TOKENDROP_STACK (see $outdir/manifest.json)"
  (cd "$project" && without_agent_token "$cdktf" diff "$TOKENDROP_STACK" --skip-synth)
  # Configuration only: .terraform/ is this agent's init, and saved plans are not reused by deploy.
  tar --exclude='.terraform' --exclude="stacks/*/plan" -czf "$artifact" -C "$project" "$outdir"
  # pipeline.yml's artifact_paths uploads it when the step ends.
}

apply() {
  buildkite-agent artifact download "$artifact" . --step plan
  rm -rf "${project:?}/$outdir"
  tar -xzf "$artifact" -C "$project"
  [[ -f "$project/$outdir/stacks/$TOKENDROP_STACK/cdk.tf.json" ]] \
    || die "the artifact $artifact has no stack $TOKENDROP_STACK"
  check_launchers
  login_all
  (cd "$project" && without_agent_token "$cdktf" deploy "$TOKENDROP_STACK" --skip-synth --auto-approve)
}

case "${1:-}" in
  plan) plan ;;
  apply) apply ;;
  *) die "usage: $0 plan|apply" ;;
esac
