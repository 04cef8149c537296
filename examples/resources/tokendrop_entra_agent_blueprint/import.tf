# Adopt an existing blueprint into the example's "support": its object id.
import {
  to = tokendrop_entra_agent_blueprint.support
  id = "03ef14b0-ca33-4840-8f4f-d6e91916010e"
}
