# GitHub Actions runs of one branch may act as the blueprint: no secret exists anywhere.
resource "tokendrop_entra_blueprint_federated_credential" "github_main" {
  blueprint_id = "03ef14b0-ca33-4840-8f4f-d6e91916010e"
  name         = "github-main"
  issuer       = "https://token.actions.githubusercontent.com"
  subject      = "repo:acme/support-agent:ref:refs/heads/main"
}
