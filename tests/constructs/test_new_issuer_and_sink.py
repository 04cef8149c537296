"""Done-when of issue 12: an issuer and a sink added by registering one entry each (the two modules
below, written as a contributor would write `issuers/<name>.py` + `registry/<name>.py` and
`sinks/<name>.py` + `registry/<name>.py`) are served by the provider (schema, settings, plan, apply),
synthesized by the constructs, walked by the audit and documented by the docs generator, with no
edit anywhere else."""

from __future__ import annotations

import io
import itertools
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fixtures.service import dynamic, full
from tokendrop_provider import cli, schema
from tokendrop_provider.attributes import Attr, ResourceSchema
from tokendrop_provider.audit import command
from tokendrop_provider.errors import SinkConflict
from tokendrop_provider.issuers.base import IssuedToken, MintedToken, TokenIssuer
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.plugin.service import ProviderService
from tokendrop_provider.provider import ProviderCore
from tokendrop_provider.registry import issuers, provider_schema, sinks
from tokendrop_provider.registry.base import AuditWalk, Issuer, SinkKind, missing_setting
from tokendrop_provider.resources.token import TokenResource
from tokendrop_provider.secret import Secret
from tokendrop_provider.settings import Setting, SettingsGroup
from tokendrop_provider.sinks.base import Ownership, Payload, Sink, SinkStatus
from tokendrop_provider.types import STRING

REPO = Path(__file__).resolve().parents[2]

# --- the new issuer: a client, a resource, a registry entry ----------------------------------------


class MemoryIssuer(TokenIssuer):
    kind = "memory"

    def __init__(self) -> None:
        self.tokens: dict[str, IssuedToken] = {}
        self.ids = itertools.count(1)

    def mint(self, scope: str, description: str, **options: object) -> MintedToken:
        token = IssuedToken(f"mt-{next(self.ids)}", scope, description, created_at="2026-12-01T00:00:00Z")
        self.tokens[token.id] = token
        return MintedToken(token, Secret(secrets.token_hex(16)))

    def lookup(self, scope: str, token_id: str) -> IssuedToken | None:
        token = self.tokens.get(token_id)
        return token if token is not None and token.scope == scope else None

    def list_tokens(self, scope: str) -> list[IssuedToken]:
        return [t for t in self.tokens.values() if t.scope == scope]

    def revoke(self, scope: str, token_id: str) -> bool:
        return self.tokens.pop(token_id, None) is not None


@dataclass(frozen=True)
class MemorySettings:
    key: Secret | None


ISSUED = MemoryIssuer()  # what "the API" holds, shared by the provider and the audit below
KEY = Setting("memory_key", "Memory issuer API key.", ("MEMORY_KEY",), sensitive=True)
MEMORY_SINK = Attr("memory", description="An in-memory store.", optional=True, nested=(
    Attr("slot", STRING, "Slot name.", required=True, on_change="replace"),))
MEMORY_TOKEN = ResourceSchema(
    type_name="tokendrop_memory_token", description="A token of the in-memory issuer.",
    attributes=(Attr("pool", STRING, "The pool.", required=True, on_change="replace"), schema.DELIVER_TO,
                *schema.LIFECYCLE_ARGUMENTS, *schema.DELIVERY_STATE), checks=(schema.DELIVER_TO_CHECK,),
    import_id="`<pool>/<sink address>` (e.g. `p1/memory:a`).", import_examples=("p1/memory:a",),
    secret_delivered="the memory token", in_state="ids and the sink address.")


class MemoryToken(TokenResource):
    schema = MEMORY_TOKEN
    scope_attribute = "pool"

    def issuer(self, ctx):  # type: ignore[no-untyped-def]
        return ctx.clients.of(MEMORY)

    def check_issuer(self, ctx, prior, planned) -> None:  # type: ignore[no-untyped-def]
        ctx.clients.check(MEMORY)


MEMORY = Issuer(
    name="memory", label="Memory", scope_label="pool",
    settings=SettingsGroup("memory", (KEY,), lambda values: MemorySettings(values["memory_key"])),
    client=lambda settings, cancel: ISSUED,
    check=lambda s: missing_setting("Missing memory key", KEY) if s.key is None else None,
    resources=lambda: (MemoryToken(),),
    token_scopes={"tokendrop_memory_token": lambda attrs, _settings: attrs.get("pool")},
    list_tokens=lambda client, scope: client.list_tokens(scope),
    audit_walk=AuditWalk(flag="--memory-pool", metavar="POOL", source="memory_pool", scope=lambda pool: pool,
                         help="also list every token of this pool. Repeatable"),
)

