"""The CDKTF app of `cdktf.json`: synthesizes every stack module listed in STACKS.

Runs on CDK for Terraform by default; `TOKENDROP_CDK_CORE=cdktn` runs the same stacks on CDK Terrain.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as `python stacks/app.py`: make the `stacks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks import agents, buildkite, ci_agents, entra_agents

# One module per stack (NAME + define(stack)).
STACKS: tuple[ModuleType, ...] = (ci_agents, buildkite, agents, entra_agents)


def build(core_name: str | None = None, **app_options: object) -> object:
    """The app with every stack defined, not yet synthesized (tests synthesize it themselves)."""
    core = importlib.import_module(core_name or os.environ.get("TOKENDROP_CDK_CORE", "cdktf"))
    app = core.App(**app_options)
    for module in STACKS:
        module.define(core.TerraformStack(app, module.NAME))
    return app


def main() -> None:
    build().synth()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
