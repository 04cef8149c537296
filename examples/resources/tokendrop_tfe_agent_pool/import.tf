# Manage an existing agent pool as the example's "ci": `<organization>/<pool name>`, or its id (`apool-…`).
import {
  to = tokendrop_tfe_agent_pool.ci
  id = "acme/ci-agents"
}
