# Adopt an existing key into the example's "ci_reader": `<key name>/<key id>/<sink address>` (or
# `<key name>/<sink address>` when the sink carries tokendrop's record).
import {
  to = tokendrop_tokenvault_key.ci_reader
  id = "ci-reader/key_123/ssm:/ci/tokenvault/reader-key"
}
