"""tokendrop_tokenvault_agent: a Token Vault agent, its grants, and its API key delivered to a sink.

The agent is the long-lived object and its key the delivered token: the resource's `id` is the
agent id, which a rotation keeps (`TokenVaultClient.rotates_in_place`). Create, read and delete go
through the shared lifecycle of token.py / delivery.py; grants are managed here, in place, after
the key is delivered.

Create: POST /api/agents (the key exists only in that response) -> write the sink (on failure the
agent is deleted again) -> grant each service. The agent's description carries the sink marker, so
the next delivery to that sink deletes agents an interrupted create left behind.

Rotation: rotate-key, then the new key as the next sink version. rotate-key invalidates the old key
the moment it returns, so `keep_previous_for` is rejected, and a crash (or a failed sink write)
between the two steps leaves the sink holding a dead key. Two things repair that:

1. State is not saved by an apply that crashed or failed, so whatever planned the rotation (a
   changed `rotate_on`, an elapsed `rotate_every`, a drifted sink) still plans it next time.
2. The key generation. State's `created_at` is when the delivered key was issued, as Token Vault
   reports it (`keyCreatedAt`); as long as `sink_version` matches the sink, that is the generation
   the sink holds. Refresh compares it with the agent's current one: if the agent's key is newer,
   the sink holds a dead key (our rotation that never delivered, or a rotate-key outside Terraform),
   `sink_status` becomes `stale` and the plan shows a rotation with that reason. This also covers a
   configuration reverted in between, where (1) alone would leave the dead key in place. Where the
   API reports no key time, only (1) applies.

A crash after the sink write but before state is saved leaves the sink one version ahead of state:
refresh reports it (`overwritten`) and the next apply rotates once more, so state, sink and agent
agree again. No key is ever written twice, and no agent is left without a deliverable key.

Rotation by a successor (`rotation = "successor"`), for a provider key that may not rotate an agent's key
(Token Vault answers rotate-key with HUMAN_ONLY; docs/tokenvault.md "What only a human can do"): the
issuer is `TokenVaultSuccessorAgents`, so the shared lifecycle mints a new agent (same name and
description, so the sink's marker finds it), writes its key as the next sink version and deletes the
predecessor at once or keeps it for `keep_previous_for` (retired by the first apply after that). The plan
shows the new id (unknown) and so the grant resources that move to the successor. The successor gets the
configured `grants`, or, with `grants` unset, the live grants the predecessor held (read before the
rotation), so that it can read what the predecessor could from its first moment.

Grants: added and removed in place, one call per service with exactly the body the CLI sends
({agentId, serviceName}); the route takes no expiry and no refresh policy, so the schema refuses
both at plan and state holds what the agent's record reports after each grant (`expires_at`,
`auto_refresh`). A grant whose reported refresh policy differs from the configuration is revoked and
granted again. Refresh drops grants that expired or were revoked (the plan grants them again) and
reports grants added outside Terraform (the plan revokes them). All of this only while `grants` is set:
unset, the agent never touches grants (tokendrop_tokenvault_agent_grant manages them), and removing it
releases the grants instead of revoking them (docs/tokenvault.md).

Scopes: the plan asks Token Vault which scopes the provider's key holds (whoami) and fails naming any
that this resource's next apply needs (see `required_scopes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .. import schema
from ..delivery import split_description
from ..errors import ConfigError, IssuerValidationError, TokendropError
from ..issuers.base import IssuedToken
from ..registry.sinks import prefixes as sink_prefixes
from ..registry.tokenvault import ISSUER as TOKENVAULT
from ..timestamps import parse_rfc3339
from ..types import UNKNOWN, Unknown
from .base import ApplyFailed, Context, Path, State
from .token import TokenResource, same_instant

if TYPE_CHECKING:
    from ..delivery import Target
    from ..issuers.tokenvault import Grant, TokenVaultClient

# Carries the agent's key generation from `refreshed_attributes` to `read` (never reaches state).
_KEY_ISSUED = "_key_issued_at"
SUCCESSOR = "successor"  # rotation by a new agent instead of rotate-key (schema.AGENT_ROTATIONS)

Element = dict[str, object]  # one grant as state holds it


class TokenVaultAgent(TokenResource):
    schema = schema.TOKENVAULT_AGENT
    scope_attribute = "name"
    expiring = False  # agent keys do not expire; grants do (their own expires_at)

    def issuer(self, ctx: Context) -> TokenVaultClient:
        return ctx.clients.of(TOKENVAULT)

    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        ctx.clients.check(TOKENVAULT)
        self.issuer(ctx).require_scopes(required_scopes(prior, planned), "tokendrop_tokenvault_agent")

    def target(self, ctx: Context, state: Mapping[str, object]) -> Target:
        target = super().target(ctx, state)
        if state.get("rotation") == SUCCESSOR:
            from ..issuers.tokenvault import TokenVaultSuccessorAgents

            target.issuer = TokenVaultSuccessorAgents(self.issuer(ctx))
        return target

    # --- plan -----------------------------------------------------------------------------------

    def plan_create(self, ctx: Context, planned: State) -> None:
        super().plan_create(ctx, planned)  # status stays unknown: an adopted agent may be suspended
        planned["grants"] = _plan_grants(None, planned.get("grants"))

    def plan_update(self, ctx: Context, prior: State, planned: State, replace: list[Path]) -> None:
        super().plan_update(ctx, prior, planned, replace)
        if replace:
            return
        successor = isinstance(planned.get("sink_version"), Unknown) and planned.get("rotation") == SUCCESSOR
        if successor:
            planned["status"] = UNKNOWN  # a new agent: its id stays unknown until apply
        elif isinstance(planned.get("sink_version"), Unknown):
            planned["id"] = prior.get("id")  # rotate-key keeps the agent
        planned["grants"] = _plan_grants(None if successor else prior.get("grants"), planned.get("grants"))

    # --- apply ----------------------------------------------------------------------------------

    def create(self, ctx: Context, planned: State) -> State:
        try:
            state = super().create(ctx, planned)  # the agent exists and the sink holds its key
        except ApplyFailed as unsettled:  # the key's delivery is unsettled: no grant was given yet
            unsettled.state["grants"] = _ordered(_elements(planned.get("grants")), {}, planned.get("grants"))
            unsettled.state["status"] = "active"  # just minted (create's own fallback)
            raise
        client = self.issuer(ctx)
        agent = client.get_agent(str(state["id"]))
        # A fresh agent has no grants; one adopted from an interrupted run may have some.
        current = {g.service: _element_from(g, None) for g in (agent.grants if agent else ())}
        state["status"] = agent.status if agent else "active"
        return self._apply_grants(client, state, {}, current, planned.get("grants"))

    def update(self, ctx: Context, prior: State, planned: State) -> State:
        client = self.issuer(ctx)
        if planned.get("rotation") == SUCCESSOR and isinstance(planned.get("id"), Unknown):
            return self._rotate_by_successor(client, ctx, prior, planned)
        state = super().update(ctx, prior, planned)  # rotate-key + sink write, or sink settings
        previous = {str(e["service"]): e for e in _elements(prior.get("grants"))}
        return self._apply_grants(client, state, previous, dict(previous), planned.get("grants"))

    def _rotate_by_successor(self, client: TokenVaultClient, ctx: Context, prior: State, planned: State) -> State:
        """A new agent with the predecessor's grants takes over the sink (see the module docstring)."""
        inherited: list[str] = []
        if planned.get("grants") is None:  # grants managed elsewhere: the successor inherits the live ones
            predecessor = client.get_agent(str(prior["id"]))
            inherited = [g.service for g in (predecessor.grants if predecessor else ()) if not g.expired()]
        state = super().update(ctx, prior, planned)  # mint the successor, write its key, retire or keep the old
        agent_id = str(state["id"])
        state["status"] = "active"
        if planned.get("grants") is not None:
            return self._apply_grants(client, state, {}, {}, planned.get("grants"))
        try:
            for service in inherited:
                self._grant(client, agent_id, {"service": service})
        except TokendropError as err:
            raise ApplyFailed(err, state) from None
        if inherited:
            ctx.warn(f"Token Vault agent {agent_id} succeeds {prior.get('id')}",
                     f"It was granted what its predecessor held: {', '.join(inherited)}.")
        return state

    def _apply_grants(self, client: TokenVaultClient, state: State, prior: Mapping[str, Element],
                      current: dict[str, Element], desired_value: object) -> State:
        """Make the agent's grants the desired ones. A grant is (re)granted exactly when the plan
        said so (new, or its expiry or refresh policy changed since `prior`), so that the expiry
        timestamps match the plan. On a failure the error is returned with the grants as they are."""
        if desired_value is None:
            # `grants` unset (or removed): grants are managed elsewhere (tokendrop_tokenvault_agent_grant,
            # the dashboard). Removing the attribute releases the grants, it does not revoke them.
            state["grants"] = None
            return state
        agent_id = str(state["id"])
        desired = _elements(desired_value)
        wanted = {str(e["service"]) for e in desired}
        try:
            for service in [s for s in current if s not in wanted]:
                client.remove_grant(agent_id, service)
                del current[service]
            for element in desired:
                service = str(element["service"])
                before = prior.get(service)
                if before is not None and _settings(before) == _settings(element) and service in current:
                    continue
                if service in current:  # Token Vault cannot edit a grant: revoke it, then grant it anew
                    client.remove_grant(agent_id, service)
                    del current[service]
                current[service] = self._grant(client, agent_id, element)
        except TokendropError as err:
            state["grants"] = _ordered(desired, current, desired_value)
            raise ApplyFailed(err, state) from None
        state["grants"] = _ordered(desired, current, desired_value)
        return state

    @staticmethod
    def _grant(client: TokenVaultClient, agent_id: str, element: Element) -> Element:
        """Grant one service; the element is what the agent's record then reports."""
        service = str(element["service"])
        try:
            grant = client.add_grant(agent_id, service)
        except IssuerValidationError as err:
            if err.status != 409:
                raise
            # Granted outside Terraform since the last refresh: replace it with ours.
            client.remove_grant(agent_id, service)
            grant = client.add_grant(agent_id, service)
        return _element_from(grant, None)

    # --- read -----------------------------------------------------------------------------------

    def read(self, ctx: Context, state: State) -> State | None:
        new = super().read(ctx, state)
        if new is None:
            return None
        issued_at = new.pop(_KEY_ISSUED, None)
        if new.get("status") not in (None, "active"):
            ctx.warn(f"Token Vault agent {state.get('id')} is {new.get('status')}",
                     "Token Vault refuses its key until the agent is resumed in the dashboard; tokendrop does not "
                     "change an agent's status.")
        gone = {str(e["service"]) for e in _elements(state.get("grants"))} - {
            str(e["service"]) for e in _elements(new.get("grants"))}
        if gone:
            ctx.warn(f"Grants of Token Vault agent {state.get('id')} ended",
                     f"{', '.join(sorted(gone))}: expired or revoked outside Terraform. The next apply grants "
                     "them again as configured (remove them from the configuration to let them lapse).")
        generation = state.get("created_at")
        if (isinstance(issued_at, str) and isinstance(generation, str) and new.get("sink_status") == "delivered"
                and not _same_moment(issued_at, generation)):
            new["sink_status"] = "stale"
            ctx.warn(f"Dead key in {state.get('sink_address')}",
                     f"Token Vault says the key of agent {state.get('id')} was issued at {issued_at}, but the key "
                     f"delivered to {state.get('sink_address')} (version {state.get('sink_version')}) was issued at "
                     f"{generation}. An apply that rotated the key did not finish, or someone rotated it outside "
                     "tokendrop; rotating invalidates the previous key, so the sink holds a dead key. The next apply "
                     "rotates the key again and delivers it.")
        return new

    def refreshed_attributes(self, token: IssuedToken, state: State) -> State:
        grants: Sequence[Grant] = token.extra.get("grants") or ()  # type: ignore[assignment]
        live = {g.service: g for g in grants}
        out: list[Element] = []
        for before in _elements(state.get("grants")):
            grant = live.pop(str(before["service"]), None)
            if grant is not None:  # gone ones are left out: the plan grants them again
                out.append(_element_from(grant, before))
        if state.get("grants") is None:
            # `grants` unset: the agent's grants are managed elsewhere (tokendrop_tokenvault_agent_grant
            # resources, the dashboard), never reported or revoked here.
            return {"grants": None, "status": token.extra.get("status") or state.get("status"),
                    _KEY_ISSUED: token.created_at}
        out.extend(_element_from(g, None) for g in live.values())  # granted outside Terraform
        return {"grants": out,
                "status": token.extra.get("status") or state.get("status"), _KEY_ISSUED: token.created_at}

    # --- import ---------------------------------------------------------------------------------

    def parse_import_id(self, import_id: str) -> tuple[str, str | None, str]:
        """`<agent id>/<sink address>`. The scope (the agent's name) is read from Token Vault, see
        `imported_attributes`; until then the agent id stands in for it."""
        agent_id, _, address = import_id.partition("/")
        if not agent_id or not address.startswith(sink_prefixes()):
            raise ConfigError("Invalid import id",
                              f"Expected <agent id>/<sink address>, got {import_id!r}. Sink addresses look like "
                              "ssm:/agents/triage/key or vault_kv:secret/agents/triage#token.")
        return agent_id, agent_id, address

    def imported_attributes(self, token: IssuedToken) -> State:
        grants: Sequence[Grant] = token.extra.get("grants") or ()  # type: ignore[assignment]
        return {"name": token.scope, "description": split_description(token.description)[0],
                "grants": [_element_from(g, None) for g in grants] or None,
                "status": token.extra.get("status") or "active"}


