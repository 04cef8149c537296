# Everything here is also in state, and none of it is secret: ids, where each token went, and which
# version of the parameter / secret holds the live one.

output "agent_pool_id" {
  description = "The agent pool (apool-…)."
  value       = tokendrop_tfe_agent_pool.ci.id
}

output "runners_token_id" {
  description = "Id of the live runners token at the issuer (at-…)."
  value       = tokendrop_tfe_agent_token.runners.id
}

output "runners_parameter" {
  description = "Where the runners token lives, e.g. ssm:/ci/tfc-agent/token."
  value       = tokendrop_tfe_agent_token.runners.sink_address
}

output "runners_parameter_version" {
  description = "SSM parameter version that holds the live runners token."
  value       = tokendrop_tfe_agent_token.runners.sink_version
}

output "batch_token_id" {
  description = "Id of the live batch token at the issuer."
  value       = tokendrop_tfe_agent_token.batch.id
}

output "batch_secret" {
  description = "Where the batch token lives, e.g. vault_kv:secret/ci/tfc-agent/batch#token."
  value       = tokendrop_tfe_agent_token.batch.sink_address
}

output "batch_secret_version" {
  description = "KV version that holds the live batch token."
  value       = tokendrop_tfe_agent_token.batch.sink_version
}
