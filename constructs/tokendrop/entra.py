"""Microsoft Entra Agent ID: an agent identity blueprint (with its principal), its agent identities, the
federated credentials it trusts and the passwords it delivers.

    blueprint = EntraAgentBlueprint(self, "support", display_name="support-agents",
                                    sponsors=["users/e64405d7-f156-4ce1-b1f5-b0d801c367f3"])
    blueprint.add_identity("triage", display_name="support-triage")
    blueprint.trust(federated=Federated.github_actions("acme/support-agent", branch="main"))
    blueprint.add_password("dev", deliver_to=VaultSecret(path="agents/support"))

Federated credentials are the production path (nothing secret exists); a password is delivered with the
settings an agent needs beside it (`client_id`, `tenant_id`, `token_endpoint`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokendrop_provider import schema

from ._base import TokendropResource, TokenResource
from .errors import Problem, TokendropValidationError
from .tfe import Duration, SinkArgument


@dataclass(frozen=True)
class Federated:
    """The issuer and subject of the external tokens a blueprint trusts (docs/wire.md, "Microsoft Entra
    (Graph)"), with a default credential name. Use the constructors for the common issuers."""

    issuer: str
    subject: str
    name: str
    audience: str = schema.ENTRA_EXCHANGE_AUDIENCE

    @classmethod
    def github_actions(cls, repository: str, *, branch: str | None = None, environment: str | None = None,
                       tag: str | None = None) -> Federated:
        """Workflow runs of `owner/repo` on one branch, environment or tag (exactly one)."""
        chosen = [(f"{prefix}{v}", v) for prefix, v in (("ref:refs/heads/", branch), ("environment:", environment),
                                                        ("ref:refs/tags/", tag)) if v]
        if len(chosen) != 1:
            raise ValueError("Federated.github_actions needs exactly one of branch, environment or tag")
        (claim, value), = chosen
        return cls("https://token.actions.githubusercontent.com", f"repo:{repository}:{claim}",
                   _name(f"github-{repository}-{value}"))

    @classmethod
    def managed_identity(cls, tenant_id: str, principal_id: str) -> Federated:
        """An Azure managed identity (its object / principal id) of the tenant."""
        return cls(f"https://login.microsoftonline.com/{tenant_id}/v2.0", principal_id,
                   _name(f"managed-identity-{principal_id}"))

    @classmethod
    def hcp_terraform(cls, organization: str, project: str, workspace: str, run_phase: str,
                      hostname: str = "app.terraform.io") -> Federated:
        """HCP Terraform / Terraform Enterprise workload identity for one workspace and run phase (`plan`
        or `apply`; Entra matches the subject exactly, so each phase is its own credential)."""
        if run_phase not in ("plan", "apply"):
            raise ValueError("run_phase must be 'plan' or 'apply'")
        return cls(f"https://{hostname}",
                   f"organization:{organization}:project:{project}:workspace:{workspace}:run_phase:{run_phase}",
                   _name(f"tfc-{organization}-{workspace}-{run_phase}"))


def _name(text: str) -> str:
    """A credential name Graph accepts: URL friendly, at most 120 characters."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.")
    return cleaned[:schema.ENTRA_FIC_NAME_MAX]


class EntraAgentIdentity(TokendropResource):
    """An agent identity created from a blueprint. Prefer `EntraAgentBlueprint.add_identity`."""

    schema = schema.ENTRA_AGENT_IDENTITY

    def __init__(self, scope: Any, id: str, *, blueprint_app_id: str, display_name: str, sponsors: Sequence[str],
                 **meta: Any) -> None:
        super().__init__(scope, id, blueprint_app_id=blueprint_app_id, display_name=display_name,
                         sponsors=list(sponsors), **meta)

    @property
    def client_id(self) -> str:
        """The agent identity's client id: the `fmi_path` of its blueprint's token request."""
        return self.get_string_attribute("app_id")


class EntraBlueprintFederatedCredential(TokendropResource):
    """A federated identity credential on a blueprint. Prefer `EntraAgentBlueprint.trust`."""

    schema = schema.ENTRA_BLUEPRINT_FEDERATED_CREDENTIAL

    def __init__(self, scope: Any, id: str, *, blueprint_id: str, name: str, issuer: str, subject: str,
                 audiences: Sequence[str] | None = None, description: str | None = None, **meta: Any) -> None:
        super().__init__(scope, id, blueprint_id=blueprint_id, name=name, issuer=issuer, subject=subject,
                         audiences=list(audiences) if audiences else None, description=description, **meta)


class EntraBlueprintPassword(TokenResource):
    """A client secret of a blueprint, delivered with `client_id`, `tenant_id` and `token_endpoint`.
    Prefer `EntraAgentBlueprint.add_password`."""

    schema = schema.ENTRA_BLUEPRINT_PASSWORD

    def __init__(self, scope: Any, id: str, *, blueprint_id: str, deliver_to: SinkArgument,
                 description: str | None = None, valid_for: Duration | None = None,
                 rotate_every: Duration | None = None, rotate_before_expiry: Duration | None = None,
                 rotate_on: Mapping[str, str] | None = None, keep_previous_for: Duration | None = None,
                 adopt_existing: bool | None = None, **meta: Any) -> None:
        super().__init__(scope, id, blueprint_id=blueprint_id, deliver_to=deliver_to, description=description,
                         valid_for=valid_for, rotate_every=rotate_every, rotate_before_expiry=rotate_before_expiry,
                         rotate_on=rotate_on, keep_previous_for=keep_previous_for, adopt_existing=adopt_existing,
                         **meta)


class EntraBlueprintCertificate(TokenResource):
    """A certificate credential of a blueprint: tokendrop makes the key pair and delivers the private key and
    certificate (PEM) with `client_id`, `tenant_id` and `token_endpoint`. Prefer
    `EntraAgentBlueprint.add_certificate`."""

    schema = schema.ENTRA_BLUEPRINT_CERTIFICATE

    def __init__(self, scope: Any, id: str, *, blueprint_id: str, deliver_to: SinkArgument,
                 description: str | None = None, valid_for: Duration | None = None, rsa_bits: int | None = None,
                 rotate_every: Duration | None = None, rotate_before_expiry: Duration | None = None,
                 rotate_on: Mapping[str, str] | None = None, keep_previous_for: Duration | None = None,
                 adopt_existing: bool | None = None, **meta: Any) -> None:
        super().__init__(scope, id, blueprint_id=blueprint_id, deliver_to=deliver_to, description=description,
                         valid_for=valid_for, rsa_bits=rsa_bits, rotate_every=rotate_every,
                         rotate_before_expiry=rotate_before_expiry, rotate_on=rotate_on,
                         keep_previous_for=keep_previous_for, adopt_existing=adopt_existing, **meta)


class EntraAgentBlueprint(TokendropResource):
    """An agent identity blueprint and its blueprint principal."""

    schema = schema.ENTRA_AGENT_BLUEPRINT

    def __init__(self, scope: Any, id: str, *, display_name: str, sponsors: Sequence[str],
                 owners: Sequence[str] | None = None, **meta: Any) -> None:
        super().__init__(scope, id, display_name=display_name, sponsors=list(sponsors),
                         owners=list(owners) if owners else None, **meta)
        self._sponsors = list(sponsors)
        self._trusted: dict[str, Federated] = {}

    @property
    def blueprint_id(self) -> str:
        """The blueprint's object id."""
        return self.get_string_attribute("id")

    @property
    def client_id(self) -> str:
        """The blueprint's client (app) id."""
        return self.get_string_attribute("app_id")

    def add_identity(self, id: str, *, display_name: str, sponsors: Sequence[str] | None = None,
                     **meta: Any) -> EntraAgentIdentity:
        """An agent identity of this blueprint (child construct `<blueprint path>/<id>`); its sponsors default
        to the blueprint's."""
        return EntraAgentIdentity(self, id, blueprint_app_id=self.client_id, display_name=display_name,
                                  sponsors=list(sponsors or self._sponsors), **meta)

    def trust(self, id: str | None = None, *, federated: Federated, name: str | None = None,
              description: str | None = None, **meta: Any) -> EntraBlueprintFederatedCredential:
        """Let tokens of `federated`'s issuer and subject act as the blueprint. Refused here if this blueprint
        already trusts the same name or issuer+subject (Graph would refuse it at apply)."""
        name = name or federated.name
        for other_name, other in self._trusted.items():
            if other_name == name or (other.issuer, other.subject) == (federated.issuer, federated.subject):
                raise TokendropValidationError(f"{self.node.path}/{id or name}", [Problem(
                    "subject" if other_name != name else "name",
                    f"the blueprint already trusts {other.issuer} / {other.subject} as {other_name!r}: names and "
                    "issuer+subject pairs are unique on a blueprint")])
        credential = EntraBlueprintFederatedCredential(
            self, id or name, blueprint_id=self.blueprint_id, name=name, issuer=federated.issuer,
            subject=federated.subject, audiences=[federated.audience], description=description, **meta)
        self._trusted[name] = federated
        return credential

    def add_password(self, id: str, *, deliver_to: SinkArgument, description: str | None = None,
                     valid_for: Duration | None = None, rotate_every: Duration | None = None,
                     rotate_before_expiry: Duration | None = None, rotate_on: Mapping[str, str] | None = None,
                     keep_previous_for: Duration | None = None, **meta: Any) -> EntraBlueprintPassword:
        """A client secret of this blueprint delivered to `deliver_to` (for local development: Microsoft
        recommends `trust()` or certificates in production)."""
        return EntraBlueprintPassword(self, id, blueprint_id=self.blueprint_id, deliver_to=deliver_to,
                                      description=description, valid_for=valid_for, rotate_every=rotate_every,
                                      rotate_before_expiry=rotate_before_expiry, rotate_on=rotate_on,
                                      keep_previous_for=keep_previous_for, **meta)

    def add_certificate(self, id: str, *, deliver_to: SinkArgument, description: str | None = None,
                        valid_for: Duration | None = None, rsa_bits: int | None = None,
                        rotate_every: Duration | None = None, rotate_before_expiry: Duration | None = None,
                        rotate_on: Mapping[str, str] | None = None, keep_previous_for: Duration | None = None,
                        **meta: Any) -> EntraBlueprintCertificate:
        """A certificate of this blueprint whose private key and certificate go to `deliver_to`; rotation keeps
        the previous certificate valid for `keep_previous_for`."""
        return EntraBlueprintCertificate(self, id, blueprint_id=self.blueprint_id, deliver_to=deliver_to,
                                         description=description, valid_for=valid_for, rsa_bits=rsa_bits,
                                         rotate_every=rotate_every, rotate_before_expiry=rotate_before_expiry,
                                         rotate_on=rotate_on, keep_previous_for=keep_previous_for, **meta)
