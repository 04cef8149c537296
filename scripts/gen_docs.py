"""Generate the reference pages in docs/resources/ (and docs/provider.md) from the registries: every
registered issuer's resources and every registered setting, with its environment variables.

Usage: python scripts/gen_docs.py [--check]   (--check: fail if the committed pages are stale)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tokendrop_provider import schema
from tokendrop_provider.attributes import Attr, ResourceSchema
from tokendrop_provider.registry import PROVIDER_DESCRIPTION, settings_groups
from tokendrop_provider.registry.issuers import resources
from tokendrop_provider.types import CtyType, ListOf, MapOf, ObjectOf, Primitive, SetOf

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples" / "resources"


def type_name(t: CtyType) -> str:
    if isinstance(t, Primitive):
        return t.name
    if isinstance(t, ListOf):
        return f"list of {type_name(t.element)}"
    if isinstance(t, SetOf):
        return f"set of {type_name(t.element)}"
    if isinstance(t, MapOf):
        return f"map of {type_name(t.element)}"
    if isinstance(t, ObjectOf):
        return "object"
    return str(t)


def kind(attr: Attr) -> str:
    if attr.required:
        return "Required"
    if attr.optional:
        return "Optional"
    return "Read-only"


def describe(attr: Attr) -> str:
    parts = [attr.description.strip()]
    if attr.default is not None:
        default = str(attr.default).lower() if isinstance(attr.default, bool) else f"`{attr.default}`"
        parts.append(f"Default: {default}.")
    if attr.rules:
        parts.append("Must be " + "; ".join(rule.doc for rule in attr.rules) + ".")
    said = attr.description.lower()
    if attr.is_argument and attr.on_change == "replace" and "replace" not in said:
        parts.append("Changing it replaces the resource.")
    elif attr.is_argument and attr.on_change == "rotate" and "rotate" not in said:
        parts.append("Changing it rotates the token.")
    if attr.sensitive:
        parts.append("Sensitive.")
    return " ".join(p for p in parts if p)


def attribute_lines(attrs: Sequence[Attr], arguments: bool, depth: int = 0) -> list[str]:
    lines: list[str] = []
    indent = "  " * depth
    for attr in attrs:
        if arguments != attr.is_argument and depth == 0:
            continue
        nesting = getattr(attr, "nesting", "single")
        shape = "object" if attr.nested is not None and nesting == "single" else (
            "object or list of objects" if attr.nested is not None and nesting == "one_or_list" else
            "list of objects" if attr.nested is not None else type_name(attr.type))  # type: ignore[arg-type]
        lines.append(f"{indent}- `{attr.name}` ({kind(attr)}, {shape}) {describe(attr)}")
        if attr.nested is not None:
            lines.extend(attribute_lines(attr.nested, arguments, depth + 1))
    return lines


def resource_page(res: ResourceSchema) -> str:
    short = res.type_name.removeprefix("tokendrop_")
    out = [f"# {res.type_name}", "", res.description, ""]
    example = EXAMPLES / res.type_name / "resource.tf"
    if example.exists():
        out += ["## Example", "", "```hcl", example.read_text().rstrip(), "```", ""]
    out += ["## Arguments", "", *attribute_lines(res.attributes, arguments=True), ""]
    if res.checks:
        out += ["Also checked at plan time:", "", *(f"- {c.doc}" for c in res.checks), ""]
    out += ["## Attributes", "", *attribute_lines(res.attributes, arguments=False), ""]
    out += ["## What lands in state", "", f"{res.in_state[0].upper()}{res.in_state[1:]}" if res.in_state else "", ""]
    if res.secret_delivered:
        out += ["## What is delivered", "",
                f"The value of {res.secret_delivered}, written to the sink named by `deliver_to` in the call that "
                "mints it. See [the lifecycle guide](../lifecycle.md) for rotation, drift and failure handling.", ""]
    out += ["## Import", "", res.import_id or "Not supported.", "", "```sh",
            f"terraform import {res.type_name}.{short} '{res.import_examples[0] if res.import_examples else '<id>'}'",
            "```", ""]
    block = EXAMPLES / res.type_name / "import.tf"
    if block.exists():  # validated, and parsed by the importer, in tests/e2e/test_resource_examples.py
        out += ["Or with an `import` block (Terraform 1.5 and later):", "", "```terraform",
                block.read_text().rstrip("\n"), "```", ""]
    return "\n".join(out)


def resource_schemas() -> dict[str, ResourceSchema]:
    return {name: resource.schema for name, resource in sorted(resources().items())}


def provider_page() -> str:
    out = ["# Provider: tokendrop", "", PROVIDER_DESCRIPTION, "",
           f"Source address: `{schema.PROVIDER_SOURCE}` (short: `tokendrop/tokendrop`). Install it offline with "
           "`tokendrop provider install`.", "", "## Settings", "",
           "Each setting may be set in the provider block or through its environment variables (the first one "
           "set wins); the provider block wins over the environment.", ""]
    for group in settings_groups():
        out += [f"### {group.name}", ""]
        for setting in group.settings:
            kind = "bool" if setting.boolean else "string"
            out.append(f"- `{setting.name}` (Optional, {kind}) {setting.doc}" + (" Sensitive." if setting.sensitive
                                                                                else ""))
        out.append("")
    out += ["## Resources", ""]
    out += [f"- [{name}](resources/{name.removeprefix('tokendrop_')}.md)" for name in resource_schemas()]
    return "\n".join(out) + "\n"


def pages() -> dict[Path, str]:
    result = {DOCS / "provider.md": provider_page()}
    for name, res in resource_schemas().items():
        result[DOCS / "resources" / f"{name.removeprefix('tokendrop_')}.md"] = resource_page(res)
    return result


def main() -> int:
    wanted = pages()
    if "--check" in sys.argv:
        stale = [str(p.relative_to(ROOT)) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
        extra = [str(p.relative_to(ROOT)) for p in (DOCS / "resources").glob("*.md") if p not in wanted]
        if stale or extra:
            print("reference docs are stale:", ", ".join(stale + extra), "- run: make docs")
            return 1
        return 0
    (DOCS / "resources").mkdir(parents=True, exist_ok=True)
    for path in (DOCS / "resources").glob("*.md"):
        if path not in wanted:
            path.unlink()
    for path, text in wanted.items():
        path.write_text(text)
    print(f"wrote {len(wanted)} pages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
