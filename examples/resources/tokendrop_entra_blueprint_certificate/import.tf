# Adopt a delivered certificate into the example's "agent": `<blueprint id>/<key id>/<sink address>`.
import {
  to = tokendrop_entra_blueprint_certificate.agent
  id = "03ef14b0-ca33-4840-8f4f-d6e91916010e/6c0d9e3f-2b1a-4c5d-8e7f-9a0b1c2d3e4f/vault_kv:secret/agents/bp#token"
}
