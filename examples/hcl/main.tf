# tokendrop with plain Terraform (or OpenTofu), no CDKTF: an HCP Terraform / TFE agent pool that only
# some workspaces may use, one agent token delivered to SSM Parameter Store and rotated every 30 days,
# and one delivered to Vault KV. State keeps ids, sink addresses and versions: never a token.

terraform {
  required_version = ">= 1.6"

  required_providers {
    tokendrop = {
      # OpenTofu: write "registry.terraform.io/tokendrop/tokendrop" (tofu's default registry differs).
      source = "tokendrop/tokendrop"
    }
  }
}

# Every setting falls back to the variables the official providers read: TFE_ADDRESS, TFE_TOKEN;
# AWS's default credential chain, AWS_REGION, AWS_ENDPOINT_URL_SSM; VAULT_ADDR, VAULT_TOKEN.
# `eval "$(tokendrop sandbox env)"` sets all of them for the local sandbox.
provider "tokendrop" {}

variable "organization" {
  description = "HCP Terraform / TFE organization that owns the agent pool."
  type        = string
  default     = "acme" # the sandbox's organization
}

variable "pool_name" {
  description = "Name of the agent pool."
  type        = string
  default     = "ci-agents"
}

variable "workspace_ids" {
  description = "Workspaces (ws-…) allowed to use the pool; empty means none until you add some."
  type        = list(string)
  default     = []
}

variable "ssm_prefix" {
  description = "SSM Parameter Store path under which the runners' token is written (as <prefix>/token)."
  type        = string
  default     = "/ci/tfc-agent"

  validation {
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.ssm_prefix))
    error_message = "ssm_prefix must be an absolute parameter path such as /ci/tfc-agent, without a trailing /."
  }
}

variable "kms_key_id" {
  description = "KMS key for the SecureString parameter; null uses the account's alias/aws/ssm."
  type        = string
  default     = null
}

variable "vault_mount" {
  description = "KV version 2 mount that receives the batch token."
  type        = string
  default     = "secret" # the sandbox's (and a dev server's) KV v2 mount
}

variable "vault_path" {
  description = "Secret path inside vault_mount for the batch token."
  type        = string
  default     = "ci/tfc-agent/batch"
}

resource "tokendrop_tfe_agent_pool" "ci" {
  organization          = var.organization
  name                  = var.pool_name
  organization_scoped   = false
  allowed_workspace_ids = var.workspace_ids
}

# Minted and written into SSM in one provider call; a new token every 30 days, the previous one kept
# valid for two more hours so that running agents can pick up the new value.
resource "tokendrop_tfe_agent_token" "runners" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  description   = "ci runners"

  deliver_to = {
    ssm = {
      name       = "${var.ssm_prefix}/token"
      kms_key_id = var.kms_key_id
      tags       = { team = "ci", purpose = "tfc-agent" }
    }
  }

  rotate_every      = "30d"
  keep_previous_for = "2h"
}

resource "tokendrop_tfe_agent_token" "batch" {
  agent_pool_id = tokendrop_tfe_agent_pool.ci.id
  description   = "batch runners"

  deliver_to = {
    vault_kv = {
      mount = var.vault_mount
      path  = var.vault_path
      field = "token"
    }
  }
}
