"""Read Terraform states and pick out what tokendrop manages: its tokens and the scopes they live in.

Three formats are accepted, told apart by their top-level keys:

- a state file (`terraform.tfstate`, `terraform.<stack>.tfstate` of cdktf) and `terraform state pull`:
  format version 4, `resources[].instances[].attributes`;
- `terraform show -json`: `values.root_module.resources[].values`, modules under `child_modules`;
- `terraform show -json <planfile>`: its `prior_state`, which has the `show -json` shape.

Only tokendrop resources are read; every other resource of a state is skipped unseen (other providers
keep secrets in state, and none of them is ever printed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    pass

# Directories never searched for states: Terraform's own working data (`.terraform/terraform.tfstate`
# is the backend configuration, not a state), VCS data and node packages.
_SKIPPED_DIRS = frozenset({".terraform", ".git", "node_modules", ".venv"})


class StateError(Exception):
    """A state source that cannot be read: a usage error (exit code 2)."""


@dataclass(frozen=True)
class StateSink:
    """One entry of a token's computed `sinks` list, with its `deliver_to` block where state has one."""

    address: str
    version: int | None = None
    status: str | None = None  # delivered | pending | unknown | missing | overwritten
    deliver_to: Mapping[str, Any] | None = None  # `{kind: block}` of the same sink (region, role, ...)


@dataclass(frozen=True)
class ManagedToken:
    """One token resource instance as a state records it. Holds no secret: state has none."""

    source: str  # the state it came from (a path, or "-" for stdin)
    address: str  # resource address within that state, e.g. module.ci.tokendrop_tfe_agent_token.x["a"]
    resource_type: str
    issuer: str
    scope: str  # as the TokenIssuer methods take it: pool id, "<org>/<cluster>", agent name, "<mount>/<role>"
    token_id: str
    description: str | None = None
    sink_address: str | None = None
    sink_version: int | None = None
    sink_status: str | None = None
    deliver_to: Mapping[str, Any] | None = None
    created_at: str | None = None
    expires_at: str | None = None
    rotate_every: str | None = None
    rotate_before_expiry: str | None = None
    previous_token_id: str | None = None
    previous_revoke_after: str | None = None
    sinks: tuple[StateSink, ...] = ()  # every sink, in `deliver_to`'s order; the first is sink_address's

    @property
    def all_sinks(self) -> tuple[StateSink, ...]:
        """Every sink; state written before the `sinks` list (one sink) gives its `sink_*` attributes."""
        if self.sinks:
            return self.sinks
        if self.sink_address is None:
            return ()
        return (StateSink(self.sink_address, self.sink_version, self.sink_status, self.deliver_to),)


@dataclass(frozen=True)
class StateScope:
    """A pool / cluster / agent / role that a state names."""

    issuer: str
    scope: str
    name: str | None = None  # a display name where the state has one (pool and cluster names)


@dataclass(frozen=True)
class LoadedState:
    source: str
    format: str  # "tfstate" | "show-json" | "plan-json"
    tokens: tuple[ManagedToken, ...]
    scopes: tuple[StateScope, ...]
    skipped: tuple[str, ...] = ()  # addresses of token instances without an id (nothing to audit)


@dataclass
class States:
    """Every state given, merged."""

    loaded: list[LoadedState] = field(default_factory=list)

    @property
    def tokens(self) -> list[ManagedToken]:
        return [t for s in self.loaded for t in s.tokens]

    @property
    def scopes(self) -> list[StateScope]:
        """Scopes of the states' tokens and scope resources, each once (the first name seen wins)."""
        found: dict[tuple[str, str], StateScope] = {}
        for state in self.loaded:
            for token in state.tokens:
                found.setdefault((token.issuer, token.scope), StateScope(token.issuer, token.scope))
            for scope in state.scopes:
                known = found.get((scope.issuer, scope.scope))
                if known is None or (known.name is None and scope.name):
                    found[(scope.issuer, scope.scope)] = scope
        return list(found.values())


# --- sources ------------------------------------------------------------------------------------


