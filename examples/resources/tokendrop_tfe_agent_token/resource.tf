resource "tokendrop_tfe_agent_token" "runners" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  description   = "ci runners"
  deliver_to = {
    ssm = { name = "/ci/tfc-agent/token", kms_key_id = "alias/ci", tags = { team = "ci" } }
  }
  rotate_every      = "30d"
  keep_previous_for = "2h"
  # Revoke the previous token as soon as HCP Terraform reports it unused for 15m (at most after 2h).
  revoke_previous_when = "unused"
}

resource "tokendrop_tfe_agent_token" "batch" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  deliver_to = {
    vault_kv = { mount = "secret", path = "ci/tfc-agent/batch", field = "token" }
  }
}
