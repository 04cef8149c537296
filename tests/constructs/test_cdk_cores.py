"""The constructs run on whichever core the app imports — CDK for Terraform (cdktf) or CDK Terrain
(cdktn) — and refuse, with a clear error, an app that mixes them (which cdktf itself would silently
leave out of the synthesis)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tokendrop import CoreMismatchError, SsmParameter, TfeAgentPool, TfeAgentToken, TokendropProvider, core_of
from tokendrop.core import core_name


def test_each_core_gets_its_own_classes(cdktf, cdktn, testing_app):
    a = cdktf.TerraformStack(testing_app(cdktf), "a")
    b = cdktn.TerraformStack(testing_app(cdktn), "b")
    pool_a = TfeAgentPool(a, "pool", organization="acme", name="p")
    pool_b = TfeAgentPool(b, "pool", organization="acme", name="p")
    assert isinstance(pool_a, cdktf.TerraformResource) and not isinstance(pool_a, cdktn.TerraformResource)
    assert isinstance(pool_b, cdktn.TerraformResource) and not isinstance(pool_b, cdktf.TerraformResource)
    assert isinstance(pool_a, TfeAgentPool) and isinstance(pool_b, TfeAgentPool)
    assert core_of(a) is cdktf and core_of(b) is cdktn
    assert core_of(pool_b) is cdktn  # from any construct in the tree


def test_same_json_on_both_cores(cdktf, cdktn, testing_app):
    out = []
    for core in (cdktf, cdktn):
        stack = core.TerraformStack(testing_app(core), "s")
        TokendropProvider(stack, "tokendrop")
        pool = TfeAgentPool(stack, "pool", organization="acme", name="p")
        pool.add_token("t", deliver_to=SsmParameter("/t"), rotate_every="30d")
        out.append(json.loads(core.Testing.synth(stack)))
    assert out[0] == out[1]


def test_a_cdktn_stack_in_a_cdktf_app_is_refused(cdktf, cdktn):
    stack = cdktn.TerraformStack(cdktf.App(), "mixed")
    with pytest.raises(CoreMismatchError, match=r"mixes CDK for Terraform and CDK Terrain objects .*cdktf.*cdktn"):
        TokendropProvider(stack, "tokendrop")
    with pytest.raises(CoreMismatchError, match="mixed"):
        TfeAgentPool(stack, "pool", organization="acme", name="p")


def test_a_provider_from_the_other_core_is_refused(cdktf, cdktn, testing_app):
    ours = cdktf.TerraformStack(testing_app(cdktf), "ours")
    theirs = cdktn.TerraformStack(testing_app(cdktn), "theirs")
    foreign = TokendropProvider(theirs, "tokendrop")
    with pytest.raises(CoreMismatchError, match="provider is a cdktn object but this app uses cdktf"):
        TfeAgentToken(ours, "t", agent_pool_id="apool-1", deliver_to=SsmParameter("/t"), provider=foreign)


def test_outside_any_app_is_refused(cdktf):
    from constructs import Construct, RootConstruct

    orphan = Construct(RootConstruct("root"), "orphan")
    with pytest.raises(CoreMismatchError, match="inside a stack of a cdktf or cdktn App"):
        TfeAgentPool(orphan, "pool", organization="acme", name="p")


def test_user_subclasses_and_plain_constructs_in_between(core, testing_app):
    from constructs import Construct

    class CiStack(core.TerraformStack):
        pass

    stack = CiStack(testing_app(core), "ci")
    group = Construct(stack, "group")  # a plain construct between the stack and ours
    pool = TfeAgentPool(group, "pool", organization="acme", name="p")
    assert core_name(group) == core.__name__
    assert pool.node.path == "ci/group/pool"


def test_importing_tokendrop_loads_no_core():
    code = "import sys, tokendrop; print(sorted(m for m in ('cdktf', 'cdktn', 'jsii') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