def expand_sources(arguments: Iterable[str]) -> list[Path | None]:
    """The files to read, in order, each once: a file as given, every `*.tfstate` under a directory
    (sorted), None for "-" (stdin, at most once)."""
    out: list[Path | None] = []
    seen: set[Path] = set()
    stdin = False
    for argument in arguments:
        if argument == "-":
            if stdin:
                raise StateError("--state - is given twice: standard input can be read once")
            stdin = True
            out.append(None)
            continue
        path = Path(argument).expanduser()
        if path.is_dir():
            found = sorted(_state_files(path))
            if not found:
                raise StateError(f"{argument}: no *.tfstate file in this directory or below it")
            files = found
        elif path.is_file():
            files = [path]
        elif path.exists():
            raise StateError(f"{argument}: not a regular file or directory")
        else:
            raise StateError(f"{argument}: no such file or directory")
        for file in files:
            key = file.resolve()
            if key not in seen:  # a file given directly and again through its directory counts once
                seen.add(key)
                out.append(file)
    return out


def _state_files(directory: Path) -> Iterator[Path]:
    for path in directory.iterdir():
        if path.is_dir():
            if path.name not in _SKIPPED_DIRS and not path.is_symlink():  # a symlink could loop
                yield from _state_files(path)
        elif path.is_file() and path.name.endswith(".tfstate"):
            yield path


def load_sources(arguments: Iterable[str], *, stdin: TextIO | None = None,
                 buildkite_organization: str | None = None) -> States:
    states = States()
    for path in expand_sources(arguments):
        if path is None:
            text = (stdin or sys.stdin).read()
            label = "-"
        else:
            label = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise StateError(f"{label}: cannot read it ({err})") from None
        states.loaded.append(parse_state(text, label, buildkite_organization=buildkite_organization))
    return states


# --- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Instance:
    address: str
    type: str
    attributes: Mapping[str, Any]


