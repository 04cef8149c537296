# tokendrop in a configuration that HCP Terraform / Terraform Enterprise runs on its own workers: the
# `cloud` block makes `terraform plan/apply` upload this directory, terraform.d/ included, and the
# worker runs `terraform init`, which installs tokendrop from terraform.d/plugins (an implied local
# mirror) and checks it against the committed .terraform.lock.hcl. See README.md for the layout.

terraform {
  required_version = ">= 1.6"

  cloud {
    organization = "acme"

    workspaces {
      name = "ci-agents"
    }
  }

  required_providers {
    tokendrop = {
      source = "tokendrop/tokendrop"
    }
  }
}

# On the worker, settings come from the workspace's environment variables: TFE_TOKEN (sensitive),
# AWS credentials or a dynamic-credentials role, AWS_REGION.
provider "tokendrop" {}

variable "organization" {
  description = "HCP Terraform / TFE organization that owns the agent pool."
  type        = string
  default     = "acme"
}

variable "ssm_parameter" {
  description = "SSM parameter that receives the agent token."
  type        = string
  default     = "/ci/tfc-agent/remote"
}

resource "tokendrop_tfe_agent_pool" "ci" {
  organization        = var.organization
  name                = "remote-agents"
  organization_scoped = true
}

resource "tokendrop_tfe_agent_token" "runners" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  description   = "agents started by the platform team"

  deliver_to = {
    ssm = {
      name = var.ssm_parameter
    }
  }

  rotate_every      = "30d"
  keep_previous_for = "2h"
}

output "token_parameter" {
  description = "Where the agent token lives (its name and version, never its value)."
  value       = "${tokendrop_tfe_agent_token.runners.sink_address} (version ${tokendrop_tfe_agent_token.runners.sink_version})"
}