# --- grants as state holds them --------------------------------------------------------------------

def _elements(value: object) -> list[Element]:
    if not isinstance(value, list):
        return []
    return [dict(e) for e in value if isinstance(e, Mapping) and isinstance(e.get("service"), str)]


def _settings(element: Mapping[str, object]) -> tuple[object, bool]:
    return element.get("expires_in"), bool(element.get("auto_refresh"))


def _plan_grants(prior_value: object, planned_value: object) -> object:
    """Planned grants: an unchanged grant keeps its expiry timestamp; a new or altered one gets a new
    timestamp at apply (unknown), or none when it lasts until revoked."""
    if not isinstance(planned_value, list):
        return planned_value
    prior = {str(e["service"]): e for e in _elements(prior_value)}
    out: list[object] = []
    for element in planned_value:
        if not isinstance(element, Mapping):
            out.append(element)
            continue
        element = dict(element)
        before = prior.get(element.get("service"))  # type: ignore[arg-type]
        settings = (element.get("expires_in"), element.get("auto_refresh"))
        if any(isinstance(v, Unknown) for v in (element.get("service"), *settings)):
            element["expires_at"] = UNKNOWN
        elif before is not None and _settings(before) == _settings(element):
            element["expires_at"] = before.get("expires_at")
        else:
            element["expires_at"] = UNKNOWN  # whatever the agent's record reports once granted
        out.append(element)
    return out


