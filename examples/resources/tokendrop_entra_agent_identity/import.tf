# Adopt an existing agent identity into the example's "triage": its object id.
import {
  to = tokendrop_entra_agent_identity.triage
  id = "59e617e5-e447-4adc-8b88-00af644d7c92"
}
