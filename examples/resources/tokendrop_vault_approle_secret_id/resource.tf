# Delivers {"role_id": ..., "secret_id": ...} so a CI job can log in to Vault with AppRole.
resource "tokendrop_vault_approle_secret_id" "ci_login" {
  role_name            = "ci"
  mount                = "approle"
  ttl                  = "24h"
  rotate_before_expiry = "2h"
  cidr_list            = ["10.0.0.0/8"]
  num_uses             = 0
  metadata             = { pipeline = "deploy" }
  deliver_to = {
    ssm = { name = "/ci/vault/secret-id" }
  }
}
