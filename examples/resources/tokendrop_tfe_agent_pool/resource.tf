resource "tokendrop_tfe_agent_pool" "ci" {
  organization          = "acme"
  name                  = "ci-agents"
  organization_scoped   = false
  allowed_workspace_ids = ["ws-2Qb8cH3kdkTTWXZs"]
}
