"""tokendrop_buildkite_cluster_token: a Buildkite cluster agent token, delivered to a sink.

Buildkite edits a token's description and allowed IPs in place, so those never rotate it. Its expiry
is immutable: changing `expires_in` / `expires_at` replaces the token, and the plan says why. With
`expires_in` the expiry is fixed when the token is minted (and again at each rotation).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import schema
from ..delivery import split_description
from ..errors import ConfigError
from ..issuers.base import IssuedToken
from ..registry.buildkite import ISSUER as BUILDKITE
from ..registry.sinks import split_before_address
from ..timestamps import format_rfc3339
from ..types import Unknown
from ..validation import parse_duration
from .base import Context, Plan, State
from .buildkite_cluster import resolve_organization
from .token import TokenResource

if TYPE_CHECKING:
    from ..issuers.buildkite import BuildkiteClient

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EXPIRY = ("expires_in", "expires_at")
_ANY_ADDRESS = "0.0.0.0/0"
# Buildkite checks the 10-minute minimum against its own clock when the request arrives, so an
# expires_in at the minimum gets a minute of slack for latency and clock skew.
MINT_SLACK = datetime.timedelta(minutes=1)


class BuildkiteClusterToken(TokenResource):
    schema = schema.BUILDKITE_CLUSTER_TOKEN
    scope_attribute = "cluster_id"
    expiring = True
    issuer_updatable = ("description", "allowed_ip_addresses")

    def issuer(self, ctx: Context) -> BuildkiteClient:
        return ctx.clients.of(BUILDKITE)

    def scope_of(self, state: Mapping[str, object]) -> str:
        return f"{state['organization']}/{state['cluster_id']}"

    def scope_state(self, scope: str) -> State:
        organization, _, cluster_id = scope.partition("/")
        return {"organization": organization, "cluster_id": cluster_id}

    def mint_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        options: dict[str, object] = {"allowed_ip_addresses": state.get("allowed_ip_addresses")}
        expires_in, expires_at = state.get("expires_in"), state.get("expires_at")
        if isinstance(expires_in, str):
            options["expires_at"] = mint_expiry(ctx.now(), parse_duration(expires_in))
        elif isinstance(expires_at, str):
            options["expires_at"] = expires_at
        return options

    def token_spec(self, state: Mapping[str, object]) -> dict[str, object]:
        # The expiry is immutable at Buildkite: a token minted with another one is never adopted.
        if isinstance(state.get("expires_in"), str):
            return {"expires_in": state["expires_in"]}
        return {"expires_at": state.get("expires_at")} if isinstance(state.get("expires_at"), str) else {}

    def update_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        return {"allowed_ip_addresses": state.get("allowed_ip_addresses")}

    # --- plan -----------------------------------------------------------------------------------

    def check_issuer(self, ctx: Context, prior: State | None, planned: State) -> None:
        organization = resolve_organization(ctx, planned)
        cluster_id = planned.get("cluster_id")
        if organization is None or not isinstance(cluster_id, str):
            return
        if prior is not None and (prior.get("organization"), prior.get("cluster_id")) == (organization, cluster_id):
            return
        client = self.issuer(ctx)
        if not ctx.clients.memo(("buildkite-cluster", organization, cluster_id),
                                 lambda: client.get_cluster(organization, cluster_id) is not None):
            raise ConfigError("Cluster not found",
                              f"Cluster {cluster_id} does not exist in Buildkite organization {organization!r}, or "
                              "this API token cannot see it.", ("cluster_id",))

    def plan(self, ctx: Context, prior: State | None, proposed: State | None, config: State | None) -> Plan:
        if proposed is None or config is None:
            return super().plan(ctx, prior, proposed, config)
        fixed = config.get("expires_at")
        no_expiry = fixed is None and config.get("expires_in") is None
        if no_expiry:  # else Terraform carries the prior (computed) expiry over and nothing is replaced
            proposed = {**proposed, "expires_at": None}
        result = super().plan(ctx, prior, proposed, config)
        planned = result.planned
        assert planned is not None
        if no_expiry:
            planned["expires_at"] = None
        elif fixed is not None:
            planned["expires_at"] = fixed  # a rotation mints with the configured expiry: it stays known
        if isinstance(fixed, str) and (prior is None or isinstance(planned.get("id"), Unknown)):
            # Checked here, not by a schema rule: "now" moves, and only a mint needs it.
            problem = schema.buildkite_expiry_problem(fixed, ctx.now())
            if problem:
                raise ConfigError("Invalid expires_at", f"expires_at {problem}.", ("expires_at",))
        elif isinstance(fixed, str):
            # The live token keeps its expiry, so the plan goes on; but no token can be minted with this
            # expires_at any more, and the user should hear it before the token dies.
            problem = schema.buildkite_expiry_problem(fixed, ctx.now())
            if problem:
                ctx.warn(f"{self.schema.type_name} {planned.get('id')} expires soon and cannot be renewed",
                         f"expires_at {problem}. The token in {planned.get('sink_address')} stays until then; "
                         "a fixed expiry cannot be renewed. Set a later expires_at (this replaces the token) or "
                         "use expires_in with rotate_before_expiry.", ("expires_at",))
        if prior is not None:
            self._explain_replacement(ctx, prior, planned, [p[0] for p in result.requires_replace if p])
        return result

    def _explain_replacement(self, ctx: Context, prior: State, planned: State, replaced: list[object]) -> None:
        changed = [name for name in _EXPIRY if name in replaced]
        if not changed:
            return

        def show(value: object) -> str:
            return "(known after apply)" if isinstance(value, Unknown) else "none" if value is None else str(value)

        what = "; ".join(f"{name} {show(prior.get(name))} -> {show(planned.get(name))}" for name in changed)
        token, sink = prior.get("id"), prior.get("sink_address")
        ctx.warn(f"{self.schema.type_name} {token} must be replaced: its expiry changes",
                 f"Buildkite cannot change the expiry of a token ({what}). Apply revokes {token} and removes it "
                 f"from {sink}, then mints a token with the new expiry and writes it to {sink}.",
                 ("expires_in",) if "expires_in" in changed else ("expires_at",))

    # --- read and import ------------------------------------------------------------------------

    def refreshed_attributes(self, token: IssuedToken, state: State) -> State:
        ips = token.extra.get("allowed_ip_addresses")
        if ips is None and state.get("allowed_ip_addresses") == [_ANY_ADDRESS]:
            ips = state["allowed_ip_addresses"]  # the user's spelling of "no restriction"
        return {"description": split_description(token.description)[0], "allowed_ip_addresses": ips}

    def imported_attributes(self, token: IssuedToken) -> State:
        return {"description": split_description(token.description)[0],
                "allowed_ip_addresses": token.extra.get("allowed_ip_addresses")}

    def import_state(self, ctx: Context, import_id: str) -> State:
        head = (split_before_address(import_id) or (import_id, ""))[0]
        if _UUID.fullmatch(head.split("/")[0]):  # no organization: the provider's
            import_id = f"{resolve_organization(ctx, {'organization': None})}/{import_id}"
        return super().import_state(ctx, import_id)

    def parse_import_id(self, import_id: str) -> tuple[str, str | None, str]:
        """`<organization>/<cluster uuid>[/<token uuid>]/<sink address>`."""
        found = split_before_address(import_id)
        parts = [found[0], found[1]] if found else [import_id]
        head = parts[0].split("/")
        if len(parts) == 2 and len(head) in (2, 3) and head[0] and all(_UUID.fullmatch(p) for p in head[1:]):
            return f"{head[0]}/{head[1]}", (head[2] if len(head) == 3 else None), parts[1]
        raise ConfigError("Invalid import id",
                          f"Expected [<organization>/]<cluster uuid>/<sink address> or "
                          f"[<organization>/]<cluster uuid>/<token uuid>/<sink address>, got {import_id!r}. "
                          "Sink addresses look like ssm:/buildkite/agent-token or vault_kv:secret/ci/bk#token.")


def mint_expiry(now: datetime.datetime, expires_in: datetime.timedelta) -> str:
    """The `expires_at` of a token minted now with `expires_in`, rounded up to the second."""
    moment = now + max(expires_in, schema.BUILDKITE_MIN_EXPIRY + MINT_SLACK)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return format_rfc3339(moment)
