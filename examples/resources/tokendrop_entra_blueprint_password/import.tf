# Adopt a delivered password into the example's "dev": `<blueprint id>/<key id>/<sink address>`.
import {
  to = tokendrop_entra_blueprint_password.dev
  id = "03ef14b0-ca33-4840-8f4f-d6e91916010e/f0b0b335-1d71-4883-8f98-567911bfdca6/ssm:/agents/bp"
}
