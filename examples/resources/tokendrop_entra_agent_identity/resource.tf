# One agent identity per agent instance; the blueprint obtains its tokens (fmi_path).
resource "tokendrop_entra_agent_identity" "triage" {
  blueprint_app_id = "00001111-aaaa-2222-bbbb-3333cccc4444"
  display_name     = "support-triage"
  sponsors         = ["users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"]
}