# --- the new sink: a writer and a registry entry ------------------------------------------------------

STORED: dict[str, tuple[int, Ownership]] = {}  # slot -> (version, ownership); values are not kept


class MemorySink(Sink):
    kind = "memory"

    def __init__(self, slot: str) -> None:
        self.slot = slot

    @property
    def address(self) -> str:
        return f"memory:{self.slot}"

    def status(self) -> SinkStatus:
        found = STORED.get(self.slot)
        return SinkStatus(True, found[0], found[1], True) if found else SinkStatus(False)

    def create(self, payload: Payload, ownership: Ownership) -> int:
        if self.slot in STORED:
            raise SinkConflict(f"{self.address} already exists")
        STORED[self.slot] = (1, ownership)
        return 1

    def replace(self, payload: Payload, ownership: Ownership, expected_version: int) -> int:
        STORED[self.slot] = (expected_version + 1, ownership)
        return expected_version + 1

    def delete(self, expected_token_id: str | None) -> bool:
        return STORED.pop(self.slot, None) is not None


MEMORY_STORE = SinkKind(
    attribute=MEMORY_SINK, settings=MEMORY.settings,
    check=lambda settings, memo: None, from_config=lambda location, settings: MemorySink(location["slot"]),
    address=lambda location: location["slot"], parse_address=lambda rest: {"slot": rest} if rest else None,
    address_format="memory:<slot>", address_fields=("slot",),
    statuses=lambda locations, settings: [MemorySink(loc["slot"]).status() for loc in locations],
)

# --- the test -------------------------------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(issuers, "ISSUERS", [*issuers.ISSUERS, MEMORY])
    monkeypatch.setattr(sinks, "SINKS", [*sinks.SINKS, MEMORY_STORE])
    monkeypatch.setenv("MEMORY_KEY", "k" * 20)
    ISSUED.tokens.clear()
    STORED.clear()


def change(svc: ProviderService, prior: Any, config: Any) -> dict[str, Any]:
    planned = svc.PlanResourceChange(pb.PlanResourceChange.Request(
        type_name=MEMORY_TOKEN.type_name, prior_state=dynamic(prior, MEMORY_TOKEN),
        proposed_new_state=dynamic(config, MEMORY_TOKEN), config=dynamic(config, MEMORY_TOKEN)), None)
    assert not planned.diagnostics, planned.diagnostics
    applied = svc.ApplyResourceChange(pb.ApplyResourceChange.Request(
        type_name=MEMORY_TOKEN.type_name, prior_state=dynamic(prior, MEMORY_TOKEN),
        planned_state=planned.planned_state, config=dynamic(config, MEMORY_TOKEN)), None)
    assert not applied.diagnostics, applied.diagnostics
    return codec.attach_dynamic(codec.decode(applied.new_state.msgpack), MEMORY_TOKEN.cty_type)


