# Manage a grant the key already holds as the example's "github": `<key id>/<service>`.
import {
  to = tokendrop_tokenvault_key_grant.github
  id = "key_123/github"
}
