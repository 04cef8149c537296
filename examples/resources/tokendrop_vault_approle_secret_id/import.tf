# Adopt an existing secret id into the example's "ci_login": `<mount>/<role>/<secret id accessor>/<sink address>`.
import {
  to = tokendrop_vault_approle_secret_id.ci_login
  id = "approle/ci/9f1c2b7e-3d4a-4e5f-8a6b-7c8d9e0f1a2b/ssm:/ci/vault/secret-id"
}