def parse_state(text: str, source: str, *, buildkite_organization: str | None = None) -> LoadedState:
    """One state document, in any of the three formats."""
    if not text.strip():
        raise StateError(f"{source}: empty input, not a Terraform state (was the pipe empty?)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise StateError(f"{source}: not JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(doc, dict):
        raise StateError(f"{source}: not a Terraform state (the document is not a JSON object)")
    if "resources" in doc and "version" in doc:
        version = doc.get("version")
        if version != 4:
            raise StateError(f"{source}: state format version {version} is not supported (Terraform 0.12 and "
                             "later write version 4; run `terraform state pull` with a current Terraform)")
        fmt, instances = "tfstate", list(_tfstate_instances(doc, source))
    elif "format_version" in doc:
        if isinstance(doc.get("prior_state"), dict):
            fmt, values = "plan-json", (doc["prior_state"].get("values") or {})
        else:
            fmt, values = "show-json", (doc.get("values") or {})  # an empty state has no values
        instances = list(_show_instances(values.get("root_module") or {}, source))
    else:
        raise StateError(f"{source}: not a Terraform state (expected a state file, `terraform state pull` or "
                         "`terraform show -json` output)")
    tokens: list[ManagedToken] = []
    scopes: list[StateScope] = []
    skipped: list[str] = []
    from ..registry.issuers import issuer_of_resource
    from ..settings import BuildkiteSettings, Settings

    # Scopes are derived as the issuers' registry entries say; only Buildkite's needs a setting.
    settings = Settings(buildkite=BuildkiteSettings(organization=buildkite_organization))
    for inst in instances:
        issuer = issuer_of_resource(inst.type)
        if issuer is None:
            continue
        if inst.type in issuer.token_scopes:
            token = _token(inst, source, issuer.name, issuer.token_scopes[inst.type](inst.attributes, settings))
            if token is None:
                skipped.append(inst.address)
            else:
                tokens.append(token)
        elif _text(inst.attributes.get("id")) is not None:
            found = issuer.scope_resources[inst.type](inst.attributes)
            if found is not None:
                scopes.append(StateScope(issuer.name, *found))
    return LoadedState(source, fmt, tuple(tokens), tuple(scopes), tuple(skipped))


def _index(key: object) -> str:
    if key is None:
        return ""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"[{key}]"
    return f"[{json.dumps(str(key))}]"


def _tfstate_instances(doc: Mapping[str, Any], source: str) -> Iterator[_Instance]:
    resources = doc.get("resources")
    if not isinstance(resources, list):
        raise StateError(f"{source}: `resources` is not a list")
    for res in resources:
        if not isinstance(res, dict) or res.get("mode", "managed") != "managed":
            continue
        rtype, name = res.get("type"), res.get("name")
        if not isinstance(rtype, str) or not isinstance(name, str):
            continue
        module = res.get("module")
        prefix = f"{module}." if isinstance(module, str) and module else ""
        for inst in res.get("instances") or ():
            if not isinstance(inst, dict) or not isinstance(inst.get("attributes"), dict):
                continue
            address = f"{prefix}{rtype}.{name}{_index(inst.get('index_key'))}"
            if inst.get("deposed"):
                address += f" (deposed {inst['deposed']})"
            yield _Instance(address, rtype, inst["attributes"])


def _show_instances(module: Mapping[str, Any], source: str) -> Iterator[_Instance]:
    for res in module.get("resources") or ():
        if not isinstance(res, dict) or res.get("mode", "managed") != "managed":
            continue
        rtype, values = res.get("type"), res.get("values")
        if not isinstance(rtype, str) or not isinstance(values, dict):
            continue
        address = str(res.get("address") or f"{rtype}.{res.get('name')}{_index(res.get('index'))}")
        if res.get("deposed_key"):
            address += f" (deposed {res['deposed_key']})"
        yield _Instance(address, rtype, values)
    for child in module.get("child_modules") or ():
        if isinstance(child, dict):
            yield from _show_instances(child, source)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _token(inst: _Instance, source: str, issuer: str, scope: str | None) -> ManagedToken | None:
    attrs = inst.attributes
    token_id = _text(attrs.get("id"))
    if token_id is None or scope is None:
        return None
    from ..registry.sinks import all_in_state

    blocks = all_in_state(attrs.get("deliver_to"))
    deliver_to = blocks[0] if blocks else None
    return ManagedToken(
        source=source,
        address=inst.address,
        resource_type=inst.type,
        issuer=issuer,
        scope=scope,
        token_id=token_id,
        description=_text(attrs.get("description")),
        sink_address=_text(attrs.get("sink_address")),
        sink_version=_int(attrs.get("sink_version")),
        sink_status=_text(attrs.get("sink_status")),
        deliver_to=dict(deliver_to) if deliver_to is not None else None,
        created_at=_text(attrs.get("created_at")),
        expires_at=_text(attrs.get("expires_at")),
        rotate_every=_text(attrs.get("rotate_every")),
        rotate_before_expiry=_text(attrs.get("rotate_before_expiry")),
        previous_token_id=_text(attrs.get("previous_token_id")),
        previous_revoke_after=_text(attrs.get("previous_revoke_after")),
        sinks=_sinks(attrs.get("sinks"), blocks),
    )


def _sinks(listed: object, blocks: list[Mapping[str, Any]]) -> tuple[StateSink, ...]:
    """The computed `sinks` list, each entry paired with the `deliver_to` block whose address it is
    (the same order; matched by address so that a block is never given to another sink)."""
    from ..errors import ConfigError
    from ..registry.sinks import address_of

    by_address: dict[object, Mapping[str, Any]] = {}
    for block in blocks:
        try:
            by_address.setdefault(address_of(block), block)
        except (ConfigError, KeyError, ValueError):  # a malformed block in a hand-edited state: parse the address
            continue
    out: list[StateSink] = []
    for entry in listed if isinstance(listed, list) else ():
        address = _text(entry.get("address")) if isinstance(entry, Mapping) else None
        if address is None:
            continue
        out.append(StateSink(address, _int(entry.get("version")), _text(entry.get("status")),
                             by_address.get(address)))
    return tuple(out)
