resource "tokendrop_tokenvault_key" "ci_reader" {
  name       = "ci-reader"
  scopes     = ["agents:read", "tokens:list"]
  expires_at = "2031-01-01T00:00:00Z"
  deliver_to = {
    ssm = { name = "/ci/tokenvault/reader-key" }
  }
  rotate_every      = "30d"
  keep_previous_for = "1h" # a rotation mints a successor; the old key lives on this long
}
