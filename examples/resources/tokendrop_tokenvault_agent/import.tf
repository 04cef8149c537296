# Adopt an existing agent into the example's "triage": `<agent id>/<sink address>`.
import {
  to = tokendrop_tokenvault_agent.triage
  id = "agt_123/ssm:/agents/triage-bot/tvagent-key"
}
