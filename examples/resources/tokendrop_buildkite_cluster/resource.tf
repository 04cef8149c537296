resource "tokendrop_buildkite_cluster" "linux" {
  organization = "acme" # or BUILDKITE_ORGANIZATION_SLUG
  name         = "linux"
  description  = "Linux agents"
  emoji        = ":penguin:"
  color        = "#FF9900"
}
