"""Where a token is delivered: plain value objects (not constructs) for a resource's `deliver_to`.

Each sink knows its `deliver_to` shape (the nested attribute of `schema.DELIVER_TO`), its address as
the provider reports it in `sink_address`, and the policy a consumer needs to read what was delivered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tokendrop_provider import schema
from tokendrop_provider.registry.sinks import format_address, sink_kind

from ._values import is_unresolved


class Sink:
    """A `deliver_to` target. Pass one to a token construct, or a list of them: one token, every sink."""

    kind: ClassVar[str]  # the nested attribute under deliver_to: "ssm" | "vault_kv" | "secrets_manager"

    def to_config(self) -> dict[str, Any]:
        """The `deliver_to` object, e.g. `{"ssm": {"name": "/ci/token"}}` (unset fields left out)."""
        raise NotImplementedError

    @property
    def address(self) -> str:
        """The address the provider reports as `sink_address` once the token is delivered."""
        raise NotImplementedError


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class SsmParameter(Sink):
    """An AWS SSM Parameter Store `SecureString` parameter (created by tokendrop, never by you).

    `tags` are kept on the parameter besides tokendrop's own `managed-by` and `tokendrop:issuer`.
    """

    name: str
    kms_key_id: str | None = None
    tier: str | None = None
    description: str | None = None
    tags: Mapping[str, str] | None = field(default=None, hash=False)
    # Its own AWS region (the provider's `aws_region` when None): one token, a parameter per region.
    region: str | None = None
    # A role in another account, assumed by the provider to write there (cross-account delivery).
    assume_role_arn: str | None = None

    kind: ClassVar[str] = schema.SSM_SINK.name

    def to_config(self) -> dict[str, Any]:
        return {self.kind: _drop_none({
            "name": self.name, "kms_key_id": self.kms_key_id, "tier": self.tier,
            "description": self.description, "tags": dict(self.tags) if self.tags is not None else None,
            "region": self.region, "assume_role_arn": self.assume_role_arn,
        })}

    @property
    def address(self) -> str:
        return format_address(self.kind, {"name": self.name, "region": self.region,
                                          "assume_role_arn": self.assume_role_arn})

    def arn(self, region: str | None = None, account: str = "*", partition: str = "aws") -> str:
        """The parameter's ARN (wildcards by default, its own region if it names one), e.g. for an ECS
        container's `valueFrom`."""
        # A hierarchical name keeps its leading slash in the name but not in the ARN.
        region = region or self.region or "*"
        return f"arn:{partition}:ssm:{region}:{account}:parameter/{self.name.removeprefix('/')}"

    def read_policy(self, region: str | None = None, account: str = "*", partition: str = "aws") -> dict[str, Any]:
        """The IAM policy document a consumer needs to read the delivered token: `ssm:GetParameter` on
        this parameter and, when a customer managed KMS key is set, `kms:Decrypt` on that key limited
        to this parameter's encryption context. (The default `alias/aws/ssm` key needs no grant: its
        key policy lets every principal of the account decrypt through SSM.)"""
        parameter_arn = self.arn(region, account, partition)
        statements: list[dict[str, Any]] = [{
            "Sid": "ReadTokendropParameter",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": parameter_arn,
        }]
        if self.kms_key_id:
            statements.append(_kms_decrypt_statement(self.kms_key_id, parameter_arn, region or self.region or "*",
                                                     account, partition))
        return {"Version": "2012-10-17", "Statement": statements}

    def read_policy_json(self, region: str | None = None, account: str = "*", partition: str = "aws") -> str:
        return json.dumps(self.read_policy(region, account, partition), indent=2, sort_keys=False)


_KMS_ARN = re.compile(r"arn:(?P<partition>[^:]+):kms:(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)")


def _kms_decrypt_statement(key: str, parameter_arn: str, region: str, account: str,
                           partition: str) -> dict[str, Any]:
    # SSM encrypts every SecureString with the encryption context PARAMETER_ARN=<parameter ARN>, so the
    # grant can be narrowed to this one parameter even when the key is shared.
    condition: dict[str, Any] = {"StringLike": {"kms:EncryptionContext:PARAMETER_ARN": parameter_arn}}
    statement: dict[str, Any] = {"Sid": "DecryptTokendropParameter", "Effect": "Allow", "Action": "kms:Decrypt"}
    match = _KMS_ARN.fullmatch(key) if not is_unresolved(key) else None
    if match:
        partition, region, account, resource = match.group("partition", "region", "account", "resource")
    else:
        resource = key
    if resource.startswith("alias/"):
        # IAM cannot name a key by alias: grant on any key that carries the alias.
        statement["Resource"] = f"arn:{partition}:kms:{region}:{account}:key/*"
        condition["ForAnyValue:StringEquals"] = {"kms:ResourceAliases": resource}
    elif match:
        statement["Resource"] = key
    else:
        statement["Resource"] = f"arn:{partition}:kms:{region}:{account}:key/{resource.removeprefix('key/')}"
    statement["Condition"] = condition
    return statement


