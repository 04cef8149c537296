# A client secret of the blueprint, delivered with client_id, tenant_id and token_endpoint (local
# development; prefer a federated credential in production).
resource "tokendrop_entra_blueprint_password" "dev" {
  blueprint_id         = "03ef14b0-ca33-4840-8f4f-d6e91916010e"
  description          = "support agent, dev"
  valid_for            = "90d"
  rotate_before_expiry = "14d"
  deliver_to = {
    vault_kv = { path = "agents/support/blueprint" }
  }
}
