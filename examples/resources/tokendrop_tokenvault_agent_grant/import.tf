# Manage a grant the agent already holds as the example's "github": `<agent id>/<service>`.
import {
  to = tokendrop_tokenvault_agent_grant.github
  id = "agt_123/github"
}
