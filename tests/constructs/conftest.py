"""Fixtures for the construct tests: both CDK cores (cdktf 0.21 and cdktn 0.24), a stack in a testing
app, and helpers that synthesize it to JSON or HCL."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Before the first jsii import starts node: no end-of-life banner, no telemetry.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CHECKPOINT_DISABLE", "1")

# The repository root, so that `stacks` (cdktf.json's app) imports as a package.
REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)  # appended: nothing installed may be shadowed by a directory here

CORES = ("cdktf", "cdktn")


def load_core(name: str) -> ModuleType:
    module = importlib.import_module(name)
    module.Testing.__test__ = False  # not a test class, despite its name
    return module


@pytest.fixture(params=CORES)
def core(request: pytest.FixtureRequest) -> ModuleType:
    """Each test using it runs on cdktf and on cdktn."""
    return load_core(request.param)


@pytest.fixture
def cdktf() -> ModuleType:
    return load_core("cdktf")


@pytest.fixture
def cdktn() -> ModuleType:
    return load_core("cdktn")


@pytest.fixture
def testing_app(tmp_path: Path) -> Any:
    """`testing_app(core, **options)`: core.Testing.app with its outdir under tmp_path (by default
    Testing.app makes a directory in /tmp that nobody removes)."""
    numbers = itertools.count()

    def make(core: ModuleType, **options: Any) -> Any:
        return core.Testing.app(outdir=str(tmp_path / f"testing-app-{next(numbers)}"), **options)

    return make


@pytest.fixture
def stack(core: ModuleType, testing_app: Any) -> Any:
    return core.TerraformStack(testing_app(core), "ci-agents")


class Synth:
    """`synth(stack)` -> the stack's Terraform JSON as a dict (cdktf metadata removed);
    `synth.resources(stack, type)` and `synth.one(stack, type)` pick resources out of it."""

    def __init__(self, core: ModuleType) -> None:
        self.core = core

    def __call__(self, stack: Any) -> dict[str, Any]:
        return json.loads(self.core.Testing.synth(stack))

    def resources(self, stack: Any, type_name: str) -> dict[str, dict[str, Any]]:
        return self(stack).get("resource", {}).get(type_name, {})

    def one(self, stack: Any, type_name: str) -> dict[str, Any]:
        found = self.resources(stack, type_name)
        assert len(found) == 1, found
        return next(iter(found.values()))


@pytest.fixture
def synth(core: ModuleType) -> Synth:
    return Synth(core)
