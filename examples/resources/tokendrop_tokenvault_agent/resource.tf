resource "tokendrop_tokenvault_agent" "triage" {
  name        = "triage-bot"
  description = "issue triage"
  grants = [
    { service = "github" }, # agent grants last until revoked
    { service = "linear" },
  ]
  deliver_to = {
    ssm = { name = "/agents/triage-bot/tvagent-key" }
  }
  rotate_every = "30d"
}
