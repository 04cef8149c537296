# Adopt an existing cluster token into the example's "elastic": `<organization>/<cluster id>/<sink address>`.
import {
  to = tokendrop_buildkite_cluster_token.elastic
  id = "acme/0189a3c5-7b1e-4c1a-9f0e-5d2c8b7a6e41/ssm:/buildkite/linux/agent-token"
}
