# The Elastic CI Stack for AWS reads its agent token from this parameter
# (BuildkiteAgentTokenParameterStorePath = "/buildkite/linux/agent-token").
resource "tokendrop_buildkite_cluster_token" "elastic" {
  cluster_id           = tokendrop_buildkite_cluster.linux.id
  description          = "Elastic CI Stack for AWS"
  allowed_ip_addresses = ["10.0.0.0/8", "192.0.2.7/32"]
  expires_in           = "90d"
  rotate_before_expiry = "14d"
  keep_previous_for    = "1h"
  deliver_to = {
    ssm = { name = "/buildkite/linux/agent-token" }
  }
}
