"""The sandbox's AppRole sample: an AppRole auth mount on the OpenBao dev server with a role `ci`.

`tokendrop sandbox up` should call `setup_sample_approle(handle)` right after OpenBao is ready (see
runner.Sandbox._start_openbao), so that `tokendrop_vault_approle_secret_id` has a role to mint for:

    resource "tokendrop_vault_approle_secret_id" "ci" {
      role_name  = "ci"
      deliver_to = { ssm = { name = "/ci/vault/secret-id" } }
    }

A login with a delivered secret id gets a token with the `ci` policy: read access to secret/ci/*.
Idempotent: running it twice leaves one mount, one policy and one role.
"""

from __future__ import annotations

from typing import Any

from .servers import OpenBaoServer

SAMPLE_MOUNT = "approle"
SAMPLE_ROLE = "ci"
SAMPLE_POLICY = "ci"
SAMPLE_POLICY_HCL = """# What a CI job that logged in with the sandbox's AppRole may do.
path "secret/data/ci/*" { capabilities = ["read"] }
path "secret/metadata/ci/*" { capabilities = ["read", "list"] }
"""


def setup_sample_approle(server: OpenBaoServer, *, mount: str = SAMPLE_MOUNT, role: str = SAMPLE_ROLE,
                         secret_id_ttl: str = "720h") -> dict[str, Any]:  # noqa: S107 - a duration
    """Enable AppRole at `mount` (once), write the `ci` policy and the role; returns what a user needs
    to know (mount, role, policy, role_id). Mints no secret id: that is the provider's job."""
    enabled = server.api("GET", "sys/auth") or {}
    if f"{mount}/" not in (enabled.get("data") or enabled):
        server.api("POST", f"sys/auth/{mount}", {"type": "approle", "description": "tokendrop sandbox"})
    server.api("PUT", f"sys/policies/acl/{SAMPLE_POLICY}", {"policy": SAMPLE_POLICY_HCL})
    server.api("POST", f"auth/{mount}/role/{role}", {
        "token_policies": [SAMPLE_POLICY], "token_ttl": "1h", "token_max_ttl": "4h",
        "secret_id_ttl": secret_id_ttl, "secret_id_num_uses": 0,
    })
    role_id = server.api("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
    return {"mount": mount, "role": role, "policy": SAMPLE_POLICY, "role_id": role_id}
