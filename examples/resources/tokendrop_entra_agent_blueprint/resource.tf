# An agent identity blueprint and its principal; agent identities and credentials hang from it.
resource "tokendrop_entra_agent_blueprint" "support" {
  display_name = "support-agents"
  sponsors     = ["users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"]
}
