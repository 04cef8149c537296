"""The layers, enforced by reading every import statement (module level and inside functions):

- issuers and sinks (the clients) never import delivery, resources, provider, schema, the registries,
  the audit or the plugin layer: they know their API, not the provider;
- the constructs never import grpc, boto3, hvac or requests: synthesis never talks to an API;
- production code never imports the sandbox (its emulators and test servers), except the
  `tokendrop sandbox` command, which exists to start it;
- the provider never imports hvac: Vault goes through vault.py on requests, and hvac is no runtime
  dependency (only the tests use it, to read Vault directly).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "provider"
PACKAGE = PROVIDER / "tokendrop_provider"
CONSTRUCTS = ROOT / "constructs"

CLIENT_LAYERS = ("issuers", "sinks")
ABOVE_CLIENTS = ("delivery", "resources", "provider", "schema", "registry", "audit", "plugin")
API_LIBRARIES = ("grpc", "boto3", "botocore", "hvac", "requests")
# Imports of the sandbox by production code that are its purpose: the `tokendrop sandbox` command.
SANDBOX_ENTRY_POINTS = {"tokendrop_provider.cli"}

# Known breaches, each being removed by another change; listed so that the contract holds for
# everything else now, and so that this test fails (asking to shorten the list) once one is fixed.
# None left: the AppRole issuer now takes its markers and timestamps from the bottom layer.
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path) -> Iterator[str]:
    """Every module `path` imports, absolute, wherever the statement is."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            # `from . import schema` imports a module too
            yield from (f"{target}.{alias.name}" for alias in node.names)


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def edges(root: Path, under: Path) -> set[tuple[str, str]]:
    found = set()
    for path in sorted(under.rglob("*.py")):
        if "gen" in path.relative_to(under).parts:
            continue
        source = module_name(path, root)
        found |= {(source, target) for target in imports(path, root)}
    return found


PROVIDER_EDGES = edges(PROVIDER, PACKAGE)


def test_the_walker_sees_relative_and_nested_imports():
    seen = {t for s, t in PROVIDER_EDGES if s == "tokendrop_provider.provider"}
    assert {"tokendrop_provider.registry", "tokendrop_provider.resources.base"} <= seen
    nested = {t for s, t in PROVIDER_EDGES if s == "tokendrop_provider.registry.tfe"}
    assert "tokendrop_provider.issuers.tfe" in nested  # imported inside the client factory


def test_issuers_and_sinks_import_nothing_above_them():
    above = tuple(f"tokendrop_provider.{layer}" for layer in ABOVE_CLIENTS)
    breaches = {(s, ".".join(t.split(".")[:2])) for s, t in PROVIDER_EDGES  # by layer: tokendrop_provider.<layer>
                if within(s, *(f"tokendrop_provider.{layer}" for layer in CLIENT_LAYERS)) and within(t, *above)}
    assert breaches - KNOWN == set()
    assert KNOWN - breaches == set(), "a known breach is fixed: remove it from KNOWN"


def test_constructs_import_no_api_client():
    breaches = {(s, t) for s, t in edges(CONSTRUCTS, CONSTRUCTS / "tokendrop") if within(t, *API_LIBRARIES)}
    assert breaches == set()


def test_the_provider_never_imports_hvac():
    assert {(s, t) for s, t in PROVIDER_EDGES if within(t, "hvac")} == set()


def test_production_code_never_imports_the_sandbox():
    sandbox = "tokendrop_provider.sandbox"
    breaches = {(s, t) for s, t in PROVIDER_EDGES
                if within(t, sandbox) and not within(s, sandbox) and s not in SANDBOX_ENTRY_POINTS}
    assert breaches == set()
