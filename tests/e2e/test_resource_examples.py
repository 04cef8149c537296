"""The examples shown in the generated reference docs are valid configurations: `terraform validate`
runs the provider's own validation on each of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.terraform import PROVIDER_HEADER

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