def test_a_registered_issuer_and_sink_are_served_synthesized_audited_and_documented(registered, stack, synth):
    # the provider serves the resource and the setting
    svc = ProviderService(ProviderCore())
    served = svc.GetProviderSchema(pb.GetProviderSchema.Request(), None)
    assert "tokendrop_memory_token" in served.resource_schemas
    assert "memory_key" in [a.name for a in served.provider.block.attributes]
    config = full(provider_schema())
    assert not svc.ConfigureProvider(pb.ConfigureProvider.Request(config=dynamic(config, provider_schema())),
                                     None).diagnostics

    # the sink is a `deliver_to` block of every token resource, and the exactly-one check knows it
    for type_name in ("tokendrop_memory_token", "tokendrop_tfe_agent_token"):
        block = served.resource_schemas[type_name].block
        deliver_to = next(a for a in block.attributes if a.name == "deliver_to")
        assert deliver_to.type == b'"dynamic"'  # one block or a list of them: the provider checks the blocks
        names = [a.name for a in schema.DELIVER_TO.nested or ()]
        assert names == [entry.attribute.name for entry in sinks.SINKS] and names[-1] == "memory"
        assert {"ssm", "vault_kv"} <= set(names[:-1])  # the built-in sinks stay
    both = full(MEMORY_TOKEN, pool="p1", deliver_to={"ssm": {"name": "/x"}, "vault_kv": None, "memory": {"slot": "a"}})
    refused = svc.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=MEMORY_TOKEN.type_name, config=dynamic(both, MEMORY_TOKEN)), None)
    assert [d.detail for d in refused.diagnostics] == ["set exactly one sink, not both `ssm` and `memory`."]
    assert ISSUED.tokens == {} and STORED == {}

    # plan and apply: the token is minted at the issuer and delivered to the sink
    deliver_to: dict[str, Any] = {"ssm": None, "vault_kv": None, "memory": {"slot": "a"}}
    state = change(svc, None, full(MEMORY_TOKEN, pool="p1", deliver_to=deliver_to, adopt_existing=False))
    assert state["sink_address"] == "memory:a" and state["sink_version"] == 1
    assert list(ISSUED.tokens) == [state["id"]] and STORED["a"][1].token_id == state["id"]

    # the audit reads the state, lists the pool through the registered client and reads the sink
    tfstate = {"version": 4, "resources": [{"mode": "managed", "type": "tokendrop_memory_token", "name": "t",
                                            "instances": [{"attributes": state}]}]}
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(["audit", "--state", "-", "--json"])
    code = command.run(args, stdin=io.StringIO(json.dumps(tfstate)), stdout=out, stderr=err, core=svc.core)
    assert code == command.CLEAN, err.getvalue()
    report = json.loads(out.getvalue())
    row = next(t for t in report["tokens"] if t["token_id"] == state["id"])
    assert (row["issuer"], row["scope"], row["flags"]) == ("memory", "p1", [])
    assert (row["sink"]["address"], row["sink"]["version"]) == ("memory:a", 1)  # read through the sink entry

    # the audit's option from the entry walks the pool with no state: the token is an orphan there
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(["audit", "--memory-pool", "p1", "--json"])
    code = command.run(args, stdout=out, stderr=err, core=svc.core)
    assert code == command.ATTENTION, err.getvalue()
    report = json.loads(out.getvalue())
    assert {"type": "memory_pool", "name": "p1"} in report["sources"]
    row = next(t for t in report["tokens"] if t["token_id"] == state["id"])
    assert (row["scope"], [flag["code"] for flag in row["flags"]]) == ("p1", ["orphan"])

    # the docs generator documents the resource and the setting with its environment variable
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    gen_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_docs)
    pages = gen_docs.pages
    docs = {path.name: text for path, text in pages().items()}
    assert "`p1/memory:a`" in docs["memory_token.md"]
    assert "- `slot` (Required, string) Slot name." in docs["tfe_agent_token.md"]  # under deliver_to.memory
    assert "`memory_key`" in docs["provider.md"] and "`MEMORY_KEY`" in docs["provider.md"]

    # the constructs synthesize it (the generic construct base, and a sink value object)
    from tokendrop import Sink as ConstructSink
    from tokendrop import TokendropProvider
    from tokendrop import TokenResource as TokenConstruct

    class MemorySlot(ConstructSink):
        kind: ClassVar[str] = "memory"

        def __init__(self, slot: str) -> None:
            self.slot = slot

        def to_config(self) -> dict[str, Any]:
            return {"memory": {"slot": self.slot}}

        @property
        def address(self) -> str:
            return sinks.format_address("memory", {"slot": self.slot})

    class MemoryTokenConstruct(TokenConstruct):
        schema = MEMORY_TOKEN

        def __init__(self, scope: Any, id: str, *, pool: str, deliver_to: ConstructSink, **lifecycle: Any) -> None:
            super().__init__(scope, id, pool=pool, deliver_to=deliver_to, **lifecycle)

    TokendropProvider(stack, "tokendrop")
    MemoryTokenConstruct(stack, "token", pool="p1", deliver_to=MemorySlot("a"))
    assert synth.one(stack, "tokendrop_memory_token")["deliver_to"] == {"memory": {"slot": "a"}}
    assert MemorySlot("a").address == state["sink_address"]
