"""Synth cost stays close to plain cdktf resources: nothing per resource spawns a process or makes
extra round trips to node (the trap of cdktf's DataResource, which runs `terraform version` per
instance). Compared in-process with the same number of bare `terraform_data` resources, best of two."""

from __future__ import annotations

import time
from datetime import timedelta

from tokendrop import SsmParameter, TfeAgentPool, TokendropProvider, VaultSecret

N = 150


def bare_resources(core, stack):
    class Data(core.TerraformResource):
        def __init__(self, scope, id, value):
            super().__init__(scope, id, terraform_resource_type="terraform_data")
            self._value = value

        def _synthesize_attributes(self):
            return {"input": self._value}

    pool = Data(stack, "pool", {"organization": "acme", "name": "p"})
    pool_id = pool.get_string_attribute("id")
    for i in range(N):
        Data(pool, f"t{i}", {"agent_pool_id": pool_id,
                             "deliver_to": {"ssm": {"name": f"/t/{i}"}}, "rotate_every": "30d"})


def tokens(core, stack):
    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="p")
    for i in range(N):
        sink = SsmParameter(f"/t/{i}", tags={"team": "ci"}) if i % 2 else VaultSecret(f"t/{i}")
        pool.add_token(f"t{i}", deliver_to=sink, rotate_every=timedelta(days=30))


def best_time(core, tmp_path, build, name):
    times = []
    for attempt in range(2):
        app = core.App(outdir=str(tmp_path / f"{name}{attempt}"))
        started = time.perf_counter()
        build(core, core.TerraformStack(app, "s"))
        app.synth()
        times.append(time.perf_counter() - started)
    return min(times)


def test_tokens_cost_about_what_bare_resources_cost(cdktf, tmp_path):
    baseline = best_time(cdktf, tmp_path, bare_resources, "bare")
    ours = best_time(cdktf, tmp_path, tokens, "tokens")
    # Measured ~1.5x here (validation, two sinks, the provider install); a process per resource is >10x.
    assert ours < 4 * baseline + 0.5, f"{N} tokens: {ours:.2f}s, {N} bare resources: {baseline:.2f}s"
