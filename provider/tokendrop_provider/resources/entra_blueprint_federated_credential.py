"""tokendrop_entra_blueprint_federated_credential: a federated identity credential on a blueprint.

Nothing secret exists: the external issuer's tokens are the credential. The plan refuses a name or an
issuer+subject pair the blueprint already has (one read of its credentials, cached per run); two new
credentials of one configuration that collide are refused by Graph at apply, with its message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema
from ..errors import ConfigError
from ..registry.entra import ISSUER as ENTRA
from .base import Context, Resource, State
from .entra_agent_blueprint import check_roles, is_guid

if TYPE_CHECKING:
    from ..issuers.entra import EntraClient, FederatedCredential


class EntraBlueprintFederatedCredential(Resource):
    schema = schema.ENTRA_BLUEPRINT_FEDERATED_CREDENTIAL

    def client(self, ctx: Context) -> EntraClient:
        return ctx.clients.of(ENTRA)

    def preflight(self, ctx: Context, prior: State | None, planned: State) -> None:
        from ..issuers.entra import ROLE_CREDENTIALS

        ctx.clients.check(ENTRA)
        if prior is not None:
            return
        check_roles(ctx, ROLE_CREDENTIALS, attribute="blueprint_id")
        blueprint, name = planned.get("blueprint_id"), planned.get("name")
        issuer, subject = planned.get("issuer"), planned.get("subject")
        if not isinstance(blueprint, str):
            return  # the blueprint is created in this run: Graph judges at apply
        client = self.client(ctx)
        if client.get_blueprint(blueprint) is None:
            raise ConfigError("Blueprint not found", f"No agent identity blueprint {blueprint} is visible to the "
                              "provider.", ("blueprint_id",))
        existing = ctx.clients.memo(("entra-fics", blueprint), lambda: client.list_federated_credentials(blueprint))
        for fic in existing:
            if fic.name == name:
                raise ConfigError("Federated credential name taken", f"Blueprint {blueprint} already has a federated "
                                  f"identity credential named {name!r} ({fic.id}).", ("name",))
            if fic.issuer == issuer and fic.subject == subject:
                raise ConfigError("Federated credential already exists", f"Blueprint {blueprint} already trusts "
                                  f"{issuer} / {subject} (credential {fic.name!r}); issuer and subject must be unique "
                                  "on a blueprint.", ("subject",))

    def create(self, ctx: Context, planned: State) -> State:
        fic = self.client(ctx).create_federated_credential(
            str(planned["blueprint_id"]), str(planned["name"]), str(planned["issuer"]), str(planned["subject"]),
            list(planned.get("audiences") or [schema.ENTRA_EXCHANGE_AUDIENCE]),  # type: ignore[call-overload]
            planned.get("description"))  # type: ignore[arg-type]
        return _state(fic, planned)

    def read(self, ctx: Context, state: State) -> State | None:
        fic = self.client(ctx).get_federated_credential(str(state["blueprint_id"]), str(state["id"]))
        return None if fic is None else _state(fic, state)

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        return dict(planned)  # every argument replaces the credential

    def delete(self, ctx: Context, prior: State) -> None:
        self.client(ctx).delete_federated_credential(str(prior["blueprint_id"]), str(prior["id"]))

    def import_state(self, ctx: Context, import_id: str) -> State:
        blueprint, _, wanted = import_id.partition("/")
        if not is_guid(blueprint) or not wanted:
            raise ConfigError("Invalid import id", f"Expected <blueprint object id>/<credential id or name>, got "
                              f"{import_id!r}.")
        fic = self.client(ctx).get_federated_credential(blueprint, wanted)
        if fic is None:
            raise ConfigError("Cannot import", f"Blueprint {blueprint} has no federated credential {wanted!r}.")
        return _state(fic, {"blueprint_id": blueprint})


def _state(fic: FederatedCredential, previous: State) -> State:
    return {**previous, "id": fic.id, "name": fic.name, "issuer": fic.issuer, "subject": fic.subject,
            "audiences": list(fic.audiences), "description": fic.description or previous.get("description")}
