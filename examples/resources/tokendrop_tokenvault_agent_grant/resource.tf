resource "tokendrop_tokenvault_agent" "triage" {
  name        = "triage-bot"
  description = "issue triage"
  deliver_to = {
    ssm = { name = "/agents/triage-bot/tvagent-key" }
  }
}

# One resource per service; the agent leaves `grants` unset.
resource "tokendrop_tokenvault_agent_grant" "github" {
  agent_id = tokendrop_tokenvault_agent.triage.id
  service  = "github"
}