def _element_from(grant: Grant, before: Mapping[str, object] | None) -> Element:
    """A live grant in state's shape: what the agent's record reports. `expires_in` is configuration
    only (and must be unset, see schema.py), so it is always null here."""
    known = before.get("expires_at") if before is not None else None
    return {"service": grant.service, "expires_in": None, "auto_refresh": grant.auto_refresh,
            "expires_at": same_instant(known, grant.expires_at)}


def required_scopes(prior: State | None, planned: State) -> list[str | tuple[str, ...]]:
    """The scopes the provider's key needs for the planned apply of one agent: reading it always,
    creating it when new, grants:write when it has or gets grants, agents:manage when rotation is
    configured (rotate-key), or agents:create and grants:write for a successor. A destroy's scope
    (agents:delete or agents:manage, left open by the sources, docs/wire.md) is named by Token Vault's
    SCOPE_DENIED at apply; so is retiring a successor's predecessor."""
    needed: list[str | tuple[str, ...]] = ["agents:read"]
    if prior is None:
        needed.append("agents:create")
    if _elements(planned.get("grants")) or _elements((prior or {}).get("grants")):
        needed.append("grants:write")
    if prior is not None and (planned.get("rotate_every") is not None or planned.get("rotate_on") is not None):
        if planned.get("rotation") == SUCCESSOR:  # a new agent, given the grants (deleting the old: see above)
            needed += [s for s in ("agents:create", "grants:write") if s not in needed]
        else:
            needed.append("agents:manage")
    return needed


def _ordered(desired: Sequence[Element], current: Mapping[str, Element], desired_value: object) -> object:
    """Grants in configuration order, then any the agent still has beyond them."""
    out = [current[str(e["service"])] for e in desired if str(e["service"]) in current]
    named = {str(e["service"]) for e in desired}
    out += [e for s, e in current.items() if s not in named]
    return out if out or desired_value is not None else None


def _same_moment(a: str, b: str) -> bool:
    try:
        return parse_rfc3339(a) == parse_rfc3339(b)
    except ValueError:
        return a == b
