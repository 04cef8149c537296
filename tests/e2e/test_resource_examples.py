"""The examples shown in the generated reference docs are valid configurations: `terraform validate`
runs the provider's own validation on each of them, with its `import.tf` (Terraform 1.5+ `import`
blocks) beside it; each import id is one the resource's importer accepts, and the pool's imports a
real pool of the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.terraform import PROVIDER_HEADER
from tokendrop_provider.registry.issuers import resources
from tokendrop_provider.registry.sinks import deliver_to_from_address
from tokendrop_provider.resources.token import TokenResource

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "resources"
HEADER = PROVIDER_HEADER
# What the examples refer to, when they are not the resource shown.
SUPPORT = {
    "tokendrop_tfe_agent_pool.ci": EXAMPLES / "tokendrop_tfe_agent_pool" / "resource.tf",
    "tokendrop_buildkite_cluster.linux": EXAMPLES / "tokendrop_buildkite_cluster" / "resource.tf",
}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir()))
def test_example_validates(example, make_workspace):
    text = (EXAMPLES / example / "resource.tf").read_text()
    extra = [path.read_text() for ref, path in SUPPORT.items() if ref in text and not ref.startswith(example + ".")]
    ws = make_workspace({})
    ws.write(HEADER + text + "\n".join(extra))
    ws.init()
    result = ws.run("validate", "-no-color")
    assert "Success! The configuration is valid." in result.stdout


def imports_of(example: str) -> list[tuple[str, str]]:
    """(to, id) of each `import` block of the example's import.tf."""
    text = (EXAMPLES / example / "import.tf").read_text()
    return re.findall(r'import\s*\{\s*to\s*=\s*(\S+)\s*id\s*=\s*"([^"]+)"\s*\}', text)


def test_every_resource_has_an_import_example():
    served = resources()
    assert sorted(p.name for p in EXAMPLES.iterdir() if (p / "import.tf").is_file()) == sorted(served)
    for type_name, resource in served.items():
        assert imports_of(type_name), f"{type_name}/import.tf has no import block"
        for to, import_id in imports_of(type_name):
            # the block imports into the resource the example declares
            assert to.startswith(type_name + ".")
            assert f'resource "{type_name}" "{to.split(".")[1]}"' in (EXAMPLES / type_name / "resource.tf").read_text()
            if isinstance(resource, TokenResource):  # the importer parses it (no call is made to parse)
                scope, _, address = resource.parse_import_id(import_id)
                assert scope and deliver_to_from_address(address)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir()))
def test_import_example_validates(example, make_workspace):
    text = (EXAMPLES / example / "resource.tf").read_text()
    extra = [path.read_text() for ref, path in SUPPORT.items() if ref in text and not ref.startswith(example + ".")]
    ws = make_workspace({})
    ws.write(HEADER + text + "\n".join(extra))
    ws.write((EXAMPLES / example / "import.tf").read_text(), name="import.tf")
    ws.init()
    assert "Success! The configuration is valid." in ws.run("validate", "-no-color").stdout


def test_the_pool_import_example_imports_the_sandboxs_pool(sandbox, make_workspace):
    pool = sandbox.tfe.create_agent_pool("acme", "ci-agents")
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + (EXAMPLES / "tokendrop_tfe_agent_pool" / "resource.tf").read_text())
    ws.write((EXAMPLES / "tokendrop_tfe_agent_pool" / "import.tf").read_text(), name="import.tf")
    ws.init()
    planned = ws.plan("-no-color")
    assert "1 to import" in planned.stdout and "0 to add" in planned.stdout
    assert pool in planned.stdout  # the pool the id names, found by organization and name
