"""An agent that signs in as its Microsoft Entra agent identity with the credential tokendrop delivered.

It reads the blueprint's credential from Vault KV v2 (a certificate: `private_key` + `certificate`) or
from SSM (a password: `client_secret`), each delivered with `client_id`, `tenant_id` and `token_endpoint`,
then runs the two steps with msal: the blueprint's token for this agent identity (`fmi_path`), then the
agent identity's own token. It prints the token's claims, never the token or the credential.

    eval "$(tokendrop sandbox env)"
    python examples/entra-agent/agent.py --agent-client-id <id> --vault-path agents/support/certificate
    python examples/entra-agent/agent.py --agent-client-id <id> --ssm-name /agents/support/blueprint-password

Vault: VAULT_ADDR and VAULT_TOKEN. SSM: the AWS environment. A private CA (the sandbox's) comes from
TOKENDROP_ENTRA_CA_CERT.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

import msal
import requests


def from_vault(path: str, mount: str) -> dict[str, Any]:
    answer = requests.get(f"{os.environ['VAULT_ADDR'].rstrip('/')}/v1/{mount}/data/{path}",
                          headers={"X-Vault-Token": os.environ["VAULT_TOKEN"]}, timeout=10)
    answer.raise_for_status()
    return dict(answer.json()["data"]["data"])


def from_ssm(name: str) -> dict[str, Any]:
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")  # boto3 reads only the latter
    parameter = boto3.client("ssm", region_name=region).get_parameter(Name=name, WithDecryption=True)["Parameter"]
    return dict(json.loads(parameter["Value"]))


def confidential_client(client_id: str, credential: Any, token_endpoint: str) -> msal.ConfidentialClientApplication:
    http = requests.Session()
    http.trust_env = False
    http.verify = os.environ.get("TOKENDROP_ENTRA_CA_CERT") or True
    return msal.ConfidentialClientApplication(client_id, client_credential=credential, http_client=http,
                                              authority=token_endpoint.removesuffix("/oauth2/v2.0/token"),
                                              instance_discovery=False)


def agent_token(delivered: dict[str, Any], agent_client_id: str, scope: str) -> dict[str, Any]:
    """The agent identity's token: blueprint credentials + fmi_path give T1; T1 as the agent's assertion."""
    if "private_key" in delivered:
        credential: Any = {"private_key": delivered["private_key"], "public_certificate": delivered["certificate"]}
    else:
        credential = delivered["client_secret"]
    blueprint = confidential_client(delivered["client_id"], credential, delivered["token_endpoint"])
    t1 = blueprint.acquire_token_for_client(["api://AzureADTokenExchange/.default"], fmi_path=agent_client_id)
    if "access_token" not in t1:
        raise SystemExit(f"blueprint token refused: {t1.get('error_description')}")
    agent = confidential_client(agent_client_id, {"client_assertion": lambda: t1["access_token"]},
                                delivered["token_endpoint"])
    result = agent.acquire_token_for_client([scope])
    if "access_token" not in result:
        raise SystemExit(f"agent token refused: {result.get('error_description')}")
    return dict(result)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-client-id", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vault-path", help="KV v2 path of the delivered certificate")
    source.add_argument("--ssm-name", help="SSM parameter of the delivered password")
    parser.add_argument("--vault-mount", default="secret")
    parser.add_argument("--scope", default="https://graph.microsoft.com/.default")
    args = parser.parse_args(argv)
    delivered = from_vault(args.vault_path, args.vault_mount) if args.vault_path else from_ssm(args.ssm_name)
    token = agent_token(delivered, args.agent_client_id, args.scope)
    seen = claims(token["access_token"])
    print(json.dumps({k: seen.get(k) for k in ("aud", "appid", "sub", "tid", "xms_par_app_azp", "exp")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