@dataclass(frozen=True)
class VaultSecret(Sink):
    """A HashiCorp Vault (or OpenBao) KV version 2 secret; the token is stored under `field`."""

    path: str
    mount: str = sink_kind(schema.VAULT_KV_SINK.name).defaults()["mount"]
    field: str = sink_kind(schema.VAULT_KV_SINK.name).defaults()["field"]

    kind: ClassVar[str] = schema.VAULT_KV_SINK.name

    def to_config(self) -> dict[str, Any]:
        return {self.kind: {"mount": self.mount, "path": self.path, "field": self.field}}

    @property
    def address(self) -> str:
        return format_address(self.kind, {"mount": self.mount, "path": self.path, "field": self.field})

    @property
    def api_path(self) -> str:
        """The KV v2 read path, as `vault kv get -mount` and agent templates spell it: `<mount>/data/<path>`."""
        return f"{self.mount}/data/{self.path}"

    def read_policy(self) -> str:
        """The Vault policy (HCL) a consumer needs to read the delivered token. One line, so that it
        survives cdktf's HCL rendering of outputs (which cannot write multi-line strings)."""
        return f'path "{self.api_path}" {{ capabilities = ["read"] }}'

    def agent_template(self, variable: str = "TFC_AGENT_TOKEN") -> str:
        """A Vault Agent / consul-template template that renders `VARIABLE=<token>` (an env file)."""
        return (f'{{{{ with secret "{self.api_path}" }}}}{variable}={{{{ index .Data.data "{self.field}" }}}}'
                "{{ end }}\n")


@dataclass(frozen=True)
class SecretsManagerSecret(Sink):
    """An AWS Secrets Manager secret (created by tokendrop, never by you). The token is its plain value,
    or, with `field`, one key of a JSON object (what the Elastic CI Stack and many apps read).
    `replica_regions` uses Secrets Manager's own replication; `recovery_window_in_days` (7-30, 0 = at
    once) is how long a destroyed secret can be restored."""

    name: str
    kms_key_id: str | None = None
    tags: Mapping[str, str] | None = field(default=None, hash=False)
    replica_regions: tuple[str, ...] | list[str] | None = field(default=None, hash=False)
    field: str | None = None
    recovery_window_in_days: int | None = None
    region: str | None = None  # its own primary region (the provider's `aws_region` when None)
    assume_role_arn: str | None = None  # a role in another account, assumed by the provider to write there

    kind: ClassVar[str] = schema.SECRETS_MANAGER_SINK.name

    def to_config(self) -> dict[str, Any]:
        return {self.kind: _drop_none({
            "name": self.name, "kms_key_id": self.kms_key_id,
            "tags": dict(self.tags) if self.tags is not None else None,
            "replica_regions": list(self.replica_regions) if self.replica_regions is not None else None,
            "field": self.field, "recovery_window_in_days": self.recovery_window_in_days, "region": self.region,
            "assume_role_arn": self.assume_role_arn,
        })}

    @property
    def address(self) -> str:
        return format_address(self.kind, {"name": self.name, "region": self.region,
                                          "assume_role_arn": self.assume_role_arn})

    def arn(self, region: str = "*", account: str = "*", partition: str = "aws") -> str:
        """The secret's ARN pattern: AWS appends "-" and six random characters to the name."""
        return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{self.name}-??????"

    def read_policy(self, region: str = "*", account: str = "*", partition: str = "aws") -> dict[str, Any]:
        """The IAM policy document a consumer needs to read the delivered token (in the primary region
        and, with the default `region="*"`, in every replica): `secretsmanager:GetSecretValue` and
        `DescribeSecret` on this secret and, for a customer managed KMS key, `kms:Decrypt` on that key
        through Secrets Manager only, for this secret's encryption context. (The default
        `aws/secretsmanager` key needs no grant.)"""
        secret_arn = self.arn(region, account, partition)
        statements: list[dict[str, Any]] = [{
            "Sid": "ReadTokendropSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": secret_arn,
        }]
        if self.kms_key_id:
            statement = _kms_decrypt_statement(self.kms_key_id, secret_arn, region, account, partition)
            # Secrets Manager's encryption context names the secret ARN (SecretARN), not a parameter.
            statement["Sid"] = "DecryptTokendropSecret"
            statement["Condition"]["StringLike"] = {"kms:EncryptionContext:SecretARN": secret_arn,
                                                    "kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
            statements.append(statement)
        return {"Version": "2012-10-17", "Statement": statements}

    def read_policy_json(self, region: str = "*", account: str = "*", partition: str = "aws") -> str:
        return json.dumps(self.read_policy(region, account, partition), indent=2, sort_keys=False)


@dataclass(frozen=True)
class TokenVaultWebhook(Sink):
    """A Token Vault service in Webhook Mode: the token goes to the vault's own webhook with a store ticket
    Token Vault issues, so Token Vault never sees it. `webhook_url` (recommended) pins the webhook the ticket
    must name. Readers are Token Vault agents: grant them the service (`TokenVaultAgent(...).grant(
    sink.service)`); an agent reads it with `GET /api/agents/credentials?service=<service>`, following the
    307 to the webhook (docs/tokenvault.md, "Webhook Mode delivery")."""

    service: str
    webhook_url: str | None = None

    kind: ClassVar[str] = "tokenvault_webhook"

    def to_config(self) -> dict[str, Any]:
        return {self.kind: _drop_none({"service": self.service, "webhook_url": self.webhook_url})}

    @property
    def address(self) -> str:
        return format_address(self.kind, {"service": self.service})
