# A certificate of the blueprint: the private key and certificate (PEM) go to Vault with client_id,
# tenant_id and token_endpoint; rotation keeps the previous certificate valid for a day.
resource "tokendrop_entra_blueprint_certificate" "agent" {
  blueprint_id         = "03ef14b0-ca33-4840-8f4f-d6e91916010e"
  description          = "support agent"
  valid_for            = "90d"
  rotate_before_expiry = "14d"
  keep_previous_for    = "24h"
  deliver_to = {
    vault_kv = { path = "agents/support/certificate" }
  }
}
