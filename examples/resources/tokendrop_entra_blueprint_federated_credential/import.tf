# Adopt an existing federated credential into the example's "github_main": `<blueprint id>/<name or id>`.
import {
  to = tokendrop_entra_blueprint_federated_credential.github_main
  id = "03ef14b0-ca33-4840-8f4f-d6e91916010e/github-main"
}
