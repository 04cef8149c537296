# Manage an existing cluster as the example's "linux": `<organization>/<cluster uuid>`, or the UUID alone
# (organization from the provider).
import {
  to = tokendrop_buildkite_cluster.linux
  id = "acme/0189a3c5-7b1e-4c1a-9f0e-5d2c8b7a6e41"
}
