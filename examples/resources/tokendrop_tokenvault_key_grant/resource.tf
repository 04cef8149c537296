resource "tokendrop_tokenvault_key" "ci_reader" {
  name   = "ci-reader"
  scopes = ["credentials:read"]
  deliver_to = {
    ssm = { name = "/ci/tokenvault/reader-key" }
  }
}

# The key may use the GitHub token for 7 days; the next apply after that grants it again.
resource "tokendrop_tokenvault_key_grant" "github" {
  key_id     = tokendrop_tokenvault_key.ci_reader.id
  service    = "github"
  expires_in = "7d"
}
