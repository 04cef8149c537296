resource "tokendrop_tokenvault_agent" "triage" {
  name        = "triage-bot"
  description = "issue triage"
  grants = [
    { service = "github", expires_in = "12h", auto_refresh = true },
    { service = "linear" }, # until revoked
  ]
  deliver_to = {
    ssm = { name = "/agents/triage-bot/tvagent-key" }
  }
  rotate_every = "30d"
}
