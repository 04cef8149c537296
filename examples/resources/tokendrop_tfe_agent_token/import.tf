# Adopt a token minted earlier (say, by hand) into the example's "runners": `<pool>/<token id>/<sink address>`.
# The sink must already hold the token's value; nothing is minted or written by the import itself.
import {
  to = tokendrop_tfe_agent_token.runners
  id = "apool-123/at-456/ssm:/ci/tfc-agent/token"
}
